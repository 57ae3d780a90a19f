// Which clusters a backup talks to (backup-standby): where pg_backup_start/stop run, and which data folder the files
// are read from.
//
// backup-standby=y (pgBackRest's model): the backup starts and stops on the primary, and relation files (base/,
// global/ and tablespaces, all forks and segments) are read from a standby. Only relation data is the same on both
// clusters block for block, up to WAL replay: everything else may be the standby's own and is read from the primary.
// pg_control (the standby's says "in archive recovery", with its own minimum recovery point, while the backup_label
// from the primary says the backup was taken on a primary), the configuration (a standby's primary_conninfo), its
// replication slots and logical decoding state, and the SLRUs (pg_xact, pg_multixact), which are small.
// Relation pages read from the standby are fit for the backup only once the standby's data files hold every change
// before the backup's start (its redo point): replaying past that point is not enough, as the standby's changes may
// still sit in its buffers while its disk has older pages that replay from the redo point would never fix. So walden
// waits until the standby has replayed the backup's checkpoint record, runs CHECKPOINT there (a restartpoint at that
// record, which flushes those buffers), and checks the standby's pg_control now has a redo point at or past the
// backup's start. Pages the standby writes later carry LSNs below what the primary has written, and so below the
// backup's stop LSN, and replay from the start to the stop repairs them like any page copied from a primary.
// Incremental backups stay safe with files read from a standby: a file is referenced from an earlier backup only when
// the primary last wrote it before that backup started (manifestDiff), so every change in it precedes that backup's
// start, and the standby's restartpoint at that start had put every such change on its disk before the copy.
//
// backup-standby=only: a non-exclusive backup on the standby itself, never contacting the primary. A standby writes
// no WAL, so pg_backup_start switches no segment and pg_backup_stop returns the standby's minimum recovery point
// (the end of the backup for recovery: the backup_label says "BACKUP FROM: standby", and recovery takes the end of
// the backup from the minimum recovery point in the backed-up pg_control). That pg_control must be read after every
// other file, so that its minimum recovery point covers every page copied; it is copied last, alone. The WAL from
// the start to the stop may never reach the archive while the primary is away (the last segment is still being
// filled), so it is copied from the standby's pg_wal into the backup, as pg_basebackup -X fetch does, and the backup
// is consistent with nothing from the archive.

