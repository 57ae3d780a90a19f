// backup: a non-exclusive online backup into the repository.
//
// Order matters for crash safety. Files are copied under backup/<stanza>/<label>/; the manifest is saved once
// every file and every WAL segment the backup needs is safe; backup.info is updated last. A backup killed at any
// point before that last write is not in backup.info, so it never shows as valid, and the next backup removes its
// folder. The server's backup mode belongs to our session and ends when the process dies.

import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { formatBytes } from '../../common/progress.js'
import { codecFor } from '../../io/compress.js'
import type { CompressType } from '../../io/compress.js'
import { WorkerPool } from '../../parallel/pool.js'
import { pgControlRead } from '../../pg/control.js'
import { dbBackupBegin, dbBackupEnd, dbInfo, dbTablespaces } from '../../pg/db.js'
import { lsnParse } from '../../pg/lsn.js'
import { walSegmentName, walSegmentRange } from '../../pg/wal.js'
import { archiveWaitFor } from '../../repo/archive.js'
import { backupLabelNew, isBackupLabel } from '../../repo/label.js'
import type { BackupType } from '../../repo/label.js'
import { layout } from '../../repo/layout.js'
import type { Manifest } from '../../repo/manifest.js'
import { manifestDiff, manifestLoad, manifestSave } from '../../repo/manifest.js'
import type { BackupInfo, BackupRecord } from '../../repo/stanza-info.js'
import { archiveInfoLoad, backupInfoLoad, backupInfoSave, checkIdentity } from '../../repo/stanza-info.js'
import { syncFilesystem, syncFilesystemAvailable } from '../../storage/posix.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { checkDataDirectory, pgSessionOpen } from '../pg-session.js'
import { repoOpen } from '../repo-storage.js'
import { expireRun } from '../expire.js'
import { backupCopy } from './copy.js'
import type { BackupCopyResult } from './copy.js'
import { scanCluster } from './scan.js'

/** The backup a diff or incr builds on, or undefined when a full is needed. */
function priorBackup(info: BackupInfo, type: BackupType): BackupRecord | undefined {
  const backups = info.backups.filter((backup) => backup.dbId === info.db.id)
  if (type === 'diff') return backups.filter((backup) => backup.type === 'full').at(-1)
  if (type === 'incr') return backups.at(-1)
  return undefined
}

/**
 * Removes folders of backups that never completed (killed before backup.info was written). Returns the newest
 * label seen, complete or not, so a new label never reuses one that already appeared in a log.
 */
async function removeIncomplete(repo: Storage, stanza: string, info: BackupInfo): Promise<string | undefined> {
  const known = new Set(info.backups.map((backup) => backup.label))
  let newest = info.backups.at(-1)?.label
  for (const entry of await repo.list(layout.backupRoot(stanza))) {
    if (!isBackupLabel(entry)) continue
    if (newest === undefined || entry > newest) newest = entry
    if (known.has(entry)) continue
    log.warn(`removing incomplete backup '${entry}' left by an interrupted backup`)
    await repo.removePath(layout.backup(stanza, entry))
  }
  return newest
}

/** START TIMELINE from a backup_label. */
function labelTimeline(labelFile: string): number {
  const match = /^START TIMELINE: (\d+)$/m.exec(labelFile)
  if (!match) fail('Format', 'backup_label returned by the server has no START TIMELINE line')
  return Number(match[1])
}

