// verify: checks the repository without restoring anything; each configured repository in turn, or the one --repo
// names, each reported on its own. Every file of every backup (or of --set) is read,
// decompressed and compared with the size and SHA-256 its manifest records, following references to earlier backups
// and the parts of large files; every archived WAL file with the SHA-256 in its name; and the archive must be
// continuous from each backup's start to the end of the archive, across timeline switches (continuity.ts).
// Everything is reported, with an exit status for monitoring: 0 when all is well, VerifyFailed's code otherwise.
//
// No lock. verify only reads, and may run for hours: holding the backup lock would hold back scheduled backups and
// expire for as long. Like restore and info, it reads what backup.info lists instead. The race that leaves is expire
// removing a backup (or WAL only expired backups needed) while verify reads it, which would look like missing files:
// so at the end backup.info is read again, a backup no longer in it is reported as expired with its problems dropped,
// and the continuity of the archive is judged on a fresh listing against the backups still there.
//
// With repoN-retention-archive, expire keeps the WAL after a backup only for the newest backups (pitrWindow); older
// ones keep their own start..stop WAL. verify expects the same, so a policy is not reported as a gap.

import { ERROR_CODES, WaldenError, fail } from '../../common/errors.js'
import type { ErrorKind } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { Progress } from '../../common/progress.js'
import type { Config } from '../../config/config.js'
import { WorkerPool } from '../../parallel/pool.js'
import { cipherJobInput } from '../../repo/cipher.js'
import { isPartialName, isTimelineHistoryName, isWalSegmentName, timelineHistoryParse, walSegmentNumberFromName } from '../../pg/wal.js'
import { archiveFolderFiles } from '../../repo/archive.js'
import { layout } from '../../repo/layout.js'
import { manifestFileRepoPath, manifestLoad, partsChecksum } from '../../repo/manifest.js'
import type { Manifest } from '../../repo/manifest.js'
import { archiveIdOf, archiveInfoLoad, backupInfoLoad, backupInfoLoadIfExists } from '../../repo/stanza-info.js'
import type { ArchiveInfo, BackupInfo, BackupRecord, PgIdentity } from '../../repo/stanza-info.js'
import { pitrWindow } from '../../repo/retention.js'
import { storedFileRead } from '../../repo/stored-file.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { repoOpen, repoSelected } from '../repo-storage.js'
import { repoOption } from '../../config/options.js'
import type { RepoIndex } from '../../config/options.js'
import type { StorageLocation } from '../../storage/location.js'
import { walContinuity } from './continuity.js'
import type { TimelineSwitch } from './continuity.js'
import type { VerifyFileInput, VerifyFileOutput } from './file.js'
import { gapText, problemCount, reportSettle, verifyRenderJson, verifyRenderJsonAll, verifyRenderText } from './report.js'
import type { ArchiveReport, BackupReport, VerifyReport } from './report.js'

export const verify: Command = { run: verifyRun }

/** One stored file to read: where it is, what it must be, and whom to tell about a problem. */
interface FileJob {
  input: VerifyFileInput
  /** Manifest name (with part) or WAL name, for the report. */
  file: string
}

/** What one verify run shares between its steps. */
interface Run {
  stanza: string
  repo: Storage
  repoAt: StorageLocation
  pool: WorkerPool
  report: VerifyReport
}

/**
 * Verifies every configured repository in turn (or the one --repo names), each read with its own keys, and reports
 * each: a stanza's copies are independent, and a problem in one says nothing of the other.
 */
async function verifyRun(cfg: Config): Promise<number> {
  const stanza = cfg.stanza()
  const indexes = repoSelected(cfg)
  const several = indexes.length > 1
  const reports: VerifyReport[] = []
  for (const index of indexes) {
    try {
      reports.push(await verifyRepo(cfg, index))
    } catch (error) {
      // Alone, a repository that cannot be verified at all (no such stanza) is the command's error, as it always was.
      if (!several || !(error instanceof WaldenError)) throw error
      log.error(`repo${index}: [${String(error.code).padStart(3, '0')}]: ${error.message.startsWith(`repo${index}: `) ? error.message.slice(`repo${index}: `.length) : error.message}`)
      const report = emptyReport(stanza, index)
      report.problems.push({ kind: 'info', file: `repo${index}`, message: error.message })
      reportSettle(report)
      reports.push(report)
    }
  }
  if (cfg.string('output') === 'json') process.stdout.write(several ? verifyRenderJsonAll(reports) : verifyRenderJson(reports[0]!))
  else process.stdout.write(reports.map((report) => verifyRenderText(report, { several })).join('\n'))
  const failed = reports.filter((report) => report.status !== 'ok')
  if (failed.length === 0) return 0
  for (const report of failed) {
    log.error(`[${String(ERROR_CODES.VerifyFailed).padStart(3, '0')}]: verify found ${problemCount(report)} problem(s) in stanza '${stanza}'${several ? ` in repo${report.repo}` : ''}`)
  }
  return ERROR_CODES.VerifyFailed
}

