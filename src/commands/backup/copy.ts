// Copies a backup's files into one repository or several at once with the worker pool, a file (or, for a large file,
// each part of it) per job, and assembles each repository's manifest records.
//
// With several repositories a file is read, hashed and compressed once and written to every repository that needs it
// (backup/file.ts, backupFileFanOut): a diff or incr stores a file only in the repositories whose prior backup does not
// already hold it. A repository that cannot be written drops out of the backup, and the others go on; only when none
// is left does the copy fail.

import type { StorageLocation } from '../../storage/location.js'
import type { CipherState } from '../../repo/cipher.js'
import { WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { Progress } from '../../common/progress.js'
import type { RepoIndex } from '../../config/options.js'
import type { CompressType } from '../../io/compress.js'
import type { WorkerPool } from '../../parallel/pool.js'
import type { ManifestFile, ManifestPart } from '../../repo/manifest.js'
import { partsChecksum } from '../../repo/manifest.js'
import { SMALL_FILE } from './file.js'
import type { BackupFanOutInput, BackupFanOutOutput, BackupFileRead } from './file.js'
import type { ScannedFile } from './scan.js'

/** Part size of large files: a 1 GiB relation segment becomes 16 jobs that any worker can take. */
export const PART_SIZE = 64 * 1024 * 1024

/** A repository the backup is written to. */
export interface BackupCopyRepo {
  index: RepoIndex
  location: StorageLocation
  /** Its cipher state (cipherJobStateOf): each repository seals with its own keys. */
  cipher: CipherState
  /** Repository folder of this backup. */
  backupPath: string
  /** Whether the file must be stored in this repository: false when its prior backup holds it unchanged. */
  wants(file: ScannedFile): boolean
}

export interface BackupCopyOptions {
  pool: WorkerPool
  /** Every file some repository wants. */
  files: readonly ScannedFile[]
  repos: readonly BackupCopyRepo[]
  compressType: CompressType
  compressLevel: number
  /** Page checks for relation files: set when the cluster has data checksums. */
  pageCheck?: { relSegmentSize: number; blockSize: number; startLsn: string }
  /** fsync every file as it is written; otherwise only large ones, and the caller flushes the file system. */
  syncEach: boolean
}

/** What one repository got. */
export interface BackupCopyRepoResult {
  files: ManifestFile[]
  /** Bytes of the cluster stored in this repository by this backup (before compression), and after. */
  copiedBytes: number
  storedBytes: number
}

export interface BackupCopyResult {
  /** Repositories that got every file they wanted. */
  repos: Map<RepoIndex, BackupCopyRepoResult>
  /** Repositories that dropped out, with the first error each met. */
  failed: Map<RepoIndex, WaldenError>
  badPageCount: number
  /** Bytes read from the cluster: each file once, however many repositories it went to. */
  readBytes: number
}

/**
 * Jobs in flight in all when a repository is on S3 (eight per worker at process-max 2; measured: docs/benchmarks.md,
 * S3 repository). A total rather than a number per worker: enough round trips overlap at sixteen, and more workers
 * each holding more copies would only add memory.
 */
const S3_JOBS_IN_FLIGHT = 16

interface Job {
  file: ScannedFile
  part: number
  parts: number
}

/** A part's read result and the bytes each repository stored of it. */
interface PartDone {
  read: BackupFileRead
  repoSizes: Map<RepoIndex, number>
}

export async function backupCopy(options: BackupCopyOptions): Promise<BackupCopyResult> {
  const jobs: Job[] = []
  for (const file of options.files) {
    const parts = file.size > PART_SIZE ? Math.ceil(file.size / PART_SIZE) : 1
    for (let part = 0; part < parts; part++) jobs.push({ file, part, parts })
  }
  const jobSize = (job: Job): number => (job.parts === 1 ? job.file.size : PART_SIZE)
  // Largest first, so the last job to finish is a small one and no worker idles at the end.
  jobs.sort((a, b) => jobSize(b) - jobSize(a))

  const failed = new Map<RepoIndex, WaldenError>()
  // The repositories each job writes to, fixed when the job is handed out: a repository that failed meanwhile is
  // left out of later jobs.
  const jobRepos = new Map<Job, BackupCopyRepo[]>()
  const toInput = (job: Job): BackupFanOutInput => {
    const repos = options.repos.filter((repo) => !failed.has(repo.index) && repo.wants(job.file))
    jobRepos.set(job, repos)
    return {
      source: job.file.path,
      ...(job.file.remote !== undefined ? { remote: job.file.remote, expectedSize: Math.min(jobSize(job), job.file.size) } : {}),
      offset: job.part * PART_SIZE,
      // The last part (or a single one) reads to the end: a file that grew since it was listed is copied whole.
      ...(job.part < job.parts - 1 ? { length: PART_SIZE } : {}),
      targets: repos.map((repo) => ({
        repo: repo.location,
        cipher: repo.cipher,
        repoPath: `${repo.backupPath}/${job.file.name}${job.parts === 1 ? '' : `.part-${job.part}`}`,
      })),
      compressType: options.compressType,
      compressLevel: options.compressLevel,
      // Inline, one copy runs at a time: its uploads to S3 may fill the next part while the last is sent.
      ...(options.pool.size <= 1 ? { partBuffers: 2 as const } : {}),
      uploadTurns: true,
      // Large files are fsynced as they complete, so their write-back overlaps the copy; measured, one flush of
      // gigabytes at the end costs more. Small ones are left to that one flush, where an fsync each costs more.
      syncEach: options.syncEach || jobSize(job) > SMALL_FILE,
      ...(options.pageCheck && job.file.relationSegment !== undefined
        ? {
            pageCheck: {
              firstBlock: job.file.relationSegment * options.pageCheck.relSegmentSize,
              blockSize: options.pageCheck.blockSize,
              startLsn: options.pageCheck.startLsn,
            },
          }
        : {}),
    }
  }

  const result: BackupCopyResult = { repos: new Map(), failed, badPageCount: 0, readBytes: 0 }
  for (const repo of options.repos) result.repos.set(repo.index, { files: [], copiedBytes: 0, storedBytes: 0 })
  const repoFail = (repo: BackupCopyRepo, error: WaldenError, file: ScannedFile): void => {
    if (failed.has(repo.index)) return
    failed.set(repo.index, error)
    result.repos.delete(repo.index)
    const others = options.repos.filter((other) => !failed.has(other.index))
    if (others.length === 0) return
    log.error(
      `repo${repo.index}: unable to store '${file.path}': ${error.message}; the backup goes on in ` +
        `${others.map((other) => `repo${other.index}`).join(', ')} without repo${repo.index}`,
    )
  }

  const pending = new Map<ScannedFile, { parts: Array<PartDone | undefined>; remaining: number }>()
  const progress = new Progress('backup', jobs.reduce((sum, job) => sum + Math.min(jobSize(job), job.file.size), 0))
  try {
    // An S3 PUT of a small file is a round trip of tens of milliseconds in which the worker has nothing to do; with
    // two in flight per worker a backup of thousands of small files is paced by the gateway's latency, not by CPU.
    // More in flight costs little memory: a small file's upload buffer is its own size, and large uploads still take
    // turns, one per worker (backup/file.ts).
    const perWorker = options.repos.some((repo) => repo.location.type === 's3')
      ? Math.max(2, Math.floor(S3_JOBS_IN_FLIGHT / Math.max(1, options.pool.size)))
      : 2
    await options.pool.runAll('backup.fanOut', jobs, toInput, (job, output: BackupFanOutOutput) => {
      progress.add(Math.min(jobSize(job), job.file.size))
      const repos = jobRepos.get(job)!
      jobRepos.delete(job)
      const repoSizes = new Map<RepoIndex, number>()
      output.stored.forEach((stored, at) => {
        const repo = repos[at]!
        if ('error' in stored) repoFail(repo, new WaldenError(stored.error.kind, stored.error.message, stored.error.hint !== undefined ? { hint: stored.error.hint } : {}), job.file)
        else repoSizes.set(repo.index, stored.repoSize)
      })
      if (failed.size === options.repos.length) throw failed.values().next().value!
      result.readBytes += output.size

      let entry = pending.get(job.file)
      if (!entry) pending.set(job.file, (entry = { parts: new Array(job.parts), remaining: job.parts }))
      entry.parts[job.part] = { read: output, repoSizes }
      if (--entry.remaining > 0) return
      pending.delete(job.file)
      const parts = entry.parts as PartDone[]
      if (parts.some((part) => !part.read.copied)) {
        // Dropped by PostgreSQL while the backup ran; WAL replay drops it again. Parts already stored stay unreferenced.
        log.detail(`file '${job.file.path}' was removed during the backup; WAL replay accounts for it`)
        return
      }
      const badPages = parts.flatMap((part) => part.read.badPages)
      if (badPages.length > 0) {
        result.badPageCount += badPages.length
        log.warn(`invalid page checksums found in file '${job.file.path}' at blocks ${badPages.join(', ')}`)
      }
      for (const repo of options.repos) {
        const got = result.repos.get(repo.index)
        if (!got || !repo.wants(job.file)) continue
        const record = fileRecord(job.file, parts, repo.index, options.compressType)
        got.files.push(record)
        got.copiedBytes += record.size
        got.storedBytes += record.repoSize
      }
    }, { perWorker })
  } finally {
    progress.end()
  }
  return result
}

/** The manifest record of a copied file in one repository. */
function fileRecord(file: ScannedFile, done: readonly PartDone[], index: RepoIndex, compressType: CompressType): ManifestFile {
  const badPages = done.flatMap((part) => part.read.badPages)
  const parts: ManifestPart[] = done.map(({ read, repoSizes }) => ({
    size: read.size,
    sha256: read.sha256,
    ...(read.xxh3 ? { xxh3: read.xxh3 } : {}),
    repoSize: repoSizes.get(index) ?? 0,
  }))
  // The file ends where its last non-empty part ends (parts may come out short if the file shrank meanwhile).
  const size = parts.reduce((end, part, at) => (part.size > 0 ? at * PART_SIZE + part.size : end), 0)
  return {
    name: file.name,
    size,
    mtimeMs: file.mtimeMs,
    mode: file.mode,
    sha256: parts.length === 1 ? parts[0]!.sha256 : partsChecksum(parts),
    // A file in parts is compared part by part, with each part's own.
    ...(parts.length === 1 && parts[0]!.xxh3 ? { xxh3: parts[0]!.xxh3 } : {}),
    repoSize: parts.reduce((sum, part) => sum + part.repoSize, 0),
    compressType,
    ...(badPages.length > 0 ? { badPages } : {}),
    ...(parts.length > 1 ? { parts, partSize: PART_SIZE } : {}),
  }
}

/**
 * One result from two copies of the same backup run one after the other (backup-standby=only copies pg_control after
 * every other file, then the WAL): a repository that failed in either is out.
 */
export function copyMerge(first: BackupCopyResult, second: BackupCopyResult): BackupCopyResult {
  const failed = new Map([...first.failed, ...second.failed])
  const repos = new Map<RepoIndex, BackupCopyRepoResult>()
  for (const [index, got] of first.repos) {
    const more = second.repos.get(index)
    if (failed.has(index) || more === undefined) continue
    repos.set(index, { files: [...got.files, ...more.files], copiedBytes: got.copiedBytes + more.copiedBytes, storedBytes: got.storedBytes + more.storedBytes })
  }
  return { repos, failed, badPageCount: first.badPageCount + second.badPageCount, readBytes: first.readBytes + second.readBytes }
}
