// staging-snapshot: a snapshot of a staging copy is a walden backup of the staging standby into the stanza's
// repository, taken on the standby alone (backup-standby=only, backup/standby.ts): it never contacts the source, it
// carries the WAL that makes it consistent, and it is listed by info, expired by retention, verified and restored
// like any backup.
//
// Order, and why:
// 1. The stanza's staging lock for the whole run (no link, resync or second snapshot meanwhile), and the job SNAPSHOT.
// 2. The pre-snapshot hooks (after ingestion, before the snapshot). A failing one fails the snapshot; the backup is
//    not taken.
// 3. The fault check, after the pre hooks: a fault raised while they ran (the WAL feed shut the cluster down) is seen.
//    While a fault stands the snapshot is refused with the fault's text, naming the expected WAL file in WAL-folder
//    mode; a disabled staging copy is refused too.
// 4. The backup, under the stanza's backup lock (as `walden backup` takes it), with the backup's own code path.
// 5. The snapshot's metadata, read back from the backup's manifest and the staging cluster, written to
//    SPOOL-PATH/staging/snapshot/<stanza>/<label>.json (snapshotMetaRead) for clone-create.
// 6. The post-snapshot hooks, always, whatever failed before them (WALDEN_HOOK_RESULT says what).
// The job fails, and the command exits non-zero, when any step failed: with the first error of 2-5, else with the
// post hook's.
//
// The staging copy's WAL in the repository: the staging cluster archives what it replays (archive_mode = always,
// archive_command = walden archive-push into the stanza), which stagingArchiveSettings() gives link, enable and resync
// to write, so that any moment between two snapshots can be reached by a clone.

import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail, WaldenError } from '../../common/errors.js'
import { lockAcquire } from '../../common/lock.js'
import { log } from '../../common/log.js'
import { COMMANDS } from '../../config/commands.js'
import { configLoad } from '../../config/config.js'
import type { Config } from '../../config/config.js'
import { lsnParse } from '../../pg/lsn.js'
import type { PgSession } from '../../pg/session.js'
import { pgConnect } from '../../pg/session.js'
import { walSegmentName } from '../../pg/wal.js'
import { manifestLoad } from '../../repo/manifest.js'
import { backupInfoLoad } from '../../repo/stanza-info.js'
import { backup, backupRepoIndexes } from '../backup/index.js'
import type { Command } from '../command.js'
import { pgSessionOptions } from '../pg-session.js'
import { repoOpen } from '../repo-storage.js'
import { waldenCommandLine } from '../walden-command.js'
import { hookError, hooksRun } from './hooks.js'
import type { HookContext, HookFailure } from './hooks.js'
import { jobRun } from './jobs.js'
import type { JobHandle } from './jobs.js'
import { stagingSocketDir } from './standby.js'
import { streamingFaultRefresh } from './status.js'
import { stagingRecordRequire, stagingRoot, stateRead, stateWrite, withStagingLock } from './state.js'
import type { StagingRecord } from './state.js'

/**
 * The settings that make the staging cluster keep what it replays in the stanza's repository: archive_mode = always
 * (a standby archives the segments it restores or receives only then) and walden's archive-push for the stanza as
 * archive_command. Link, enable and resync add them to the settings walden owns (settingsApply's `owned`); `cfg` is
 * theirs, so options given to them on the command line (--config, --repo1-path, ...) reach archive-push as well.
 * The staging cluster's system identifier is the source's, which is the stanza's: archive-push checks each segment
 * against it, so WAL of another cluster can never enter the stanza's archive.
 */
export function stagingArchiveSettings(cfg: Config): Map<string, string> {
  return new Map([
    ['archive_mode', 'always'],
    ['archive_command', waldenCommandLine(cfg, 'archive-push', '%p')],
  ])
}

/** stagingArchiveSettings() as standby.ts asks for it (ownedSettings), for every way of linking. */
export async function snapshotArchiveSettings(cfg: Config, _record: StagingRecord): Promise<Map<string, string>> {
  return stagingArchiveSettings(cfg)
}

