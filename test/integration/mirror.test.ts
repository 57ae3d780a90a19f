// Table mirroring on one PostgreSQL 15 cluster (Debian's, which has pg_dump, psql and pgbench): a master database,
// two host databases and one SQL-file host. A scripted mix of transactions (multi-row, primary-key changes, deletes,
// savepoints and transactions rolled back, sequences, TRUNCATE, awkward values), then concurrent pgbench writers while
// one host's mirror-run daemon is SIGKILLed again and again; afterwards every host, and an empty copy replaying the
// SQL files, equals the master. Then conflicts (error, skip, overwrite, alert), mirror-init-host on a busy master,
// purge with hosts added and removed, and teardown. Tests run in order and share the cluster.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type pg from 'pg'
import { createCluster, runTool as runClusterTool, runWalden, testDir, waldenCommand } from '../harness/cluster.js'
import type { Cluster, RunResult, TestDir } from '../harness/cluster.js'

const MAJOR = 15
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const TABLES_DDL = `
  CREATE TABLE public.acct (id serial PRIMARY KEY, name text, balance numeric, note text, tags text[], doc jsonb,
                            at timestamptz, "Odd ""col""" text);
  CREATE TABLE public.item (a int, b text, v int GENERATED ALWAYS AS (a * 2) STORED,
                            w int GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (a, b));
  CREATE TABLE public.nopk (x int);
`

// Each client inserts an account, moves money on a random one, and churns items keyed by its own client id, so
// concurrent transactions touch the same rows often (the order matters) without deadlocking.
const PGBENCH_SCRIPT = `
\\set id random(1, 60)
\\set k random(1, 40)
BEGIN;
INSERT INTO public.acct (name, balance) VALUES ('bench ' || :client_id, :id);
UPDATE public.acct SET balance = balance + 1, note = 'touched by ' || :client_id WHERE id = :id;
INSERT INTO public.item (a, b) VALUES (:k, 'c' || :client_id) ON CONFLICT (a, b) DO NOTHING;
UPDATE public.item SET b = 'c' || :client_id || '-' || pg_current_xact_id() WHERE a = :k AND b = 'c' || :client_id AND :id % 3 = 0;
DELETE FROM public.item WHERE a = :k AND b LIKE 'c' || :client_id || '-%' AND :id % 5 = 0;
END;
`

