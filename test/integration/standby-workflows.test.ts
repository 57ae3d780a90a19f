// The standby workflows a DBA otherwise does by hand around standby-create: start the new standby (--start), stop the
// old one first (--stop-old, refused without it), keep the old data folder aside instead of overwriting it
// (--keep-old-data), and repair a standby with a delta restore that keeps its own recovery settings
// (--type=preserve). One primary, one standby folder; the tests run in order.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
    if (await check().catch(() => false)) return
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

describe('standby workflows: --start, --stop-old, --keep-old-data, --type=preserve', { concurrency: false }, () => {
  let stanza: TestStanza
  let primary: Cluster
  let standby: Cluster

  const standbyArgs = (): string[] => [
    `--pg1-path=${standby.dataDir}`,
    `--pg1-port=${standby.port}`,
    // The primary's trust rule for replication from 127.0.0.1 (initdb -A trust) lets the standby stream.
    `--primary-conninfo=host=127.0.0.1 port=${primary.port} user=postgres application_name=wf_standby`,
    `--recovery-option=unix_socket_directories=${standby.socketDir}`,
  ]
  const rowsOn = async (cluster: Cluster): Promise<string> => cluster.psqlScalar(`select string_agg(note, ',' order by note) from notes`)
  /** A new row on the primary must reach the running standby by streaming (no WAL switch, no archive). */
  const streams = async (note: string): Promise<void> => {
    await primary.query(`insert into notes values ($1)`, [note])
    await waitUntil(`row '${note}' on the standby`, async () => (await rowsOn(standby)).split(',').includes(note))
    assert.equal(await standby.psqlScalar(`select status from pg_stat_wal_receiver`), 'streaming')
  }

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'wf', settings: { hot_standby: 'on', wal_keep_size: '64MB' } })
    primary = stanza.cluster
    await primary.query(`create table notes (note text primary key)`)
    await primary.query(`insert into notes values ('a-before-backup')`)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])
    standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'standby' })
  })

  after(async () => {
    // The standby was started by walden's pg_ctl, not by the harness: stop it by its data folder.
    await standby?.stop().catch(() => {})
    await stanza?.dir.cleanup()
  })

  test('standby-create --start creates the standby and starts it; it streams from the primary', async () => {
    const created = await stanza.walden(['standby-create', '--start', '--log-level-console=info', ...standbyArgs()])
    assert.equal(created.code, 0, created.stderr)
    assert.match(created.stderr, /starting PostgreSQL on '.*standby'/)
    assert.ok(standby.isRunning(), 'the standby runs')
    assert.equal(await standby.psqlScalar('select pg_is_in_recovery()::text'), 'true')
    await streams('b-streamed')
  })

  test('a second standby-create over the running standby is refused without --stop-old, and nothing is touched', async () => {
    const listing = (await readdir(standby.dataDir)).sort()
    const refused = await stanza.walden(['standby-create', ...standbyArgs()])
    assert.equal(refused.code, 38, refused.stderr)
    assert.match(refused.stderr, /PostgreSQL is running on '.*standby'/)
    assert.match(refused.stderr, /--stop-old/)
    assert.ok(standby.isRunning())
    assert.deepEqual((await readdir(standby.dataDir)).sort(), listing)
  })

  test('--stop-old --keep-old-data --start: the old standby is stopped and kept aside whole, the new one starts', async () => {
    // Something only the old folder has, to find it again where it was kept.
    await writeFile(join(standby.dataDir, 'old-marker'), 'the old standby\n')
    const oldIdentifier = await standby.psqlScalar('select system_identifier::text from pg_control_system()')
    const before = new Set(await readdir(stanza.dir.path))
    const recreated = await stanza.walden(['standby-create', '--stop-old', '--keep-old-data', '--start', '--log-level-console=info', ...standbyArgs()])
    assert.equal(recreated.code, 0, recreated.stderr)
    assert.match(recreated.stderr, /stopping PostgreSQL on '.*standby'/)
    const kept = (await readdir(stanza.dir.path)).filter((name) => !before.has(name))
    assert.equal(kept.length, 1, `one new folder beside the standby: ${kept.join(', ')}`)
    assert.match(kept[0]!, /^standby\.\d{8}-\d{6}$/)
    assert.match(recreated.stderr, new RegExp(`old data folder kept as '.*${kept[0]!.replace('.', '\\.')}' \\(system identifier ${oldIdentifier}\\)`))
    const keptPath = join(stanza.dir.path, kept[0]!)
    assert.equal(await readFile(join(keptPath, 'old-marker'), 'utf8'), 'the old standby\n')
    assert.equal((await readFile(join(keptPath, 'PG_VERSION'), 'utf8')).trim(), String(MAJOR))
    assert.ok((await stat(join(keptPath, 'base'))).isDirectory())
    // The new folder is the backup's, without the marker.
    await assert.rejects(stat(join(standby.dataDir, 'old-marker')), { code: 'ENOENT' })
    assert.ok(standby.isRunning())
    await streams('c-after-recreate')
  })

  test('--keep-old-data-path that exists, or --keep-old-data with --delta, is refused before anything changes', async () => {
    const exists = await stanza.dir.mkdir('taken')
    const taken = await stanza.walden(['standby-create', '--stop-old', `--keep-old-data-path=${exists}`, ...standbyArgs()])
    assert.equal(taken.code, 40, taken.stderr)
    assert.match(taken.stderr, /unable to keep the old data folder as '.*taken' because that already exists/)
    const withDelta = await stanza.walden(['standby-create', '--keep-old-data', '--delta', ...standbyArgs()])
    assert.equal(withDelta.code, 31, withDelta.stderr)
    assert.match(withDelta.stderr, /cannot be combined with --delta or --force/)
    assert.ok(standby.isRunning(), 'still the same standby')
    await streams('d-after-refusals')
  })

  test('restore --type=preserve --delta repairs the standby and it comes back as the same standby', async () => {
    const autoConf = await readFile(join(standby.dataDir, 'postgresql.auto.conf'), 'utf8')
    assert.match(autoConf, /primary_conninfo = '.*application_name=wf_standby/)
    await standby.stop()
    // Damage to repair: a data file of the notes table goes missing.
    const relation = await primary.psqlScalar(`select pg_relation_filepath('notes')`)
    await writeFile(join(standby.dataDir, relation), '')
    await primary.query(`insert into notes values ('e-while-down')`)

    const repaired = await stanza.walden(['restore', '--type=preserve', '--delta', '--log-level-console=info', `--pg1-path=${standby.dataDir}`])
    assert.equal(repaired.code, 0, repaired.stderr)
    assert.match(repaired.stderr, /recovery settings preserved: postgresql\.auto\.conf, standby\.signal kept as they were/)
    assert.equal(await readFile(join(standby.dataDir, 'postgresql.auto.conf'), 'utf8'), autoConf)
    assert.ok((await stat(join(standby.dataDir, 'standby.signal'))).isFile())

    await standby.start()
    assert.equal(await standby.psqlScalar('select pg_is_in_recovery()::text'), 'true')
    await waitUntil('the standby to catch up', async () => (await rowsOn(standby)).includes('e-while-down'))
    assert.equal(await standby.psqlScalar(`select setting from pg_settings where name = 'primary_conninfo'`).then((value) => /application_name=wf_standby/.test(value)), true)
    await streams('f-after-preserve')
    assert.equal(await rowsOn(standby), await rowsOn(primary))
  })
})
