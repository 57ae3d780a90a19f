// Reading the master's queue for one host, recording how far the host has got, and purging what every host has.

import { fail } from '../common/errors.js'
import { printable } from './names.js'
import type { PgLink } from '../pg/link.js'
import type { Change, ChangeOp, MasterTxn, SequenceValue, TableKeys } from './render.js'

export interface HostRow {
  hostId: number
  name: string
  posTick: string
  posSeq: string
  initSnapshot: string | null
}

// A table name as mirror-add-table records it: two identifiers as quote_ident writes them, joined by a dot. Names
// are written into the SQL a host runs as they are, so the queue is not trusted to hold only what the capture trigger
// wrote there: anything else (a row someone inserted by hand, or by running code as the trigger's owner) is refused.
const QUALIFIED_NAME = /^(?:[a-z_][a-z0-9_]*|"(?:[^"]|"")+")\.(?:[a-z_][a-z0-9_]*|"(?:[^"]|"")+")$/

function queuedTableName(name: string, seqId: string): string {
  if (QUALIFIED_NAME.test(name)) return name
  fail('Format', `queued change ${seqId} names table '${printable(name)}', which is not a schema-qualified table name`, {
    hint: 'the capture trigger never writes one: someone wrote to walden_mirror.change by hand. Delete that row, then run again.',
  })
}

export async function hostLoad(master: PgLink, name: string): Promise<HostRow> {
  const rows = await master.query(
    'SELECT host_id, name, pos_tick, pos_seq, init_snapshot FROM walden_mirror.host WHERE name = $1',
    [name],
  )
  const row = rows[0]
  if (row === undefined) {
    fail('ParamInvalid', `mirror host '${name}' is not registered on the master at ${master.where}`, {
      hint: `add it with 'walden mirror-add-host --mirror-host=${name}'.`,
    })
  }
  return {
    hostId: Number(row['host_id']),
    name: row['name']!,
    posTick: row['pos_tick']!,
    posSeq: row['pos_seq']!,
    initSnapshot: row['init_snapshot'] ?? null,
  }
}

/** The next committed transactions after the host's position, in apply order, with their changes. */
export async function batchFetch(master: PgLink, host: HostRow, maxTxns: number): Promise<MasterTxn[]> {
  const rows = await master.query(
    `WITH batch AS (
       SELECT xid, tick, last_seq_id,
              CASE WHEN $4::text IS NULL THEN false
                   ELSE pg_visible_in_snapshot(xid::text::xid8, $4::text::pg_snapshot) END AS in_copy
         FROM walden_mirror.txn
        WHERE (tick, last_seq_id) > ($1::bigint, $2::bigint)
        ORDER BY tick, last_seq_id
        LIMIT $3)
     SELECT b.xid, b.tick, b.last_seq_id, b.in_copy::text AS in_copy, c.seq_id, c.table_name, c.op::text AS op,
            c.key_image::text AS key_image, c.row_image::text AS row_image,
            CASE WHEN c.op = 'u' THEN to_jsonb(ARRAY(
              SELECT k FROM jsonb_object_keys(c.key_image) AS k WHERE c.key_image -> k IS DISTINCT FROM c.row_image -> k))::text
            END AS changed_keys
       FROM batch b JOIN walden_mirror.change c ON c.xid = b.xid
      ORDER BY b.tick, b.last_seq_id, c.seq_id`,
    [host.posTick, host.posSeq, maxTxns, host.initSnapshot],
  )
  const txns: MasterTxn[] = []
  for (const row of rows) {
    let txn = txns.at(-1)
    if (txn === undefined || txn.xid !== row['xid']) {
      txn = { xid: row['xid']!, tick: row['tick']!, lastSeqId: row['last_seq_id']!, inCopy: row['in_copy'] === 'true', changes: [] }
      txns.push(txn)
    }
    const change: Change = {
      seqId: row['seq_id']!,
      table: queuedTableName(row['table_name']!, row['seq_id']!),
      op: row['op'] as ChangeOp,
      key: row['key_image'] ?? null,
      row: row['row_image'] ?? null,
      changedKeys: row['changed_keys'] ? (JSON.parse(row['changed_keys']) as string[]) : [],
    }
    txn.changes.push(change)
  }
  return txns
}

export async function tableKeysLoad(master: PgLink): Promise<TableKeys> {
  const rows = await master.query(
    'SELECT table_name, to_jsonb(key_columns)::text AS key_columns, to_jsonb(always_identity)::text AS always_identity FROM walden_mirror.mirrored_table',
  )
  return new Map(
    rows.map((row) => [
      row['table_name']!,
      { keyColumns: JSON.parse(row['key_columns']!) as string[], alwaysIdentity: JSON.parse(row['always_identity']!) as string[] },
    ]),
  )
}

/** Current values of the sequences owned by mirrored tables (serial and identity columns) that have been used. */
export async function sequencesLoad(master: PgLink): Promise<SequenceValue[]> {
  const rows = await master.query(
    `SELECT m.table_name, quote_ident(ns.nspname) || '.' || quote_ident(s.relname) AS sequence, ps.last_value
       FROM walden_mirror.mirrored_table m
       JOIN pg_depend d ON d.refobjid = to_regclass(m.table_name) AND d.refclassid = 'pg_class'::regclass
                       AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
       JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_namespace ns ON ns.oid = s.relnamespace
       JOIN pg_sequences ps ON ps.schemaname = ns.nspname AND ps.sequencename = s.relname
      WHERE ps.last_value IS NOT NULL
      ORDER BY 2`,
  )
  return rows.map((row) => ({ table: row['table_name']!, sequence: row['sequence']!, lastValue: row['last_value']! }))
}

/** The host has every transaction up to and including this one. Clears a recorded stall. */
export async function positionRecord(master: PgLink, host: HostRow, txn: MasterTxn): Promise<void> {
  await master.query(
    `UPDATE walden_mirror.host SET pos_tick = $2, pos_seq = $3, pos_xid = $4, applied_at = now(),
            stalled_xid = NULL, stalled_error = NULL, stalled_since = NULL
      WHERE host_id = $1`,
    [host.hostId, txn.tick, txn.lastSeqId, txn.xid],
  )
  host.posTick = txn.tick
  host.posSeq = txn.lastSeqId
}

export async function stallRecord(master: PgLink, host: HostRow, xid: string, error: string): Promise<void> {
  await master.query(
    `UPDATE walden_mirror.host SET stalled_xid = $2, stalled_error = $3,
            stalled_since = CASE WHEN stalled_xid IS NOT DISTINCT FROM $2::bigint THEN coalesce(stalled_since, now()) ELSE now() END
      WHERE host_id = $1`,
    [host.hostId, xid, error],
  )
}

export interface PurgeResult {
  transactions: number
  changes: number
}

/**
 * Removes the transactions every host has (all of them when no host is left). The SHARE lock on the host table
 * keeps mirror-add-host out while it runs: a host added afterwards starts behind everything purge left in the queue.
 */
export async function purge(master: PgLink): Promise<PurgeResult> {
  await master.script('BEGIN ISOLATION LEVEL READ COMMITTED; LOCK TABLE walden_mirror.host IN SHARE MODE')
  try {
    const [count] = await master.query('SELECT count(*) AS hosts FROM walden_mirror.host')
    const rows =
      Number(count!['hosts']) === 0
        ? await master.query(
            `WITH done AS (DELETE FROM walden_mirror.txn RETURNING 1), gone AS (DELETE FROM walden_mirror.change RETURNING 1)
             SELECT (SELECT count(*) FROM done) AS transactions, (SELECT count(*) FROM gone) AS changes`,
          )
        : await master.query(
            `WITH low AS (SELECT pos_tick, pos_seq FROM walden_mirror.host ORDER BY pos_tick, pos_seq LIMIT 1),
             done AS (DELETE FROM walden_mirror.txn t USING low
                       WHERE (t.tick, t.last_seq_id) <= (low.pos_tick, low.pos_seq) RETURNING t.xid),
             gone AS (DELETE FROM walden_mirror.change c USING done WHERE c.xid = done.xid RETURNING 1)
             SELECT (SELECT count(*) FROM done) AS transactions, (SELECT count(*) FROM gone) AS changes`,
          )
    await master.script('COMMIT')
    return { transactions: Number(rows[0]!['transactions']), changes: Number(rows[0]!['changes']) }
  } catch (error) {
    await master.script('ROLLBACK').catch(() => undefined)
    throw error
  }
}