import { join } from 'node:path'
import { fail, WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { PG_MAX, pgOption } from '../../config/options.js'
import type { PgIndex } from '../../config/options.js'
import type { PgControl } from '../../pg/control.js'
import { dbCheckpoint, dbInfo, dbReplayState } from '../../pg/db.js'
import type { DbInfo } from '../../pg/db.js'
import { lsnParse } from '../../pg/lsn.js'
import type { PgSession } from '../../pg/session.js'
import { PgHost } from '../pg-host.js'

export type BackupStandbyMode = 'n' | 'y' | 'prefer' | 'only'

/** A cluster of the stanza walden is connected to. */
export interface PgNode {
  index: PgIndex
  /** pgN-path: its data folder (on its own host). */
  path: string
  /** Where it is: this host, or a database host over SSH (pgN-host). */
  host: PgHost
  session: PgSession
  server: DbInfo
  control: PgControl
}

export interface BackupSources {
  /** Where pg_backup_start and pg_backup_stop run: the primary, or the standby with backup-standby=only. */
  backupOn: PgNode
  /** With y (and prefer, when one is usable): the standby relation files are read from. */
  standby?: PgNode
  /** Closes every session opened. */
  close(): Promise<void>
}

/** Standbys answer within this, or count as down: prefer must not hang on a host that drops packets. */
const STANDBY_CONNECT_TIMEOUT_MS = 10_000

/** pg1, and every pgN whose pgN-path is set. */
function configuredIndexes(cfg: Config): PgIndex[] {
  const indexes: PgIndex[] = [1]
  for (let index = 2; index <= PG_MAX; index++) if (cfg.has(pgOption(index as PgIndex, 'path'))) indexes.push(index as PgIndex)
  return indexes
}

async function nodeOpen(cfg: Config, index: PgIndex, connectTimeoutMs?: number): Promise<PgNode> {
  const host = new PgHost(cfg, index)
  try {
    const control = await host.control()
    const session = await host.connect(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {})
    try {
      const server = await dbInfo(session)
      // The data directory first: a pgN-path naming another folder is the likelier mistake, and its message says so.
      await host.checkDataDirectory(server.dataDirectory, session.where)
      return { index, path: host.path, host, session, server, control }
    } catch (error) {
      await session.close()
      throw error
    }
  } catch (error) {
    host.close()
    throw error
  }
}

/** A standby of another cluster (or another major) is a configuration mistake in every mode: never a fallback. */
function checkSameCluster(primary: PgNode, standby: PgNode): void {
  const [a, b] = [primary.control, standby.control]
  if (a.systemId === b.systemId && a.version === b.version) return
  fail(
    'DbMismatch',
    `pg${standby.index} '${standby.path}' is not a standby of the cluster at pg${primary.index} '${primary.path}': ` +
      `system identifier ${b.systemId}, version ${b.version} against ${a.systemId}, version ${a.version}`,
    { hint: `point pg${standby.index}-path and pg${standby.index}-port at a standby made from this cluster (standby-create).` },
  )
}

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Connects to the clusters the mode needs and tells the primary from the standbys by asking each server
 * (pg_is_in_recovery()), not by its index: after a failover pg2 may be the primary, which is said with a warning.
 */
export async function backupSourcesOpen(cfg: Config, mode: BackupStandbyMode): Promise<BackupSources> {
  const opened: PgNode[] = []
  const close = async (): Promise<void> => {
    await Promise.all(opened.map((node) => node.session.close()))
    for (const node of opened) node.host.close()
  }
  try {
    if (mode === 'n') {
      const node = await nodeOpen(cfg, 1)
      opened.push(node)
      if (node.server.inRecovery) {
        fail('DbMismatch', `the server at ${node.session.where} is a standby; walden backs up a primary`, {
          hint: 'point pg1-path and pg1-port at the primary, or set backup-standby=only to back up this standby alone.',
        })
      }
      return { backupOn: node, close }
    }
    if (mode === 'only') return { backupOn: await onlyStandby(cfg, opened), close }

    // y and prefer: every configured cluster, the primary among them.
    const failures: string[] = []
    for (const index of configuredIndexes(cfg)) {
      try {
        opened.push(await nodeOpen(cfg, index, index === 1 ? undefined : STANDBY_CONNECT_TIMEOUT_MS))
      } catch (error) {
        // pg1 that cannot be reached may be a primary lost in a failover (another pgN is then the primary); any other
        // trouble with pg1 fails the backup with its own error. A standby that cannot be used is reported below.
        if (!(error instanceof WaldenError) || (index === 1 && error.kind !== 'DbConnect')) throw error
        failures.push(`pg${index}: ${reasonOf(error)}`)
      }
    }
    const primaries = opened.filter((node) => !node.server.inRecovery)
    if (primaries.length > 1) {
      fail('DbMismatch', `${primaries.map((node) => `pg${node.index}`).join(' and ')} are all primaries (not in recovery); a stanza has one`, {
        hint: 'check which of them was promoted, and point the stanza at one cluster and its standbys.',
      })
    }
    const primary = primaries[0]
    if (primary === undefined) {
      fail('DbConnect', `backup-standby=${mode} found no primary among ${configuredIndexes(cfg).map((index) => `pg${index}`).join(', ')}`, {
        hint: `${failures.length > 0 ? `${failures.join('; ')}. ` : ''}Start the primary, or set backup-standby=only to back up a standby alone.`,
      })
    }
    if (primary.index !== 1) log.warn(`pg1 is not the primary: pg${primary.index} is not in recovery, so the backup starts and stops there`)
    const standbys = opened.filter((node) => node.server.inRecovery)
    for (const node of standbys) checkSameCluster(primary, node)
    const standby = standbys[0]
    if (standby === undefined) {
      const reasons = [...failures, ...opened.filter((node) => node !== primary && !node.server.inRecovery).map((node) => `pg${node.index}: not in recovery`)]
      const why = reasons.length > 0 ? reasons.join('; ') : 'no pg2-path (or pgN-path) is set'
      if (mode === 'y') {
        fail('DbConnect', `backup-standby=y found no usable standby: ${why}`, {
          hint: 'start the standby and check pgN-path, pgN-port and pgN-socket-path, or set backup-standby=prefer to fall back to the primary.',
        })
      }
      log.warn(`backup-standby=prefer: no usable standby (${why}); the files are copied from the primary pg${primary.index}`)
      return { backupOn: primary, close }
    }
    return { backupOn: primary, standby, close }
  } catch (error) {
    await close()
    throw error
  }
}

/** backup-standby=only: the first standby that answers, pg2 and up before pg1, so a usual layout never asks the primary. */
async function onlyStandby(cfg: Config, opened: PgNode[]): Promise<PgNode> {
  const indexes = configuredIndexes(cfg)
  const order = [...indexes.filter((index) => index !== 1), 1 as PgIndex]
  const reasons: string[] = []
  for (const index of order) {
    if (index === 1 && !cfg.has('pg1-path')) continue
    let node: PgNode
    try {
      node = await nodeOpen(cfg, index, STANDBY_CONNECT_TIMEOUT_MS)
    } catch (error) {
      if (!(error instanceof WaldenError)) throw error
      reasons.push(`pg${index}: ${reasonOf(error)}`)
      continue
    }
    opened.push(node)
    if (node.server.inRecovery) return node
    reasons.push(`pg${index}: not in recovery (a primary)`)
  }
  fail('DbConnect', `backup-standby=only found no standby to back up: ${reasons.join('; ')}`, {
    hint: 'start a standby and name it with pgN-path, pgN-port and pgN-socket-path.',
  })
}

/**
 * Waits until the standby's data files hold every change before the backup's start: the backup's checkpoint record
 * replayed, then a restartpoint there (CHECKPOINT on the standby) so that its redo point reaches the start LSN.
 * Fails with ReplicationLag after timeoutSeconds, naming how far the standby got and whether its replay is paused.
 */
export async function standbyWaitReady(standby: PgNode, startLsn: string, checkpointLsn: string, timeoutSeconds: number): Promise<void> {
  const start = lsnParse(startLsn)
  const checkpoint = lsnParse(checkpointLsn)
  const deadline = Date.now() + timeoutSeconds * 1000
  for (let delayMs = 50; ; delayMs = Math.min(delayMs * 2, 1000)) {
    let state = await dbReplayState(standby.session)
    if (state.replayLsn === null) {
      fail('DbMismatch', `pg${standby.index} at ${standby.session.where} left recovery during the backup (promoted?)`, {
        hint: 'check which cluster is the primary now; the backup was not recorded.',
      })
    }
    if (lsnParse(state.redoLsn) >= start) return
    if (lsnParse(state.replayLsn) > checkpoint) {
      await dbCheckpoint(standby.session)
      state = await dbReplayState(standby.session)
      if (lsnParse(state.redoLsn) >= start) return
    }
    if (Date.now() >= deadline) {
      fail(
        'ReplicationLag',
        `pg${standby.index} at ${standby.session.where} did not replay to the backup's start LSN ${startLsn} within ${timeoutSeconds} second(s): ` +
          `replayed to ${state.replayLsn}${state.replayPaused ? ', and its replay is paused' : ''}`,
        {
          hint: state.replayPaused
            ? 'resume replay on the standby (select pg_wal_replay_resume()), or set backup-standby=prefer to fall back to the primary.'
            : 'check the standby receives WAL (replication-status), raise archive-timeout, or set backup-standby=prefer to fall back to the primary.',
        },
      )
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, Math.max(0, deadline - Date.now()))))
  }
}

/** The path of a manifest file ('pg_data/...' or 'pg_tblspc/<oid>/...') in another cluster's data folder. */
export function pathInDataFolder(dataFolder: string, manifestName: string): string {
  // Tablespaces are reached through the cluster's own pg_tblspc links, wherever that cluster keeps them.
  return join(dataFolder, manifestName.startsWith('pg_data/') ? manifestName.slice('pg_data/'.length) : manifestName)
}
