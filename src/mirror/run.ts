// mirror-run's work for one host: register newly committed transactions, fetch the next ones in order, hand them to
// the target, record on the master how far the host has got, purge what every host has. Stops at the first
// transaction that fails; a conflict in skip mode is logged and passed over instead.

import { log } from '../common/log.js'
import { SqlError } from '../pg/link.js'
import type { PgLink } from '../pg/link.js'
import { tickRun } from './order.js'
import { batchFetch, hostLoad, positionRecord, purge, sequencesLoad, stallRecord, tableKeysLoad } from './queue.js'
import type { HostRow } from './queue.js'
import { transactionStatements } from './render.js'
import type { ConflictMode, MasterTxn } from './render.js'
import type { MirrorTarget, RenderedTxn } from './target.js'

/** Transactions fetched per cycle. */
const BATCH_TXNS = 1000

// Purge takes a lock that makes every host's position update wait for it: a busy mirror-run purges every few seconds,
// not after every cycle.
const PURGE_EVERY_MS = 5000

export interface Stall {
  xid: string
  error: string
  conflict: boolean
}

export interface CycleResult {
  /** Transactions the host received in this cycle (applied, skipped, or already in its copy). */
  delivered: number
  /** More transactions were waiting than one cycle takes. */
  more: boolean
  stall?: Stall
}

// Errors that mean the host's data does not fit the change, rather than a broken connection or a busy server:
// integrity violations (duplicate key, foreign key, not null, check), a column missing on the host, and an UPDATE or
// DELETE that found no row (P0002, raised by walden_mirror.expect_row).
export function isConflict(error: SqlError): boolean {
  const state = error.sqlState ?? ''
  return state.startsWith('23') || state === '42703' || state === 'P0002'
}

export interface Mirror {
  master: PgLink
  target: MirrorTarget
  hostName: string
  conflict: ConflictMode
  /** When this mirror-run last purged (Date.now()); undefined before the first time. */
  purgedAt?: number
}

export async function cycleRun(mirror: Mirror): Promise<CycleResult> {
  const { master, target } = mirror
  await tickRun(master)
  const host = await hostLoad(master, mirror.hostName)
  const txns = await batchFetch(master, host, BATCH_TXNS)
  const more = txns.length === BATCH_TXNS
  if (txns.length === 0) {
    await target.sequencesFollow(await sequencesLoad(master))
    return { delivered: 0, more: false }
  }
  const keys = await tableKeysLoad(master)
  // Read after the batch: every value a batched transaction drew is at or below these.
  const sequences = await sequencesLoad(master)
  const already = await target.alreadyApplied(txns)

  let delivered = 0
  let index = 0
  while (index < txns.length) {
    // Transactions the host already has are passed over; the rest, up to the next such one, go in one call.
    if (txns[index]!.inCopy || already.has(txns[index]!.xid)) {
      index++
      delivered++
      continue
    }
    let end = index
    const run: RenderedTxn[] = []
    while (end < txns.length && !txns[end]!.inCopy && !already.has(txns[end]!.xid)) {
      run.push({ txn: txns[end]!, statements: transactionStatements(txns[end]!, keys, sequences, mirror.conflict) })
      end++
    }
    const outcome = await target.apply(run)
    delivered += outcome.applied
    if (outcome.failure === undefined) {
      index = end
      continue
    }
    const { txn, error } = outcome.failure
    const conflict = isConflict(error)
    if (conflict && mirror.conflict === 'skip') {
      log.warn(`mirror host '${host.name}': skipped master transaction ${txn.xid}: ${error.full}`)
      delivered++
      index += outcome.applied + 1
      continue
    }
    await positionAt(mirror, host, txns, index + outcome.applied)
    await stallRecord(master, host, txn.xid, error.full)
    return { delivered, more, stall: { xid: txn.xid, error: error.full, conflict } }
  }
  await positionAt(mirror, host, txns, txns.length)
  if (mirror.purgedAt === undefined || Date.now() - mirror.purgedAt >= PURGE_EVERY_MS) {
    await purge(master)
    mirror.purgedAt = Date.now()
  }
  return { delivered, more }
}

/** Records that the host has the first `count` transactions of the batch. */
async function positionAt(mirror: Mirror, host: HostRow, txns: readonly MasterTxn[], count: number): Promise<void> {
  if (count === 0) return
  const last = txns[count - 1]!
  await mirror.target.durable()
  await positionRecord(mirror.master, host, last)
  await mirror.target.positionRecorded(last)
}

/** For errors that are not SqlErrors: keeps the message of whatever was thrown. */
export function errorText(error: unknown): string {
  if (error instanceof SqlError) return error.full
  return error instanceof Error ? error.message : String(error)
}
