// The commit order of mirrored transactions, and why it is safe to apply in it.
//
// The queue knows which transaction wrote each change (xid) and in which order changes were captured (seq_id), but not
// when transactions committed. dbmirror ordered transactions by their highest seq_id; that is wrong when a transaction
// that is still running during one poll commits later with lower seq_ids, and it needs the xid to be finished.
//
// walden numbers commits in "ticks". A tick is one statement, run under a lock on the clock row (so ticks are
// serialised and each sees everything the previous one saw): it registers every transaction whose changes it can
// see and that has no txn row yet, stamping it with the new tick number. A READ COMMITTED statement sees exactly the
// transactions that had committed when its snapshot was taken, and all changes of such a transaction at once, so:
//   - a transaction is registered only once it has committed, complete; rolled-back work is never seen;
//   - if B had committed before A committed, B is registered in the same tick as A or an earlier one: a snapshot that
//     shows A also shows B, because PostgreSQL makes commits visible in the order they happen.
// Transactions are applied in (tick, last_seq_id) order. For two transactions that touch the same row, the later one
// had to wait for the earlier one's commit (row lock, unique index, or it could not see the row before), so it is in
// the same tick or a later one, and within a tick its last change was captured after the earlier one committed, so
// its last_seq_id is higher. Transactions that touch disjoint rows may be applied in another order than they
// committed; nothing can observe the difference in the mirrored tables. Sequences only move forward (render.ts).
// Unlike a "below the oldest running xid" rule, a long-running transaction does not hold back the others.
//
// A tick need only examine changes with xid >= the xmin of the previous tick's snapshot: every transaction below it had
// finished by then, and if it committed the previous tick saw it.

import type { PgLink } from '../pg/link.js'

/** Registers newly committed transactions; returns how many. Runs in its own transaction on the master. */
export async function tickRun(master: PgLink): Promise<number> {
  // READ COMMITTED whatever default_transaction_isolation says: each statement must take a fresh snapshot.
  await master.script('BEGIN ISOLATION LEVEL READ COMMITTED')
  try {
    // The lock comes first, in its own statement, so the registering statement's snapshot is taken after the
    // previous tick committed.
    const [clock] = await master.query('SELECT tick, snapshot_xmin FROM walden_mirror.clock FOR UPDATE')
    const rows = await master.query(
      `WITH snap AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin),
       fresh AS (
         SELECT c.xid, max(c.seq_id) AS last_seq_id, count(*) AS changes, min(c.captured_at) AS first_capture
           FROM walden_mirror.change c
          WHERE c.xid >= $2 AND NOT EXISTS (SELECT 1 FROM walden_mirror.txn t WHERE t.xid = c.xid)
          GROUP BY c.xid),
       registered AS (
         INSERT INTO walden_mirror.txn (xid, tick, last_seq_id, changes, first_capture)
         SELECT xid, $1, last_seq_id, changes, first_capture FROM fresh RETURNING 1),
       advanced AS (UPDATE walden_mirror.clock SET tick = $1, snapshot_xmin = (SELECT xmin FROM snap) RETURNING 1)
       SELECT (SELECT count(*) FROM registered) AS registered, (SELECT count(*) FROM advanced) AS advanced`,
      [String(BigInt(clock!['tick']!) + 1n), clock!['snapshot_xmin']],
    )
    await master.script('COMMIT')
    return Number(rows[0]!['registered'])
  } catch (error) {
    await master.script('ROLLBACK').catch(() => undefined)
    throw error
  }
}
