// Turns one master transaction into the SQL text of one host transaction. The same text is sent to a host database and
// written to SQL files, so a file replayed with psql behaves exactly as a direct apply: the replay guard first, every
// UPDATE and DELETE checked to touch exactly one row, sequences moved forward only.
//
// Row images travel as jsonb literals and are typed by the host's own table through jsonb_populate_record: no value
// is ever re-quoted by hand, a NULL stays NULL, and a column missing on the host fails the statement by name.
// Literals are E'' strings, whose escapes do not depend on standard_conforming_strings.
//
// A change becomes a template in which the row image, the key image and the master xid are placeholders. Written to a
// file, the placeholders become literals (inline). A database target prepares each distinct template once per session
// and executes it with the values (prepared), so the host plans an UPDATE of a given table and column set once, not
// once per row: planning is most of what applying costs the host.

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

// Placeholders: NUL cannot occur in SQL text, identifiers or literals, so these cannot be confused with anything.
const ROW = '\u0000R\u0000'
const KEY = '\u0000K\u0000'
const XID = '\u0000X\u0000'
const PLACEHOLDERS = /\u0000([RKX])\u0000/g

/** One statement of a host transaction: a template and the values of its placeholders. */
export interface Statement {
  template: string
  row: string | null
  key: string | null
  xid: string
}

/** Whether a statement has values that vary from row to row: worth preparing. */
export function statementVaries(statement: Statement): boolean {
  return statement.template.includes(ROW) || statement.template.includes(KEY)
}

/** The statement as plain SQL, values as literals. */
export function statementInline(statement: Statement): string {
  return statement.template.replace(PLACEHOLDERS, (_, which: string) => {
    const value = which === 'R' ? statement.row : which === 'K' ? statement.key : statement.xid
    return value === null ? 'NULL' : quoteLiteral(value)
  })
}

/** The template as the body of PREPARE name (jsonb, jsonb, text), and the arguments for EXECUTE, in that order. */
export function statementPrepared(statement: Statement): { body: string; args: string } {
  const body = statement.template.replace(PLACEHOLDERS, (_, which: string) => (which === 'R' ? '$1' : which === 'K' ? '$2' : '$3'))
  const literal = (value: string | null): string => (value === null ? 'NULL' : quoteLiteral(value))
  return { body, args: `${literal(statement.row)}, ${literal(statement.key)}, ${literal(statement.xid)}` }
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
    `FROM pg_catalog.jsonb_populate_record(NULL::${table}, ${ROW}) AS r`
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
    from: `pg_catalog.jsonb_populate_record(NULL::${change.table}, ${KEY}) AS k`,
    where: key.map((column) => `d.${quoteIdent(column)} = k.${quoteIdent(column)}`).join(' AND '),
  }
}

/** The message of a change that found no row: 'master transaction XID: UPDATE of TABLE key {...}'. */
function describeChange(what: string, change: Change): string {
  return `${quoteLiteral('master transaction ')} || ${XID} || ${quoteLiteral(`: ${what} ${change.table} key `)} || ${KEY}::text`
}

