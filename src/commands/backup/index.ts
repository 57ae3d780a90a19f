// backup: a non-exclusive online backup into one repository, or into several at once (--repo=1,2 or --repo=all).
//
// Order matters for crash safety. Files are copied under backup/<stanza>/<label>/; the manifest is saved once
// every file and every WAL segment the backup needs is safe; backup.info is updated last. A backup killed at any
// point before that last write is not in backup.info, so it never shows as valid, and the next backup removes its
// folder. The server's backup mode belongs to our session and ends when the process dies.
//
// Several repositories: the cluster is read, checksummed and compressed once, and each repository gets a complete,
// independent backup under the same label (its own files, manifest and backup.info entry; each sealed with its own
// keys). How diff and incr choose their prior in each repository: plan.ts. What happens when one repository fails:
// repo-group.ts.

import { fail, WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { formatBytes } from '../../common/progress.js'
import type { Config } from '../../config/config.js'
import type { RepoIndex } from '../../config/options.js'
import { codecFor } from '../../io/compress.js'
import type { CompressType } from '../../io/compress.js'
import { WorkerPool } from '../../parallel/pool.js'
import { dbBackupBegin, dbBackupEnd, dbCheckpointLsn, dbMinRecovery, dbDatabases, dbTablespaces } from '../../pg/db.js'
import type { BackupEnd } from '../../pg/db.js'
import { lsnParse } from '../../pg/lsn.js'
import { walSegmentName, walSegmentRange } from '../../pg/wal.js'
import { archiveWaitFor } from '../../repo/archive.js'
import { cipherJobStateOf, cipherUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { backupLabelNew, isBackupLabel } from '../../repo/label.js'
import type { BackupType } from '../../repo/label.js'
import { layout } from '../../repo/layout.js'
import type { Manifest, ManifestFile, ManifestSource } from '../../repo/manifest.js'
import { manifestDiff, manifestLoad, manifestSave } from '../../repo/manifest.js'
import type { ArchiveInfo, BackupInfo, BackupRecord } from '../../repo/stanza-info.js'
import { archiveInfoLoad, backupInfoLoad, backupInfoSave, checkIdentity } from '../../repo/stanza-info.js'
import { pgbrWriteRefuse } from '../../repo/pgbackrest/info.js'
import type { StorageLocation } from '../../storage/location.js'
import { PosixStorage, syncFilesystem, syncFilesystemAvailable } from '../../storage/posix.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { pgRemoteOf } from '../pg-host.js'
import { repoIndexes, repoOpen, repoSelected } from '../repo-storage.js'
import { expireRun } from '../stanza/expire.js'
import { backupCopy, copyMerge } from './copy.js'
import type { BackupCopyOptions, BackupCopyResult } from './copy.js'
import { priorPlan } from './plan.js'
import { RepoGroup } from './repo-group.js'
import type { ScannedFile } from './scan.js'
import { backupSourcesOpen, pathInDataFolder, standbyWaitReady } from './standby.js'
import type { BackupStandbyMode, PgNode } from './standby.js'
import { configFilesCollect } from './config-files.js'

/**
 * Removes folders of backups that never completed (killed before backup.info was written). Returns the newest
 * label seen, complete or not, so a new label never reuses one that already appeared in a log.
 */
async function removeIncomplete(repo: Storage, stanza: string, info: BackupInfo, tag: string): Promise<string | undefined> {
  const known = new Set(info.backups.map((backup) => backup.label))
  let newest = info.backups.at(-1)?.label
  for (const entry of await repo.list(layout.backupRoot(stanza))) {
    if (!isBackupLabel(entry)) continue
    if (newest === undefined || entry > newest) newest = entry
    if (known.has(entry)) continue
    log.warn(`${tag}removing incomplete backup '${entry}' left by an interrupted backup`)
    await repo.removePath(layout.backup(stanza, entry))
  }
  return newest
}

/** The manifest name of pg_control. */
const CONTROL_FILE = 'pg_data/global/pg_control'

/** START TIMELINE from a backup_label. */
function labelTimeline(labelFile: string): number {
  const match = /^START TIMELINE: (\d+)$/m.exec(labelFile)
  if (!match) fail('Format', 'backup_label returned by the server has no START TIMELINE line')
  return Number(match[1])
}

/** A repository this backup is written to, and what the backup learns about it on the way. */
interface BackupRepo {
  index: RepoIndex
  location: StorageLocation
  storage: Storage
  archiveInfo: ArchiveInfo
  info: BackupInfo
  /** Its cipher state, once its stanza record is adopted: what worker jobs seal with. */
  cipher: CipherState
  newestLabel?: string
  prior?: BackupRecord
  /** Files its prior backup holds unchanged: referenced, not stored again. */
  reference?: Map<string, ManifestFile>
}

/**
 * The repositories a backup is written to: --repo (a number, a list such as 1,2, or all), else the first configured
 * one, as in pgBackRest.
 */
export function backupRepoIndexes(cfg: Config): RepoIndex[] {
  return cfg.has('repo') ? repoSelected(cfg) : repoIndexes(cfg).slice(0, 1)
}

/** Opens a repository and reads its stanza, adopting its cipher record; then the keys jobs need are known. */
async function backupRepoOpen(cfg: Config, stanza: string, index: RepoIndex): Promise<BackupRepo> {
  const { storage, location } = await repoOpen(cfg, index)
  const [archiveInfo, info] = await Promise.all([archiveInfoLoad(storage, stanza), backupInfoLoad(storage, stanza)])
  pgbrWriteRefuse(info, 'backup', storage)
  return { index, location, storage, archiveInfo, info, cipher: cipherJobStateOf(index) }
}

export const backup: Command = {
  async run(cfg) {
    const early = poolWarmEarly(cfg)
    try {
      return await backupRun(cfg, early)
    } finally {
      await early?.close()
    }
  },
}

/**
 * The worker pool, started with the command when its files come from a database host (pg1-host) and several workers
 * copy them. Each worker's session to that host (ssh's handshake, then Node.js starting `walden remote` there) takes
 * a few tenths of a second; opened when the workers get their first file, the sessions would wait for everything
 * before: the repository, the main session, the checkpoint of pg_backup_start, the scan. Warmed here, they start
 * while the main thread does all that. Only for backup-standby=n, where every file is read on pg1's host.
 */
function poolWarmEarly(cfg: Config): WorkerPool | undefined {
  const workers = cfg.number('process-max') ?? 1
  if (workers <= 1 || (cfg.string('backup-standby') ?? 'n') !== 'n') return undefined
  const remote = pgRemoteOf(cfg, 1)
  if (remote === undefined) return undefined
  const pool = new WorkerPool(workers)
  // A session that fails to start here fails again, worded, when a worker needs it for its first file.
  void pool.runEach('pg.open', remote)
  return pool
}

async function backupRun(cfg: Config, early: WorkerPool | undefined): Promise<number> {
  const stanza = cfg.stanza()
  // The stanza first: for an unknown stanza, "does not exist" says more than "pg1-path is missing".
  const indexes = backupRepoIndexes(cfg)
  const opened: BackupRepo[] = []
  const openFailures: Array<[RepoIndex, unknown]> = []
  for (const index of indexes) {
    try {
      opened.push(await backupRepoOpen(cfg, stanza, index))
    } catch (error) {
      if (indexes.length === 1) throw error
      openFailures.push([index, error])
    }
  }
  // A repository that could not be opened stays in the group by its number only, to be reported with the others.
  const unopened = new Map(openFailures.map(([index]) => [index, { index } as BackupRepo]))
  const group = new RepoGroup<BackupRepo>(indexes.map((index) => opened.find((repo) => repo.index === index) ?? unopened.get(index)!))
  group.dropMany(openFailures.map(([index, error]) => [unopened.get(index)!, error] as const))

  const mode = (cfg.string('backup-standby') ?? 'n') as BackupStandbyMode

  const compressType = (cfg.string('compress-type') ?? 'zst') as CompressType
  const codec = codecFor(compressType)
  const compressLevel = cfg.number('compress-level') ?? codec.defaultLevel
  const archiveCheck = cfg.boolean('archive-check')

  const sources = await backupSourcesOpen(cfg, mode)
  let label: string
  try {
    // The cluster pg_backup_start runs on: the primary, or with backup-standby=only the standby. Files are read from
    // its data folder, except relation files when a standby serves them (standby.ts says why only those).
    const { session, server, control, index: backupOnIndex, path: pgPath, host } = sources.backupOn
    const identity = { systemId: control.systemId.toString(), version: control.version }
    const onStandby = mode === 'only'
    await group.each(async (repo) => {
      checkIdentity(stanza, repo.info.db, identity, `cluster '${pgPath}'`)
      checkIdentity(stanza, repo.archiveInfo.db, identity, `cluster '${pgPath}'`)
    })
    // A standby archives nothing unless archive_mode=always; with only, the backup carries its own WAL.
    if (archiveCheck && !onStandby && server.archiveMode === 'off') {
      fail('ArchiveMismatch', `archive_mode is off on the server at ${session.where}, so the backup could never be made consistent`, {
        hint: "set archive_mode = on and archive_command = 'walden --stanza=" + stanza + " archive-push %p', then restart PostgreSQL.",
      })
    }

    await group.each(async (repo) => {
      const newestLabel = await removeIncomplete(repo.storage, stanza, repo.info, group.tag(repo))
      if (newestLabel !== undefined) repo.newestLabel = newestLabel
    })

    const plan = priorPlan((cfg.string('type') ?? 'incr') as BackupType, group.live)
    if (plan.changed !== undefined) log.warn(plan.changed)
    const type = plan.type
    const startDate = new Date()
    const newestLabel = group.live.map((repo) => repo.newestLabel).reduce<string | undefined>((newest, next) => (next !== undefined && (newest === undefined || next > newest) ? next : newest), undefined)
    label = backupLabelNew(type, plan.fullLabel, startDate, newestLabel)

    const configFiles = await configFilesCollect(session, server.dataDirectory, (path, kind) => host.op('configFile', { path, kind }))
    const begin = await dbBackupBegin(session, server.major, `walden backup ${label}`, cfg.boolean('start-fast'))
    log.info(
      `backup begin: ${type} backup ${label}, start LSN ${begin.lsn}${onStandby ? ` on the standby pg${backupOnIndex}` : ''}` +
        `${group.fanOut ? `, to ${group.live.map((repo) => `repo${repo.index}`).join(', ')}` : ''}`,
    )
    const timeoutSeconds = cfg.number('archive-timeout') ?? 60

    // With y or prefer, the standby must first hold on disk every change before the backup's start.
    let standby = sources.standby
    if (standby !== undefined) {
      const checkpointLsn = await dbCheckpointLsn(session)
      try {
        await standbyWaitReady(standby, begin.lsn, checkpointLsn, timeoutSeconds)
        log.info(`backup-standby=${mode}: relation files are read from the standby pg${standby.index} '${standby.path}', the rest from pg${backupOnIndex}`)
      } catch (error) {
        if (mode !== 'prefer' || !(error instanceof WaldenError)) throw error
        log.warn(`backup-standby=prefer: the standby pg${standby.index} is not usable (${error.message}); the files are copied from the primary pg${backupOnIndex}`)
        standby = undefined
      }
    }

    const tablespaces = await dbTablespaces(session)
    const databases = await dbDatabases(session, server.major)
    const scan = await host.op('scan', { path: pgPath, tablespaces: tablespaces.map((tablespace): [number, string] => [tablespace.oid, tablespace.name]) })
    await group.each(async (repo) => {
      const prior = plan.priors.get(repo.index)
      if (!prior) return
      repo.prior = prior
      repo.reference = manifestDiff(await manifestLoad(repo.storage, stanza, prior.label), prior.label, scan.files).reference
    })
    // Read once for every repository that needs the file: with per-repository priors, that may be some of them.
    const wanted = scan.files.filter((file) => group.live.some((repo) => !repo.reference?.has(file.name)))
    // Relation files from the standby, by the same name in its data folder; a file the standby does not have yet
    // (created after the start) reads as removed, and WAL replay creates it.
    const fromStandby = standby
    // Each file is read on the host of the cluster it comes from (pgN-host), or here.
    const onHost = (file: ScannedFile, node: PgNode): ScannedFile => (node.host.remote !== undefined ? { ...file, remote: node.host.remote } : file)
    const toCopy = wanted.map((file) =>
      fromStandby !== undefined && file.relationSegment !== undefined
        ? onHost({ ...file, path: pathInDataFolder(fromStandby.path, file.name) }, fromStandby)
        : onHost(file, sources.backupOn),
    )
    // On a standby, pg_control is read after every other file (standby.ts): its minimum recovery point then covers
    // every page copied, and recovery takes the end of the backup from it.
    const lastFiles = onStandby ? toCopy.filter((file) => file.name === CONTROL_FILE) : []
    const firstFiles = onStandby ? toCopy.filter((file) => file.name !== CONTROL_FILE) : toCopy

    const pool = early ?? new WorkerPool(cfg.number('process-max') ?? 1)
    // One flush of the repository's file system at the end instead of an fsync per file, where the host has it.
    const syncEach = !syncFilesystemAvailable()
    const copyOptions = (files: readonly ScannedFile[]): BackupCopyOptions => ({
        pool,
        files,
        repos: group.live.map((repo) => ({
          index: repo.index,
          location: repo.location,
          cipher: repo.cipher,
          backupPath: layout.backup(stanza, label),
          wants: (file) => !repo.reference?.has(file.name),
        })),
        compressType,
        compressLevel,
        syncEach,
        ...(server.dataChecksums
          ? { pageCheck: { relSegmentSize: control.relSegmentSize, blockSize: control.blockSize, startLsn: lsnParse(begin.lsn).toString() } }
          : {}),
      })
    let copy: BackupCopyResult
    let end: BackupEnd
    let timeline: number
    const startLsn = lsnParse(begin.lsn)
    try {
      copy = await backupCopy(copyOptions(firstFiles))
      if (lastFiles.length > 0) copy = copyMerge(copy, await backupCopy(copyOptions(lastFiles)))

      end = await dbBackupEnd(session, server.major)
      timeline = labelTimeline(end.labelFile)
      if (onStandby) {
        // The stop LSN is the standby's minimum recovery point; on another timeline the standby was promoted meanwhile.
        const minRecovery = await dbMinRecovery(session)
        if (minRecovery.timeline !== timeline) {
          fail('DbMismatch', `the standby pg${backupOnIndex} changed timeline during the backup (${timeline} to ${minRecovery.timeline}); the backup was not recorded`, {
            hint: 'run the backup again against the cluster as it is now.',
          })
        }
        const walFiles = await host.op('walFiles', { path: pgPath, timeline, start: startLsn.toString(), last: (lsnParse(end.lsn) - 1n).toString(), segmentSize: control.walSegmentSize })
        copy = copyMerge(copy, await backupCopy(copyOptions(walFiles.map((file) => onHost(file, sources.backupOn)))))
      }
    } finally {
      await pool.close()
    }
    // The copy already said why each dropped repository failed.
    for (const [index, error] of copy.failed) group.failed.set(index, error)

    // The backup-end record finishes just before the stop LSN, so the last segment needed holds stop LSN - 1.
    const stopLsn = lsnParse(end.lsn)
    const walStart = walSegmentName(timeline, startLsn, control.walSegmentSize)
    const walStop = walSegmentName(timeline, stopLsn - 1n, control.walSegmentSize)
    log.info(`backup stop: stop LSN ${end.lsn}, WAL ${walStart} to ${walStop}${onStandby ? ', copied into the backup from the standby' : ''}`)
    if (fromStandby !== undefined) {
      const [standbyBytes, primaryBytes] = toCopy.reduce(([a, b], file) => (file.relationSegment !== undefined ? [a + file.size, b] : [a, b + file.size]), [0, 0])
      log.info(`backup-standby: ${formatBytes(standbyBytes)} read from pg${fromStandby.index} '${fromStandby.path}', ${formatBytes(primaryBytes)} from pg${backupOnIndex} '${pgPath}'`)
    }

    // Each repository's backup is valid on its own, so each archive must hold the backup's WAL. One deadline
    // for all: the segments arrive in every repository at once, or a repository is missing them.
    const deadline = Date.now() + timeoutSeconds * 1000
    const needed = walSegmentRange(timeline, startLsn, stopLsn - 1n, control.walSegmentSize)
    const source: ManifestSource = {
      backupStandby: mode,
      backupOn: `pg${backupOnIndex}`,
      filesFrom: `pg${(fromStandby ?? sources.backupOn).index}`,
    }

    await group.each(async (repo) => {
      const { storage } = repo
      const backupPath = layout.backup(stanza, label)
      // With only, the WAL that makes the backup consistent is in the backup itself.
      if (archiveCheck && !onStandby) {
        const missing = await archiveWaitFor(storage, repo.archiveInfo, needed, Math.max(0, deadline - Date.now()))
        if (missing.length > 0) {
          fail('ArchiveTimeout', `WAL segment '${missing[0]}' needed by backup ${label} did not reach the archive${group.fanOut ? ` of repo${repo.index}` : ''} within ${timeoutSeconds} second(s)`, {
            hint: 'check the PostgreSQL log for archive_command errors; the backup was not recorded.',
          })
        }
      }

      // Everything durable before the manifest says the backup exists: one file-system flush, or (without syncfs)
      // the folder entries of files that were fsynced one by one. A folder with no copied file was never created.
      // Storage other than a folder has each file durable once its write completed.
      if (storage instanceof PosixStorage) {
        if (!syncEach) syncFilesystem(storage.describe(backupPath))
        else for (const path of scan.paths) await storage.syncPath(`${backupPath}/${path.name}`, { missingOk: true })
      }
      await storage.syncPath(backupPath, { missingOk: true })

      const stored = copy.repos.get(repo.index)!
      const files = [...stored.files, ...(repo.reference?.values() ?? [])]
      files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      const manifest: Manifest = {
        label,
        type,
        prior: repo.prior?.label ?? null,
        pg: {
          version: control.version,
          systemId: identity.systemId,
          dbId: repo.info.db.id,
          walSegmentSize: control.walSegmentSize,
          blockSize: control.blockSize,
          dataChecksums: server.dataChecksums,
        },
        start: { lsn: begin.lsn, wal: walStart, timeline, time: Date.parse(begin.time) },
        stop: { lsn: end.lsn, wal: walStop, time: Date.parse(end.time) },
        compressType,
        compressLevel,
        targets: scan.targets,
        paths: scan.paths,
        links: scan.links,
        files,
        backupLabel: end.labelFile,
        tablespaceMap: end.tablespaceMap,
        ...(configFiles.length > 0 ? { configFiles } : {}),
        ...(mode !== 'n' ? { source } : {}),
        databases,
      }
      await manifestSave(storage, stanza, manifest)

      const references = [...new Set(files.map((file) => file.reference).filter((item): item is string => item !== undefined))].sort()
      const record: BackupRecord = {
        label,
        type,
        prior: repo.prior?.label ?? null,
        reference: references,
        timestampStart: Math.floor(manifest.start.time / 1000),
        timestampStop: Math.ceil(manifest.stop.time / 1000),
        lsnStart: begin.lsn,
        lsnStop: end.lsn,
        walStart,
        walStop,
        timeline,
        size: files.reduce((sum, file) => sum + file.size, 0),
        delta: stored.copiedBytes,
        repoSize: files.reduce((sum, file) => sum + file.repoSize, 0),
        repoDelta: stored.storedBytes,
        dbId: repo.info.db.id,
        compressType,
        pageErrors: copy.badPageCount,
        ...(mode !== 'n' ? { source } : {}),
      }
      repo.info.backups.push(record)
      await backupInfoSave(storage, repo.info)
      log.info(
        `${type} backup ${label} complete${group.fanOut ? ` in repo${repo.index}` : ''}: ${formatBytes(record.size)} in the cluster, ` +
          `${formatBytes(stored.copiedBytes)} copied, ${formatBytes(stored.storedBytes)} stored`,
      )
    })
    if (group.fanOut) log.info(`backup ${label}: ${formatBytes(copy.readBytes)} read from the cluster once for ${group.live.length} repositories`)
    if (copy.badPageCount > 0) {
      log.warn(`backup ${label} found ${copy.badPageCount} page(s) with invalid checksums; see the warnings above and the manifest`)
    }
  } finally {
    await sources.close()
  }

  // Expire in each repository the backup completed in. A failure here does not undo the backup: it is reported,
  // and the other repositories are still expired.
  let expireFailure: unknown
  for (const repo of group.live) {
    cipherUse(repo.index)
    try {
      await expireAfterBackup(cfg, repo, stanza, group.fanOut)
    } catch (error) {
      if (!group.fanOut) throw error
      log.error(`repo${repo.index}: expire after backup ${label} failed: ${(error as Error).message}`)
      expireFailure ??= error
    }
  }
  const failure = group.outcome(label)
  if (failure) throw failure
  if (expireFailure !== undefined) throw expireFailure
  return 0
}

/** Applies a repository's own retention (repoN-retention-*) after a backup completed in it. */
async function expireAfterBackup(cfg: Config, repo: BackupRepo, stanza: string, several: boolean): Promise<void> {
  await expireRun(cfg, repo.storage, stanza, repo.index, several)
}
