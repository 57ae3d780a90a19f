// Hot standbys and failover on one host: a primary archiving through walden, a standby fed only from the archive,
// a streaming standby with a slot and its password in a password file, replication-status as a monitoring check,
// promotion with the split-brain guard, and backups and point-in-time recovery across the new timeline.
// The tests run in order and share the primary. No table has a sequence: a sequence restored from WAL is legitimately
// ahead of the running server's, and the dumps must compare equal.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster, dumpDatabase } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const REPLICATION_PASSWORD = 'rep secret:1'
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls until check() is true; fails with `what` after timeoutMs. */
async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
    if (await check().catch(() => false)) return
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

describe('replication: standbys, status and failover', { concurrency: false }, () => {
  let stanza: TestStanza
  let primary: Cluster
  let firstBackup: string
  let streaming: Cluster
  let pgpassFile: string

  const countOf = async (cluster: Cluster, table: string, where = 'true'): Promise<number> =>
    Number(await cluster.psqlScalar(`select count(*) from ${table} where ${where}`))
  /** walden as postgres, pointed at a cluster other than the stanza's configured one. */
  const waldenOn = (cluster: Cluster, args: readonly string[], env: Record<string, string> = {}) =>
    stanza.walden([`--pg1-path=${cluster.dataDir}`, `--pg1-port=${cluster.port}`, `--pg1-socket-path=${cluster.socketDir}`, ...args], {
      env: { PGPASSFILE: pgpassFile, ...env },
    })
  const json = (stdout: string): Record<string, any> => JSON.parse(stdout) as Record<string, any>

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'repl', settings: { hot_standby: 'on', wal_keep_size: '64MB' } })
    primary = stanza.cluster
    pgpassFile = join(stanza.dir.path, 'pgpass')
    // A replication user that must give its password over TCP, for replication and for the SQL session walden
    // checks the connection with: the first matching pg_hba line wins.
    await primary.query(`create role replicator with replication login password '${REPLICATION_PASSWORD.replaceAll("'", "''")}'`)
    const hba = join(primary.dataDir, 'pg_hba.conf')
    await writeFile(hba, `host replication replicator 127.0.0.1/32 scram-sha-256\nhost all replicator 127.0.0.1/32 scram-sha-256\n${await readFile(hba, 'utf8')}`)
    await primary.query('select pg_reload_conf()')
    await primary.query('create table events (note text primary key, at timestamptz not null default clock_timestamp())')
    await primary.query(`insert into events (note) values ('before-backup')`)
    await stanza.waldenOk(['stanza-create'])
    // Files written less than a second before a backup are copied again by the next incremental whatever their
    // time (timestamp granularity); initdb's are that recent on a fast run, and the failover test counts copies.
    await sleep(1100)
    await stanza.waldenOk(['backup', '--type=full'])
    const info = json((await stanza.waldenOk(['info', '--output=json'])).stdout) as unknown as Array<{ backup: Array<{ label: string }> }>
    firstBackup = info[0]!.backup[0]!.label
  })

  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('a standby fed only from the archive sees a new table once the primary switches WAL', async () => {
    const standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'archive-standby' })
    const created = await waldenOn(standby, ['standby-create'])
    assert.equal(created.code, 0, created.stderr)
    const autoConf = await readFile(join(standby.dataDir, 'postgresql.auto.conf'), 'utf8')
    assert.match(autoConf, /restore_command = '.*archive-get %f "%p"'/)
    assert.match(autoConf, /hot_standby = 'on'/)
    assert.match(autoConf, new RegExp(`port = '${standby.port}'`))
    assert.doesNotMatch(autoConf, /primary_conninfo/)
    await standby.configure({ unix_socket_directories: standby.socketDir })
    await standby.start()
    try {
      await waitUntil('the standby to reach the backup', async () => (await countOf(standby, 'events')) === 1)
      await primary.query('create table only_in_archive (x int)')
      await sleep(1500)
      assert.equal(await standby.psqlScalar(`select coalesce(to_regclass('only_in_archive')::text, 'absent')`), 'absent', 'no WAL switch yet, so the standby cannot have the table')
      await primary.query('select pg_switch_wal()')
      // Recovery retries restore_command every wal_retrieve_retry_interval (5 s) and the archive-timeout is 30 s.
      await waitUntil('the archived table on the standby', async () => (await standby.psqlScalar(`select coalesce(to_regclass('only_in_archive')::text, 'absent')`)) !== 'absent', 30_000)

      const status = await waldenOn(standby, ['replication-status', '--output=json'])
      assert.equal(status.code, 0, status.stderr)
      const report = json(status.stdout)
      assert.equal(report['role'], 'standby')
      assert.equal(report['receiver'], null)
      const text = await waldenOn(standby, ['status'])
      assert.match(text.stdout, /WAL receiver: not running/)
      // No receiver, so lag in bytes cannot be known: a check on it fails rather than passing blindly.
      const check = await waldenOn(standby, ['replication-status', '--max-lag-bytes=1000000'])
      assert.equal(check.code, 90, check.stderr)
      assert.match(check.stderr, /no WAL receiver/)
    } finally {
      await standby.stop()
    }
  })

  test('a primary_conninfo given as recovery-option loses its password to the password file too', async () => {
    const standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'recovery-option-standby' })
    // A role of its own, with a password free of ':' (which the environment form of a hash option separates on).
    await primary.query(`create role replicator2 with replication login password 'other-secret'`)
    const conninfo = `host=127.0.0.1 port=${primary.port} user=replicator2 password=other-secret`
    // On the command line, where every user sees it in ps, the password is refused before anything is done.
    const onArgv = await waldenOn(standby, ['standby-create', `--recovery-option=primary_conninfo=${conninfo}`])
    assert.equal(onArgv.code, 32, onArgv.stderr)
    assert.match(onArgv.stderr, /recovery-option primary_conninfo holds a password on the command line/)
    assert.doesNotMatch(onArgv.stderr, /other-secret/)
    // The same setting in capitals (PostgreSQL's setting names are case-insensitive) gets the same care.
    const upper = await waldenOn(standby, ['standby-create', `--recovery-option=PRIMARY_CONNINFO=${conninfo}`])
    assert.equal(upper.code, 32, upper.stderr)
    assert.doesNotMatch(upper.stderr, /other-secret/)
    const created = await waldenOn(standby, ['standby-create'], { WALDEN_RECOVERY_OPTION: `primary_conninfo=${conninfo}` })
    assert.equal(created.code, 0, created.stderr)
    const autoConf = await readFile(join(standby.dataDir, 'postgresql.auto.conf'), 'utf8')
    assert.doesNotMatch(autoConf, /other-secret/)
    assert.match(autoConf, new RegExp(`primary_conninfo = 'host=127\\.0\\.0\\.1 port=${primary.port} user=replicator2 passfile=`))
    assert.match(await readFile(pgpassFile, 'utf8'), /:replication:replicator2:other-secret$/m)
    // A wrong connection string fails before anything is copied.
    const wrong = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'wrong-conninfo-standby' })
    const refused = await waldenOn(wrong, ['standby-create', '--primary-conninfo=host=127.0.0.1 port=1 user=replicator connect_timeout=2'])
    assert.equal(refused.code, 56, refused.stderr)
    assert.match(refused.stderr, /unable to connect to PostgreSQL at '127\.0\.0\.1:1'/)
    const { readdir } = await import('node:fs/promises')
    assert.deepEqual(await readdir(wrong.dataDir).catch(() => []), [])
    // A wrong password is refused by the primary, and never lands in the password file.
    const badPassword = await waldenOn(wrong, ['standby-create'], { WALDEN_PRIMARY_CONNINFO: `host=127.0.0.1 port=${primary.port} user=replicator password=mistyped` })
    assert.equal(badPassword.code, 56, badPassword.stderr)
    assert.doesNotMatch(await readFile(pgpassFile, 'utf8'), /mistyped/)
  })

  test('a streaming standby with a slot gets a commit without any WAL switch; status and lag checks on both ends', async () => {
    streaming = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'streaming-standby' })
    const conninfo = `host=127.0.0.1 port=${primary.port} user=replicator password='${REPLICATION_PASSWORD}' application_name=standby_one`
    const onArgv = await waldenOn(streaming, ['standby-create', `--primary-conninfo=${conninfo}`, '--slot=standby_one'])
    assert.equal(onArgv.code, 32, onArgv.stderr)
    assert.match(onArgv.stderr, /option 'primary-conninfo' holds a password on the command line/)
    const created = await waldenOn(streaming, ['standby-create', '--slot=standby_one'], { WALDEN_PRIMARY_CONNINFO: conninfo })
    assert.equal(created.code, 0, created.stderr)

    // The password is in the password file, mode 0600, and nowhere in the standby's configuration.
    assert.equal((await stat(pgpassFile)).mode & 0o777, 0o600)
    assert.match(await readFile(pgpassFile, 'utf8'), new RegExp(`^127\\.0\\.0\\.1:${primary.port}:replication:replicator:rep secret\\\\:1$`, 'm'))
    const autoConf = await readFile(join(streaming.dataDir, 'postgresql.auto.conf'), 'utf8')
    assert.doesNotMatch(autoConf, /secret/)
    assert.match(autoConf, /primary_conninfo = '.*passfile=/)
    assert.match(autoConf, /primary_slot_name = 'standby_one'/)
    assert.equal(await primary.psqlScalar(`select count(*) from pg_replication_slots where slot_name = 'standby_one'`), '1')

    await streaming.configure({ unix_socket_directories: streaming.socketDir })
    await streaming.start()
    const walBefore = await primary.psqlScalar('select pg_walfile_name(pg_current_wal_lsn())')
    await primary.query(`insert into events (note) values ('streamed')`)
    await waitUntil('the streamed row on the standby', async () => (await countOf(streaming, 'events', `note = 'streamed'`)) === 1, 10_000)
    assert.equal(await primary.psqlScalar('select pg_walfile_name(pg_current_wal_lsn())'), walBefore, 'no WAL switch happened')

    await waitUntil('the standby to report streaming', async () => (await primary.psqlScalar(`select count(*) from pg_stat_replication where state = 'streaming'`)) === '1')
    const onPrimary = await stanza.walden(['replication-status', '--output=json', '--max-lag-bytes=16777216'])
    assert.equal(onPrimary.code, 0, onPrimary.stderr)
    const primaryReport = json(onPrimary.stdout)
    assert.equal(primaryReport['role'], 'primary')
    assert.deepEqual(primaryReport['standbys'].map((s: any) => [s.applicationName, s.state]), [['standby_one', 'streaming']])
    assert.deepEqual(primaryReport['slots'].map((s: any) => [s.name, s.active]), [['standby_one', true]])
    assert.deepEqual(primaryReport['check'], { ok: true })
    const primaryText = (await stanza.waldenOk(['status'])).stdout
    assert.match(primaryText, /standby_one from 127\.0\.0\.1: streaming, async/)
    assert.match(primaryText, /standby_one: physical, active/)

    const onStandby = await waldenOn(streaming, ['replication-status', '--output=json', '--max-lag-bytes=16777216', '--max-lag-seconds=60'])
    assert.equal(onStandby.code, 0, onStandby.stderr)
    const standbyReport = json(onStandby.stdout)
    assert.equal(standbyReport['receiver']['status'], 'streaming')
    assert.equal(standbyReport['receiver']['slotName'], 'standby_one')

    // The standby goes away while the primary keeps writing: its slot holds the WAL, and the check says so.
    await streaming.stop()
    await primary.query(`insert into events (note) select 'filler ' || repeat('x', 200) || g from generate_series(1, 20000) g`)
    const lagging = await stanza.walden(['replication-status', '--max-lag-bytes=1048576'])
    assert.equal(lagging.code, 90, lagging.stderr)
    const reason = lagging.stderr.trim().split('\n').filter((line) => line.includes('ERROR'))
    assert.equal(reason.length, 1, lagging.stderr)
    assert.match(reason[0]!, /no standby is connected; slot 'standby_one' \(inactive\) retains \d/)
    await primary.query(`delete from events where note like 'filler %'`)
    await streaming.start()
  })

  test('promote refuses while the primary is writable, then promotes; the new timeline is archived, backed up and recovered to', async () => {
    const refused = await waldenOn(streaming, ['promote'])
    assert.equal(refused.code, 91, refused.stderr)
    assert.match(refused.stderr, /still running and accepts writes/)
    // A primary that answers but lets walden in to check nothing (here: no such role) may be writable: refused too.
    const unsure = await waldenOn(streaming, ['promote', `--primary-conninfo=host=127.0.0.1 port=${primary.port} user=nobody`])
    assert.equal(unsure.code, 91, unsure.stderr)
    assert.match(unsure.stderr, /cannot tell whether the primary at 127\.0\.0\.1:\d+ is still writable: .*role "nobody" does not exist/)
    assert.equal(await streaming.psqlScalar('select pg_is_in_recovery()::text'), 'true')

    await primary.query(`insert into events (note) values ('before-failover')`)
    await waitUntil('the last primary row on the standby', async () => (await countOf(streaming, 'events', `note = 'before-failover'`)) === 1, 20_000)
    await primary.stop()
    const promoted = await waldenOn(streaming, ['promote'])
    assert.equal(promoted.code, 0, promoted.stderr)
    assert.match(promoted.stdout, /now a primary on timeline 2; 00000002\.history is in the archive/)
    await streaming.waitWritable()

    // Writes on timeline 2, with a point in time between them; check switches WAL and waits for the archive.
    await streaming.query(`insert into events (note) values ('after-promotion-1')`)
    await sleep(1100)
    const pointInTime = await streaming.psqlScalar(`select now()::text`)
    await sleep(1100)
    await streaming.query(`insert into events (note) values ('after-promotion-2')`)
    const checked = await waldenOn(streaming, ['check'])
    assert.equal(checked.code, 0, checked.stderr)

    // An incremental backup of the new primary builds on the full one of the old: the files the standby got from
    // that backup and never changed are referenced, not copied again. And it restores to the same data.
    const backedUp = await waldenOn(streaming, ['backup', '--type=incr'])
    assert.equal(backedUp.code, 0, backedUp.stderr)
    const info = json((await stanza.waldenOk(['info', '--output=json'])).stdout) as unknown as Array<{ backup: Array<{ type: string; info: { size: number; delta: number } }> }>
    const incr = info[0]!.backup.at(-1)!
    const incrLabel = (incr as unknown as { label: string }).label
    assert.equal(incr.type, 'incr')
    assert.ok(incr.info.delta < incr.info.size / 2, `the incremental copied ${incr.info.delta} of ${incr.info.size} bytes`)
    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'copy-of-new-primary' })
    const restored = await waldenOn(copy, ['restore', '--type=immediate', '--target-action=promote', '--archive-mode=off'])
    assert.equal(restored.code, 0, restored.stderr)
    await copy.configure({ unix_socket_directories: copy.socketDir })
    await copy.start()
    await copy.waitWritable()
    assert.equal(await dumpDatabase(copy), await dumpDatabase(streaming))
    await copy.stop()

    // The backup from before the failover, recovered along the timeline switch to a moment on timeline 2.
    const pitr = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'pitr-across-failover' })
    const recovered = await waldenOn(pitr, [
      'restore',
      `--set=${firstBackup}`,
      '--type=time',
      `--target=${pointInTime}`,
      '--target-timeline=latest',
      '--target-action=promote',
      '--archive-mode=off',
    ])
    assert.equal(recovered.code, 0, recovered.stderr)
    await pitr.configure({ unix_socket_directories: pitr.socketDir })
    await pitr.start()
    await pitr.waitWritable()
    const notes = (await pitr.query<{ note: string }>(`select note from events order by at`)).map((row) => row.note)
    assert.deepEqual(notes, ['before-backup', 'streamed', 'before-failover', 'after-promotion-1'])
    await pitr.stop()

    // The old primary comes back (split brain after all) and is backed up: its backup is the newest, but it is on
    // timeline 1 past the switch, so a restore along the latest timeline must pick the new primary's backup.
    await primary.start()
    await primary.query(`insert into events (note) values ('old-primary-after-split')`)
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.waldenOk(['check'])
    const latest = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'latest-after-split' })
    const restoredLatest = await waldenOn(latest, ['restore', '--log-level-console=info', '--archive-mode=off'])
    assert.equal(restoredLatest.code, 0, restoredLatest.stderr)
    assert.match(restoredLatest.stderr, new RegExp(`restore backup set ${incrLabel}\\n`))
    await latest.configure({ unix_socket_directories: latest.socketDir })
    await latest.start()
    await latest.waitWritable()
    assert.equal(await dumpDatabase(latest), await dumpDatabase(streaming))
    await latest.stop()
  })
})