function updateSql(change: Change, keys: TableKeys, mode: ConflictMode): string {
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
  const expect = `pg_catalog.count(*), ${describeChange('UPDATE of', change)}`
  if (assigned.length === 0) {
    if (mode === 'overwrite') return insertSql({ ...change, op: 'i' }, keys, mode)
    return `SELECT walden_mirror.expect_row(${expect}) FROM ${table} AS d, ${match.from} WHERE ${match.where}`
  }
  const update =
    `UPDATE ${table} AS d SET ${assigned.map((column) => `${quoteIdent(column)} = r.${quoteIdent(column)}`).join(', ')} ` +
    `FROM pg_catalog.jsonb_populate_record(NULL::${table}, ${ROW}) AS r, ${match.from} ` +
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

function deleteSql(change: Change, keys: TableKeys, mode: ConflictMode): string {
  const match = keyMatch(change, keys)
  const del = `DELETE FROM ${change.table} AS d USING ${match.from} WHERE ${match.where}`
  if (mode === 'overwrite') return del
  const expect = `pg_catalog.count(*), ${describeChange('DELETE from', change)}`
  return `WITH w AS (${del} RETURNING 1) SELECT walden_mirror.expect_row(${expect}) FROM w`
}

function changeTemplate(change: Change, keys: TableKeys, mode: ConflictMode): string {
  switch (change.op) {
    case 'i':
      return insertSql(change, keys, mode)
    case 'u':
      return updateSql(change, keys, mode)
    case 'd':
      return deleteSql(change, keys, mode)
    case 't':
      return `TRUNCATE ONLY ${change.table}`
  }
}

export function changeStatement(xid: string, change: Change, keys: TableKeys, mode: ConflictMode): Statement {
  return { template: changeTemplate(change, keys, mode), row: change.row, key: change.key, xid }
}

/** One change as plain SQL. */
export function changeSql(xid: string, change: Change, keys: TableKeys, mode: ConflictMode): string {
  return statementInline(changeStatement(xid, change, keys, mode))
}

/** setval only when it moves the host's sequence forward. */
export function sequenceSql(sequence: SequenceValue): string {
  const value = sequence.lastValue
  return (
    `SELECT pg_catalog.setval(${quoteLiteral(sequence.sequence)}, ${value}) FROM ${sequence.sequence} ` +
    `WHERE last_value < ${value} OR (last_value = ${value} AND NOT is_called)`
  )
}

const BEGIN = 'BEGIN ISOLATION LEVEL REPEATABLE READ'

function plain(template: string, xid: string): Statement {
  return { template, row: null, key: null, xid }
}

/** The whole host transaction, statement by statement. */
export function transactionStatements(
  txn: MasterTxn,
  keys: TableKeys,
  sequences: readonly SequenceValue[],
  mode: ConflictMode,
): Statement[] {
  const statements = [
    plain(BEGIN, txn.xid),
    plain('SET CONSTRAINTS ALL DEFERRED', txn.xid),
    // The replay guard: a second attempt fails here, before it changes anything.
    plain(`INSERT INTO walden_mirror.applied (master_xid, tick, last_seq_id) VALUES (${txn.xid}, ${txn.tick}, ${txn.lastSeqId})`, txn.xid),
  ]
  for (const change of txn.changes) statements.push(changeStatement(txn.xid, change, keys, mode))
  const touched = new Set(txn.changes.map((change) => change.table))
  for (const sequence of sequences) if (touched.has(sequence.table)) statements.push(plain(sequenceSql(sequence), txn.xid))
  statements.push(plain('COMMIT', txn.xid))
  return statements
}

/**
 * The same host transaction committed without waiting for its WAL flush. Only for transactions followed, in the same
 * round trip, by one that does wait: its flush makes every earlier commit durable too (WAL is written in order), and
 * the master records the host's position only after that round trip. So one fsync serves a whole round trip instead
 * of one per transaction, and a host crash can lose only transactions the master has not recorded as delivered.
 */
export function withoutCommitWait(statements: readonly Statement[]): Statement[] {
  if (statements[0]?.template !== BEGIN) throw new Error('withoutCommitWait: not a rendered transaction')
  return [statements[0], plain('SET LOCAL synchronous_commit = off', statements[0].xid), ...statements.slice(1)]
}

/** Statements as SQL text, one per line. */
export function statementsSql(statements: readonly Statement[]): string {
  return statements.map((statement) => `${statementInline(statement)};\n`).join('')
}

/** The whole host transaction as SQL text, one statement per line. */
export function transactionSql(
  txn: MasterTxn,
  keys: TableKeys,
  sequences: readonly SequenceValue[],
  mode: ConflictMode,
): string {
  return statementsSql(transactionStatements(txn, keys, sequences, mode))
}