function emptyReport(stanza: string, repo: number): VerifyReport {
  return {
    stanza,
    repo,
    status: 'ok',
    problems: [],
    backups: [],
    archive: { status: 'ok', archiveIds: [], files: 0, bytes: 0, gaps: [], problems: [] },
  }
}

/** One repository, with its own retention-archive setting (which WAL verify expects to find). */
async function verifyRepo(cfg: Config, index: RepoIndex): Promise<VerifyReport> {
  const stanza = cfg.stanza()
  const { storage: repo, location: repoAt } = await repoOpen(cfg, index)
  const set = cfg.string('set')
  const report = emptyReport(stanza, index)
  const backupInfo = await loadOrReport(report, repo.describe(layout.backupInfo(stanza)), () => backupInfoLoad(repo, stanza))
  const archiveInfo = await loadOrReport(report, repo.describe(layout.archiveInfo(stanza)), () => archiveInfoLoad(repo, stanza))
  if (set !== undefined && backupInfo && !backupInfo.backups.some((backup) => backup.label === set)) {
    fail('BackupMismatch', `backup set '${set}' is not in backup.info of stanza '${stanza}'`, { hint: 'choose one of the labels `walden info` shows.' })
  }
  const chosen = (backupInfo?.backups ?? []).filter((backup) => set === undefined || backup.label === set)

  const pool = new WorkerPool(cfg.number('process-max') ?? 1)
  const run: Run = { stanza, repo, repoAt, pool, report }
  const manifests = new Map<string, Pick<Manifest, 'pg'>>()
  try {
    // Results by repository path, so a file an incr references is read once, and its problem reported against every
    // backup that uses it.
    const checked = new Map<string, VerifyFileOutput>()
    for (const record of chosen) {
      const manifest = await verifyBackup(run, backupInfo!, record, checked)
      if (manifest) manifests.set(record.label, { pg: manifest.pg })
    }
    checked.clear()
    const retentionOption = repoOption(index, 'retention-archive')
    const retentionArchive = cfg.has(retentionOption) ? cfg.number(retentionOption) : undefined
    if (archiveInfo) await verifyArchive(run, archiveInfo, backupInfo, chosen, manifests, set === undefined, retentionArchive)
  } finally {
    await pool.close()
  }

  // Backups expire removed while verify ran: their problems were its doing (see the header).
  const live = await labelsNow(repo, stanza)
  for (const backup of report.backups) if (live && !live.has(backup.label)) backup.status = 'expired'
  reportSettle(report)
  return report
}

/** The labels in backup.info now; undefined when it cannot be read (then nothing counts as expired). */
async function labelsNow(repo: Storage, stanza: string): Promise<Set<string> | undefined> {
  const info = await backupInfoLoadIfExists(repo, stanza).catch(() => undefined)
  return info ? new Set(info.backups.map((backup) => backup.label)) : undefined
}

/** Failures that say an info file's content is bad, as opposed to a repository that cannot be read at all. */
const INFO_DAMAGE: ReadonlySet<ErrorKind> = new Set(['Checksum', 'Crypto', 'Format', 'FileInvalid'])

/**
 * Loads an info file; damage (both copies) is a problem of the report, not the end of the run. A stanza that does not
 * exist, a repository from a newer walden, and a repository that cannot be read (access denied, endpoint unreachable)
 * are errors with their own exit codes, like any other command's: there is nothing to verify, and a monitoring script
 * must be able to tell "fix the credentials" from "the backups are damaged".
 */
async function loadOrReport<T>(report: VerifyReport, file: string, load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load()
  } catch (error) {
    if (!(error instanceof WaldenError) || !INFO_DAMAGE.has(error.kind)) throw error
    report.problems.push({ kind: 'info', file, message: error.message })
    return undefined
  }
}