/** What a snapshot was, for clone-create and for people: recorded when the snapshot completes. */
export interface SnapshotMeta {
  stanza: string
  /** The backup's label in the stanza's repository (info, restore --set). */
  label: string
  /** ISO time the snapshot completed. */
  time: string
  timeline: number
  /** Redo point of the checkpoint the snapshot starts from (the backup's start LSN). */
  redoLsn: string
  /** The WAL segment holding the redo point: the first WAL file recovery from this snapshot reads. */
  redoWal: string
  /** ISO time of that checkpoint (the source's clock, as in its checkpoint record). */
  checkpointTime: string
  /**
   * False when the staging cluster made another restartpoint during the backup, so that the checkpoint time is the
   * later restartpoint's: still a bound no point in time before the snapshot is inside, but not the exact one.
   */
  checkpointTimeExact: boolean
  /** The backup's stop LSN: recovery from the snapshot is consistent from here on (recovery_target = immediate). */
  consistentLsn: string
  /** The staging cluster's last replayed LSN when the backup ended. */
  replayLsn: string
  /** Commit time of the last transaction the staging cluster had replayed then, if any. */
  replayTime?: string
  /** PostgreSQL's version number (150004 style) and major (15). */
  pgVersionNum: number
  pgMajor: number
  walSegmentSize: number
  method: StagingRecord['method']
}

function snapshotFolder(cfg: Config, stanza: string): string {
  return join(stagingRoot(cfg), 'snapshot', stanza)
}

/** The metadata of a snapshot taken on this host, or undefined when there is none under that label. */
export async function snapshotMetaRead(cfg: Config, stanza: string, label: string): Promise<SnapshotMeta | undefined> {
  return stateRead<SnapshotMeta>(join(snapshotFolder(cfg, stanza), `${label}.json`))
}

/** Every snapshot recorded for the stanza on this host, oldest first (labels sort by time). Expired ones included. */
export async function snapshotMetaList(cfg: Config, stanza: string): Promise<SnapshotMeta[]> {
  const folder = snapshotFolder(cfg, stanza)
  const names = await readdir(folder).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? [] : Promise.reject(error)))
  const metas: SnapshotMeta[] = []
  for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
    const meta = await stateRead<SnapshotMeta>(join(folder, name))
    if (meta !== undefined) metas.push(meta)
  }
  return metas
}

/** Refuses a snapshot of a staging copy that is not in sync: a standing fault, or disabled. */
export function snapshotRefusal(record: StagingRecord): WaldenError | undefined {
  if (record.fault !== undefined) {
    const expected = record.fault.expectedWal ?? record.expectedWal
    const named = expected !== undefined && !record.fault.message.includes(expected) ? ` (expected WAL file ${expected})` : ''
    return new WaldenError('PgState', `staging copy of stanza '${record.stanza}' has a fault, so no snapshot is taken: ${record.fault.message}${named}`, {
      hint:
        record.method === 'external-wal'
          ? `place ${expected !== undefined ? `WAL file ${expected}` : 'the missing WAL file'} in '${record.walPath ?? 'staging-wal-path'}', then run staging-disable and staging-enable; or staging-resync.`
          : 'check staging-status and the source; once streaming works again (staging-status shows ACTIVE) take the snapshot again.',
    })
  }
  if (!record.enabled) {
    return new WaldenError('PgState', `staging copy of stanza '${record.stanza}' is disabled, so no snapshot is taken`, {
      hint: 'run staging-enable first.',
    })
  }
  return undefined
}

/**
 * The configuration of the backup a snapshot is: the staging-snapshot command's own options that backup takes, the
 * config file and environment read again for backup, and the staging cluster as pg1 (its path and port from the
 * record), backed up on itself. Incremental after the first (backup's default), since a snapshot is taken often;
 * --type=full (or diff) is passed on, so that repo1-retention-full has fulls to count.
 */
async function snapshotBackupConfig(cfg: Config, record: StagingRecord): Promise<Config> {
  const given = cfg.explicitArguments('backup').filter((arg) => !/^--(pg1-path|pg1-port|pg1-socket-path|backup-standby|start-fast|stanza)=?/.test(arg))
  const socketPath = await stagingSocketDir(cfg, record)
  return configLoad({
    argv: [
      ...given,
      `--stanza=${record.stanza}`,
      `--pg1-path=${record.path}`,
      `--pg1-port=${record.port}`,
      ...(socketPath !== undefined ? [`--pg1-socket-path=${socketPath}`] : []),
      '--backup-standby=only',
      // A restartpoint at the last checkpoint replayed, so the snapshot starts as late as the staging copy can.
      '--start-fast',
      'backup',
    ],
    env: process.env,
  })
}

