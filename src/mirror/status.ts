// mirror-status: per host, how far behind it is and why, if it is stuck. Read-only on the master.

import type { PgLink } from '../pg/link.js'

export interface HostStatus {
  host: string
  transactionsBehind: number
  /** Age of the oldest transaction the host does not have yet (from its capture), 0 when caught up. */
  secondsBehind: number
  lastAppliedXid: string | null
  lastAppliedAt: string | null
  stalled: { xid: string; error: string; since: string } | null
}

export async function statusRead(master: PgLink): Promise<HostStatus[]> {
  // Committed transactions not yet numbered by a tick (no mirror-run has looked since they committed) count for
  // every host.
  const rows = await master.query(
    `WITH unregistered AS (
       SELECT c.xid, min(c.captured_at) AS first_capture FROM walden_mirror.change c
        WHERE c.xid >= (SELECT snapshot_xmin FROM walden_mirror.clock) AND NOT EXISTS (SELECT 1 FROM walden_mirror.txn t WHERE t.xid = c.xid)
        GROUP BY c.xid)
     SELECT h.name, h.pos_xid, to_char(h.applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS applied_at,
            h.stalled_xid, h.stalled_error,
            to_char(h.stalled_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS stalled_since,
            w.behind + (SELECT count(*) FROM unregistered) AS behind,
            round(extract(epoch FROM now() - least(w.oldest, (SELECT min(first_capture) FROM unregistered)))::numeric, 1) AS lag
       FROM walden_mirror.host h,
            LATERAL (SELECT count(*) AS behind, min(t.first_capture) AS oldest FROM walden_mirror.txn t
                      WHERE (t.tick, t.last_seq_id) > (h.pos_tick, h.pos_seq)
                        AND (h.init_snapshot IS NULL OR NOT pg_visible_in_snapshot(t.xid::text::xid8, h.init_snapshot::pg_snapshot))) w
      ORDER BY h.name`,
  )
  return rows.map((row) => ({
    host: row['name']!,
    transactionsBehind: Number(row['behind']),
    secondsBehind: row['lag'] === null ? 0 : Math.max(0, Number(row['lag'])),
    lastAppliedXid: row['pos_xid'] ?? null,
    lastAppliedAt: row['applied_at'] ?? null,
    stalled:
      row['stalled_xid'] === null || row['stalled_xid'] === undefined
        ? null
        : { xid: row['stalled_xid'], error: row['stalled_error'] ?? '', since: row['stalled_since'] ?? '' },
  }))
}

export function statusText(hosts: readonly HostStatus[]): string {
  if (hosts.length === 0) return 'no mirror hosts\n'
  return hosts
    .map((status) => {
      const position = status.lastAppliedXid === null ? 'nothing applied yet' : `last applied master transaction ${status.lastAppliedXid} at ${status.lastAppliedAt}`
      const head = `host '${status.host}': ${status.transactionsBehind} transaction(s) and ${status.secondsBehind.toFixed(1)} s behind, ${position}`
      return status.stalled === null
        ? `${head}\n`
        : `${head}\n  stalled since ${status.stalled.since} at master transaction ${status.stalled.xid}: ${status.stalled.error}\n`
    })
    .join('')
}
