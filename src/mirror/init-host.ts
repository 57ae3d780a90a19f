// mirror-init-host: copies the mirrored tables to a host from one snapshot of the master and records that snapshot, so
// the host later receives exactly the transactions the copy does not contain. Master and host need not start equal,
// and the master need not be quiet while the copy runs.

import { fail } from '../common/errors.js'
import { log } from '../common/log.js'
import type { PgLink } from '../pg/link.js'
import { HOST_SCHEMA_SQL } from './host-schema.js'
import { hostLoad, sequencesLoad } from './queue.js'
import { quoteIdent, sequenceSql } from './render.js'

const FETCH_ROWS = 2000

export interface InitResult {
  tables: number
  rows: number
}

export async function hostInit(master: PgLink, host: PgLink, hostName: string): Promise<InitResult> {
  const hostRow = await hostLoad(master, hostName)
  // One REPEATABLE READ transaction on the master: every table is read in its snapshot, and the snapshot itself says
  // which transactions the copy contains (those visible in it).
  await master.script('BEGIN ISOLATION LEVEL REPEATABLE READ')
  try {
    const [snap] = await master.query('SELECT pg_current_snapshot()::text AS snapshot')
    const tables = await master.query(
      `SELECT m.table_name, to_jsonb(ARRAY(SELECT a.attname::text FROM pg_attribute a
                 WHERE a.attrelid = to_regclass(m.table_name) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''))::text AS generated
         FROM walden_mirror.mirrored_table m ORDER BY 1`,
    )
    const names = tables.map((table) => table['table_name']!)
    for (const name of names) {
      const [found] = await host.query('SELECT (to_regclass($1) IS NOT NULL)::text AS found', [name])
      if (found!['found'] !== 'true') {
        fail('DbMismatch', `table ${name} does not exist in the ${host.where}`, {
          hint: 'create the mirrored tables on the host first, e.g. from pg_dump --schema-only -t TABLE of the master.',
        })
      }
    }
    let rows = 0
    await host.script(`BEGIN;\n${HOST_SCHEMA_SQL}\nDELETE FROM walden_mirror.applied;\nSET CONSTRAINTS ALL DEFERRED;`)
    try {
      if (names.length > 0) await host.script(`TRUNCATE ONLY ${names.join(', ')}`)
      for (const table of tables) {
        rows += await tableCopy(master, host, table['table_name']!, JSON.parse(table['generated']!) as string[])
      }
      for (const sequence of await sequencesLoad(master)) await host.script(sequenceSql(sequence))
      await host.script('COMMIT')
    } catch (error) {
      await host.script('ROLLBACK').catch(() => undefined)
      throw error
    }
    await master.query(
      'UPDATE walden_mirror.host SET init_snapshot = $2, stalled_xid = NULL, stalled_error = NULL, stalled_since = NULL WHERE host_id = $1',
      [hostRow.hostId, snap!['snapshot']],
    )
    await master.script('COMMIT')
    log.info(`mirror host '${hostName}' initialised from snapshot ${snap!['snapshot']}: ${names.length} table(s), ${rows} row(s)`)
    return { tables: names.length, rows }
  } catch (error) {
    await master.script('ROLLBACK').catch(() => undefined)
    throw error
  }
}

async function tableCopy(master: PgLink, host: PgLink, table: string, generated: readonly string[]): Promise<number> {
  const skip = `ARRAY[${generated.map((column) => `'${column.replaceAll("'", "''")}'`).join(', ')}]::text[]`
  await master.script(`DECLARE walden_copy NO SCROLL CURSOR FOR SELECT (to_jsonb(t) - ${skip})::text AS image FROM ${table} AS t`)
  let rows = 0
  for (;;) {
    const batch = await master.query(`FETCH ${FETCH_ROWS} FROM walden_copy`)
    if (batch.length === 0) break
    const columns = Object.keys(JSON.parse(batch[0]!['image']!) as Record<string, unknown>)
    await host.query(
      `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')}) OVERRIDING SYSTEM VALUE ` +
        `SELECT ${columns.map((column) => `r.${quoteIdent(column)}`).join(', ')} FROM jsonb_populate_recordset(NULL::${table}, $1::jsonb) AS r`,
      [`[${batch.map((row) => row['image']).join(',')}]`],
    )
    rows += batch.length
  }
  await master.script('CLOSE walden_copy')
  return rows
}