export const backup: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const { storage: repo, location: repoAt } = await repoOpen(cfg)
    // The stanza first: for an unknown stanza, "does not exist" says more than "pg1-path is missing".
    const [archiveInfo, info] = await Promise.all([archiveInfoLoad(repo, stanza), backupInfoLoad(repo, stanza)])
    const pgPath = cfg.requireString('pg1-path')
    const control = await pgControlRead(pgPath)
    const identity = { systemId: control.systemId.toString(), version: control.version }

    const compressType = (cfg.string('compress-type') ?? 'zst') as CompressType
    const codec = codecFor(compressType)
    const compressLevel = cfg.number('compress-level') ?? codec.defaultLevel
    const archiveCheck = cfg.boolean('archive-check')

    const session = await pgSessionOpen(cfg)
    try {
      const server = await dbInfo(session)
      // The data directory first: a pg1-path naming another folder is the likelier mistake, and its message says so.
      await checkDataDirectory(cfg, server.dataDirectory, session.where)
      checkIdentity(stanza, info.db, identity, `cluster '${pgPath}'`)
      checkIdentity(stanza, archiveInfo.db, identity, `cluster '${pgPath}'`)
      if (server.inRecovery) {
        fail('DbMismatch', `the server at ${session.where} is a standby; walden backs up a primary`, {
          hint: 'point pg1-path and pg1-port at the primary.',
        })
      }
      if (archiveCheck && server.archiveMode === 'off') {
        fail('ArchiveMismatch', `archive_mode is off on the server at ${session.where}, so the backup could never be made consistent`, {
          hint: "set archive_mode = on and archive_command = 'walden --stanza=" + stanza + " archive-push %p', then restart PostgreSQL.",
        })
      }

      const newestLabel = await removeIncomplete(repo, stanza, info)

      let type = (cfg.string('type') ?? 'incr') as BackupType
      let prior = priorBackup(info, type)
      if (type !== 'full' && !prior) {
        log.warn(`no prior backup exists, ${type} backup has been changed to full`)
        type = 'full'
        prior = undefined
      }
      const startDate = new Date()
      const fullLabel = prior ? (prior.type === 'full' ? prior.label : prior.label.slice(0, prior.label.indexOf('_'))) : undefined
      const label = backupLabelNew(type, fullLabel, startDate, newestLabel)

      const begin = await dbBackupBegin(session, server.major, `walden backup ${label}`, cfg.boolean('start-fast'))
      log.info(`backup begin: ${type} backup ${label}, start LSN ${begin.lsn}`)

      const tablespaces = await dbTablespaces(session)
      const scan = await scanCluster(pgPath, new Map(tablespaces.map((tablespace) => [tablespace.oid, tablespace.name])))
      const priorManifest = prior ? await manifestLoad(repo, stanza, prior.label) : undefined
      const diff = priorManifest ? manifestDiff(priorManifest, prior!.label, scan.files) : undefined
      const toCopy = diff ? scan.files.filter((file) => !diff.reference.has(file.name)) : scan.files

      const pool = new WorkerPool(cfg.number('process-max') ?? 1)
      // One flush of the repository's file system at the end instead of an fsync per file, where the host has it.
      const syncEach = !syncFilesystemAvailable()
      let copy: BackupCopyResult
      try {
        copy = await backupCopy({
          pool,
          files: toCopy,
          repo: repoAt,
          backupPath: layout.backup(stanza, label),
          compressType,
          compressLevel,
          syncEach,
          ...(server.dataChecksums
            ? { pageCheck: { relSegmentSize: control.relSegmentSize, blockSize: control.blockSize, startLsn: lsnParse(begin.lsn).toString() } }
            : {}),
        })
      } finally {
        await pool.close()
      }
      const { files, copiedBytes, storedBytes, badPageCount } = copy
      for (const referenced of diff?.reference.values() ?? []) files.push(referenced)
      files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))

      const end = await dbBackupEnd(session, server.major)
      const timeline = labelTimeline(end.labelFile)
      const startLsn = lsnParse(begin.lsn)
      // The backup-end record finishes just before the stop LSN, so the last segment needed holds stop LSN - 1.
      const stopLsn = lsnParse(end.lsn)
      const walStart = walSegmentName(timeline, startLsn, control.walSegmentSize)
      const walStop = walSegmentName(timeline, stopLsn - 1n, control.walSegmentSize)
      log.info(`backup stop: stop LSN ${end.lsn}, WAL ${walStart} to ${walStop}`)

      if (archiveCheck) {
        const timeoutSeconds = cfg.number('archive-timeout') ?? 60
        const needed = walSegmentRange(timeline, startLsn, stopLsn - 1n, control.walSegmentSize)
        const missing = await archiveWaitFor(repo, archiveInfo, needed, timeoutSeconds * 1000)
        if (missing.length > 0) {
          fail('ArchiveTimeout', `WAL segment '${missing[0]}' needed by backup ${label} did not reach the archive within ${timeoutSeconds} second(s)`, {
            hint: 'check the PostgreSQL log for archive_command errors; the backup was not recorded.',
          })
        }
      }

      // Everything durable before the manifest says the backup exists: one file-system flush, or (without syncfs)
      // the folder entries of files that were fsynced one by one. A folder with no copied file was never created.
      if (!syncEach) syncFilesystem(repo.describe(layout.backup(stanza, label)))
      else {
        for (const path of scan.paths) await repo.syncPath(`${layout.backup(stanza, label)}/${path.name}`, { missingOk: true })
      }
      await repo.syncPath(layout.backup(stanza, label), { missingOk: true })

      const manifest: Manifest = {
        label,
        type,
        prior: prior?.label ?? null,
        pg: {
          version: control.version,
          systemId: identity.systemId,
          dbId: info.db.id,
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
      }
      await manifestSave(repo, stanza, manifest)

      const references = [...new Set(files.map((file) => file.reference).filter((item): item is string => item !== undefined))].sort()
      const record: BackupRecord = {
        label,
        type,
        prior: prior?.label ?? null,
        reference: references,
        timestampStart: Math.floor(manifest.start.time / 1000),
        timestampStop: Math.ceil(manifest.stop.time / 1000),
        lsnStart: begin.lsn,
        lsnStop: end.lsn,
        walStart,
        walStop,
        timeline,
        size: files.reduce((sum, file) => sum + file.size, 0),
        delta: copiedBytes,
        repoSize: files.reduce((sum, file) => sum + file.repoSize, 0),
        repoDelta: storedBytes,
        dbId: info.db.id,
        compressType,
        pageErrors: badPageCount,
      }
      info.backups.push(record)
      await backupInfoSave(repo, info)
      log.info(
        `${type} backup ${label} complete: ${formatBytes(record.size)} in the cluster, ${formatBytes(copiedBytes)} copied, ` +
          `${formatBytes(storedBytes)} stored`,
      )
      if (badPageCount > 0) {
        log.warn(`backup ${label} found ${badPageCount} page(s) with invalid checksums; see the warnings above and the manifest`)
      }
    } finally {
      await session.close()
    }

    await expireRun(cfg, repo, stanza)
    return 0
  },
}

