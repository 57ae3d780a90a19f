// replication-status (alias status): the replication picture from the server at pg1, primary or standby, for people
// or as JSON, and with --max-lag-bytes/--max-lag-seconds a monitoring check.

import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import type { PgSession } from '../../pg/session.js'
import type { Command } from '../command.js'
import { pgSessionOpen } from '../pg-session.js'
import { replicationCheck, replicationRenderText } from './report.js'
import type { PrimaryReport, ReplicationReport, StandbyReport } from './report.js'

const num = (value: string | null | undefined): number | null => (value === null || value === undefined ? null : Number(value))

async function primaryReport(session: PgSession, version: number): Promise<PrimaryReport> {
  const [current] = await session.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
  const standbys = await session.query<Record<string, string | null>>(
    `select application_name, coalesce(host(client_addr), 'local socket') as client, state, sync_state,
            sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
            pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text as lag_bytes,
            extract(epoch from replay_lag)::text as lag_seconds
       from pg_stat_replication order by application_name, pid`,
  )
  const slots = await session.query<Record<string, string | null>>(
    `select slot_name, slot_type, active::text, restart_lsn::text, wal_status,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as retained_bytes
       from pg_replication_slots order by slot_name`,
  )
  return {
    role: 'primary',
    version,
    currentLsn: current!.lsn,
    standbys: standbys.map((row) => ({
      applicationName: row['application_name'] ?? '',
      client: row['client'] ?? '',
      state: row['state'] ?? 'unknown',
      sentLsn: row['sent_lsn'] ?? null,
      writeLsn: row['write_lsn'] ?? null,
      flushLsn: row['flush_lsn'] ?? null,
      replayLsn: row['replay_lsn'] ?? null,
      lagBytes: num(row['lag_bytes']),
      lagSeconds: num(row['lag_seconds']),
      syncState: row['sync_state'] ?? 'unknown',
    })),
    slots: slots.map((row) => ({
      name: row['slot_name'] ?? '',
      type: row['slot_type'] ?? '',
      active: row['active'] === 'true',
      restartLsn: row['restart_lsn'] ?? null,
      retainedBytes: num(row['retained_bytes']),
      walStatus: row['wal_status'] ?? null,
    })),
  }
}

async function standbyReport(session: PgSession, version: number): Promise<StandbyReport> {
  const [receiver] = await session.query<Record<string, string | null>>(
    `select status, sender_host, sender_port::text, slot_name, flushed_lsn::text, latest_end_lsn::text,
            last_msg_receipt_time::text,
            greatest(pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn()), 0)::bigint::text as lag_bytes
       from pg_stat_wal_receiver`,
  )
  const [replay] = await session.query<Record<string, string | null>>(
    `select pg_last_wal_replay_lsn()::text as replay_lsn,
            pg_is_wal_replay_paused()::text as paused,
            pg_last_xact_replay_timestamp()::text as replay_time,
            case when pg_last_wal_receive_lsn() is null or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0
                 else extract(epoch from now() - pg_last_xact_replay_timestamp()) end::text as lag_seconds_receiving,
            extract(epoch from now() - pg_last_xact_replay_timestamp())::text as since_replay`,
  )
  const row = replay!
  const streaming = receiver !== undefined && receiver['status'] !== null
  // The primary's WAL end as last reported to the receiver, less what this standby has replayed.
  const lagBytes = streaming ? num(receiver['lag_bytes']) : null
  return {
    role: 'standby',
    version,
    receiver: streaming
      ? {
          status: receiver['status'] ?? 'unknown',
          senderHost: receiver['sender_host'] ?? null,
          senderPort: num(receiver['sender_port']),
          slotName: receiver['slot_name'] ?? null,
          flushedLsn: receiver['flushed_lsn'] ?? null,
          primaryLsn: receiver['latest_end_lsn'] ?? null,
          lastMessageTime: receiver['last_msg_receipt_time'] ?? null,
        }
      : null,
    replayLsn: row['replay_lsn'] ?? null,
    replayPaused: row['paused'] === 'true',
    lastReplayedTransactionTime: row['replay_time'] ?? null,
    lagBytes,
    // Streaming: behind only while received WAL waits for replay. From the archive alone walden cannot see the
    // primary, so the age of the last replayed transaction is the best measure (it also grows on an idle primary).
    lagSeconds: streaming ? num(row['lag_seconds_receiving']) : num(row['since_replay']),
  }
}

export async function replicationReport(session: PgSession): Promise<ReplicationReport> {
  const [row] = await session.query<{ in_recovery: string; version_num: string }>(
    "select pg_is_in_recovery()::text as in_recovery, current_setting('server_version_num') as version_num",
  )
  const version = Math.floor(Number(row!.version_num) / 10000)
  return row!.in_recovery === 'true' ? standbyReport(session, version) : primaryReport(session, version)
}

export const replicationStatus: Command = {
  async run(cfg: Config) {
    const session = await pgSessionOpen(cfg)
    let report: ReplicationReport
    try {
      report = await replicationReport(session)
    } finally {
      await session.close()
    }
    const limits = {
      ...(cfg.number('max-lag-bytes') !== undefined ? { maxBytes: cfg.number('max-lag-bytes')! } : {}),
      ...(cfg.number('max-lag-seconds') !== undefined ? { maxSeconds: cfg.number('max-lag-seconds')! } : {}),
    }
    const problem = replicationCheck(report, limits)
    if (cfg.string('output') === 'json') {
      const check = limits.maxBytes === undefined && limits.maxSeconds === undefined ? undefined : { ok: problem === undefined, ...(problem ? { reason: problem } : {}) }
      process.stdout.write(`${JSON.stringify({ ...report, ...(check ? { check } : {}) }, null, 2)}\n`)
    } else {
      process.stdout.write(`${replicationRenderText(report)}\n`)
    }
    if (problem !== undefined) fail('ReplicationLag', problem)
    return 0
  },
}