/** The labels of the stanza's backups in the first repository the backup writes to. */
async function backupLabels(backupCfg: Config, stanza: string): Promise<Set<string>> {
  const { storage } = await repoOpen(backupCfg, backupRepoIndexes(backupCfg)[0]!)
  return new Set((await backupInfoLoad(storage, stanza)).backups.map((record) => record.label))
}

/** Runs the backup of the staging standby; resolves with the new backup's label. */
async function snapshotBackup(cfg: Config, record: StagingRecord): Promise<string> {
  const backupCfg = await snapshotBackupConfig(cfg, record)
  const lock = await lockAcquire(backupCfg.string('lock-path') ?? '/tmp/walden', `${record.stanza}-${COMMANDS.backup.lock}`)
  try {
    const before = await backupLabels(backupCfg, record.stanza)
    const code = await backup.run(backupCfg)
    if (code !== 0) fail('Assert', `backup of the staging copy ended with exit ${code} without an error`)
    const added = [...(await backupLabels(backupCfg, record.stanza))].filter((label) => !before.has(label)).sort()
    if (added.length !== 1) fail('Assert', `backup of the staging copy recorded ${added.length} new backups, not one`)
    return added[0]!
  } finally {
    lock.release()
  }
}

/** The staging cluster's session: its port from the record, its socket folder as standby.ts finds it, user from pg1-*. */
async function stagingSessionOpen(cfg: Config, record: StagingRecord): Promise<PgSession> {
  const socketPath = await stagingSocketDir(cfg, record)
  return pgConnect({ ...pgSessionOptions(cfg, 1, { connectTimeoutMs: 10_000 }), ...(socketPath !== undefined ? { socketPath } : {}), port: record.port })
}

const isoOfEpoch = (seconds: string): string => new Date(Number(seconds) * 1000).toISOString()

/** Reads the snapshot's metadata back from its manifest and the staging cluster, and records it. */
async function snapshotMetaRecord(cfg: Config, record: StagingRecord, label: string): Promise<SnapshotMeta> {
  const backupCfg = await snapshotBackupConfig(cfg, record)
  const { storage } = await repoOpen(backupCfg, backupRepoIndexes(backupCfg)[0]!)
  const manifest = await manifestLoad(storage, record.stanza, label)
  const session = await stagingSessionOpen(cfg, record)
  let row: Record<string, string | null>
  try {
    ;[row] = (await session.query<Record<string, string | null>>(
      `select redo_lsn::text as redo_lsn, extract(epoch from checkpoint_time)::text as checkpoint_epoch,
              pg_last_wal_replay_lsn()::text as replay_lsn,
              extract(epoch from pg_last_xact_replay_timestamp())::text as replay_epoch,
              current_setting('server_version_num') as version_num
         from pg_control_checkpoint()`,
    )) as [Record<string, string | null>]
  } finally {
    await session.close()
  }
  // The restartpoint the backup started from is still the last one unless the staging cluster made another since.
  const exact = row.redo_lsn === manifest.start.lsn
  const versionNum = Number(row.version_num)
  const meta: SnapshotMeta = {
    stanza: record.stanza,
    label,
    time: new Date().toISOString(),
    timeline: manifest.start.timeline,
    redoLsn: manifest.start.lsn,
    redoWal: walSegmentName(manifest.start.timeline, lsnParse(manifest.start.lsn), manifest.pg.walSegmentSize),
    checkpointTime: isoOfEpoch(row.checkpoint_epoch!),
    checkpointTimeExact: exact,
    consistentLsn: manifest.stop.lsn,
    replayLsn: row.replay_lsn ?? manifest.stop.lsn,
    ...(row.replay_epoch !== null && row.replay_epoch !== undefined ? { replayTime: isoOfEpoch(row.replay_epoch) } : {}),
    pgVersionNum: versionNum,
    pgMajor: Math.floor(versionNum / 10000),
    walSegmentSize: manifest.pg.walSegmentSize,
    method: record.method,
  }
  if (!exact) log.warn(`the staging cluster made a restartpoint during snapshot ${label}: its checkpoint time ${meta.checkpointTime} is that later restartpoint's`)
  await stateWrite(join(snapshotFolder(cfg, record.stanza), `${label}.json`), `${JSON.stringify(meta, null, 2)}\n`)
  return meta
}

