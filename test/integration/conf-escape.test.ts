// What walden writes for PostgreSQL to read, read back by PostgreSQL itself: recovery settings with quotes,
// backslashes, % and shell syntax in them (`postgres -C` prints the value the server would use), a restore into a
// data folder whose path has all of those, recovering through its restore_command to a restore point named with
// backslashes; recovery targets checked against what PostgreSQL accepts; and a password file entry for a standby
// streaming over a unix socket in a folder of its own, with scram-sha-256.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pgDefaultSocketDir } from '../../src/pg/binaries.js'
import { confLine } from '../../src/pg/conf-syntax.js'
import { targetCheck, targetTimeParse } from '../../src/commands/restore/target.js'
import { Cluster, createCluster, runWalden } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Values no config-file or shell layer may change. None has a line break: that is refused (see below). */
const NASTY: Record<string, string> = {
  'walden_test.quotes': `it's "double" and ''two''`,
  'walden_test.backslashes': 'C:\\new\\table \\101 \\\\ end\\',
  'walden_test.percent': '100%p %f %% %r %',
  'walden_test.shell': '$(touch pwned); `touch pwned2` && echo ; rm -rf x | y > z',
  'walden_test.spaces': 'a  b\tc',
}

/** The value PostgreSQL reads for a setting from a data folder's config files, as the server would use it. */
function pgShow(binDir: string, dataDir: string, name: string): string {
  const result = spawnSync('runuser', ['-u', 'postgres', '--', join(binDir, 'postgres'), '-C', name, '-D', dataDir], { encoding: 'utf8', cwd: '/tmp' })
  assert.equal(result.status, 0, `postgres -C ${name}: ${result.stderr}`)
  assert.ok(result.stdout.endsWith('\n'))
  return result.stdout.slice(0, -1)
}

/** Whether PostgreSQL accepts a value for a setting, by `postgres -C` over a config file holding it. */
async function pgAccepts(scratch: Cluster, name: string, value: string): Promise<boolean> {
  await writeFile(join(scratch.dataDir, 'postgresql.auto.conf'), `${confLine(name, value)}\n`)
  const result = spawnSync('runuser', ['-u', 'postgres', '--', join(scratch.binDir, 'postgres'), '-C', name, '-D', scratch.dataDir], { encoding: 'utf8', cwd: '/tmp' })
  return result.status === 0 && !/contains errors|invalid value/.test(result.stderr)
}

function withoutPassword(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { PGPASSWORD: _unused, ...rest } = env
  return rest
}

function walkNames(path: string): Promise<string[]> {
  return readdir(path, { recursive: true }).then((names) => names.map(String))
}

