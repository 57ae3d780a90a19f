// Turns one master transaction into the SQL text of one host transaction. The same text is sent to a host database and
// written to SQL files, so a file replayed with psql behaves exactly as a direct apply: the replay guard first, every
// UPDATE and DELETE checked to touch exactly one row, sequences moved forward only.
//
// Row images travel as jsonb literals and are typed by the host's own table through jsonb_populate_record: no value
// is ever re-quoted by hand, a NULL stays NULL, and a column missing on the host fails the statement by name.
// Literals are E'' strings, whose escapes do not depend on standard_conforming_strings.

export type ChangeOp = 'i' | 'u' | 'd' | 't'
export type ConflictMode = 'error' | 'skip' | 'overwrite'

export interface Change {
  seqId: string
  /** Quoted, schema-qualified, as the trigger recorded it. */
  table: string
  op: ChangeOp
  /** jsonb text of the old primary key (u, d). */
  key: string | null
  /** jsonb text of the new row (i, u). */
  row: string | null
  /** For an UPDATE, the key columns whose value changed. */
  changedKeys: readonly string[]
}

export interface MasterTxn {
  xid: string
  tick: string
  lastSeqId: string
  /** Already contained in the host's initial copy. */
  inCopy: boolean
  changes: Change[]
}

export interface SequenceValue {
  table: string
  /** Quoted, schema-qualified. */
  sequence: string
  lastValue: string
}

export interface TableMeta {
  keyColumns: readonly string[]
  alwaysIdentity: readonly string[]
}

/** What mirror-add-table recorded per mirrored table. */
export type TableKeys = ReadonlyMap<string, TableMeta>

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

