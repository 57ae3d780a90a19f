// staging-status: whether the staging copy of a stanza is in sync (ACTIVE) or not (INACTIVE), why, and how far behind,
// for people (text) and monitors (--output=json and the exit code).
//
// Exit codes: 0 ACTIVE; 94 (StagingInactive) INACTIVE, the report printed first; 55 (FileMissing) when the stanza has
// no staging copy on this host. INACTIVE means one of: disabled (staging-disable), a fault standing, the staging
// cluster not running or not answering, or no longer in recovery.
//
// Faults. In WAL-folder mode the WAL feed (wal-feed.ts) records them as it serves. In the streaming modes nothing
// runs between requests to notice streaming stop, so the check is made here, at status time, from the staging
// cluster's pg_stat_wal_receiver and, for the reason, its server log: a WAL receiver that is not streaming is a fault,
// written into the record so that snapshots are refused while it stands, and cleared here once streaming resumes.
// streamingFaultRefresh() is the same check for other commands (a snapshot) to run first.

import { open, readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import { pgRunning } from '../../pg/data-dir.js'
import { pgControlRead } from '../../pg/control.js'
import { lsnParse } from '../../pg/lsn.js'
import type { PgSession } from '../../pg/session.js'
import { pgConnect } from '../../pg/session.js'
import { isWalSegmentName, walSegmentName, walSegmentNext, walSegmentNumberFromName } from '../../pg/wal.js'
import type { Command } from '../command.js'
import { stagingSocketDir, stagingStreams } from './standby.js'
import { stagingRecordRequire, stagingRecordUpdate } from './state.js'
import type { StagingRecord } from './state.js'
import { walFolderView, WAL_FOLDER_SUFFIXES } from './wal-chain.js'

/**
 * Below this age of the postmaster, a WAL receiver that does not stream yet is starting, not failing: it connects
 * right after the standby reaches consistency, and retries every wal_retrieve_retry_interval (5 s by default).
 */
const RECEIVER_START_GRACE_S = 30

/** Bytes of the server log read from its end when looking for why streaming stopped. */
const LOG_TAIL_BYTES = 64 * 1024

export interface StagingStatusReport {
  stanza: string
  status: 'ACTIVE' | 'INACTIVE'
  /** Why INACTIVE; null when ACTIVE. */
  reason: string | null
  method: StagingRecord['method']
  enabled: boolean
  running: boolean
  path: string
  port: number
  fault: string | null
  'fault-at': string | null
  /** WAL-folder mode: the WAL file the staging cluster needs next; null in the streaming modes. */
  'expected-wal': string | null
  'replay-lsn': string | null
  /** Segment holding the replay position, on the timeline being replayed. */
  'replay-wal': string | null
  /** Commit time of the last transaction replayed. */
  'replay-time': string | null
  /** WAL the staging copy has available (in the folder, or received from the source) but not yet replayed. */
  'lag-bytes': number | null
  /** How long that WAL has waited (WAL-folder mode), or since the last replayed commit while WAL waits (streaming). */
  'lag-seconds': number | null
  /** Streaming modes: the WAL receiver as pg_stat_wal_receiver shows it; null when it is not running. */
  receiver: { status: string; 'sender-host': string | null; 'sender-port': number | null; slot: string | null; 'latest-end-lsn': string | null; 'last-message-time': string | null } | null
  /** WAL-folder mode: the newest segment in the folder. */
  'newest-wal': string | null
}

interface Replay {
  inRecovery: boolean
  replayLsn: string | null
  replayTime: string | null
  timeline: number
  uptimeSeconds: number
  receiver: StagingStatusReport['receiver']
  /** Received but not replayed, from the receiver's view of the source's end. */
  receiverLagBytes: number | null
  receiverLagSeconds: number | null
}

const num = (value: string | null | undefined): number | null => (value === null || value === undefined ? null : Number(value))

async function stagingSession(cfg: Config, record: StagingRecord): Promise<PgSession> {
  const socketPath = await stagingSocketDir(cfg, record)
  const host = cfg.string('pg1-tcp-host')
  return pgConnect({
    ...(socketPath !== undefined ? { socketPath } : host !== undefined ? { host } : {}),
    port: record.port,
    user: cfg.string('pg1-user') ?? 'postgres',
    database: cfg.string('pg1-database') ?? 'postgres',
    connectTimeoutMs: 10_000,
  })
}

async function replayOf(session: PgSession, streams: boolean): Promise<Replay> {
  const [row] = await session.query<Record<string, string | null>>(
    `select pg_is_in_recovery()::text as in_recovery,
            pg_last_wal_replay_lsn()::text as replay_lsn,
            pg_last_xact_replay_timestamp()::text as replay_time,
            (select timeline_id from pg_control_checkpoint())::text as timeline,
            extract(epoch from now() - pg_postmaster_start_time())::text as uptime`,
  )
  const replay: Replay = {
    inRecovery: row!['in_recovery'] === 'true',
    replayLsn: row!['replay_lsn'] ?? null,
    replayTime: row!['replay_time'] ?? null,
    timeline: Number(row!['timeline']),
    uptimeSeconds: Number(row!['uptime']),
    receiver: null,
    receiverLagBytes: null,
    receiverLagSeconds: null,
  }
  if (!streams) return replay
  const [receiver] = await session.query<Record<string, string | null>>(
    `select status, sender_host, sender_port::text, slot_name, received_tli::text, latest_end_lsn::text,
            last_msg_receipt_time::text,
            greatest(pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn()), 0)::bigint::text as lag_bytes,
            case when latest_end_lsn is null or latest_end_lsn <= pg_last_wal_replay_lsn() then 0
                 else extract(epoch from now() - pg_last_xact_replay_timestamp()) end::text as lag_seconds
       from pg_stat_wal_receiver`,
  )
  if (receiver !== undefined && receiver['status'] !== null) {
    replay.receiver = {
      status: receiver['status'] ?? 'unknown',
      'sender-host': receiver['sender_host'] ?? null,
      'sender-port': num(receiver['sender_port']),
      slot: receiver['slot_name'] ?? null,
      'latest-end-lsn': receiver['latest_end_lsn'] ?? null,
      'last-message-time': receiver['last_msg_receipt_time'] ?? null,
    }
    replay.receiverLagBytes = num(receiver['lag_bytes'])
    replay.receiverLagSeconds = num(receiver['lag_seconds'])
    // The receiver knows the timeline it streams; pg_control's moves only at restartpoints.
    if (receiver['received_tli'] !== null && receiver['received_tli'] !== undefined) replay.timeline = Math.max(replay.timeline, Number(receiver['received_tli']))
  }
  return replay
}

/** The newest segment in the WAL folder and its age, plus the age of `expected` if the folder has it. */
async function folderFacts(walPath: string, expected: string | undefined): Promise<{ newest?: string; expectedAgeS?: number }> {
  const names = await readdir(walPath).catch(() => [] as string[])
  const segments = [...walFolderView(names).segments]
  // Newest by position, whatever the timeline.
  const byPosition = (name: string): string => name.slice(8)
  const newest = segments.sort((a, b) => (byPosition(a) === byPosition(b) ? a.localeCompare(b) : byPosition(a).localeCompare(byPosition(b)))).at(-1)
  let expectedAgeS: number | undefined
  if (expected !== undefined) {
    for (const suffix of WAL_FOLDER_SUFFIXES) {
      const info = await stat(join(walPath, expected + suffix)).catch(() => undefined)
      if (info !== undefined) {
        expectedAgeS = Math.max(0, (Date.now() - info.mtimeMs) / 1000)
        break
      }
    }
  }
  return { ...(newest !== undefined ? { newest } : {}), ...(expectedAgeS !== undefined ? { expectedAgeS } : {}) }
}

/**
 * Why the WAL receiver is not streaming, from the staging cluster's server log (where staging-link and
 * staging-enable have pg_ctl send it): its last FATAL or ERROR line about the primary or the WAL stream.
 */
export async function receiverLogReason(cfg: Config, record: StagingRecord): Promise<string | undefined> {
  const logFile = join(cfg.string('log-path') ?? '/var/log/walden', `${record.stanza}-postgresql-${basename(record.path)}.log`)
  const text = await readTail(logFile, LOG_TAIL_BYTES)
  if (text === undefined) return undefined
  const lines = text.split('\n')
  for (let index = lines.length - 1; index >= 0; index--) {
    const line = lines[index]!
    if (!/\b(FATAL|ERROR):/.test(line)) continue
    if (/primary server|WAL stream|walreceiver|replication slot|authentication|timeline/i.test(line)) {
      return line.replace(/^.*?\b(FATAL|ERROR):\s*/, '').trim()
    }
  }
  return undefined
}

async function readTail(path: string, bytes: number): Promise<string | undefined> {
  const handle = await open(path, 'r').catch(() => undefined)
  if (handle === undefined) return undefined
  try {
    const size = (await handle.stat()).size
    const length = Math.min(size, bytes)
    const buffer = Buffer.alloc(length)
    await handle.read(buffer, 0, length, size - length)
    return buffer.toString('utf8')
  } finally {
    await handle.close()
  }
}

/** The fault streaming is in now, or undefined when it streams (or is still starting). */
async function streamingFault(cfg: Config, record: StagingRecord, replay: Replay): Promise<string | undefined> {
  if (replay.receiver?.status === 'streaming') return undefined
  if (replay.uptimeSeconds < RECEIVER_START_GRACE_S) return undefined
  const state = replay.receiver === null ? 'the WAL receiver is not running' : `the WAL receiver is '${replay.receiver.status}'`
  const reason = await receiverLogReason(cfg, record)
  return `streaming from the source has stopped: ${state}${reason !== undefined ? `; server log: ${reason}` : ''}`
}

/**
 * Writes the streaming fault seen now into the record, or clears a recorded one once streaming works again. Only in
 * the streaming modes, where no other part of walden records faults.
 */
async function streamingFaultRecord(cfg: Config, record: StagingRecord, fault: string | undefined): Promise<StagingRecord> {
  if (!stagingStreams(record)) return record
  if (fault === undefined && record.fault === undefined) return record
  if (fault !== undefined && record.fault?.message === fault) return record
  return stagingRecordUpdate(cfg, record.stanza, (current) => {
    if (fault === undefined) delete current.fault
    else current.fault = { message: fault, at: new Date().toISOString() }
  })
}

/**
 * For a command about to rely on the staging copy being in sync (a snapshot): checks streaming now and records or
 * clears the fault as staging-status would. Returns the record as it stands after. WAL-folder mode and a stopped
 * cluster are left as they are.
 */
export async function streamingFaultRefresh(cfg: Config, record: StagingRecord): Promise<StagingRecord> {
  if (!stagingStreams(record) || !record.enabled || !(await pgRunning(record.path))) return record
  const session = await stagingSession(cfg, record)
  try {
    return await streamingFaultRecord(cfg, record, await streamingFault(cfg, record, await replayOf(session, true)))
  } finally {
    await session.close()
  }
}

/** The whole report; writes or clears a streaming fault on the way (see the top of this file). */
export async function stagingStatusReport(cfg: Config, stanza: string): Promise<StagingStatusReport> {
  let record = await stagingRecordRequire(cfg, stanza)
  const running = await pgRunning(record.path)
  const streams = stagingStreams(record)
  let replay: Replay | undefined
  let connectProblem: string | undefined
  if (running) {
    try {
      const session = await stagingSession(cfg, record)
      try {
        replay = await replayOf(session, streams)
      } finally {
        await session.close()
      }
    } catch (error) {
      connectProblem = (error as Error).message.split('\n')[0]
    }
  }
  if (replay !== undefined && replay.inRecovery && streams && record.enabled) {
    record = await streamingFaultRecord(cfg, record, await streamingFault(cfg, record, replay))
  }

  const segmentSize = await segmentSizeOf(record)
  const replayLsn = replay?.replayLsn ?? null
  // The replay LSN is where the last record replayed ends: on a segment boundary (after a WAL switch) it is the start
  // of a segment nothing of which has been replayed, so the segment holding the byte before it is named.
  const replayEnd = replayLsn === null ? null : lsnParse(replayLsn)
  const replayWal = replayEnd !== null && segmentSize !== undefined ? walSegmentName(replay!.timeline, replayEnd > 0n ? replayEnd - 1n : 0n, segmentSize) : null

  // WAL-folder mode: the expected file as the feed recorded it, else the one after the replay position.
  let expectedWal: string | null = null
  let newestWal: string | null = null
  let lagBytes: number | null = null
  let lagSeconds: number | null = null
  if (!streams) {
    expectedWal = record.fault?.expectedWal ?? record.expectedWal ?? (replayWal !== null && segmentSize !== undefined ? walSegmentNext(replayWal, segmentSize) : null)
    const facts = record.walPath !== undefined ? await folderFacts(record.walPath, expectedWal ?? undefined) : {}
    newestWal = facts.newest ?? null
    if (segmentSize !== undefined && newestWal !== null && expectedWal !== null && isWalSegmentName(expectedWal)) {
      const newestNo = walSegmentNumberFromName(newestWal, segmentSize)
      const expectedNo = walSegmentNumberFromName(expectedWal, segmentSize)
      if (newestNo < expectedNo) {
        // Everything in the folder has been taken.
        lagBytes = 0
        lagSeconds = 0
      } else if (replayEnd !== null) {
        const newestEnd = (newestNo + 1n) * BigInt(segmentSize)
        lagBytes = Math.max(0, Number(newestEnd - replayEnd!))
        lagSeconds = facts.expectedAgeS ?? null
      }
    }
  } else if (replay !== undefined) {
    lagBytes = replay.receiverLagBytes
    lagSeconds = replay.receiverLagSeconds
  }

  let reason: string | null = null
  if (record.syncedAt === undefined) reason = 'its initial load has not finished (a link or resync is running, or was interrupted: then run staging-resync, or staging-unlink)'
  else if (!record.enabled) reason = 'disabled (staging-disable); staging-enable starts it again'
  else if (record.fault !== undefined) reason = record.fault.message
  else if (!running) reason = `the staging cluster on '${record.path}' is not running`
  else if (connectProblem !== undefined) reason = `the staging cluster does not answer: ${connectProblem}`
  else if (replay !== undefined && !replay.inRecovery) reason = 'the staging cluster is no longer in recovery (promoted); resync it'

  return {
    stanza,
    status: reason === null ? 'ACTIVE' : 'INACTIVE',
    reason,
    method: record.method,
    enabled: record.enabled,
    running,
    path: record.path,
    port: record.port,
    fault: record.fault?.message ?? null,
    'fault-at': record.fault?.at ?? null,
    'expected-wal': expectedWal,
    'replay-lsn': replayLsn,
    'replay-wal': replayWal,
    'replay-time': replay?.replayTime ?? null,
    'lag-bytes': lagBytes,
    'lag-seconds': lagSeconds === null ? null : Math.round(lagSeconds * 10) / 10,
    receiver: replay?.receiver ?? null,
    'newest-wal': newestWal,
  }
}

/** The segment size of the staging cluster, from pg_control; undefined when it cannot be read. */
async function segmentSizeOf(record: StagingRecord): Promise<number | undefined> {
  return pgControlRead(record.path).then(
    (control) => control.walSegmentSize,
    () => undefined,
  )
}

/** The report for people: one fact a line, the reason for INACTIVE first. */
export function stagingStatusRenderText(report: StagingStatusReport): string {
  const lines = [`stanza: ${report.stanza}`, `    status: ${report.status}${report.reason !== null ? ` (${report.reason})` : ''}`]
  lines.push(`    method: ${report.method}`)
  lines.push(`    cluster: ${report.path}, port ${report.port}, ${report.running ? 'running' : 'not running'}${report.enabled ? '' : ', disabled'}`)
  if (report.fault !== null) lines.push(`    fault: ${report.fault} (since ${report['fault-at']})`)
  if (report.method === 'external-wal') {
    lines.push(`    expected WAL: ${report['expected-wal'] ?? 'unknown'}`)
    lines.push(`    newest WAL in folder: ${report['newest-wal'] ?? 'none'}`)
  } else if (report.receiver !== null) {
    const sender = report.receiver['sender-host'] !== null ? ` from ${report.receiver['sender-host']}:${report.receiver['sender-port']}` : ''
    lines.push(`    WAL receiver: ${report.receiver.status}${sender}${report.receiver.slot !== null ? `, slot ${report.receiver.slot}` : ''}`)
  } else if (report.running) {
    lines.push('    WAL receiver: not running')
  }
  if (report['replay-lsn'] !== null) lines.push(`    replayed: ${report['replay-lsn']} (${report['replay-wal']})${report['replay-time'] !== null ? `, last commit ${report['replay-time']}` : ''}`)
  if (report['lag-bytes'] !== null) {
    lines.push(`    lag: ${report['lag-bytes']} bytes${report['lag-seconds'] !== null ? `, ${report['lag-seconds']} s` : ''}`)
  }
  return lines.join('\n')
}

export const stagingStatus: Command = {
  async run(cfg: Config): Promise<number> {
    const stanza = cfg.stanza()
    const report = await stagingStatusReport(cfg, stanza)
    process.stdout.write(cfg.string('output') === 'json' ? `${JSON.stringify(report, null, 2)}\n` : `${stagingStatusRenderText(report)}\n`)
    if (report.status !== 'ACTIVE') fail('StagingInactive', `staging copy of stanza '${stanza}' is INACTIVE: ${report.reason}`)
    return 0
  },
}