/** The last replayed LSN of the staging cluster, for the pre hooks; undefined when it cannot be asked. */
async function replayLsnOf(cfg: Config, record: StagingRecord): Promise<string | undefined> {
  try {
    const session = await stagingSessionOpen(cfg, record)
    try {
      const [row] = await session.query<{ lsn: string | null }>('select pg_last_wal_replay_lsn()::text as lsn')
      return row?.lsn ?? undefined
    } finally {
      await session.close()
    }
  } catch {
    // A cluster that is down is reported by the snapshot itself, with its own error.
    return undefined
  }
}

/** The snapshot as one text block, for stdout and the job log. */
export function snapshotMetaText(meta: SnapshotMeta): string {
  return [
    `snapshot ${meta.label} of stanza '${meta.stanza}'`,
    `  timeline ${meta.timeline}, redo LSN ${meta.redoLsn} (WAL ${meta.redoWal}), checkpoint time ${meta.checkpointTime}${meta.checkpointTimeExact ? '' : ' (a later restartpoint)'}`,
    `  consistent at ${meta.consistentLsn}, replayed to ${meta.replayLsn}${meta.replayTime !== undefined ? ` (last commit ${meta.replayTime})` : ''}`,
    `  PostgreSQL ${meta.pgMajor} (${meta.pgVersionNum}), WAL segment size ${meta.walSegmentSize / 1024 / 1024}MiB`,
  ].join('\n')
}

/** The snapshot itself (steps 3 to 5): refused while a fault stands, else the backup and its metadata. */
async function snapshotTake(cfg: Config, stanza: string): Promise<SnapshotMeta> {
  // Read again: the pre hooks ran meanwhile, and the WAL feed may have raised a fault. Streaming is checked now, as
  // staging-status would (nothing watches it between commands).
  const record = await streamingFaultRefresh(cfg, await stagingRecordRequire(cfg, stanza))
  const refusal = snapshotRefusal(record)
  if (refusal !== undefined) throw refusal
  const label = await snapshotBackup(cfg, record)
  return snapshotMetaRecord(cfg, record, label)
}

async function snapshotJob(cfg: Config, stanza: string, job: JobHandle): Promise<SnapshotMeta> {
  const record = await stagingRecordRequire(cfg, stanza)
  // Hook output reaches the job log in the order written; appends are chained so none overtakes another.
  let appends = Promise.resolve()
  const output = (line: string): void => {
    appends = appends.then(() => job.logAppend(line)).catch((error: unknown) => log.warn(`unable to write the job log: ${(error as Error).message}`))
  }
  const context: HookContext = { stanza, stagingPath: record.path, stagingPort: record.port, jobId: job.job.id }

  let failure: unknown
  let meta: SnapshotMeta | undefined
  const pre = cfg.list('staging-hook-pre-snapshot')
  const replayLsn = pre.length > 0 ? await replayLsnOf(cfg, record) : undefined
  const preFailure: HookFailure | undefined = await hooksRun('pre-snapshot', pre, { ...context, ...(replayLsn !== undefined ? { replayLsn } : {}) }, { output })
  if (preFailure !== undefined) failure = hookError(preFailure)
  else {
    try {
      meta = await snapshotTake(cfg, stanza)
      output(snapshotMetaText(meta))
    } catch (error) {
      failure = error
      if (error instanceof Error) output(`snapshot failed: ${error.message}`)
    }
  }

  const postContext: HookContext = {
    ...context,
    result: failure === undefined ? 'ok' : 'failed',
    ...(meta !== undefined
      ? { snapshot: { label: meta.label, startLsn: meta.redoLsn, stopLsn: meta.consistentLsn, replayLsn: meta.replayLsn, timeline: meta.timeline } }
      : {}),
  }
  const postFailure = await hooksRun('post-snapshot', cfg.list('staging-hook-post-snapshot'), postContext, { output })
  await appends
  if (failure !== undefined) throw failure
  if (postFailure !== undefined) throw hookError(postFailure)
  return meta!
}

export const stagingSnapshot: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const meta = await withStagingLock(cfg, stanza, () => jobRun(cfg, 'SNAPSHOT', stanza, (job) => snapshotJob(cfg, stanza, job)))
    process.stdout.write(`${snapshotMetaText(meta)}\n`)
    return 0
  },
}