describe(`table mirroring on PostgreSQL ${MAJOR}`, () => {
  let dir: TestDir
  let cluster: Cluster
  let filesPath: string
  const clients = new Map<string, pg.Client>()
  const master = { conninfo: '' }

  const conninfo = (db: string): string => `host=${cluster.socketDir} port=${cluster.port} dbname=${db} user=postgres`

  async function db(name: string): Promise<pg.Client> {
    let client = clients.get(name)
    if (client === undefined) {
      client = await cluster.connect(name)
      clients.set(name, client)
    }
    return client
  }

  async function sql(name: string, text: string, params?: unknown[]): Promise<Record<string, unknown>[]> {
    return (await (await db(name)).query(text, params)).rows as Record<string, unknown>[]
  }

  const common = (): string[] => [`--lock-path=${dir.path}/lock`, `--log-path=${dir.path}/log`, '--log-level-file=off', `--mirror-master=${master.conninfo}`]

  function walden(args: readonly string[]): Promise<RunResult> {
    return runWalden([...args, ...common()], { timeoutMs: 180_000 })
  }

  async function waldenOk(args: readonly string[]): Promise<RunResult> {
    const result = await walden(args)
    assert.equal(result.code, 0, `walden ${args.join(' ')} failed:\n${result.stderr}`)
    return result
  }

  function runOnce(host: string, target: string[], extra: string[] = []): Promise<RunResult> {
    return walden(['mirror-run', `--mirror-host=${host}`, ...target, '--once', ...extra])
  }
  const toDb = (name: string): string[] => [`--mirror-target=${conninfo(name)}`]

  /** The mirrored tables' rows as pg_dump writes them (sequences included). */
  async function tablesDump(name: string): Promise<string> {
    const result = await runTool('pg_dump', ['--data-only', '-t', 'public.acct', '-t', 'public.item', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', name])
    assert.equal(result.code, 0, result.stderr)
    // Rows in a sorted order: a host stores them in another physical order than the master, which pg_dump follows.
    const lines = result.stdout.split('\n').filter((line) => !line.startsWith('\\restrict') && !line.startsWith('\\unrestrict'))
    const out: string[] = []
    let rows: string[] | undefined
    for (const line of lines) {
      if (rows !== undefined && line === '\\.') {
        out.push(...rows.sort(), line)
        rows = undefined
      } else if (rows !== undefined) rows.push(line)
      else {
        out.push(line)
        if (/^COPY .* FROM stdin;$/.test(line)) rows = []
      }
    }
    return out.join('\n')
  }

  function runTool(tool: string, args: readonly string[], input?: string): Promise<RunResult> {
    return runClusterTool(cluster, tool, args, { cwd: dir.path, ...(input !== undefined ? { input } : {}) })
  }


  async function assertSameAsMaster(name: string): Promise<void> {
    assert.equal(await tablesDump(name), await tablesDump('master'), `${name} differs from the master`)
  }

  /** Runs the SQL files in name order into a database, as a user shipping them would. */
  async function replayFiles(into: string): Promise<void> {
    const names = (await readdir(filesPath)).filter((name) => name.endsWith('.sql')).sort()
    // One psql for all of them, in order (-f may be repeated), stopping at the first error.
    const files = names.flatMap((name) => ['-f', join(filesPath, name)])
    const result = await runTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', into, ...files])
    assert.equal(result.code, 0, `replaying the files failed: ${result.stderr}`)
  }

  async function pgbench(transactionsPerClient: number, clientCount = 4): Promise<void> {
    const script = join(dir.path, 'mirror.pgbench')
    await writeFile(script, PGBENCH_SCRIPT)
    const result = await runTool('pgbench', ['-n', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-c', String(clientCount), '-t', String(transactionsPerClient), '--max-tries=20', '-f', script, 'master'])
    assert.equal(result.code, 0, `pgbench failed: ${result.stderr}${result.stdout}`)
  }

  before(async () => {
    dir = await testDir('walden-mirror')
    await dir.mkdir('lock')
    await dir.mkdir('log')
    filesPath = join(await dir.mkdir('files-parent'), 'files')
    cluster = await createCluster({ major: MAJOR, dir, settings: { max_connections: '40' } })
    await cluster.start()
    for (const name of ['master', 'h1', 'h2', 'replay', 'fresh']) await cluster.query(`CREATE DATABASE ${name}`)
    for (const name of ['master', 'h1', 'h2', 'replay', 'fresh']) await sql(name, TABLES_DDL)
    master.conninfo = conninfo('master')
  })

  after(async () => {
    for (const client of clients.values()) await client.end().catch(() => undefined)
    await dir?.cleanup()
  })

  test('setup is idempotent; tables without a primary key are refused by name', async () => {
    await waldenOk(['mirror-setup'])
    await waldenOk(['mirror-setup'])
    await waldenOk(['mirror-add-table', '--table=public.acct'])
    await waldenOk(['mirror-add-table', '--table=item'])
    const refused = await walden(['mirror-add-table', '--table=public.nopk'])
    assert.equal(refused.code, 69, refused.stderr)
    assert.match(refused.stderr, /ERROR: \[069\]: there is no PRIMARY KEY for table public\.nopk\n/)
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace')
    const missing = await walden(['mirror-add-table', '--table=public.nothere'])
    assert.equal(missing.code, 69)
    assert.match(missing.stderr, /table 'public\.nothere' does not exist/)
    const noMaster = await runWalden(['mirror-status', `--lock-path=${dir.path}/lock`, '--log-level-file=off'])
    assert.equal(noMaster.code, 37, noMaster.stderr)
    assert.match(noMaster.stderr, /mirror-status command requires option 'mirror-master' or a stanza whose pg1-\* options name the master/)
    const noTarget = await walden(['mirror-run', '--mirror-host=h1', '--once'])
    assert.equal(noTarget.code, 37)
    assert.match(noTarget.stderr, /requires exactly one of options 'mirror-target' and 'mirror-target-path'/)
    for (const host of ['h1', 'h2', 'files']) await waldenOk(['mirror-add-host', `--mirror-host=${host}`])
    const unknown = await walden(['mirror-run', '--mirror-host=nobody', '--once', ...toDb('h1')])
    assert.equal(unknown.code, 69)
    assert.match(unknown.stderr, /mirror host 'nobody' is not registered/)
  })

  test('a mix of transactions arrives whole, in order, and nothing rolled back arrives', async () => {
    const m = await db('master')
    await m.query(`INSERT INTO acct (name, balance, note, tags, doc, at, "Odd ""col""")
                   VALUES ('quote '' and back\\slash', 1.50, NULL, '{x,"y z"}', '{"k": [1, 2.50, null]}', '2026-01-02 03:04:05+00', 'odd'),
                          ('empty', 0, '', '{}', '[]', NULL, NULL),
                          ('unicode ✓', 1e-20, 'line\nbreak', NULL, '{}', now(), '')`)
    await m.query('BEGIN')
    await m.query("INSERT INTO acct (name) VALUES ('kept')")
    await m.query('SAVEPOINT s1')
    await m.query("INSERT INTO acct (name) VALUES ('savepoint rolled back')")
    await m.query("UPDATE acct SET balance = -1 WHERE name = 'empty'")
    await m.query('ROLLBACK TO SAVEPOINT s1')
    await m.query('SAVEPOINT s2')
    await m.query("UPDATE acct SET balance = 42 WHERE name = 'empty'")
    await m.query('RELEASE SAVEPOINT s2')
    await m.query('COMMIT')
    await m.query('BEGIN')
    await m.query("INSERT INTO acct (name) VALUES ('whole transaction rolled back')")
    await m.query("DELETE FROM acct WHERE name = 'kept'")
    await m.query('ROLLBACK')
    // A primary-key change, then a new row taking the old key, in one transaction: order within it matters.
    await m.query('BEGIN')
    const [kept] = (await m.query("SELECT id FROM acct WHERE name = 'kept'")).rows as Array<{ id: number }>
    await m.query("UPDATE acct SET id = 100000 WHERE name = 'kept'")
    await m.query("INSERT INTO acct (id, name) VALUES ($1, 'reused key')", [kept!.id])
    await m.query('COMMIT')
    await m.query("INSERT INTO item (a, b) SELECT n, 'seed' FROM generate_series(1, 30) n")
    await m.query("UPDATE item SET b = 'moved' WHERE a = 3")
    await m.query('DELETE FROM item WHERE a > 25')
    await m.query('TRUNCATE item')
    await m.query("INSERT INTO item (a, b) SELECT n, 'after truncate' FROM generate_series(1, 10) n")
    await m.query("DELETE FROM acct WHERE name = 'unicode ✓'")

    await waldenOk(['mirror-run', '--mirror-host=h1', '--once', ...toDb('h1')])
    await assertSameAsMaster('h1')
    const names = (await sql('h1', 'SELECT name FROM acct ORDER BY name')).map((row) => row['name'])
    assert.ok(names.includes('kept') && !names.includes('savepoint rolled back') && !names.includes('whole transaction rolled back'))
    const empty = await sql('h1', "SELECT note, tags::text, doc::text, at FROM acct WHERE name = 'empty'")
    assert.deepEqual(empty[0], { note: '', tags: '{}', doc: '[]', at: null }, 'NULL and empty values kept apart')
  })

  test('concurrent writers while one host is SIGKILLed mid-apply: nothing lost, nothing doubled', async () => {
    const { uid, gid } = await postgresIds()
    const daemonArgs = ['mirror-run', '--mirror-host=h2', ...toDb('h2'), '--mirror-interval=0.2', ...common()]
    const load = pgbench(400)
    let kills = 0
    let running = true
    void load.finally(() => (running = false))
    const runner = (async () => {
      while (running || kills < 5) {
        const child: ChildProcess = spawn(process.execPath, [join(waldenRoot(), 'bin', 'walden'), ...daemonArgs], {
          uid,
          gid,
          cwd: dir.path,
          stdio: 'ignore',
        })
        await sleep(100 + Math.floor(Math.random() * 400))
        child.kill('SIGKILL')
        await new Promise((resolve) => child.once('close', resolve))
        kills++
      }
    })()
    // Meanwhile h1 and the file host take what is there, cycle after cycle.
    while (running) {
      await waldenOk(['mirror-run', '--mirror-host=h1', '--once', ...toDb('h1')])
      await waldenOk(['mirror-run', '--mirror-host=files', '--once', `--mirror-target-path=${filesPath}`])
    }
    await load
    await runner
    assert.ok(kills >= 5, `mirror-run was killed ${kills} times`)
    // One last committed transaction on each table, so sequences end where the master's are.
    await sql('master', "BEGIN; INSERT INTO acct (name) VALUES ('last'); INSERT INTO item (a, b) VALUES (0, 'last'); COMMIT")
    for (const [host, target] of [['h1', toDb('h1')], ['files', [`--mirror-target-path=${filesPath}`]]] as const) {
      await waldenOk(['mirror-run', `--mirror-host=${host}`, '--once', ...target])
    }
    // The killed host's advisory lock goes with its connection; the server may need a moment to notice.
    let last: RunResult | undefined
    for (let attempt = 0; attempt < 20; attempt++) {
      last = await runOnce('h2', toDb('h2'))
      if (last.code !== 50) break
      await sleep(250)
    }
    assert.equal(last!.code, 0, last!.stderr)
    await assertSameAsMaster('h1')
    await assertSameAsMaster('h2')
    const [count] = await sql('master', "SELECT count(*)::int AS n FROM acct WHERE name LIKE 'bench %'")
    assert.equal(count!['n'], 1600, 'every pgbench transaction committed on the master')
  })

  test('replaying the SQL files in order into an empty copy gives the same; a second replay changes nothing', async () => {
    await replayFiles('replay')
    await assertSameAsMaster('replay')
    const names = (await readdir(filesPath)).filter((name) => /_XID\d+\.sql$/.test(name)).sort()
    assert.ok(names.length > 1600, `${names.length} files`)
    assert.match(names[0]!, /^H\d+_T\d{12}_S\d{15}_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_XID\d+\.sql$/)
    const again = await runTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', 'replay', '-f', join(filesPath, names.at(-1)!)])
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /duplicate key value violates unique constraint "applied_pkey"/)
    await assertSameAsMaster('replay')
    assert.deepEqual(
      (await readdir(filesPath)).filter((name) => name.endsWith('.tmp')),
      [],
      'no temporary files left behind',
    )
  })

  test('mirror-status: caught-up hosts, text and json, and --max-lag-seconds', async () => {
    const json = JSON.parse((await waldenOk(['mirror-status', '--output=json'])).stdout) as Array<{ host: string; transactionsBehind: number; stalled: unknown }>
    assert.deepEqual(json.map((host) => [host.host, host.transactionsBehind, host.stalled]), [['files', 0, null], ['h1', 0, null], ['h2', 0, null]])
    const text = await waldenOk(['mirror-status'])
    assert.match(text.stdout, /^host 'files': 0 transaction\(s\) and 0\.0 s behind, last applied master transaction \d+ at /)
    await sql('master', "INSERT INTO acct (name) VALUES ('waiting')")
    await sleep(1200)
    const late = await walden(['mirror-status', '--max-lag-seconds=1'])
    assert.equal(late.code, 90, late.stderr)
    assert.match(late.stdout, /host 'h1': 1 transaction\(s\) and \d+\.\d s behind/)
    assert.match(late.stderr, /mirror host 'h1' is \d+\.\d s behind, more than 1 s/)
    for (const host of ['h1', 'h2']) await waldenOk(['mirror-run', `--mirror-host=${host}`, '--once', ...toDb(host)])
    await waldenOk(['mirror-run', '--mirror-host=files', '--once', `--mirror-target-path=${filesPath}`])
  })

  test('a conflict stops the host at that transaction and names it; skip goes on; overwrite repairs; the alert runs', async () => {
    await sql('h1', "DELETE FROM acct WHERE name = 'waiting'")
    await sql('h2', "DELETE FROM acct WHERE name = 'waiting'")
    const m = await db('master')
    await m.query('BEGIN')
    await m.query("UPDATE acct SET note = 'conflict' WHERE name = 'waiting'")
    const [{ xid }] = (await m.query('SELECT pg_current_xact_id()::text AS xid')).rows as [{ xid: string }]
    await m.query('COMMIT')
    assert.match(xid, /^\d+$/)
    await sql('master', "INSERT INTO acct (name) VALUES ('after conflict')")

    const alertFile = join(dir.path, 'files-parent', 'alert.txt')
    const stopped = await runOnce('h1', toDb('h1'), [`--mirror-alert-command=echo "$WALDEN_MIRROR_HOST $WALDEN_MIRROR_XID" > ${alertFile}`])
    assert.equal(stopped.code, 58, stopped.stderr)
    assert.match(stopped.stderr, new RegExp(`ERROR: \\[058\\]: mirror host 'h1' stopped at master transaction ${xid}: master transaction ${xid}: UPDATE of public.acct key \\{"id": \\d+\\} found 0 rows, expected 1`))
    assert.equal((await readFile(alertFile, 'utf8')).trim(), `h1 ${xid}`)
    const status = JSON.parse((await waldenOk(['mirror-status', '--output=json'])).stdout) as Array<{ host: string; transactionsBehind: number; stalled: { xid: string; error: string } | null }>
    const h1 = status.find((host) => host.host === 'h1')!
    assert.equal(h1.stalled?.xid, xid)
    assert.equal(h1.transactionsBehind, 2)
    assert.equal((await sql('h1', "SELECT count(*)::int AS n FROM acct WHERE name = 'after conflict'"))[0]!['n'], 0, 'nothing after the conflict was applied')
    // Retried, it stops at the same place again.
    assert.equal((await runOnce('h1', toDb('h1'))).code, 58)

    const skipped = await runOnce('h2', toDb('h2'), ['--mirror-conflict=skip', '--log-level-console=warn'])
    assert.equal(skipped.code, 0, skipped.stderr)
    assert.match(skipped.stderr, new RegExp(`WARN: mirror host 'h2': skipped master transaction ${xid}: `))
    assert.equal((await sql('h2', "SELECT count(*)::int AS n FROM acct WHERE name = 'after conflict'"))[0]!['n'], 1)

    await waldenOk(['mirror-run', '--mirror-host=h1', '--once', ...toDb('h1'), '--mirror-conflict=overwrite'])
    await assertSameAsMaster('h1')
    const cleared = JSON.parse((await waldenOk(['mirror-status', '--output=json'])).stdout) as Array<{ host: string; stalled: unknown }>
    assert.equal(cleared.find((host) => host.host === 'h1')!.stalled, null)

    // A column the host does not have stops it in every mode but skip, naming the column.
    await sql('master', 'ALTER TABLE acct ADD COLUMN extra int')
    await sql('master', "INSERT INTO acct (name, extra) VALUES ('wide', 1)")
    const narrow = await runOnce('h1', toDb('h1'), ['--mirror-conflict=overwrite'])
    assert.equal(narrow.code, 58)
    assert.match(narrow.stderr, /column r\.extra does not exist|column "extra" of relation "acct" does not exist/)
    await sql('h1', 'ALTER TABLE acct ADD COLUMN extra int')
    await sql('h2', 'ALTER TABLE acct ADD COLUMN extra int')
    await sql('replay', 'ALTER TABLE acct ADD COLUMN extra int')
    await waldenOk(['mirror-run', '--mirror-host=h1', '--once', ...toDb('h1')])
    await assertSameAsMaster('h1')
  })

  test('the daemon wakes on commit, retries a stall on its interval, logs a repeated error once and alerts', async () => {
    const { uid, gid } = await postgresIds()
    const daemon = (interval: string, extra: string[] = []): { child: ChildProcess; stderr: () => string } => {
      const child = spawn(
        process.execPath,
        [join(waldenRoot(), 'bin', 'walden'), 'mirror-run', '--mirror-host=h1', ...toDb('h1'), `--mirror-interval=${interval}`, ...extra, ...common()],
        { uid, gid, cwd: dir.path, stdio: ['ignore', 'ignore', 'pipe'] },
      )
      let stderr = ''
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      return { child, stderr: () => stderr }
    }
    const stop = async (child: ChildProcess): Promise<void> => {
      child.kill('SIGTERM')
      if (child.exitCode === null) await new Promise((resolve) => child.once('close', resolve))
    }
    const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
      for (let waited = 0; !(await check()); waited += 100) {
        if (waited > 30_000) throw new Error(`timed out waiting until ${what}`)
        await sleep(100)
      }
    }
    const hostHas = async (name: string): Promise<boolean> =>
      ((await sql('h1', 'SELECT count(*)::int AS n FROM acct WHERE name = $1', [name]))[0]!['n'] as number) === 1

    // An hour between polls: only the notification sent at commit can bring the row over.
    const sleeper = daemon('3600')
    try {
      await sleep(1000)
      await sql('master', "INSERT INTO acct (name) VALUES ('woken by notify')")
      await until('the daemon applied the new row', () => hostHas('woken by notify'))
    } finally {
      await stop(sleeper.child)
    }

    const alertLog = join(dir.path, 'files-parent', 'alerts.txt')
    await sql('h1', "DELETE FROM acct WHERE name = 'woken by notify'")
    await sql('master', "UPDATE acct SET note = 'stalls' WHERE name = 'woken by notify'")
    await sql('master', "INSERT INTO acct (name) VALUES ('behind the stall')")
    const retrying = daemon('0.2', ['--log-level-console=info', `--mirror-alert-command=echo "$WALDEN_MIRROR_XID" >> ${alertLog}`])
    try {
      await until('the stall was retried a few times', async () => {
        const [row] = await sql('master', "SELECT extract(epoch FROM now() - stalled_since)::float AS stalled FROM walden_mirror.host WHERE name = 'h1'")
        return row!['stalled'] !== null && (row!['stalled'] as number) > 1.0
      })
      // Fix the host: the next retry goes through.
      const [{ id }] = (await sql('master', "SELECT id FROM acct WHERE name = 'woken by notify'")) as [{ id: number }]
      await sql('h1', "INSERT INTO acct (id, name) VALUES ($1, 'woken by notify')", [id])
      await until('the daemon went past the stall', () => hostHas('behind the stall'))
    } finally {
      await stop(retrying.child)
    }
    const stallLines = retrying.stderr().split('\n').filter((line) => line.includes("ERROR: mirror host 'h1' stopped at master transaction"))
    assert.equal(stallLines.length, 1, retrying.stderr())
    assert.equal((await readFile(alertLog, 'utf8')).trim().split('\n').length, 1, 'one alert for one stall')
    await assertSameAsMaster('h1')
  })

  test('mirror-init-host copies a busy master exactly', async () => {
    await sql('fresh', 'ALTER TABLE acct ADD COLUMN extra int')
    await sql('fresh', "INSERT INTO acct (id, name) VALUES (99999, 'junk that the copy replaces')")
    await waldenOk(['mirror-add-host', '--mirror-host=fresh'])
    const load = pgbench(100, 3)
    await sleep(300)
    await waldenOk(['mirror-init-host', '--mirror-host=fresh', ...toDb('fresh')])
    await load
    await sql('master', "BEGIN; INSERT INTO acct (name) VALUES ('after init'); INSERT INTO item (a, b) VALUES (0, 'after init'); COMMIT")
    await waldenOk(['mirror-run', '--mirror-host=fresh', '--once', ...toDb('fresh')])
    await assertSameAsMaster('fresh')
  })

  test('purge keeps what a host still needs; removing the host releases it; no host left purges all', async () => {
    for (const host of ['h1', 'h2', 'fresh']) await waldenOk(['mirror-run', `--mirror-host=${host}`, '--once', ...toDb(host)])
    // files has not run since the last transactions: they are still queued for it.
    const queued = async (): Promise<number> => Number((await sql('master', 'SELECT count(*)::int AS n FROM walden_mirror.change'))[0]!['n'])
    await waldenOk(['mirror-clean'])
    assert.ok((await queued()) > 0, 'the file host still needs its transactions')
    await waldenOk(['mirror-add-host', '--mirror-host=late'])
    await waldenOk(['mirror-run', '--mirror-host=files', '--once', `--mirror-target-path=${filesPath}`])
    await waldenOk(['mirror-clean'])
    const heldForLate = await queued()
    assert.ok(heldForLate > 0, 'a new host holds purge until it catches up')
    await waldenOk(['mirror-remove-host', '--mirror-host=late'])
    await waldenOk(['mirror-clean'])
    assert.equal(await queued(), 0)

    await sql('master', "INSERT INTO acct (name) VALUES ('nobody will get this')")
    for (const host of ['h1', 'h2', 'files', 'fresh']) await waldenOk(['mirror-remove-host', `--mirror-host=${host}`])
    await waldenOk(['mirror-clean'])
    assert.equal(await queued(), 0)
  })

  test('teardown removes the schema and the triggers', async () => {
    await waldenOk(['mirror-teardown'])
    await sql('master', "INSERT INTO acct (name) VALUES ('no longer captured')")
    const [row] = await sql('master', "SELECT to_regnamespace('walden_mirror') IS NULL AS gone, (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'walden_mirror%') AS triggers")
    assert.deepEqual(row, { gone: true, triggers: 0 })
    const status = await walden(['mirror-status'])
    assert.equal(status.code, 58)
    assert.match(status.stderr, /the mirror schema is not installed/)
  })
})

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8')
  const line = passwd.split('\n').find((entry) => entry.startsWith('postgres:'))!
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

function waldenRoot(): string {
  // waldenCommand() is '<node> <root>/bin/walden', shell-quoted only when needed.
  const command = waldenCommand()
  const bin = command.slice(command.lastIndexOf(' ') + 1).replace(/^'|'$/g, '')
  return join(bin, '..', '..')
}
