// Installing and removing the mirror on the master, and choosing what is mirrored and to whom.

import { fail } from '../common/errors.js'
import type { PgLink } from '../pg/link.js'
import { SqlError } from '../pg/link.js'
import { tableNameCheck } from './names.js'
import { quoteLiteral } from './render.js'
import { CAPTURE_ROLE, MASTER_SCHEMA_SQL, MASTER_TEARDOWN_SQL } from './schema.js'

export async function masterSetup(master: PgLink): Promise<void> {
  try {
    await master.script(`BEGIN;\n${MASTER_SCHEMA_SQL}\nCOMMIT;`)
  } catch (error) {
    await master.script('ROLLBACK').catch(() => undefined)
    if (error instanceof SqlError && error.sqlState === '42501') {
      fail('DbQuery', `mirror-setup is not allowed to install the mirror in the ${master.where}: ${error.full}`, {
        hint: `run mirror-setup as a superuser: it creates the role ${CAPTURE_ROLE}, which the capture triggers run as, and gives it their functions.`,
        cause: error,
      })
    }
    throw error
  }
}

export async function masterTeardown(master: PgLink): Promise<void> {
  await master.script(`BEGIN;\n${MASTER_TEARDOWN_SQL}\nCOMMIT;`)
}

export interface TableInfo {
  /** Quoted and schema-qualified, as the trigger records it. */
  name: string
  keyColumns: string[]
  generatedColumns: string[]
  alwaysIdentity: string[]
  /** Every column, in order. */
  columns: string[]
}

/**
 * The oid of the table a user names, as SCHEMA.NAME or NAME on their search path, or undefined when there is none:
 * resolved with the session's default search path (the master session otherwise looks in pg_catalog only, see
 * connect.ts), by to_regclass alone.
 */
async function tableOid(master: PgLink, given: string): Promise<string | undefined> {
  await master.script('BEGIN; SET LOCAL search_path TO DEFAULT')
  try {
    const [row] = await master.query('SELECT pg_catalog.to_regclass($1::pg_catalog.text)::pg_catalog.oid::pg_catalog.text AS oid', [given])
    await master.script('COMMIT')
    return row!['oid'] ?? undefined
  } catch (error) {
    await master.script('ROLLBACK').catch(() => undefined)
    // A name that cannot be one (too many dots, another database): no such table.
    if (error instanceof SqlError && (error.sqlState === '42P01' || error.sqlState === '3F000' || error.sqlState === '42602' || error.sqlState === '0A000')) {
      return undefined
    }
    throw error
  }
}

/** Looks a table up by SCHEMA.NAME (or NAME on the search path); refuses one without a primary key. */
export async function tableInfo(master: PgLink, given: string): Promise<TableInfo> {
  tableNameCheck(given)
  const oid = await tableOid(master, given)
  if (oid === undefined) {
    fail('ParamInvalid', `table '${given}' does not exist on the ${master.where}`, { hint: 'give --table=SCHEMA.NAME of an existing table.' })
  }
  const rows = await master.query(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, c.relkind::text AS kind,
            to_jsonb(ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                              AND a.attnum = ANY(i.indkey)
                            WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)))::text AS keys,
            to_jsonb(ARRAY(SELECT a.attname::text FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
                            ORDER BY a.attnum))::text AS generated,
            to_jsonb(ARRAY(SELECT a.attname::text FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = 'a'
                            ORDER BY a.attnum))::text AS always_identity,
            to_jsonb(ARRAY(SELECT a.attname::text FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum))::text AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = $1::oid`,
    [oid],
  )
  const row = rows[0]!
  if (row['kind'] !== 'r' && row['kind'] !== 'p') {
    fail('ParamInvalid', `'${given}' is not a table`, { hint: 'only tables can be mirrored.' })
  }
  const keyColumns = JSON.parse(row['keys']!) as string[]
  if (keyColumns.length === 0) {
    fail('ParamInvalid', `there is no PRIMARY KEY for table ${row['name']}`, {
      hint: 'mirroring finds rows on the host by primary key; add one (ALTER TABLE ... ADD PRIMARY KEY) first.',
    })
  }
  return {
    name: row['name']!,
    keyColumns,
    generatedColumns: JSON.parse(row['generated']!) as string[],
    alwaysIdentity: JSON.parse(row['always_identity']!) as string[],
    columns: JSON.parse(row['columns']!) as string[],
  }
}

function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`
}

/** Creates (or re-creates, picking up a changed key or columns added since) the capture triggers. */
export async function tableAdd(master: PgLink, table: TableInfo): Promise<void> {
  const nonKey = table.columns.filter((column) => !table.keyColumns.includes(column))
  const args = [table.name, textArrayLiteral(table.generatedColumns), textArrayLiteral(nonKey)].map(quoteLiteral).join(', ')
  await master.script(
    `BEGIN;
     DROP TRIGGER IF EXISTS walden_mirror_capture ON ${table.name};
     DROP TRIGGER IF EXISTS walden_mirror_truncate ON ${table.name};
     CREATE TRIGGER walden_mirror_capture AFTER INSERT OR UPDATE OR DELETE ON ${table.name}
       FOR EACH ROW EXECUTE FUNCTION walden_mirror.capture_row(${args});
     CREATE TRIGGER walden_mirror_truncate AFTER TRUNCATE ON ${table.name}
       FOR EACH STATEMENT EXECUTE FUNCTION walden_mirror.capture_truncate(${quoteLiteral(table.name)});
     INSERT INTO walden_mirror.mirrored_table (table_name, key_columns, always_identity)
       VALUES (${quoteLiteral(table.name)}, ${quoteLiteral(textArrayLiteral(table.keyColumns))}, ${quoteLiteral(textArrayLiteral(table.alwaysIdentity))})
       ON CONFLICT (table_name) DO UPDATE SET key_columns = EXCLUDED.key_columns, always_identity = EXCLUDED.always_identity;
     COMMIT;`,
  )
}

/** Drops the triggers; changes already queued for the table are still delivered. Returns false if it was not mirrored. */
export async function tableRemove(master: PgLink, given: string): Promise<boolean> {
  tableNameCheck(given)
  const oid = await tableOid(master, given)
  const rows = await master.query(
    'SELECT table_name FROM walden_mirror.mirrored_table WHERE table_name = $1 OR to_regclass(table_name) = $2::oid',
    [given, oid ?? null],
  )
  const name = rows[0]?.['table_name']
  if (name === undefined || name === null) return false
  await master.script(
    `BEGIN;
     DO $body$ BEGIN
       IF pg_catalog.to_regclass(${quoteLiteral(name)}) IS NOT NULL THEN
         EXECUTE 'DROP TRIGGER IF EXISTS walden_mirror_capture ON ${name.replaceAll("'", "''")}';
         EXECUTE 'DROP TRIGGER IF EXISTS walden_mirror_truncate ON ${name.replaceAll("'", "''")}';
       END IF;
     END $body$;
     DELETE FROM walden_mirror.mirrored_table WHERE table_name = ${quoteLiteral(name)};
     COMMIT;`,
  )
  return true
}

/** Registers a host; it starts behind everything still queued. Returns false if it existed. */
export async function hostAdd(master: PgLink, name: string): Promise<boolean> {
  const rows = await master.query('INSERT INTO walden_mirror.host (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING host_id', [name])
  return rows.length === 1
}

/** Unregisters a host, which releases what it held back from purge. Returns false if it did not exist. */
export async function hostRemove(master: PgLink, name: string): Promise<boolean> {
  const rows = await master.query('DELETE FROM walden_mirror.host WHERE name = $1 RETURNING host_id', [name])
  return rows.length === 1
}