/** Runs file jobs on the pool, largest first, handing each result on. */
async function runJobs(run: Run, jobs: FileJob[], what: string, onResult: (job: FileJob, output: VerifyFileOutput) => void): Promise<void> {
  jobs.sort((a, b) => (b.input.size ?? 0) - (a.input.size ?? 0))
  const progress = new Progress(what, jobs.reduce((sum, job) => sum + (job.input.size ?? 0), 0))
  try {
    const cipher = cipherJobInput()
    await run.pool.runAll('verify.file', jobs, (job) => ({ ...job.input, ...cipher }), (job, output) => {
      progress.add(job.input.size ?? 0)
      onResult(job, output)
    })
  } finally {
    progress.end()
  }
}

/**
 * One backup: its manifest, the references of its files, and every stored file or part it uses, wherever stored.
 * Returns the manifest, or undefined when it does not load.
 */
async function verifyBackup(run: Run, info: BackupInfo, record: BackupRecord, checked: Map<string, VerifyFileOutput>): Promise<Manifest | undefined> {
  const result: BackupReport = { label: record.label, type: record.type, status: 'ok', files: 0, bytes: 0, problems: [] }
  run.report.backups.push(result)
  let manifest: Manifest
  try {
    manifest = await manifestLoad(run.repo, run.stanza, record.label)
  } catch (error) {
    if (!(error instanceof WaldenError)) throw error
    result.problems.push({ kind: 'manifest', file: run.repo.describe(layout.backupManifest(run.stanza, record.label)), message: error.message })
    return undefined
  }
  log.info(`verify backup ${record.label}: ${manifest.files.length} files`)
  const known = new Set(info.backups.map((backup) => backup.label))
  const jobs: FileJob[] = []
  const add = (job: FileJob): void => {
    const earlier = checked.get(job.input.repoPath)
    if (earlier) tally(job, earlier)
    else jobs.push(job)
  }
  const tally = (job: FileJob, output: VerifyFileOutput): void => {
    result.files++
    result.bytes += output.size
    if (output.problem) result.problems.push({ kind: output.problem.kind, file: job.file, message: output.problem.message })
  }
  for (const file of manifest.files) {
    if (file.reference !== undefined && !known.has(file.reference)) {
      result.problems.push({
        kind: 'reference',
        file: file.name,
        message: `stored in backup '${file.reference}', which is not in backup.info`,
      })
      continue
    }
    // The extension alone, not the codec: a codec missing here is the worker's problem to report, per file.
    const extension = file.compressType === 'none' ? '' : `.${file.compressType}`
    const repoPathOf = (part?: number): string => manifestFileRepoPath(run.stanza, record.label, file, extension, part)
    if (file.parts) {
      if (partsChecksum(file.parts) !== file.sha256) {
        result.problems.push({ kind: 'manifest', file: file.name, message: `the checksums of its ${file.parts.length} parts do not add up to its checksum ${file.sha256}` })
      }
      file.parts.forEach((part, index) => {
        // An empty part (the file shrank while it was copied) is not stored.
        if (part.size === 0) return
        add({ input: { repo: run.repoAt, repoPath: repoPathOf(index), sha256: part.sha256, size: part.size }, file: `${file.name} part ${index}` })
      })
    } else if (file.size > 0) {
      add({ input: { repo: run.repoAt, repoPath: repoPathOf(), sha256: file.sha256, size: file.size }, file: file.name })
    }
  }
  await runJobs(run, jobs, `verify ${record.label}`, (job, output) => {
    checked.set(job.input.repoPath, output)
    tally(job, output)
  })
  return manifest
}

/** One archived file, from a listing. */
interface Archived {
  archiveId: string
  walName: string
  path: string
  sha256: string
  /** A file stored under its own name whose checksum record is there but the file is not (repo/archive.ts). */
  fileMissing?: true
}

/**
 * Every file under one archive id, folder by folder (history files sit at its root): those under their checksummed
 * name, and those under their own name that have a checksum record. Temporary files (a push in progress, or one
 * killed part-way, which expire clears) and files whose push never wrote the record are not archived yet.
 */
async function archiveList(repo: Storage, stanza: string, archiveId: string): Promise<Archived[]> {
  const root = layout.archiveId(stanza, archiveId)
  const found: Archived[] = []
  const take = (folder: string, entries: readonly string[]): void => {
    const present = new Set(entries)
    for (const file of archiveFolderFiles(entries)) {
      found.push({ archiveId, walName: file.walName, path: `${folder}/${file.entry}`, sha256: file.sha256, ...(present.has(file.entry) ? {} : { fileMissing: true as const }) })
    }
  }
  const rootEntries = await repo.list(root)
  take(root, rootEntries)
  for (const entry of rootEntries) if (/^[0-9A-F]{16}$/.test(entry)) take(`${root}/${entry}`, await repo.list(`${root}/${entry}`))
  return found
}

