// Proves the cluster harness on every PostgreSQL major found on this machine: initdb with checksums, start, query,
// dump comparison, stop. Majors run one after another to respect the two-clusters-at-a-time budget.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { availableMajors, createCluster, dumpDatabase } from './cluster.js'

const majors = await availableMajors()

test('at least one PostgreSQL major is available', () => {
  assert.ok(majors.length > 0, 'no PostgreSQL server binaries found')
})

for (const major of majors) {
  test(`cluster harness works with PostgreSQL ${major}`, async () => {
    const started = Date.now()
    const cluster = await createCluster({ major, checksums: true })
    try {
      await cluster.start()
      const ready = Date.now()
      assert.ok(cluster.isRunning())
      assert.equal(Math.floor(Number(await cluster.psqlScalar('SHOW server_version_num')) / 10000), major)
      assert.equal(await cluster.psqlScalar('SHOW data_checksums'), 'on')

      await cluster.query('CREATE TABLE t (id int PRIMARY KEY, note text, at timestamptz DEFAULT now())')
      await cluster.query(`INSERT INTO t (id, note) SELECT g, 'row ' || g FROM generate_series(1, 100) g`)
      const rows = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE id > $1', [50])
      assert.equal(rows[0]?.n, '50')

      const first = await dumpDatabase(cluster)
      assert.match(first, /row 42/)
      assert.doesNotMatch(first, /^\\(un)?restrict/m)
      assert.equal(await dumpDatabase(cluster), first, 'two dumps of unchanged data differ')
      await cluster.query(`INSERT INTO t (id, note) VALUES (101, 'one more')`)
      const second = await dumpDatabase(cluster)
      assert.notEqual(second, first, 'a dump did not change after an INSERT')

      // A crash and recovery keep committed rows, and the harness can start the cluster again right away.
      await cluster.kill9()
      assert.equal(cluster.isRunning(), false)
      await cluster.start()
      assert.equal(await cluster.psqlScalar('SELECT count(*) FROM t'), '101')
      assert.equal(await dumpDatabase(cluster), second)

      await cluster.stop()
      assert.equal(cluster.isRunning(), false)
      console.log(`PostgreSQL ${major}: initdb+start ${ready - started} ms, total ${Date.now() - started} ms`)
    } finally {
      await cluster.destroy()
    }
  })
}
