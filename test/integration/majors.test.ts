// Every supported PostgreSQL major: backup -> restore -> start -> compare, with compression and parallelism
// rotated across the rows so a few runs cover every codec (the full flow runs on 15 in core-flow.test.ts).

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { describe, test } from 'node:test'
import { availableMajors, dumpDatabase } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'

const MATRIX = [
  { major: 13, compressType: 'gz', processMax: 1 },
  { major: 14, compressType: 'lz4', processMax: 2 },
  { major: 15, compressType: 'none', processMax: 2 },
  { major: 16, compressType: 'zst', processMax: 1 },
  { major: 17, compressType: 'lz4', processMax: 1 },
  { major: 18, compressType: 'zst', processMax: 2 },
]

const majors = await availableMajors()

describe('backup and restore on every supported major', () => {
  for (const row of MATRIX) {
    const skip = majors.includes(row.major) ? false : `PostgreSQL ${row.major} binaries not installed`
    test(`PostgreSQL ${row.major}, ${row.compressType}, process-max ${row.processMax}`, { skip }, async () => {
      const stanza = await createTestStanza(row)
      try {
        await stanza.cluster.query(
          `create table items (id int primary key, name text, payload jsonb);
           insert into items select n, 'item ' || n, jsonb_build_object('n', n) from generate_series(1, 5000) n;`,
        )
        await stanza.waldenOk(['stanza-create'])
        await stanza.waldenOk(['backup', '--type=full'])
        await stanza.cluster.query(`update items set name = name || '!' where id % 7 = 0; delete from items where id > 4900`)
        await stanza.waldenOk(['backup', '--type=incr'])
        await stanza.cluster.query(`insert into items values (9999, 'after the backups', null)`)
        const expected = await dumpDatabase(stanza.cluster)
        await stanza.waldenOk(['check'])
        await stanza.cluster.stop()

        await rm(stanza.cluster.dataDir, { recursive: true, force: true })
        await stanza.waldenOk(['restore'])
        await stanza.cluster.start()
        await stanza.cluster.waitWritable()
        assert.equal(await dumpDatabase(stanza.cluster), expected)
        assert.equal(await stanza.cluster.psqlScalar(`select name from items where id = 9999`), 'after the backups')
      } finally {
        await stanza.dir.cleanup()
      }
    })
  }
})
