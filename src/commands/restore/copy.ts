// Restores a backup's files with the worker pool: a file per job, or for a file stored in parts, a part per job
// written at its offset, so a large relation file is shared between workers as it was at backup.

import type { StorageLocation } from '../../storage/location.js'
import { cipherJobInput } from '../../repo/cipher.js'
import { chmodSync, closeSync, constants, fsyncSync, ftruncateSync, openSync, utimesSync } from 'node:fs'
import { Progress } from '../../common/progress.js'
import { codecFor } from '../../io/compress.js'
import type { WorkerPool } from '../../parallel/pool.js'
import type { ManifestFile } from '../../repo/manifest.js'
import type { RestoreFileInput } from './file.js'

export interface RestoreCopyOptions {
  pool: WorkerPool
  files: readonly ManifestFile[]
  repo: StorageLocation
  delta: boolean
  syncEach: boolean
  /** Option direct-io: restored files are written with O_DIRECT where the file system takes it. */
  directIo: boolean
  destinationOf: (file: ManifestFile) => string
  repoPathOf: (file: ManifestFile, extension: string, part?: number) => string
}

interface Job {
  file: ManifestFile
  part?: number
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

  const toInput = (job: Job): RestoreFileInput => {
    const extension = codecFor(job.file.compressType).extension
    const common = {
      destination: options.destinationOf(job.file),
      repo: options.repo,
      ...cipherJobInput(),
      mode: job.file.mode,
      mtimeMs: job.file.mtimeMs,
      delta: options.delta,
      directIo: options.directIo,
      atomic: false,
      // Where the file system can be flushed at once, nothing is fsynced here: the caller flushes it at the end. An
      // fsync per part of a large file while other parts are being written into it cost several times the restore's
      // CPU in system time (measured at scale 100: 4-6 s against 0.7-2 s), as each flushes the whole file and the
      // writers wait on the pages under writeback. Without that, parts are fsynced once their file is complete.
      syncEach: options.syncEach && job.part === undefined,
    }
    if (job.part === undefined) {
      return {
        ...common,
        repoPath: job.file.size === 0 ? '' : options.repoPathOf(job.file, extension),
        size: job.file.size,
        sha256: job.file.sha256,
        ...(job.file.xxh3 ? { xxh3: job.file.xxh3 } : {}),
      }
    }
    const part = job.file.parts![job.part]!
    return {
      ...common,
      repoPath: part.size === 0 ? '' : options.repoPathOf(job.file, extension, job.part),
      size: part.size,
      sha256: part.sha256,
      ...(part.xxh3 ? { xxh3: part.xxh3 } : {}),
      partOffset: job.part * job.file.partSize!,
    }
  }

  const fetchedFiles = new Set<ManifestFile>()
  let fetchedBytes = 0
  const progress = new Progress('restore', jobs.reduce((sum, job) => sum + jobSize(job), 0))
  try {
    // Parts of one file go to one thread at a time while other files wait (see JobPicker).
    const keyOf = (job: Job): string => job.file.name
    await options.pool.runAll(
      'restore.file',
      jobs,
      toInput,
      (job, result) => {
        progress.add(jobSize(job))
        if (result.fetched) {
          fetchedFiles.add(job.file)
          fetchedBytes += jobSize(job)
        }
      },
      { keyOf },
    )
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
