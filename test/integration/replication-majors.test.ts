// The replication commands on every supported major other than 15 (which replication.test.ts covers in depth):
// setup's reading of the settings, a streaming standby with a slot, replication-status on both ends, and promote. The catalog views they read
// (pg_stat_replication, pg_stat_wal_receiver, pg_replication_slots) change between majors, so each one runs.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { availableMajors, Cluster } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'

const majors = await availableMajors()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('standby, status and promote on every supported major', () => {
  for (const major of [13, 14, 16, 17, 18]) {
    const skip = majors.includes(major) ? false : `PostgreSQL ${major} binaries not installed`
    test(`PostgreSQL ${major}`, { skip }, async () => {
      const stanza = await createTestStanza({ major, name: 'rmaj', settings: { hot_standby: 'on' } })
      try {
        const primary = stanza.cluster
        await primary.query('create table t (x int primary key)')
        const setup = await stanza.waldenOk(['setup', '--dry-run'])
        assert.match(setup.stdout, /wal_keep_size\s+0 -> 512MB/)
        assert.match(setup.stdout, /no restart would be needed/)
        await stanza.waldenOk(['stanza-create'])
        await stanza.waldenOk(['backup', '--type=full'])
        const standby = await Cluster.adopt({ major, dir: stanza.dir, name: 'standby' })
        const on = (args: readonly string[]) =>
          stanza.waldenOk([`--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`, `--pg1-socket-path=${standby.socketDir}`, ...args])
        await on(['standby-create', `--primary-conninfo=host=127.0.0.1 port=${primary.port} user=postgres application_name=s${major}`, '--slot=s1'])
        await standby.configure({ unix_socket_directories: standby.socketDir })
        await standby.start()
        await primary.query('insert into t values (1)')
        for (let i = 0; i < 100 && (await standby.psqlScalar('select count(*) from t').catch(() => '0')) !== '1'; i++) await sleep(100)
        assert.equal(await standby.psqlScalar('select count(*) from t'), '1')

        const onPrimary = JSON.parse((await stanza.waldenOk(['replication-status', '--output=json', '--max-lag-bytes=16777216'])).stdout)
        assert.deepEqual(onPrimary.standbys.map((s: { applicationName: string; state: string }) => [s.applicationName, s.state]), [[`s${major}`, 'streaming']])
        assert.deepEqual(onPrimary.slots.map((s: { name: string; active: boolean }) => [s.name, s.active]), [['s1', true]])
        const onStandby = JSON.parse((await on(['replication-status', '--output=json'])).stdout)
        assert.equal(onStandby.role, 'standby')
        assert.equal(onStandby.receiver.status, 'streaming')

        await primary.stop()
        assert.match((await on(['promote'])).stdout, /now a primary on timeline 2/)
        await standby.waitWritable()
        await standby.stop()
      } finally {
        await stanza.dir.cleanup()
      }
    })
  }
})
