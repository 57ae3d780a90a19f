// Table mirroring on the other supported majors (the full scenario runs on 15 in mirror.test.ts): the capture
// trigger, the commit order (pg_current_snapshot, pg_visible_in_snapshot) and apply, with savepoints, a primary-key
// change, identity and generated columns, TRUNCATE and a sequence, compared row by row and sequence by sequence.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { availableMajors, createCluster, runWalden, testDir } from '../harness/cluster.js'
import type { Cluster } from '../harness/cluster.js'

const MAJORS = [13, 14, 16, 17, 18]
const installed = await availableMajors()

const DDL = `
  CREATE TABLE acct (id bigserial PRIMARY KEY, name text, doc jsonb, at timestamptz);
  CREATE TABLE item (a int, b text, v int GENERATED ALWAYS AS (a * 2) STORED, w int GENERATED ALWAYS AS IDENTITY,
                     PRIMARY KEY (a, b));
`

/** Every row of the mirrored tables as text, in key order, and the sequences' positions. */
async function snapshotOf(cluster: Cluster, db: string): Promise<string> {
  const client = await cluster.connect(db)
  try {
    const rows = await client.query(
      `SELECT 'acct' AS t, to_jsonb(a)::text AS r FROM acct a
       UNION ALL SELECT 'item', to_jsonb(i)::text FROM item i
       UNION ALL SELECT 'seq ' || sequencename, last_value::text FROM pg_sequences WHERE schemaname = 'public'
       ORDER BY 1, 2`,
    )
    return rows.rows.map((row: { t: string; r: string }) => `${row.t} ${row.r}`).join('\n')
  } finally {
    await client.end()
  }
}

describe('table mirroring on every supported major', () => {
  for (const major of MAJORS) {
    const skip = installed.includes(major) ? false : `PostgreSQL ${major} binaries not installed`
    test(`PostgreSQL ${major}`, { skip }, async () => {
      const dir = await testDir(`walden-mirror-pg${major}`)
      try {
        const lockPath = await dir.mkdir('lock')
        const cluster = await createCluster({ major, dir })
        await cluster.start()
        await cluster.query('CREATE DATABASE master')
        await cluster.query('CREATE DATABASE host')
        for (const db of ['master', 'host']) {
          const client = await cluster.connect(db)
          await client.query(DDL)
          await client.end()
        }
        const conninfo = (db: string): string => `host=${cluster.socketDir} port=${cluster.port} dbname=${db}`
        const walden = async (args: string[]): Promise<void> => {
          const result = await runWalden([...args, `--mirror-master=${conninfo('master')}`, `--lock-path=${lockPath}`, '--log-level-file=off'])
          assert.equal(result.code, 0, `${args[0]}: ${result.stderr}`)
        }
        await walden(['mirror-setup'])
        await walden(['mirror-add-table', '--table=public.acct'])
        await walden(['mirror-add-table', '--table=public.item'])
        await walden(['mirror-add-host', '--mirror-host=h'])

        const master = await cluster.connect('master')
        await master.query(`INSERT INTO acct (name, doc, at) SELECT 'n' || n, jsonb_build_object('n', n), now() FROM generate_series(1, 50) n`)
        await master.query(`BEGIN; UPDATE acct SET id = id + 1000 WHERE id <= 5; SAVEPOINT s; DELETE FROM acct; ROLLBACK TO s;
                            INSERT INTO item (a, b) SELECT n, 'x' FROM generate_series(1, 20) n; COMMIT`)
        await master.query(`BEGIN; DELETE FROM acct WHERE id > 40; ROLLBACK`)
        await master.query(`TRUNCATE item; INSERT INTO item (a, b) VALUES (1, 'after truncate')`)
        await master.query(`UPDATE item SET b = 'changed key' WHERE a = 1; DELETE FROM acct WHERE id BETWEEN 10 AND 20`)
        await master.end()

        await walden(['mirror-run', '--mirror-host=h', `--mirror-target=${conninfo('host')}`, '--once'])
        assert.equal(await snapshotOf(cluster, 'host'), await snapshotOf(cluster, 'master'))
        await cluster.stop()
      } finally {
        await dir.cleanup()
      }
    })
  }
})