/** Segment numbers present per timeline: plain segments and .partial ones. */
function presentSegments(files: readonly Archived[], segmentSize: number): Map<number, Set<bigint>> {
  const present = new Map<number, Set<bigint>>()
  for (const file of files) {
    const segment = isWalSegmentName(file.walName) ? file.walName : isPartialName(file.walName) ? file.walName.slice(0, 24) : undefined
    if (segment === undefined) continue
    let number: bigint
    try {
      number = walSegmentNumberFromName(segment, segmentSize)
    } catch {
      continue // not a name for this segment size: cannot be part of this archive's WAL
    }
    const timeline = Number.parseInt(segment.slice(0, 8), 16)
    const set = present.get(timeline) ?? new Set<bigint>()
    set.add(number)
    present.set(timeline, set)
  }
  return present
}

/**
 * The archive: every archived file of every archive id checked against the checksum in its name, duplicates found,
 * then (per archive id with backups to anchor it) the continuity of the WAL from each backup onward. With --set
 * (`allFiles` false), only the WAL from that backup's start on is read.
 */
async function verifyArchive(
  run: Run,
  archiveInfo: ArchiveInfo,
  backupInfo: BackupInfo | undefined,
  chosen: readonly BackupRecord[],
  manifests: ReadonlyMap<string, Pick<Manifest, 'pg'>>,
  allFiles: boolean,
  retentionArchive: number | undefined,
): Promise<void> {
  const result: ArchiveReport = run.report.archive
  const identities = new Map<number, PgIdentity>()
  for (const identity of [...archiveInfo.history, archiveInfo.db]) identities.set(identity.id, identity)
  const archiveIdOfBackup = (record: BackupRecord): string | undefined => {
    const identity = identities.get(record.dbId) ?? backupInfo?.history.find((entry) => entry.id === record.dbId)
    return identity ? archiveIdOf(identity) : undefined
  }

  for (const identity of [...identities.values()].sort((a, b) => a.id - b.id)) {
    const archiveId = archiveIdOf(identity)
    const backups = chosen.filter((record) => archiveIdOfBackup(record) === archiveId)
    if (!allFiles && backups.length === 0) continue
    result.archiveIds.push(archiveId)
    // wal_segment_size: every backup of one archive id shares it.
    const segmentSize = backups.map((record) => manifests.get(record.label)?.pg.walSegmentSize).find((size) => size !== undefined)
    const files = await archiveList(run.repo, run.stanza, archiveId)
    // With --set, only the WAL that backup needs: history files, and segments from its start on.
    const firstNeeded = allFiles ? undefined : backups.map((record) => record.walStart.slice(8)).sort()[0]
    const wanted = files.filter((file) => firstNeeded === undefined || !isWalSegmentName(file.walName.slice(0, 24)) || file.walName.slice(8, 24) >= firstNeeded)

    // Duplicates: one WAL name, different content.
    const byName = new Map<string, Set<string>>()
    for (const file of wanted) byName.set(file.walName, (byName.get(file.walName) ?? new Set()).add(file.sha256))
    for (const [walName, sums] of byName) {
      if (sums.size > 1) result.problems.push({ kind: 'duplicate', file: walName, message: `WAL file '${walName}' is archived ${sums.size} times with different content (archive ${archiveId})` })
    }

    // A checksum record without its file: the repository lost a history or backup file it had archived.
    for (const file of wanted) {
      if (file.fileMissing) result.problems.push({ kind: 'missing', file: file.walName, message: `archived file '${run.repo.describe(file.path)}' is missing: only its checksum record is there` })
    }
    const readable = wanted.filter((file) => !file.fileMissing)
    log.info(`verify archive ${archiveId}: ${wanted.length} files`)
    const damaged = new Map<number, Set<bigint>>()
    const vanished = new Set<string>()
    const jobs: FileJob[] = readable.map((file) => {
      const segment = isWalSegmentName(file.walName) || isPartialName(file.walName)
      return {
        input: { repo: run.repoAt, repoPath: file.path, sha256: file.sha256, ...(segment && segmentSize !== undefined ? { size: segmentSize } : {}), ...(segment ? { walSegment: true } : {}) },
        file: file.walName,
      }
    })
    await runJobs(run, jobs, `verify archive ${archiveId}`, (job, output) => {
      result.files++
      result.bytes += output.size
      if (!output.problem) return
      // Listed, then gone: expire removed it meanwhile. Whether it was still needed is judged below, on a fresh listing.
      if (output.problem.kind === 'missing') {
        vanished.add(job.input.repoPath)
        return
      }
      result.problems.push({ kind: output.problem.kind, file: job.file, message: output.problem.message })
      if (segmentSize !== undefined && isWalSegmentName(job.file.slice(0, 24))) {
        const timeline = Number.parseInt(job.file.slice(0, 8), 16)
        const set = damaged.get(timeline) ?? new Set<bigint>()
        set.add(walSegmentNumberFromName(job.file.slice(0, 24), segmentSize))
        damaged.set(timeline, set)
      }
    })

    const switches: TimelineSwitch[] = []
    const bad = new Set(result.problems.map((problem) => problem.file))
    for (const file of readable) {
      if (!isTimelineHistoryName(file.walName) || bad.has(file.walName) || vanished.has(file.path)) continue
      const timeline = Number.parseInt(file.walName.slice(0, 8), 16)
      try {
        const text = (await storedFileRead(run.repo, file.path, file.sha256, `archived timeline history '${run.repo.describe(file.path)}'`)).toString('utf8')
        const parent = timelineHistoryParse(text, timeline).at(-1)
        if (parent) switches.push({ timeline, parent: parent.timeline, switchLsn: parent.switchLsn })
      } catch (error) {
        if (!(error instanceof WaldenError)) throw error
        result.problems.push({ kind: 'history', file: file.walName, message: error.message })
      }
    }
    if (backups.length === 0) continue
    if (segmentSize === undefined) {
      log.warn(`the WAL continuity of archive ${archiveId} is not checked: no manifest of its backups loads to give wal_segment_size`)
      continue
    }
    await continuityCheck(run, archiveId, backups, segmentSize, switches, damaged, retentionArchive)
  }
}

