// What replication-status reports and how the lag limits judge it. Pure functions over the report, so the rules
// (which lag counts, when unknown lag fails a check) are tested without servers.

import { formatBytes } from '../../common/progress.js'

export interface StandbyLink {
  applicationName: string
  client: string
  state: string
  sentLsn: string | null
  writeLsn: string | null
  flushLsn: string | null
  replayLsn: string | null
  /** Bytes of WAL the primary has written that this standby has not replayed. */
  lagBytes: number | null
  /** pg_stat_replication.replay_lag in seconds; null once the standby has caught up and gone idle. */
  lagSeconds: number | null
  syncState: string
}

export interface SlotState {
  name: string
  type: string
  active: boolean
  restartLsn: string | null
  /** WAL the slot keeps on the primary, in bytes. */
  retainedBytes: number | null
  walStatus: string | null
}

export interface PrimaryReport {
  role: 'primary'
  version: number
  currentLsn: string
  standbys: StandbyLink[]
  slots: SlotState[]
}

export interface StandbyReport {
  role: 'standby'
  version: number
  receiver: {
    status: string
    senderHost: string | null
    senderPort: number | null
    slotName: string | null
    flushedLsn: string | null
    /** The primary's WAL end as last reported to the receiver. */
    primaryLsn: string | null
    lastMessageTime: string | null
  } | null
  replayLsn: string | null
  replayPaused: boolean
  lastReplayedTransactionTime: string | null
  lagBytes: number | null
  lagSeconds: number | null
}

export type ReplicationReport = PrimaryReport | StandbyReport

export interface LagLimits {
  maxBytes?: number
  maxSeconds?: number
}

/** The one-line reason a report breaks the limits, or undefined when it keeps them (or no limit is set). */
export function replicationCheck(report: ReplicationReport, limits: LagLimits): string | undefined {
  const { maxBytes, maxSeconds } = limits
  if (maxBytes === undefined && maxSeconds === undefined) return undefined
  const problems: string[] = []
  if (report.role === 'primary') {
    if (report.standbys.length === 0) {
      problems.push('no standby is connected')
    }
    for (const standby of report.standbys) {
      if (standby.state !== 'streaming') problems.push(`standby '${standby.applicationName}' is ${standby.state}, not streaming`)
      if (maxBytes !== undefined && (standby.lagBytes ?? 0) > maxBytes) {
        problems.push(`standby '${standby.applicationName}' is ${formatBytes(standby.lagBytes!)} behind (limit ${formatBytes(maxBytes)})`)
      }
      if (maxSeconds !== undefined && (standby.lagSeconds ?? 0) > maxSeconds) {
        problems.push(`standby '${standby.applicationName}' replays ${standby.lagSeconds!.toFixed(1)} s behind (limit ${maxSeconds} s)`)
      }
    }
    // A stopped standby leaves pg_stat_replication, but its slot stays and keeps the WAL it has not received.
    for (const slot of report.slots) {
      if (maxBytes !== undefined && (slot.retainedBytes ?? 0) > maxBytes) {
        problems.push(`slot '${slot.name}' (${slot.active ? 'active' : 'inactive'}) retains ${formatBytes(slot.retainedBytes!)} of WAL (limit ${formatBytes(maxBytes)})`)
      }
    }
  } else {
    if (maxBytes !== undefined) {
      if (report.lagBytes === null) problems.push('lag in bytes is unknown: no WAL receiver is running (a standby fed from the archive only)')
      else if (report.lagBytes > maxBytes) problems.push(`this standby is ${formatBytes(report.lagBytes)} behind its primary (limit ${formatBytes(maxBytes)})`)
    }
    if (maxSeconds !== undefined) {
      if (report.lagSeconds === null) problems.push('lag in seconds is unknown: no transaction has been replayed yet')
      else if (report.lagSeconds > maxSeconds) problems.push(`this standby replays ${report.lagSeconds.toFixed(1)} s behind (limit ${maxSeconds} s)`)
    }
  }
  return problems.length === 0 ? undefined : problems.join('; ')
}

const lag = (bytes: number | null, seconds: number | null): string =>
  `lag ${bytes === null ? 'unknown' : formatBytes(bytes)}, ${seconds === null ? '-' : `${seconds.toFixed(1)} s`}`

export function replicationRenderText(report: ReplicationReport): string {
  const lines: string[] = []
  if (report.role === 'primary') {
    lines.push(`primary, PostgreSQL ${report.version}, WAL written up to ${report.currentLsn}`)
    lines.push(report.standbys.length === 0 ? 'standbys: none connected' : 'standbys:')
    for (const standby of report.standbys) {
      lines.push(
        `  ${standby.applicationName || '(no application_name)'} from ${standby.client}: ${standby.state}, ${standby.syncState}; ` +
          `sent ${standby.sentLsn ?? '-'} write ${standby.writeLsn ?? '-'} flush ${standby.flushLsn ?? '-'} replay ${standby.replayLsn ?? '-'}; ` +
          lag(standby.lagBytes, standby.lagSeconds),
      )
    }
    lines.push(report.slots.length === 0 ? 'replication slots: none' : 'replication slots:')
    for (const slot of report.slots) {
      lines.push(
        `  ${slot.name}: ${slot.type}, ${slot.active ? 'active' : 'inactive'}, restart ${slot.restartLsn ?? '-'}, ` +
          `retains ${slot.retainedBytes === null ? '-' : formatBytes(slot.retainedBytes)}${slot.walStatus ? ` (${slot.walStatus})` : ''}`,
      )
    }
  } else {
    lines.push(`standby, PostgreSQL ${report.version}${report.replayPaused ? ', replay paused' : ''}`)
    const receiver = report.receiver
    lines.push(
      receiver === null
        ? 'WAL receiver: not running (WAL comes from the archive through restore_command)'
        : `WAL receiver: ${receiver.status} from ${receiver.senderHost ?? '?'}:${receiver.senderPort ?? '?'}` +
            `${receiver.slotName ? ` through slot ${receiver.slotName}` : ''}, flushed ${receiver.flushedLsn ?? '-'}, primary at ${receiver.primaryLsn ?? '-'}`,
    )
    lines.push(`replayed up to ${report.replayLsn ?? '-'}, last transaction ${report.lastReplayedTransactionTime ?? '-'}`)
    lines.push(lag(report.lagBytes, report.lagSeconds))
  }
  return lines.join('\n')
}
