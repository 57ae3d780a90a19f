// Table mirroring under attack, on one PostgreSQL 15 cluster: a role with only UPDATE on a mirrored table tries to
// run code as the owner of the capture trigger (a temporary domain named text); a mirror host name carrying a newline
// and SQL tries to get into the SQL files a host replays; passwords must never sit in the argv of a process walden
// runs (ps shows those to every user); and the files and folders walden creates are private (0640, 0750) whatever
// the umask. Tests run in order and share the cluster.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chown, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { createCluster, runTool as runClusterTool, runWalden, testDir } from '../harness/cluster.js'
import type { Cluster, RunResult, TestDir } from '../harness/cluster.js'
import { waldenPackageRoot } from '../../src/pg/binaries.js'

const MAJOR = 15
const PASSWORD = 'Pw-9xQ2-not-for-ps'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Every process below `root` (itself included), with its command line as /proc shows it to any user. */
function processTree(root: number): Map<number, string> {
  const parents = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {
      // Gone while we looked.
    }
  }
  const found = new Map<number, string>()
  const wanted = new Set([root])
  for (let grew = true; grew; ) {
    grew = false
    for (const [pid, ppid] of parents) {
      if (!wanted.has(pid) && wanted.has(ppid)) {
        wanted.add(pid)
        grew = true
      }
    }
  }
  for (const pid of wanted) {
    try {
      found.set(pid, readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '))
    } catch {
      // Gone while we looked.
    }
  }
  return found
}

