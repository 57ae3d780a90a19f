// Copies a backup's files into the repository with the worker pool, a file (or, for a large file, each part of it)
// per job, and assembles their manifest records.

import type { StorageLocation } from '../../storage/location.js'
import { cipherJobInput } from '../../repo/cipher.js'
import { log } from '../../common/log.js'
import { Progress } from '../../common/progress.js'
import type { CompressType } from '../../io/compress.js'
import type { WorkerPool } from '../../parallel/pool.js'
import type { ManifestFile, ManifestPart } from '../../repo/manifest.js'
import { partsChecksum } from '../../repo/manifest.js'
import { SMALL_FILE } from './file.js'
import type { BackupFileInput, BackupFileOutput } from './file.js'
import type { ScannedFile } from './scan.js'

/** Part size of large files: a 1 GiB relation segment becomes 16 jobs that any worker can take. */
export const PART_SIZE = 64 * 1024 * 1024

export interface BackupCopyOptions {
  pool: WorkerPool
  files: readonly ScannedFile[]
  repo: StorageLocation
  /** Repository folder of this backup. */
  backupPath: string
  compressType: CompressType
  compressLevel: number
  /** Page checks for relation files: set when the cluster has data checksums. */
  pageCheck?: { relSegmentSize: number; blockSize: number; startLsn: string }
  /** fsync every file as it is written; otherwise only large ones, and the caller flushes the file system. */
  syncEach: boolean
}

export interface BackupCopyResult {
  files: ManifestFile[]
  copiedBytes: number
  storedBytes: number
  badPageCount: number
}

interface Job {
  file: ScannedFile
  part: number
  parts: number
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

  const toInput = (job: Job): BackupFileInput => ({
    source: job.file.path,
    offset: job.part * PART_SIZE,
    // The last part (or a single one) reads to the end: a file that grew since it was listed is copied whole.
    ...(job.part < job.parts - 1 ? { length: PART_SIZE } : {}),
    repo: options.repo,
    ...cipherJobInput(),
    repoPath: `${options.backupPath}/${job.file.name}${job.parts === 1 ? '' : `.part-${job.part}`}`,
    compressType: options.compressType,
    compressLevel: options.compressLevel,
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
  })

  const result: BackupCopyResult = { files: [], copiedBytes: 0, storedBytes: 0, badPageCount: 0 }
  const pending = new Map<ScannedFile, { outputs: Array<BackupFileOutput | undefined>; remaining: number }>()
  const progress = new Progress('backup', jobs.reduce((sum, job) => sum + Math.min(jobSize(job), job.file.size), 0))
  try {
    await options.pool.runAll('backup.file', jobs, toInput, (job, output) => {
      progress.add(Math.min(jobSize(job), job.file.size))
      let entry = pending.get(job.file)
      if (!entry) pending.set(job.file, (entry = { outputs: new Array(job.parts), remaining: job.parts }))
      entry.outputs[job.part] = output
      if (--entry.remaining === 0) {
        pending.delete(job.file)
        const record = fileRecord(job.file, entry.outputs as BackupFileOutput[], options.compressType)
        if (!record) return
        result.files.push(record)
        result.copiedBytes += record.size
        result.storedBytes += record.repoSize
        if (record.badPages) {
          result.badPageCount += record.badPages.length
          log.warn(`invalid page checksums found in file '${job.file.path}' at blocks ${record.badPages.join(', ')}`)
        }
      }
    })
  } finally {
    progress.end()
  }
  return result
}

/** The manifest record of a copied file, or undefined when it vanished during the backup. */
function fileRecord(file: ScannedFile, outputs: readonly BackupFileOutput[], compressType: CompressType): ManifestFile | undefined {
  if (outputs.some((output) => !output.copied)) {
    // Dropped by PostgreSQL while the backup ran; WAL replay drops it again. Parts already stored stay unreferenced.
    log.detail(`file '${file.path}' was removed during the backup; WAL replay accounts for it`)
    return undefined
  }
  const badPages = outputs.flatMap((output) => output.badPages)
  const parts: ManifestPart[] = outputs.map((output) => ({
    size: output.size,
    sha256: output.sha256,
    ...(output.xxh3 ? { xxh3: output.xxh3 } : {}),
    repoSize: output.repoSize,
  }))
  // The file ends where its last non-empty part ends (parts may come out short if the file shrank meanwhile).
  const size = parts.reduce((end, part, index) => (part.size > 0 ? index * PART_SIZE + part.size : end), 0)
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
