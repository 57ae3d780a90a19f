// Where a host's transactions go: a database (apply-db.ts) or a folder of SQL files (apply-file.ts).

import type { SqlError } from '../pg/link.js'
import type { MasterTxn, SequenceValue, Statement } from './render.js'

export interface RenderedTxn {
  txn: MasterTxn
  statements: Statement[]
}

export interface ApplyOutcome {
  /** How many of the given transactions, from the first, the host now has. */
  applied: number
  /** The transaction after those, which failed, and why. */
  failure?: { txn: MasterTxn; error: SqlError }
}

export interface MirrorTarget {
  readonly description: string
  /** Installs what the target needs (the host schema); idempotent. */
  prepare(): Promise<void>
  /** Which of these master transactions the host already has (applied before a crash lost the bookkeeping). */
  alreadyApplied(txns: readonly MasterTxn[]): Promise<Set<string>>
  /** Applies transactions in order, each as one host transaction, stopping at the first failure. */
  apply(txns: readonly RenderedTxn[]): Promise<ApplyOutcome>
  /** Makes everything the host has committed durable; called before the master records the host's position. */
  durable(): Promise<void>
  /** Called once the master has recorded the host's position: guard rows up to it are no longer needed. */
  positionRecorded(txn: MasterTxn): Promise<void>
  /** Moves sequences forward when the host is caught up (values consumed by rolled-back transactions). */
  sequencesFollow(sequences: readonly SequenceValue[]): Promise<void>
  close(): Promise<void>
}