export function quoteLiteral(text: string): string {
  return `E'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

function columnsOf(image: string): string[] {
  return Object.keys(JSON.parse(image) as Record<string, unknown>)
}

function keyColumns(keys: TableKeys, table: string): readonly string[] {
  // The trigger only fires for registered tables; a change for another one means mirror-remove-table ran while it was
  // queued. Its own key image still names the key for UPDATE and DELETE.
  return keys.get(table)?.keyColumns ?? []
}

function insertSql(change: Change, keys: TableKeys, mode: ConflictMode): string {
  const table = change.table
  const columns = columnsOf(change.row!)
  const list = columns.map(quoteIdent).join(', ')
  const select = columns.map((column) => `r.${quoteIdent(column)}`).join(', ')
  let sql =
    `INSERT INTO ${table} (${list}) OVERRIDING SYSTEM VALUE SELECT ${select} ` +
    `FROM pg_catalog.jsonb_populate_record(NULL::${table}, ${quoteLiteral(change.row!)}) AS r`
  if (mode === 'overwrite') sql += upsertClause(columns, keyColumns(keys, table))
  return sql
}

function upsertClause(columns: readonly string[], key: readonly string[]): string {
  if (key.length === 0) return ''
  const others = columns.filter((column) => !key.includes(column))
  const target = ` ON CONFLICT (${key.map(quoteIdent).join(', ')}) DO `
  if (others.length === 0) return `${target}NOTHING`
  return `${target}UPDATE SET ${others.map((column) => `${quoteIdent(column)} = EXCLUDED.${quoteIdent(column)}`).join(', ')}`
}

/**
 * The primary key recorded by mirror-add-table. The key image holds every column that is not a non-key column by the
 * trigger's list, so it can also hold columns added to the table since; only the key is compared.
 */
function keyOf(change: Change, keys: TableKeys): readonly string[] {
  return keys.get(change.table)?.keyColumns ?? columnsOf(change.key!)
}

function keyMatch(change: Change, keys: TableKeys): { from: string; where: string } {
  const key = keyOf(change, keys)
  return {
    from: `pg_catalog.jsonb_populate_record(NULL::${change.table}, ${quoteLiteral(change.key!)}) AS k`,
    where: key.map((column) => `d.${quoteIdent(column)} = k.${quoteIdent(column)}`).join(' AND '),
  }
}

function describeChange(xid: string, what: string, change: Change): string {
  return `master transaction ${xid}: ${what} ${change.table} key ${change.key}`
}

function updateSql(xid: string, change: Change, keys: TableKeys, mode: ConflictMode): string {
  const table = change.table
  const key = keyOf(change, keys)
  const columns = columnsOf(change.row!)
  // Unchanged key columns and identity columns GENERATED ALWAYS are left alone: the latter may not be assigned, even
  // to their own value, and cannot have changed on the master either.
  const fixed = keys.get(table)?.alwaysIdentity ?? []
  const assigned = columns.filter(
    (column) => (!key.includes(column) || change.changedKeys.includes(column)) && !fixed.includes(column),
  )
  const match = keyMatch(change, keys)
  const expect = `pg_catalog.count(*), ${quoteLiteral(describeChange(xid, 'UPDATE of', change))}`
  if (assigned.length === 0) {
    if (mode === 'overwrite') return insertSql({ ...change, op: 'i' }, keys, mode)
    return `SELECT walden_mirror.expect_row(${expect}) FROM ${table} AS d, ${match.from} WHERE ${match.where}`
  }
  const update =
    `UPDATE ${table} AS d SET ${assigned.map((column) => `${quoteIdent(column)} = r.${quoteIdent(column)}`).join(', ')} ` +
    `FROM pg_catalog.jsonb_populate_record(NULL::${table}, ${quoteLiteral(change.row!)}) AS r, ${match.from} ` +
    `WHERE ${match.where} RETURNING 1`
  if (mode !== 'overwrite') return `WITH w AS (${update}) SELECT walden_mirror.expect_row(${expect}) FROM w`
  // overwrite: the row ends up as the master has it, whether or not the old one was there.
  const insert = insertSql({ ...change, op: 'i' }, keys, mode)
  const [head, tail] = splitOnConflict(insert)
  return `WITH w AS (${update}) ${head} WHERE NOT EXISTS (SELECT FROM w)${tail}`
}

function splitOnConflict(insert: string): [string, string] {
  const at = insert.lastIndexOf(' ON CONFLICT (')
  return at < 0 ? [insert, ''] : [insert.slice(0, at), insert.slice(at)]
}

function deleteSql(xid: string, change: Change, keys: TableKeys, mode: ConflictMode): string {
  const match = keyMatch(change, keys)
  const del = `DELETE FROM ${change.table} AS d USING ${match.from} WHERE ${match.where}`
  if (mode === 'overwrite') return del
  const expect = `pg_catalog.count(*), ${quoteLiteral(describeChange(xid, 'DELETE from', change))}`
  return `WITH w AS (${del} RETURNING 1) SELECT walden_mirror.expect_row(${expect}) FROM w`
}

export function changeSql(xid: string, change: Change, keys: TableKeys, mode: ConflictMode): string {
  switch (change.op) {
    case 'i':
      return insertSql(change, keys, mode)
    case 'u':
      return updateSql(xid, change, keys, mode)
    case 'd':
      return deleteSql(xid, change, keys, mode)
    case 't':
      return `TRUNCATE ONLY ${change.table}`
  }
}

/** setval only when it moves the host's sequence forward. */
export function sequenceSql(sequence: SequenceValue): string {
  const value = sequence.lastValue
  return (
    `SELECT pg_catalog.setval(${quoteLiteral(sequence.sequence)}, ${value}) FROM ${sequence.sequence} ` +
    `WHERE last_value < ${value} OR (last_value = ${value} AND NOT is_called)`
  )
}

const BEGIN_LINE = 'BEGIN ISOLATION LEVEL REPEATABLE READ;\n'

/**
 * The same host transaction committed without waiting for its WAL flush. Only for transactions followed, in the same
 * round trip, by one that does wait: its flush makes every earlier commit durable too (WAL is written in order), and
 * the master records the host's position only after that round trip. So one fsync serves a whole round trip instead
 * of one per transaction, and a host crash can lose only transactions the master has not recorded as delivered.
 */
export function withoutCommitWait(sql: string): string {
  if (!sql.startsWith(BEGIN_LINE)) throw new Error('withoutCommitWait: not a rendered transaction')
  return `${BEGIN_LINE}SET LOCAL synchronous_commit = off;\n${sql.slice(BEGIN_LINE.length)}`
}

/** The whole host transaction, one statement per line. */
export function transactionSql(
  txn: MasterTxn,
  keys: TableKeys,
  sequences: readonly SequenceValue[],
  mode: ConflictMode,
): string {
  const lines = [
    BEGIN_LINE.trimEnd(),
    'SET CONSTRAINTS ALL DEFERRED;',
    // The replay guard: a second attempt fails here, before it changes anything.
    `INSERT INTO walden_mirror.applied (master_xid, tick, last_seq_id) VALUES (${txn.xid}, ${txn.tick}, ${txn.lastSeqId});`,
  ]
  for (const change of txn.changes) lines.push(`${changeSql(txn.xid, change, keys, mode)};`)
  const touched = new Set(txn.changes.map((change) => change.table))
  for (const sequence of sequences) if (touched.has(sequence.table)) lines.push(`${sequenceSql(sequence)};`)
  lines.push('COMMIT;')
  return `${lines.join('\n')}\n`
}