/**
 * Gaps and unrestorable backups, judged against the backups still in backup.info and a listing taken now (see the
 * header on expire). A gap found is listed once more before it is reported: archive-push may have added a segment to
 * a folder after it was listed and the next one before (pushes are in order, so a new segment can only seem missing
 * at the end of what was listed).
 */
async function continuityCheck(
  run: Run,
  archiveId: string,
  backups: readonly BackupRecord[],
  segmentSize: number,
  switches: readonly TimelineSwitch[],
  damaged: ReadonlyMap<number, ReadonlySet<bigint>>,
  retentionArchive: number | undefined,
): Promise<void> {
  const now = await backupInfoLoadIfExists(run.repo, run.stanza).catch(() => undefined)
  const live = now ? new Set(now.backups.map((backup) => backup.label)) : undefined
  const current = live ? backups.filter((record) => live.has(record.label)) : backups
  // The window over every backup of the stanza, as expire computes it, whether or not --set picked one of them.
  const window = new Set(pitrWindow(now?.backups ?? backups, retentionArchive).map((backup) => backup.label))

  const judge = (present: Map<number, Set<bigint>>): ReturnType<typeof walContinuity> =>
    walContinuity({
      segmentSize,
      present,
      damaged,
      switches,
      backups: current.map((record) => ({
        label: record.label,
        timeline: record.timeline,
        walStart: record.walStart,
        walStop: record.walStop,
        lsnStop: record.lsnStop,
        pitr: window.has(record.label),
        ...(record.source?.backupStandby === 'only' ? { walInBackup: true } : {}),
      })),
    })
  const present = presentSegments(await archiveList(run.repo, run.stanza, archiveId), segmentSize)
  let continuity = judge(present)
  if (continuity.gaps.length > 0 || continuity.unrestorable.length > 0) {
    for (const [timeline, segments] of presentSegments(await archiveList(run.repo, run.stanza, archiveId), segmentSize)) {
      const set = present.get(timeline) ?? new Set<bigint>()
      for (const segment of segments) set.add(segment)
      present.set(timeline, set)
    }
    continuity = judge(present)
  }

  const byLabel = new Map(run.report.backups.map((backup) => [backup.label, backup]))
  for (const gap of continuity.gaps) {
    const archiveGap = { archiveId, ...gap }
    run.report.archive.gaps.push(archiveGap)
    for (const label of gap.neededBy) {
      byLabel.get(label)?.problems.push({ kind: 'wal-gap', file: gap.from, message: gapText(archiveGap) })
    }
  }
  for (const backup of continuity.unrestorable) {
    const ranges = backup.missing.map((range) => (range.from === range.to ? range.from : `${range.from} to ${range.to}`)).join(', ')
    byLabel.get(backup.label)?.problems.push({
      kind: 'unrestorable',
      file: backup.missing[0]!.from,
      message: `backup ${backup.label} is unrestorable: WAL between its start and stop is missing or damaged: ${ranges}`,
    })
  }
}
