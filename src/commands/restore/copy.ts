// Restores a backup's files with the worker pool: a file per job, or for a file stored in parts, a part per job
// written at its offset, so a large relation file is shared between workers as it was at backup.
//
// Self-healing: a stored file (or part) that is missing or damaged in the repository restored from is fetched from
// another repository holding the same content (same SHA-256 and size, found in its manifests), with a warning naming
// both repositories and the file. Only when no repository has a good copy does the restore fail.

import type { StorageLocation } from '../../storage/location.js'
import type { CipherState } from '../../repo/cipher.js'
import { WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { RepoIndex } from '../../config/options.js'
import type { ErrorData } from '../backup/file.js'
import type { ContentCopy, ContentIndex } from './heal.js'
import { chmodSync, closeSync, constants, fsyncSync, ftruncateSync, openSync, utimesSync } from 'node:fs'
import { Progress } from '../../common/progress.js'
import { codecFor } from '../../io/compress.js'
import type { WorkerPool } from '../../parallel/pool.js'
import type { ManifestFile } from '../../repo/manifest.js'
import type { RestoreFileInput, RestoreFileRun } from './file.js'

export interface RestoreCopyOptions {
  pool: WorkerPool
  files: readonly ManifestFile[]
  /** The repository restored from, with its cipher state (cipherJobStateOf). */
  repo: { index: RepoIndex; location: StorageLocation; cipher: CipherState }
  delta: boolean
  syncEach: boolean
  /** Option direct-io: restored files are written with O_DIRECT where the file system takes it. */
  directIo: boolean
  /** Write under a temporary name and rename, each file fsynced (global/pg_control, written last). */
  atomic?: boolean
  destinationOf: (file: ManifestFile) => string
  repoPathOf: (file: ManifestFile, extension: string, part?: number) => string
  /**
   * Self-healing: where else the content of a file missing or damaged in `repo` is (restore/heal.ts), built on the
   * first such file. Undefined when there is no other repository: the file's error is then the restore's.
   */
  alternatives?: () => Promise<ContentIndex>
}

interface Job {
  file: ManifestFile
  part?: number
}

/** Where a job reads from, when not from the repository restored from. */
interface JobSource {
  location: StorageLocation
  cipher: CipherState
  repoPath: string
}

/** A job whose stored file could not be read, and the other copies of its content left to try. */
interface Unreadable {
  job: Job
  error: ErrorData
  copies: readonly ContentCopy[]
  tried: number
}

export async function restoreCopy(options: RestoreCopyOptions): Promise<{ fetchedFiles: number; fetchedBytes: number }> {
  const jobs: Job[] = []
  for (const file of options.files) {
    if (file.parts) {
      // The file exists at its full size before any part lands in it. With delta its current content stays, so
      // parts that already match are kept.
      const destination = options.destinationOf(file)
      const fd = openSync(destination, constants.O_RDWR | constants.O_CREAT, file.mode)
      try {
        ftruncateSync(fd, file.size)
      } finally {
        closeSync(fd)
      }
      file.parts.forEach((_part, index) => jobs.push({ file, part: index }))
    } else jobs.push({ file })
  }
  const jobSize = (job: Job): number => (job.part === undefined ? job.file.size : job.file.parts![job.part]!.size)
  jobs.sort((a, b) => jobSize(b) - jobSize(a))
  const jobSha256 = (job: Job): string => (job.part === undefined ? job.file.sha256 : job.file.parts![job.part]!.sha256)

  const toInput = (job: Job, from?: JobSource): RestoreFileInput => {
    const extension = codecFor(job.file.compressType).extension
    const common = {
      destination: options.destinationOf(job.file),
      repo: from?.location ?? options.repo.location,
      cipher: from?.cipher ?? options.repo.cipher,
      mode: job.file.mode,
      mtimeMs: job.file.mtimeMs,
      delta: options.delta,
      directIo: options.directIo,
      atomic: options.atomic === true,
      // Where the file system can be flushed at once, nothing is fsynced here: the caller flushes it at the end. An
      // fsync per part of a large file while other parts are being written into it cost several times the restore's
      // CPU in system time (measured at scale 100: 4-6 s against 0.7-2 s), as each flushes the whole file and the
      // writers wait on the pages under writeback. Without that, parts are fsynced once their file is complete.
      syncEach: options.syncEach && job.part === undefined,
      healable: options.alternatives !== undefined,
    }
    if (job.part === undefined) {
      return {
        ...common,
        repoPath: job.file.size === 0 ? '' : (from?.repoPath ?? options.repoPathOf(job.file, extension)),
        size: job.file.size,
        sha256: job.file.sha256,
        ...(job.file.xxh3 ? { xxh3: job.file.xxh3 } : {}),
      }
    }
    const part = job.file.parts![job.part]!
    return {
      ...common,
      repoPath: part.size === 0 ? '' : (from?.repoPath ?? options.repoPathOf(job.file, extension, job.part)),
      size: part.size,
      sha256: part.sha256,
      ...(part.xxh3 ? { xxh3: part.xxh3 } : {}),
      partOffset: job.part * job.file.partSize!,
    }
  }

  const fetchedFiles = new Set<ManifestFile>()
  let fetchedBytes = 0
  const fetched = (job: Job): void => {
    fetchedFiles.add(job.file)
    fetchedBytes += jobSize(job)
  }
  const unreadable: Unreadable[] = []
  const progress = new Progress('restore', jobs.reduce((sum, job) => sum + jobSize(job), 0))
  // With O_DIRECT the parts of one file go to every worker at once: the largest relation segment (most of a pgbench
  // database) would otherwise be decompressed and hashed by one worker while the other has nothing left to do.
  // Positional O_DIRECT writes of separate parts share no page of the file, so they need no page-cache lock; measured
  // here, two threads writing 64 MiB parts of one 1 GiB file with O_DIRECT took the time one thread did (the disk's).
  // Through the page cache, two threads writing one file take turns on its inode lock (see JobPicker): there, parts
  // of one file go to one thread at a time while other files wait.
  const keyOf = pastPageCache(options) ? undefined : (job: Job): string => job.file.name
  const parts = new PartsAtOnce()
  try {
    await options.pool.runAll(
      'restore.file',
      jobs,
      (job) => toInput(job),
      (job, result) => {
        progress.add(jobSize(job))
        if (job.part !== undefined && result.ran) parts.add(job.file, result.ran)
        if (result.unreadable) unreadable.push({ job, error: result.unreadable, copies: [], tried: 0 })
        else if (result.fetched) fetched(job)
      },
      { ...(keyOf ? { keyOf } : {}), perWorker: jobsInFlightPerWorker(options.repo.location) },
    )
    parts.log()
    if (unreadable.length > 0) await heal(options, unreadable, jobSha256, jobSize, toInput, keyOf, fetched)
  } finally {
    progress.end()
  }
  // Mode and time of files restored in parts, once all their parts are in place (and the file fsynced, where the
  // file system is not flushed at the end).
  for (const file of options.files) {
    if (!file.parts) continue
    const destination = options.destinationOf(file)
    if (options.syncEach) {
      const fd = openSync(destination, 'r')
      try {
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
    }
    chmodSync(destination, file.mode)
    utimesSync(destination, file.mtimeMs / 1000, file.mtimeMs / 1000)
  }
  return { fetchedFiles: fetchedFiles.size, fetchedBytes }
}

/**
 * Fetches each unreadable job's content from the other copies, in the order the index lists them (repository order,
 * newest backup first), a round at a time: every job still unhealed tries its next copy. Fails with the first job
 * for which no copy was good.
 */
async function heal(
  options: RestoreCopyOptions,
  unreadable: Unreadable[],
  sha256Of: (job: Job) => string,
  sizeOf: (job: Job) => number,
  toInput: (job: Job, from?: JobSource) => RestoreFileInput,
  keyOf: ((job: Job) => string) | undefined,
  fetched: (job: Job) => void,
): Promise<void> {
  const index = await options.alternatives!()
  for (const entry of unreadable) entry.copies = index.find(sha256Of(entry.job), sizeOf(entry.job))
  const what = (job: Job): string => `'${job.file.name}'${job.part === undefined ? '' : ` (part ${job.part})`}`
  for (;;) {
    const round = unreadable.filter((entry) => entry.tried < entry.copies.length)
    if (round.length === 0) break
    await options.pool.runAll(
      'restore.file',
      round,
      (entry) => {
        const copy = entry.copies[entry.tried]!
        return toInput(entry.job, { location: copy.location, cipher: copy.cipher, repoPath: copy.repoPath })
      },
      (entry, result) => {
        const copy = entry.copies[entry.tried++]!
        if (result.unreadable) {
          log.warn(`repo${copy.index}: its copy of ${what(entry.job)} in backup ${copy.label} is unreadable too: ${result.unreadable.message}`)
          return
        }
        log.warn(
          `repo${options.repo.index}: ${what(entry.job)} could not be read there (${entry.error.message}); ` +
            `restored it from repo${copy.index}, backup ${copy.label}`,
        )
        if (result.fetched) fetched(entry.job)
        entry.copies = []
        entry.tried = 0
        unreadable.splice(unreadable.indexOf(entry), 1)
      },
      keyOf ? { keyOf: (entry) => keyOf(entry.job) } : {},
    )
  }
  const [first] = unreadable
  if (!first) return
  const others = unreadable.length - 1
  throw new WaldenError(
    first.error.kind,
    `${first.error.message}; no other repository holds a good copy of ${what(first.job)}` + (others > 0 ? ` (nor of ${others} other unreadable file(s))` : ''),
    { hint: first.error.hint ?? 'the repository file is damaged; use another backup, or repair the repository from a copy.' },
  )
}

/**
 * Whether restored files are written past the page cache: with O_DIRECT, through the synchronous decoder (a codec
 * that has one), from a folder or a backup host (restore/file.ts). Otherwise they take a stream path through the
 * page cache.
 */
function pastPageCache(options: RestoreCopyOptions): boolean {
  const location = options.repo.location.type
  return options.directIo && (location === 'posix' || location === 'remote') && options.files.every((file) => codecFor(file.compressType).chunkDecoder !== undefined)
}

/**
 * Jobs each worker has in flight. From a backup host over SSH every file costs a round trip through both ssh
 * processes and the far end, in which the worker has nothing to do; with two in flight most of the catalog's small
 * files wait on that round trip, with four the next answers are already there. Local files are paced by the disk and
 * the CPU, and two suffice.
 */
function jobsInFlightPerWorker(location: StorageLocation): number {
  return location.type === 'remote' ? 4 : 2
}

/**
 * For each file restored in parts, how many of its parts were being written at the same moment by different worker
 * threads (from when each part's job ran on which thread), logged at debug level: what shows that the parts of one
 * file were shared between the workers rather than taken in turn.
 */
class PartsAtOnce {
  readonly #runs = new Map<ManifestFile, RestoreFileRun[]>()

  add(file: ManifestFile, run: RestoreFileRun): void {
    const runs = this.#runs.get(file)
    if (runs) runs.push(run)
    else this.#runs.set(file, [run])
  }

  log(): void {
    for (const [file, runs] of this.#runs) {
      const threads = new Set(runs.map((run) => run.thread)).size
      log.debug(`restored '${file.name}' in ${file.parts!.length} parts, at most ${partsAtOnce(runs)} at once, on ${threads} worker thread(s)`)
    }
  }
}

/** The largest number of runs on distinct threads that overlap in time. */
export function partsAtOnce(runs: readonly RestoreFileRun[]): number {
  let most = 0
  for (const run of runs) {
    // Overlaps are intervals: the largest set of overlapping ones includes the latest start among them.
    const threads = new Set(runs.filter((other) => other.startUs <= run.startUs && other.endUs > run.startUs).map((other) => other.thread))
    most = Math.max(most, threads.size)
  }
  return most
}