describe(`table mirroring security on PostgreSQL ${MAJOR}`, () => {
  let dir: TestDir
  let cluster: Cluster
  const clients: pg.Client[] = []

  const conninfo = (db: string): string => `host=${cluster.socketDir} port=${cluster.port} dbname=${db} user=postgres`
  const tcpConninfo = (db: string): string => `host=127.0.0.1 port=${cluster.port} dbname=${db} user=postgres`

  async function connect(database: string, user = 'postgres'): Promise<pg.Client> {
    const client = new pg.Client({ host: cluster.socketDir, port: cluster.port, user, database })
    client.on('error', () => undefined)
    await client.connect()
    clients.push(client)
    return client
  }

  async function sql(database: string, text: string): Promise<Record<string, unknown>[]> {
    const client = await connect(database)
    try {
      return (await client.query(text)).rows as Record<string, unknown>[]
    } finally {
      await client.end()
    }
  }

  const common = (): string[] => [`--lock-path=${dir.path}/lock`, '--log-level-file=off', `--mirror-master=${conninfo('master')}`]

  function walden(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
    return runWalden([...args, ...common()], { timeoutMs: 120_000, ...(env !== undefined ? { env } : {}) })
  }

  async function waldenOk(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
    const result = await walden(args, env)
    assert.equal(result.code, 0, `walden ${args.join(' ')} failed:\n${result.stderr}`)
    return result
  }

  /** walden as postgres under a given umask, the way a service manager with an unusual umask would start it. */
  function waldenUmask(umask: string, args: readonly string[]): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const script = join(waldenPackageRoot(), 'bin', 'walden')
      const child = spawn('runuser', ['-u', 'postgres', '--', '/bin/sh', '-c', `umask ${umask}; exec "$0" "$@"`, process.execPath, script, ...args], {
        cwd: dir.path,
        env: { ...process.env, LC_ALL: 'C' },
      })
      let stderr = ''
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code: code ?? 1, signal: null, stdout: '', stderr }))
    })
  }

  function runTool(tool: string, args: readonly string[]): Promise<RunResult> {
    return runClusterTool(cluster, tool, args, { cwd: dir.path })
  }


  before(async () => {
    dir = await testDir('walden-mirror-sec')
    await dir.mkdir('lock')
    cluster = await createCluster({ major: MAJOR, dir, settings: { password_encryption: 'scram-sha-256' } })
    // Passwords for TCP and for one role on the socket; everything else on the socket stays trust (the harness).
    const hba = join(cluster.dataDir, 'pg_hba.conf')
    await writeFile(hba, `local all pwuser scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n${await readFile(hba, 'utf8')}`)
    await cluster.start()
    for (const name of ['master', 'h1', 'replay']) {
      await cluster.query(`CREATE DATABASE ${name}`)
      await sql(name, 'CREATE TABLE public.acct (id int PRIMARY KEY, v text)')
    }
    await cluster.query(`ALTER ROLE postgres PASSWORD '${PASSWORD}'; CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD '${PASSWORD}'`)
    await waldenOk(['mirror-setup'])
    await waldenOk(['mirror-add-table', '--table=public.acct'])
    await sql('master', "INSERT INTO public.acct VALUES (1, 'one'), (2, 'two')")
  })

  after(async () => {
    for (const client of clients) await client.end().catch(() => undefined)
    await dir?.cleanup()
  })

  test('a role with only UPDATE cannot run code as the capture trigger owner through a temporary domain named text', async () => {
    await sql('master', 'CREATE ROLE mallory LOGIN; GRANT USAGE ON SCHEMA public TO mallory; GRANT SELECT, UPDATE ON public.acct TO mallory')
    const mallory = await connect('master', 'mallory')
    // The check of the domain runs whatever it is given; as the capture function's owner, that is anything.
    await mallory.query(`CREATE FUNCTION pg_temp.own_it(pg_catalog.text) RETURNS boolean LANGUAGE plpgsql AS $$
                         BEGIN
                           EXECUTE 'ALTER ROLE mallory SUPERUSER';
                           EXECUTE 'CREATE TABLE public.owned_by_mallory ()';
                           RETURN true;
                         END $$`)
    await mallory.query('CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.own_it(VALUE))')
    const attack = await mallory.query("UPDATE public.acct SET v = 'changed by mallory' WHERE id = 1").then(
      () => 'ok',
      (error: Error) => error.message,
    )
    const [role] = await sql('master', "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")
    const [owned] = await sql('master', "SELECT to_regclass('public.owned_by_mallory') IS NOT NULL AS owned")
    assert.equal(role!['rolsuper'], false, 'mallory became superuser through the capture trigger')
    assert.equal(owned!['owned'], false, "mallory's code ran with the trigger owner's rights")
    // The update itself is an ordinary write: it went through and was captured as one.
    assert.equal(attack, 'ok')
    const [captured] = await sql('master', "SELECT count(*)::int AS n FROM walden_mirror.change WHERE op = 'u' AND row_image ->> 'v' = 'changed by mallory'")
    assert.equal(captured!['n'], 1)
    // Nor can she feed the queue or call the capture functions herself.
    const direct = await mallory.query("INSERT INTO walden_mirror.change (xid, table_name, op) VALUES (1, 'public.acct', 't')").then(
      () => 'inserted',
      (error: Error) => error.message,
    )
    assert.match(direct, /permission denied/)
  })

  test('every SECURITY DEFINER function walden installs pins search_path', async () => {
    const rows = await sql(
      'master',
      `SELECT p.oid::regprocedure::text AS name, coalesce(array_to_string(p.proconfig, ','), '') AS config
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'walden_mirror' AND p.prosecdef ORDER BY 1`,
    )
    assert.deepEqual(
      rows.map((row) => [row['name'], row['config']]),
      [
        ['walden_mirror.capture_row()', 'search_path=pg_catalog, pg_temp'],
        ['walden_mirror.capture_truncate()', 'search_path=pg_catalog, pg_temp'],
      ],
    )
  })

  test("walden's sessions on the master never call a function another user planted on the search path", async () => {
    // As before PostgreSQL 15, where everyone may create in public: a quote_ident(name) there matches the catalog's
    // name column better than pg_catalog.quote_ident(text), and would run as whoever runs mirror-add-table.
    // Whatever the test before did to her.
    await sql('master', 'ALTER ROLE mallory NOSUPERUSER; GRANT CREATE ON SCHEMA public TO mallory')
    const mallory = await connect('master', 'mallory')
    await mallory.query(`CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $$
                         BEGIN
                           EXECUTE 'ALTER ROLE mallory SUPERUSER';
                           RETURN pg_catalog.quote_ident($1::pg_catalog.text);
                         END $$`)
    await mallory.query('GRANT EXECUTE ON FUNCTION public.quote_ident(name) TO PUBLIC')
    try {
      await waldenOk(['mirror-add-table', '--table=acct'])
      await waldenOk(['mirror-status'])
      const [role] = await sql('master', "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")
      assert.equal(role!['rolsuper'], false, "mallory's public.quote_ident ran as walden's role")
      // The name the user gave is still looked up by their search path.
      const [table] = await sql('master', 'SELECT table_name FROM walden_mirror.mirrored_table')
      assert.equal(table!['table_name'], 'public.acct')
    } finally {
      await sql('master', 'DROP FUNCTION public.quote_ident(name); REVOKE CREATE ON SCHEMA public FROM mallory')
    }
  })

  test('a host name with a newline never reaches a SQL file: refused by name, and the files replay cleanly', async () => {
    const filesPath = join(dir.path, 'files')
    const evil = 'h2\nCREATE TABLE public.injected_by_host_name (); --'
    const added = await walden(['mirror-add-host', `--mirror-host=${evil}`])
    if (added.code === 0) {
      // What the attack does where the name is accepted: the name ends the header comment of every file.
      await walden(['mirror-run', `--mirror-host=${evil}`, '--once', `--mirror-target-path=${filesPath}`])
      const names = (await readdir(filesPath).catch(() => [] as string[])).filter((name) => name.endsWith('.sql')).sort()
      await runTool('psql', ['-X', '-q', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', 'replay', ...names.flatMap((name) => ['-f', join(filesPath, name)])])
    }
    const [injected] = await sql('replay', "SELECT to_regclass('public.injected_by_host_name') IS NOT NULL AS injected")
    assert.equal(injected!['injected'], false, 'SQL in the host name ran when the files were replayed')
    assert.equal(added.code, 32, added.stderr)
    assert.match(added.stderr, /ERROR: \[032\]: invalid mirror host name 'h2\\nCREATE TABLE/)
    assert.doesNotMatch(added.stderr, /\n\s+at /, 'no stack trace')

    // A host registered with such a name before names were checked (here, by hand) cannot be delivered to either.
    await sql('master', `INSERT INTO walden_mirror.host (name) VALUES (E'h3\\nCREATE TABLE public.injected_by_host_name (); --')`)
    const run = await walden(['mirror-run', '--mirror-host=h3\nCREATE TABLE public.injected_by_host_name (); --', '--once', `--mirror-target-path=${filesPath}`])
    assert.equal(run.code, 32, run.stderr)
    assert.match(run.stderr, /HINT: .*remove it with mirror-remove-host and register it again under a name of letters, digits/)
    // ...but it can be removed.
    await waldenOk(['mirror-remove-host', '--mirror-host=h3\nCREATE TABLE public.injected_by_host_name (); --'])
    const refusedTable = await walden(['mirror-add-table', '--table=public.acct\n; DROP TABLE public.acct'])
    assert.equal(refusedTable.code, 32, refusedTable.stderr)

    // A valid host: its files replay with psql into an empty copy and give the master's rows.
    await waldenOk(['mirror-add-host', '--mirror-host=files.host-1'])
    await sql('master', "INSERT INTO public.acct VALUES (3, E'three\\n-- not a comment')")
    await waldenOk(['mirror-run', '--mirror-host=files.host-1', '--once', `--mirror-target-path=${filesPath}`])
    const names = (await readdir(filesPath)).filter((name) => name.endsWith('.sql')).sort()
    assert.ok(names.length >= 2, names.join(' '))
    // Everything since mirror-setup is still queued for the new host: its files start from an empty table.
    await sql('replay', 'TRUNCATE public.acct')
    const replay = await runTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', 'replay', ...names.flatMap((name) => ['-f', join(filesPath, name)])])
    assert.equal(replay.code, 0, replay.stderr)
    const rows = async (db: string): Promise<unknown> => (await sql(db, 'SELECT id, v FROM public.acct ORDER BY id')).map((row) => [row['id'], row['v']])
    assert.deepEqual(await rows('replay'), await rows('master'))
  })

  test('a password on the command line is refused; one in the password file is used and never reaches any argv', async () => {
    await waldenOk(['mirror-add-host', '--mirror-host=h1'])
    // On the command line, ps shows it to every user of the machine: refused before anything connects.
    const withPassword = `${tcpConninfo('h1')} password=${PASSWORD}`
    const refused = await walden(['mirror-run', '--mirror-host=h1', '--once', `--mirror-target=${withPassword}`])
    assert.equal(refused.code, 32, refused.stderr)
    assert.match(refused.stderr, /option 'mirror-target' holds a password on the command line/)
    assert.doesNotMatch(refused.stderr, new RegExp(PASSWORD))
    const uri = await runWalden(['mirror-status', `--lock-path=${dir.path}/lock`, '--log-level-file=off', `--mirror-master=postgresql://postgres:${PASSWORD}@127.0.0.1:${cluster.port}/master`])
    assert.equal(uri.code, 32, uri.stderr)
    assert.match(uri.stderr, /option 'mirror-master' holds a password on the command line/)
    // In the environment (private to walden's user, like the password file) it is accepted.
    const fromEnv = await runWalden(['mirror-status', `--lock-path=${dir.path}/lock`, '--log-level-file=off'], {
      env: { WALDEN_MIRROR_MASTER: `${tcpConninfo('master')} password=${PASSWORD}` },
    })
    assert.equal(fromEnv.code, 0, fromEnv.stderr)

    // From the password file: over TCP, and over the socket, which libpq names by its folder there (this cluster's
    // socket folder is not PostgreSQL's default one, which alone would be called localhost).
    const passfile = join(dir.path, 'pgpass')
    const socketField = cluster.socketDir.replace(/[\\:]/g, (c) => `\\${c}`)
    await writeFile(passfile, `127.0.0.1:${cluster.port}:*:postgres:${PASSWORD}\n${socketField}:${cluster.port}:*:pwuser:${PASSWORD}\n`, { mode: 0o600 })
    await chown(passfile, (await stat(dir.path)).uid, (await stat(dir.path)).gid)
    const env = { PGPASSFILE: passfile }
    const viaSocket = await runWalden(
      ['mirror-status', `--lock-path=${dir.path}/lock`, '--log-level-file=off', `--mirror-master=host=${cluster.socketDir} port=${cluster.port} dbname=master user=pwuser`],
      { env },
    )
    assert.equal(viaSocket.code, 0, viaSocket.stderr)
    assert.doesNotMatch(viaSocket.stderr, /deprecated/i)

    // A daemon over TCP with a stalled host, so that it runs its alert command too: watch every process it starts.
    // h1 lacks the row the next update changes: it stalls there, and the alert command runs.
    await sql('h1', 'TRUNCATE public.acct')
    await sql('master', "UPDATE public.acct SET v = 'h1 lacks this row' WHERE id = 2")
    const alertDone = join(dir.path, 'alert-done')
    const alertEnv = join(dir.path, 'alert-env')
    const args = [
      join(waldenPackageRoot(), 'bin', 'walden'),
      'mirror-run',
      '--mirror-host=h1',
      `--mirror-master=${tcpConninfo('master')}`,
      '--mirror-interval=1',
      `--mirror-alert-command=env > ${alertEnv}; sleep 1; touch ${alertDone}`,
      `--lock-path=${dir.path}/lock`,
      '--log-level-file=off',
      '--log-level-console=info',
    ]
    const daemon: ChildProcess = spawn('runuser', ['-u', 'postgres', '--', process.execPath, ...args], {
      cwd: dir.path,
      // The host's connection string, password and all, from the environment: allowed, as private as the file.
      env: { ...process.env, LC_ALL: 'C', ...env, WALDEN_MIRROR_TARGET: `${tcpConninfo('h1')} password=${PASSWORD}` },
      stdio: ['ignore', 'ignore', 'pipe'],
      // Its own process group: runuser passes a signal on to it, and nothing reaches the test runner.
      detached: true,
    })
    let stderr = ''
    daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const seen = new Map<number, string>()
    try {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
        for (const [pid, cmdline] of processTree(daemon.pid!)) seen.set(pid, cmdline)
        if (await stat(alertDone).then(() => true, () => false)) break
        await sleep(20)
      }
    } finally {
      daemon.kill('SIGTERM')
      await new Promise((resolve) => daemon.once('close', resolve))
    }
    const lines = [...seen.values()]
    assert.ok(await stat(alertDone).then(() => true, () => false), `the alert command never ran:\n${stderr}`)
    assert.ok(lines.some((line) => line.includes('mirror-run')), lines.join('\n'))
    assert.ok(lines.some((line) => line.includes('sleep 1')), `the alert command was not seen:\n${lines.join('\n')}`)
    for (const line of lines) assert.ok(!line.includes(PASSWORD), `a password in argv: ${line}`)
    // Nor in the alert command's environment: it gets the stall's details, not walden's connection strings.
    const alertEnvText = await readFile(alertEnv, 'utf8')
    assert.match(alertEnvText, /^WALDEN_MIRROR_HOST=h1$/m)
    assert.ok(!alertEnvText.includes(PASSWORD), 'a password in the alert command environment')
    // It did reach both databases with the file's password: the host stalled on the update of a row it lacks.
    assert.match(stderr, /mirror host 'h1' stopped at master transaction \d+/)
    assert.doesNotMatch(stderr, new RegExp(PASSWORD))
    await waldenOk(['mirror-remove-host', '--mirror-host=h1'])
  })

  test('a queued change whose table name is not a qualified name is refused, never written into SQL', async () => {
    // Only the capture trigger's owner can write the queue; this is what a row written some other way would do.
    await waldenOk(['mirror-add-host', '--mirror-host=h1'])
    await sql('master', "INSERT INTO walden_mirror.change (xid, table_name, op) VALUES (txid_current(), 'public.acct; CREATE TABLE public.injected_by_queue (); --', 't')")
    try {
      // overwrite: h1 lacks rows (see above); nothing else may stop it before the forged change.
      const run = await walden(['mirror-run', '--mirror-host=h1', '--once', '--mirror-conflict=overwrite', `--mirror-target=${conninfo('h1')}`])
      const [injected] = await sql('h1', "SELECT to_regclass('public.injected_by_queue') IS NOT NULL AS injected")
      assert.equal(injected!['injected'], false, 'SQL in a queued table name ran on the host')
      assert.equal(run.code, 29, run.stderr)
      assert.match(run.stderr, /queued change \d+ names table 'public\.acct; CREATE TABLE public\.injected_by_queue \(\); --', which is not a schema-qualified table name/)
    } finally {
      await sql('master', "DELETE FROM walden_mirror.change WHERE table_name LIKE '%injected_by_queue%'")
      await waldenOk(['mirror-remove-host', '--mirror-host=h1'])
    }
  })

  test('log files and SQL files are 0640 in 0750 folders walden creates, whatever the umask', async () => {
    const base = await dir.mkdir('modes')
    await waldenOk(['mirror-add-host', '--mirror-host=modes'])
    await sql('master', "INSERT INTO public.acct VALUES (4, 'four')")
    for (const umask of ['000', '022', '077']) {
      const logPath = join(base, `log-${umask}`, 'nested')
      const filesPath = join(base, `files-${umask}`, 'nested')
      const result = await waldenUmask(umask, [
        'mirror-run',
        '--mirror-host=modes',
        '--once',
        `--mirror-target-path=${filesPath}`,
        `--mirror-master=${conninfo('master')}`,
        `--lock-path=${dir.path}/lock`,
        `--log-path=${logPath}`,
        '--log-level-file=info',
      ])
      assert.equal(result.code, 0, result.stderr)
      const mode = async (path: string): Promise<string> => ((await stat(path)).mode & 0o777).toString(8)
      for (const folder of [join(base, `log-${umask}`), logPath, join(base, `files-${umask}`), filesPath]) {
        assert.equal(await mode(folder), '750', `umask ${umask}: ${folder}`)
      }
      const logs = await readdir(logPath)
      assert.ok(logs.length > 0)
      for (const name of logs) assert.equal(await mode(join(logPath, name)), '640', `umask ${umask}: ${name}`)
      const files = await readdir(filesPath)
      assert.ok(files.length > 0)
      for (const name of files) assert.equal(await mode(join(filesPath, name)), '640', `umask ${umask}: ${name}`)
      // The next host run starts over from the beginning for the next umask.
      await sql('master', "UPDATE walden_mirror.host SET pos_tick = 0, pos_seq = 0 WHERE name = 'modes'")
    }
  })

  test("a mirrored table's owner cannot run code as anyone but a role that may only queue changes", async () => {
    // mallory owns a table the administrator mirrors. to_jsonb(NEW) in the capture trigger calls a cast to json that
    // the owner of a column's type defines: hers, for an enum of her own.
    await sql('master', 'ALTER ROLE mallory NOSUPERUSER; GRANT CREATE ON SCHEMA public TO mallory')
    const mallory = await connect('master', 'mallory')
    await mallory.query("CREATE TABLE public.mine (id int PRIMARY KEY); CREATE TYPE public.mood AS ENUM ('ok')")
    await waldenOk(['mirror-add-table', '--table=public.mine'])
    await mallory.query('ALTER TABLE public.mine ADD COLUMN m public.mood')
    await mallory.query(`CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $$
                         BEGIN
                           EXECUTE 'ALTER ROLE mallory SUPERUSER';
                           RETURN '"ok"'::json;
                         END $$`)
    await mallory.query('CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood)')
    const attack = await mallory.query("INSERT INTO public.mine VALUES (1, 'ok')").then(
      () => 'ok',
      (error: Error) => error.message,
    )
    const [role] = await sql('master', "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")
    assert.equal(role!['rolsuper'], false, `mallory became superuser through a cast the capture trigger called (${attack})`)
    assert.match(attack, /must be superuser|permission denied/)
    // The role the capture functions run as may do nothing else.
    const [capture] = await sql(
      'master',
      `SELECT r.rolsuper, r.rolcanlogin, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
              (SELECT pg_catalog.array_agg(DISTINCT p.proowner::regrole::text) FROM pg_proc p WHERE p.proname LIKE 'capture\\_%'
                 AND p.pronamespace = 'walden_mirror'::regnamespace) AS owners,
              has_table_privilege('walden_mirror_capture', 'walden_mirror.change', 'SELECT, UPDATE, DELETE, TRUNCATE') AS more_on_queue,
              has_table_privilege('walden_mirror_capture', 'walden_mirror.host', 'SELECT, INSERT, UPDATE, DELETE') AS on_hosts
         FROM pg_roles r WHERE r.rolname = 'walden_mirror_capture'`,
    )
    assert.deepEqual(capture, {
      rolsuper: false,
      rolcanlogin: false,
      rolcreaterole: false,
      rolcreatedb: false,
      rolbypassrls: false,
      owners: ['walden_mirror_capture'],
      more_on_queue: false,
      on_hosts: false,
    })
    // Teardown takes the role away with the last mirror of the cluster.
    await waldenOk(['mirror-teardown'])
    const [gone] = await sql('master', "SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'walden_mirror_capture'")
    assert.equal(gone!['n'], 0)
  })
})
