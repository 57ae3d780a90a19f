// walden setup on a fresh cluster that has never archived: dry run, the changes, a second run that changes nothing,
// --restart, and archiving that then works end to end (stanza-create and check).

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readdir, readFile, writeFile, chmod, chown, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createCluster, runWalden, testDir } from '../harness/cluster.js'
import type { Cluster, TestDir } from '../harness/cluster.js'

describe('setup', { concurrency: false }, () => {
  let dir: TestDir
  let cluster: Cluster
  let configPath: string
  let pgpassFile: string
  const walden = (args: readonly string[]) => runWalden([`--config=${configPath}`, '--stanza=fresh', ...args], { env: { PGPASSFILE: pgpassFile } })
  const autoConf = (): Promise<string> => readFile(join(cluster.dataDir, 'postgresql.auto.conf'), 'utf8')
  const setting = (name: string): Promise<string> => cluster.psqlScalar(`select current_setting('${name}')`)

  before(async () => {
    dir = await testDir('walden-setup')
    // What a cluster looks like before anyone thought of backups: no WAL for archiving or standbys at all.
    cluster = await createCluster({ major: 15, dir, settings: { wal_level: 'minimal', max_wal_senders: '0', archive_mode: 'off' } })
    await cluster.start()
    configPath = join(dir.path, 'walden.conf')
    pgpassFile = join(dir.path, 'pgpass')
    await writeFile(
      configPath,
      [
        '[global]',
        `repo1-path=${await dir.mkdir('repo')}`,
        `lock-path=${await dir.mkdir('lock')}`,
        `log-path=${await dir.mkdir('log')}`,
        'archive-timeout=30',
        '[fresh]',
        `pg1-path=${cluster.dataDir}`,
        `pg1-port=${cluster.port}`,
        `pg1-socket-path=${cluster.socketDir}`,
        '',
      ].join('\n'),
    )
    await chmod(configPath, 0o644)
  })

  after(async () => {
    await dir?.cleanup()
  })

  test('--dry-run shows the changes and makes none', async () => {
    const before = await autoConf()
    const result = await walden(['setup', '--dry-run'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /would change/)
    for (const name of ['wal_level', 'archive_mode', 'archive_command', 'max_wal_senders', 'wal_keep_size']) assert.match(result.stdout, new RegExp(`\\b${name}\\b`))
    assert.match(result.stdout, /restart needed for: wal_level, archive_mode, max_wal_senders/)
    assert.equal(await autoConf(), before)
  })

  test('changes the settings, says a restart is needed, and a second run changes nothing', async () => {
    const first = await walden(['setup'])
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /changed on/)
    assert.match(first.stdout, /wal_level\s+minimal -> replica\s+\(needs restart\)/)
    assert.match(first.stdout, /restart needed for: wal_level, archive_mode, max_wal_senders/)
    const conf = await autoConf()
    assert.match(conf, /archive_command = '.*--stanza=fresh archive-push %p'/)
    // wal_keep_size only needs the reload setup did (archive_command shows '(disabled)' until archive_mode is on).
    assert.equal(await setting('wal_keep_size'), '512MB')
    // archive_timeout was off: setup's default is written.
    assert.equal(await setting('archive_timeout'), '1min')
    assert.equal(await setting('wal_level'), 'minimal')

    const second = await walden(['setup'])
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stdout, /nothing to change/)
    assert.match(second.stdout, /restart needed for: wal_level, archive_mode, max_wal_senders/)
    assert.equal(await autoConf(), conf)
  })

  test('--restart restarts the server, after which archiving works; then nothing is left to do', async () => {
    const restarted = await walden(['setup', '--restart'])
    assert.equal(restarted.code, 0, restarted.stderr)
    assert.match(restarted.stdout, /restarted PostgreSQL: wal_level, archive_mode, max_wal_senders now in effect/)
    assert.equal(await setting('wal_level'), 'replica')
    assert.equal(await setting('archive_mode'), 'on')
    assert.equal(await setting('max_wal_senders'), '10')

    const created = await walden(['stanza-create'])
    assert.equal(created.code, 0, created.stderr)
    const checked = await walden(['check'])
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(checked.stdout, /WAL segment \w+ archived/)

    const again = await walden(['setup'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /nothing to change/)
    assert.match(again.stdout, /no restart needed/)
  })

  test("refuses to replace another tool's archive_command without --force", async () => {
    await cluster.query(`alter system set archive_command = 'cp %p /somewhere/%f'`)
    await cluster.query('select pg_reload_conf()')
    const refused = await walden(['setup'])
    assert.equal(refused.code, 31, refused.stderr)
    assert.match(refused.stderr, /archive_command is already set to 'cp %p \/somewhere\/%f'/)
    assert.match(await autoConf(), /cp %p/)
    const forced = await walden(['setup', '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(await autoConf(), /--stanza=fresh archive-push %p/)
  })

  test('--pg-archive-timeout given explicitly replaces the value there; the same value again is no change', async () => {
    const set = await walden(['setup', '--pg-archive-timeout=300'])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /archive_timeout\s+60s -> 300s/)
    assert.equal(await setting('archive_timeout'), '5min')
    const again = await walden(['setup', '--pg-archive-timeout=300'])
    assert.match(again.stdout, /nothing to change/)
    // Without the option, setup's default does not undo the DBA's choice.
    assert.match((await walden(['setup'])).stdout, /nothing to change/)
  })

  describe('the replication role, its password and the pg_hba.conf line', () => {
    // Every character that could break out of SQL, pg_hba.conf or the password file: quotes of both kinds,
    // a backslash, dollar quoting, a colon, a comma, a hash and spaces.
    const role = `rep"li'ca\\$$ to,r #1`
    const password = `pa'ss"wo\\rd $$:x#`
    let passwordFile: string
    let hbaFile: string
    const logTexts = async (): Promise<string> => {
      const logDir = join(dir.path, 'log')
      const texts = await Promise.all((await readdir(logDir)).map((name) => readFile(join(logDir, name), 'utf8')))
      return texts.join('\n') + (await readFile(cluster.logFile, 'utf8'))
    }
    /** A physical replication connection by TCP as `user`, its password from the password file (libpq's lookup). */
    const replicationConnects = (user: string): { ok: boolean; output: string } => {
      const result = spawnSync(join(cluster.binDir, 'psql'), ['-X', '-tA', '-c', 'IDENTIFY_SYSTEM', 'replication=true'], {
        env: { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(cluster.port), PGUSER: user, PGDATABASE: 'replication', PGPASSFILE: pgpassFile, PGCONNECT_TIMEOUT: '10' },
        encoding: 'utf8',
      })
      return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` }
    }
    const accessArgs = () => [`--replication-user=${role}`, `--replication-password-file=${passwordFile}`, '--standby-host=127.0.0.1']

    before(async () => {
      passwordFile = join(dir.path, 'replication-password')
      await writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
      await chown(passwordFile, Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim()), 0)
      // Only the local socket is trusted, so TCP connections need the line setup adds.
      hbaFile = join(cluster.dataDir, 'pg_hba.conf')
      await writeFile(hbaFile, 'local all all trust\n')
      await cluster.query('select pg_reload_conf()')
    })

    test('--dry-run shows the role, the password file entry and the pg_hba.conf line, and changes none', async () => {
      const dry = await walden(['setup', '--dry-run', ...accessArgs()])
      assert.equal(dry.code, 0, dry.stderr)
      assert.match(dry.stdout, /would change/)
      assert.ok(dry.stdout.includes(`role "rep""li'ca\\$$ to,r #1": create with LOGIN REPLICATION`), dry.stdout)
      assert.ok(dry.stdout.includes(`password file '${pgpassFile}': add the entry *:${cluster.port}:*:${role}`), dry.stdout)
      assert.ok(dry.stdout.includes(`pg_hba.conf '${hbaFile}': add  host    replication,postgres    "rep""li'ca\\$$ to,r #1"    127.0.0.1/32    scram-sha-256`), dry.stdout)
      assert.match(dry.stdout, /no restart would be needed: a reload applies them/)
      assert.equal(await cluster.psqlScalar('select count(*) from pg_roles where rolname = $1', [role]), '0')
      await assert.rejects(stat(pgpassFile), { code: 'ENOENT' })
      assert.equal(await readFile(hbaFile, 'utf8'), 'local all all trust\n')
      assert.equal(replicationConnects(role).ok, false)
    })

    test('creates the role, writes the password file and the pg_hba.conf line; a standby can connect; the password is nowhere else', async () => {
      const applied = await walden(['setup', ...accessArgs()])
      assert.equal(applied.code, 0, applied.stderr)
      assert.match(applied.stdout, /changed on/)
      const [found] = await cluster.query<{ rolreplication: boolean; rolcanlogin: boolean; secret: string }>(
        'select rolreplication, rolcanlogin, rolpassword as secret from pg_authid where rolname = $1',
        [role],
      )
      assert.equal(found?.rolreplication, true)
      assert.equal(found?.rolcanlogin, true)
      assert.match(found!.secret, /^SCRAM-SHA-256\$4096:/)
      assert.equal(((await stat(pgpassFile)).mode & 0o777).toString(8), '600')
      const connected = replicationConnects(role)
      assert.ok(connected.ok, connected.output)
      // Parsed by PostgreSQL as one rule for exactly this role.
      const rules = await cluster.query<{ user_name: string[]; database: string[] }>(`select user_name, database from pg_hba_file_rules where auth_method = 'scram-sha-256'`)
      assert.deepEqual(rules, [{ user_name: [role], database: ['replication', 'postgres'] }])
      for (const text of [applied.stdout, applied.stderr, await logTexts()]) assert.ok(!text.includes(password), 'the password leaked')
    })

    test('a second run changes nothing, with or without the password file option', async () => {
      const files = [await readFile(pgpassFile, 'utf8'), await readFile(hbaFile, 'utf8')]
      for (const args of [accessArgs(), [`--replication-user=${role}`, '--standby-host=127.0.0.1']]) {
        const again = await walden(['setup', ...args])
        assert.equal(again.code, 0, again.stderr)
        assert.match(again.stdout, /nothing to change/)
      }
      assert.deepEqual([await readFile(pgpassFile, 'utf8'), await readFile(hbaFile, 'utf8')], files)
    })

    test('a role whose password was changed behind walden is left alone unless --force', async () => {
      await cluster.query(`alter role ${'"' + role.replaceAll('"', '""') + '"'} password 'changed by the dba'`)
      assert.equal(replicationConnects(role).ok, false)
      const refused = await walden(['setup', `--replication-user=${role}`])
      assert.equal(refused.code, 31, refused.stderr)
      assert.match(refused.stderr, /already exists with a password that is not the one in the password file/)
      const forced = await walden(['setup', `--replication-user=${role}`, '--force'])
      assert.equal(forced.code, 0, forced.stderr)
      assert.match(forced.stdout, /set its password to the one in the password file/)
      assert.ok(replicationConnects(role).ok)
    })

    test('a generated password: a new role without a password file gets one, and it works', async () => {
      const created = await walden(['setup', '--replication-user=plain_rep', '--standby-host=localhost'])
      assert.equal(created.code, 0, created.stderr)
      assert.match(created.stdout, /new generated password/)
      assert.match(await readFile(pgpassFile, 'utf8'), new RegExp(`^\\*:${cluster.port}:\\*:plain_rep:[A-Za-z0-9_-]{43}$`, 'm'))
      assert.ok(replicationConnects('plain_rep').ok)
    })

    test('what cannot be written safely is refused, and nothing is changed', async () => {
      const files = [await readFile(pgpassFile, 'utf8'), await readFile(hbaFile, 'utf8')]
      const twoLines = join(dir.path, 'two-lines')
      await writeFile(twoLines, 'first\nsecond\n')
      await chmod(twoLines, 0o644)
      for (const [args, message] of [
        [['--replication-user=rep\nline'], /replication-user "rep\\nline" cannot be used: it contains a control character/],
        [['--replication-user=+group'], /starts with '\+', '\/' or '@'/],
        [['--replication-user=new_role', `--replication-password-file=${twoLines}`], /the password in replication-password-file '.*two-lines' cannot be used: it contains a line break/],
        [['--replication-user=new_role', '--standby-host=127.0.0.1/32 trust'], /standby-host "127.0.0.1\/32 trust" is not a network: \/32 trust is not a prefix length/],
        [['--replication-user=new_role', '--standby-host=all'], /standby-host "all" is a pg_hba.conf keyword/],
        [['--standby-host=127.0.0.1'], /option 'standby-host' needs option 'replication-user'/],
      ] as const) {
        const refused = await walden(['setup', ...args])
        assert.notEqual(refused.code, 0, `accepted ${args.join(' ')}`)
        assert.match(refused.stderr, message)
        assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace')
      }
      assert.equal(await cluster.psqlScalar(`select count(*) from pg_roles where rolname in ('new_role', 'rep\nline')`), '0')
      assert.deepEqual([await readFile(pgpassFile, 'utf8'), await readFile(hbaFile, 'utf8')], files)
    })
  })
})