describe(`config escaping, target checks and socket .pgpass on PostgreSQL ${MAJOR}`, { concurrency: false }, () => {
  let stanza: TestStanza
  let primary: Cluster

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'esc', settings: { hot_standby: 'on', wal_keep_size: '64MB' } })
    primary = stanza.cluster
    await primary.query(`create table events (id serial primary key, note text not null); insert into events (note) values ('base')`)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('targets: what walden accepts PostgreSQL accepts as the same value; impossible ones are refused by both', async () => {
    const scratch = await createCluster({ major: MAJOR, dir: stanza.dir, name: 'scratch' })
    const accepts = (name: string, value: string): Promise<boolean> => pgAccepts(scratch, name, value)
    const walden = (type: string, value: string): boolean => {
      try {
        targetCheck(type, value)
        return true
      } catch {
        return false
      }
    }
    const valid = [
      '2028-02-29 10:00:00+00', '2000-02-29 00:00:00 UTC', '2026-12-31 24:00:00+00', '2026-12-31 23:59:60+00', '2026-11-22T11:00:00.250+05:30',
      '2026-11-22 11:00:00-0930', '2026-11-22 11:00+15', '2026-06-30 12:00:00 UTC', '2026-06-30 12:00:00 GMT', '2026-11-22 11:00:00+05:30:15',
      '2026-07-01 12:00:00 Europe/Paris', '2026-03-29 03:30:00 Europe/Paris', '2026-11-22 11:00:00 America/New_York',
    ]
    for (const time of valid) {
      assert.ok(walden('time', time), `walden refuses ${time}`)
      assert.ok(await accepts('recovery_target_time', time), `PostgreSQL refuses ${time}`)
      // The same instant: PostgreSQL's reading of it through a timestamptz cast on the running primary.
      const epoch = Number(await primary.psqlScalar('select extract(epoch from $1::timestamptz)::text', [time]))
      assert.equal(targetTimeParse(time), Math.round(epoch * 1000), time)
    }
    const invalid = [
      '2027-02-29 10:00:00+00', '2026-02-30 10:00:00+00', '2100-02-29 10:00:00+00', '2026-04-31 00:00:00+00', '2026-11-00 00:00:00+00',
      '2026-13-01 00:00:00+00', '0000-06-01 00:00:00+00', '2026-11-22 25:00:00+00', '2026-11-22 24:00:01+00', '2026-11-22 10:60:00+00',
      '2026-11-22 10:00:61+00', '2026-11-22 10:00:00+16', '2026-11-22 10:00:00+05:60',
      // Abbreviations: PostgreSQL has not loaded them yet when it reads recovery_target_time, so it refuses to start.
      '2026-11-22 10:00:00Z', '2026-11-22 10:00:00 PST', '2026-11-22 10:00:00 Mars/Olympus',
    ]
    for (const time of invalid) {
      assert.ok(!walden('time', time), `walden accepts ${time}`)
      assert.ok(!(await accepts('recovery_target_time', time)), `PostgreSQL accepts ${time}`)
    }
    // Stricter than PostgreSQL, on purpose: CET is also a zone file, but reads like the abbreviation that fails.
    assert.ok(!walden('time', '2026-11-22 10:00:00 CET') && (await accepts('recovery_target_time', '2026-11-22 10:00:00 CET')))
    // xid: PostgreSQL reads 0123 as octal and 0x10 as hex, and takes the low 32 bits of a 64-bit value; walden asks
    // for plain decimal, so it only refuses what PostgreSQL would misread or refuse.
    for (const xid of ['3', '4294967295', String((7n << 32n) + 1000n), '18446744073709551615']) {
      assert.ok(walden('xid', xid) && (await accepts('recovery_target_xid', xid)), xid)
    }
    assert.ok(!walden('xid', '18446744073709551616') && !(await accepts('recovery_target_xid', '18446744073709551616')))
    assert.ok(!walden('xid', '0123') && (await accepts('recovery_target_xid', '0123')), 'PostgreSQL would read 0123 as octal 83')
    for (const lsn of ['0/3000028', 'FFFFFFFF/FFFFFFFF']) assert.ok(walden('lsn', lsn) && (await accepts('recovery_target_lsn', lsn)), lsn)
    for (const lsn of ['1FFFFFFFF/0', '0/123456789', '0/']) assert.ok(!walden('lsn', lsn) && !(await accepts('recovery_target_lsn', lsn)), lsn)
    assert.ok(walden('name', 'n'.repeat(63)) && (await accepts('recovery_target_name', 'n'.repeat(63))))
    assert.ok(!walden('name', 'n'.repeat(64)) && !(await accepts('recovery_target_name', 'n'.repeat(64))))
  })

  test('invalid targets, option names and values are refused before anything is written', async () => {
    const pgPath = join(stanza.dir.path, 'never-written')
    const cases: Array<[string[], RegExp]> = [
      [['--type=time', '--target=2027-02-29 10:00:00+00'], /^P00 {2}ERROR: \[032\]: target time '2027-02-29 10:00:00\+00' is not a valid time: 2027-02 has 28 days$/m],
      [['--type=time', '--target=2026-02-30 10:00:00+00'], /is not a valid time: 2026-02 has 28 days$/m],
      [['--type=xid', '--target=18446744073709551616'], /target xid '18446744073709551616' is out of range/],
      [['--type=name', `--target=${'n'.repeat(64)}`], /is 64 bytes long; a restore point name is 1 to 63 bytes/],
      [['--type=name', "--target=x'\nrestore_command = 'touch /tmp/pwned'"], /the value for the recovery target \(option 'target'\) cannot be written to postgresql\.auto\.conf: it contains a line break/],
      [['--recovery-option=recovery_end_command=a\nb'], /the value for recovery_end_command \(option 'recovery-option'\) cannot be written .*: it contains a line break/],
      [['--recovery-option=bad name=1'], /option 'recovery-option' name 'bad name' is not a PostgreSQL setting name/],
    ]
    for (const [args, message] of cases) {
      const result = await stanza.walden(['restore', `--pg1-path=${pgPath}`, ...args])
      assert.equal(result.code, 32, result.stderr)
      assert.match(result.stderr, message)
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
      await assert.rejects(stat(pgPath), 'nothing was created')
    }
  })

  test('--type=name with a name holding backslashes stops at exactly that restore point', async () => {
    const pointName = 'daily\\tpoint\\101' // backslashes as typed: PostgreSQL must not see a tab and an A
    await primary.query(`insert into events (note) values ('before')`)
    assert.equal(await primary.psqlScalar('select (pg_create_restore_point($1) is not null)::text', [pointName]), 'true')
    await primary.query(`insert into events (note) values ('between')`)
    // What the name would become if the config layer read its backslashes as escapes: recovery would stop here.
    await primary.psqlScalar('select pg_create_restore_point($1)', ['daily\tpointA'])
    await primary.query(`insert into events (note) values ('after')`)
    await stanza.waldenOk(['check'])

    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'named-copy' })
    const restored = await stanza.walden([
      'restore', `--pg1-path=${copy.dataDir}`, `--pg1-port=${copy.port}`, '--archive-mode=off', '--type=name', `--target=${pointName}`, '--target-action=promote',
    ])
    assert.equal(restored.code, 0, restored.stderr)
    await copy.appendConf(confLine('unix_socket_directories', copy.socketDir))
    await copy.start()
    try {
      await copy.waitWritable(60_000)
      assert.deepEqual((await copy.query<{ note: string }>('select note from events order by id')).map((row) => row.note), ['base', 'before'])
      assert.match(await readFile(copy.logFile, 'utf8'), /recovery stopping at restore point "daily\\tpoint\\101"/)
    } finally {
      await copy.stop()
    }
    assert.equal(pgShow(copy.binDir, copy.dataDir, 'recovery_target_name'), pointName)
  })

  test("restore into a path with ' \\ % $( ; recovers through its restore_command; recovery options read back exactly", async () => {
    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: "o'brien \\t 100%p;$(touch pwned)" })
    const options = Object.entries(NASTY).map(([name, value]) => `--recovery-option=${name}=${value}`)
    const restored = await stanza.walden(['restore', `--pg1-path=${copy.dataDir}`, `--pg1-port=${copy.port}`, '--archive-mode=off', ...options])
    assert.equal(restored.code, 0, restored.stderr)
    await copy.appendConf(confLine('unix_socket_directories', copy.socketDir))

    // PostgreSQL reads back exactly what was given.
    for (const [name, value] of Object.entries(NASTY)) assert.equal(pgShow(copy.binDir, copy.dataDir, name), value, name)
    // The path as one sh word, its % doubled against PostgreSQL's %p/%f/%r substitution.
    assert.ok(pgShow(copy.binDir, copy.dataDir, 'restore_command').includes(`'--pg1-path=${copy.dataDir.replaceAll("'", "'\\''").replaceAll('%', '%%')}'`))

    // And the server recovers through that restore_command: every archived row is back.
    await copy.start()
    try {
      await copy.waitWritable(60_000)
      assert.deepEqual((await copy.query<{ note: string }>('select note from events order by id')).map((row) => row.note), ['base', 'before', 'between', 'after'])
      assert.match(await readFile(copy.logFile, 'utf8'), /restored log file "[0-9A-F]{24}" from archive/)
    } finally {
      await copy.stop()
    }
    // PostgreSQL runs restore_command in the data folder: a $(...) that escaped its quotes would have left a file.
    assert.ok(!(await walkNames(stanza.dir.path)).some((name) => /(^|\/)pwned2?$/.test(name)), 'no shell text ran')
  })

  test('a standby streaming over a unix socket in its own folder finds its scram password in the .pgpass walden wrote', async () => {
    const password = 'sock:et\\pass'
    const pgpassFile = join(stanza.dir.path, 'socket-pgpass')
    await primary.query(`create role sockrep with replication login password '${password.replaceAll("'", "''")}'`)
    // Replication over the socket needs the password; walden's own connections as postgres stay trusted.
    const hba = join(primary.dataDir, 'pg_hba.conf')
    await writeFile(hba, `local replication sockrep scram-sha-256\nlocal all sockrep scram-sha-256\n${await readFile(hba, 'utf8')}`)
    await primary.query('select pg_reload_conf()')

    const standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'socket-standby' })
    const conninfo = `host=${primary.socketDir} port=${primary.port} user=sockrep password='${password.replaceAll('\\', '\\\\')}' application_name=socket_standby`
    const created = await stanza.walden(
      ['standby-create', `--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`, `--pg1-socket-path=${standby.socketDir}`],
      { env: { PGPASSFILE: pgpassFile, WALDEN_PRIMARY_CONNINFO: conninfo } },
    )
    assert.equal(created.code, 0, created.stderr)
    // libpq itself (psql, never prompting, no other password) finds the password for the socket connection.
    const psql = spawnSync(
      'runuser',
      ['-u', 'postgres', '--', join(primary.binDir, 'psql'), '-w', '-X', '-At', '-c', 'IDENTIFY_SYSTEM',
        `host=${primary.socketDir} port=${primary.port} user=sockrep dbname=replication replication=true`],
      { encoding: 'utf8', cwd: '/tmp', env: { ...withoutPassword(process.env), PGPASSFILE: pgpassFile } },
    )
    assert.equal(psql.status, 0, psql.stderr)
    assert.match(psql.stdout, /^\d+\|/)
    // The build's default socket folder, which libpq would look up as 'localhost', as the server itself reports it.
    assert.equal(await pgDefaultSocketDir(primary.binDir), await primary.psqlScalar(`select boot_val from pg_settings where name = 'unix_socket_directories'`))
    // The line libpq matched: the socket folder itself (not the build's default one, so not 'localhost').
    const escapedHost = primary.socketDir.replace(/[\\:]/g, (c) => `\\${c}`)
    assert.equal(await readFile(pgpassFile, 'utf8'), `${escapedHost}:${primary.port}:replication:sockrep:sock\\:et\\\\pass\n`)

    // The standby's WAL receiver does the same: a row arrives by streaming, without a WAL switch.
    await standby.appendConf(confLine('unix_socket_directories', standby.socketDir))
    await standby.start()
    try {
      await primary.query(`insert into events (note) values ('streamed over the socket')`)
      let rows = '0'
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && rows !== '1'; await sleep(200)) {
        rows = await standby.psqlScalar(`select count(*) from events where note = 'streamed over the socket'`).catch(() => '0')
      }
      assert.equal(rows, '1', await standby.logTail())
      assert.equal(await standby.psqlScalar('select status from pg_stat_wal_receiver'), 'streaming')
    } finally {
      await standby.stop()
    }
  })

  test("setup writes an archive_command that works with a config path holding ' % \\ and spaces", async () => {
    const folder = await stanza.dir.mkdir("cfg o'brien 100%f \\x")
    const configPath = join(folder, 'walden.conf')
    await writeFile(configPath, await readFile(stanza.configPath, 'utf8'))
    await chmod(configPath, 0o644)
    const walden = (args: readonly string[]) => runWalden([`--config=${configPath}`, `--stanza=${stanza.name}`, ...args])
    const setup = await walden(['setup', '--force'])
    assert.equal(setup.code, 0, setup.stderr)
    // check switches WAL and waits for the segment in the archive: it arrives only if PostgreSQL ran that command.
    const check = await walden(['check'])
    assert.equal(check.code, 0, `${check.stderr}\n${await primary.logTail()}`)
    const command = await primary.psqlScalar(`select current_setting('archive_command')`)
    assert.ok(command.includes(`'--config=${configPath.replaceAll("'", "'\\''").replaceAll('%', '%%')}'`), command)
  })
})
