// Backs up one part of a file: read -> [page checksum check] -> SHA-256 -> compress -> repository, in one pass.
// A file up to the manifest's part size is one part; a larger one (a 1 GiB relation segment) is split so several
// workers share it instead of one worker holding up the end of the backup. Runs in a worker thread or inline;
// takes plain data and returns plain data.

import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs'
import { createHash } from 'node:crypto'
import type { Transform } from 'node:stream'
import { errnoCode, fail } from '../../common/errors.js'
import { codecFor } from '../../io/compress.js'
import type { CompressType } from '../../io/compress.js'
import { compressBuffer } from '../../io/buffer-codec.js'
import { CountStream, HashStream, SHA256_EMPTY } from '../../io/hash.js'
import { pagesVerify, PageVerifyStream } from '../../io/page-verify.js'
import { posixStorage } from '../../storage/posix.js'
import { streamInto } from '../../storage/stream-into.js'

/** Files up to this size are read whole and written with synchronous calls: most of a cluster's files are small,
 * and for them the round trips of streaming and asynchronous I/O cost more than the copy itself. */
export const SMALL_FILE = 1024 * 1024

export interface BackupFileInput {
  /** Absolute path of the file in the cluster. */
  source: string
  /** First byte of the part, and its length; no length means to the end of the file. */
  offset: number
  length?: number
  repoRoot: string
  /** Repository path of the stored copy, without the compression extension. */
  repoPath: string
  compressType: CompressType
  compressLevel: number
  /** Set for relation files of a cluster with data checksums; firstBlock is the block number at offset 0. */
  pageCheck?: { firstBlock: number; blockSize: number; startLsn: string }
  /** fsync the stored file now; false when the caller flushes the repository's file system once at the end. */
  syncEach: boolean
}

export interface BackupFileOutput {
  /** False when the file disappeared before it could be read (dropped by PostgreSQL during the backup). */
  copied: boolean
  /** Bytes read: the part's length, or less if the file was truncated meanwhile. */
  size: number
  sha256: string
  repoSize: number
  badPages: number[]
}

const MISSING: BackupFileOutput = { copied: false, size: 0, sha256: SHA256_EMPTY, repoSize: 0, badPages: [] }

/**
 * Reads each failing page again and keeps only those that still fail: a page read while PostgreSQL was writing it
 * can look torn once and be whole a moment later. What still fails is reported, and the next backup copies the file
 * again.
 */
function pagesRecheck(input: BackupFileInput, badPages: readonly number[], firstBlock: number): number[] {
  if (badPages.length === 0 || !input.pageCheck) return []
  const { blockSize, startLsn } = input.pageCheck
  const page = Buffer.allocUnsafe(blockSize)
  const stillBad: number[] = []
  let fd: number
  try {
    fd = openSync(input.source, 'r')
  } catch {
    return [] // dropped meanwhile: WAL replay accounts for it
  }
  try {
    for (const block of badPages) {
      const position = input.offset + (block - firstBlock) * blockSize
      if (readSync(fd, page, 0, blockSize, position) < blockSize) continue // truncated meanwhile
      stillBad.push(...pagesVerify(page, blockSize, block, BigInt(startLsn)))
    }
  } finally {
    closeSync(fd)
  }
  return stillBad
}

export async function backupFile(input: BackupFileInput): Promise<BackupFileOutput> {
  let fd: number
  try {
    fd = openSync(input.source, 'r')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return MISSING
    fail('FileOpen', `unable to open '${input.source}' for read: ${(error as Error).message}`)
  }
  const available = Math.max(0, fstatSync(fd).size - input.offset)
  const length = Math.min(input.length ?? available, available)
  // An empty file (or part) is recorded but not stored.
  if (length === 0) {
    closeSync(fd)
    return { copied: true, size: 0, sha256: SHA256_EMPTY, repoSize: 0, badPages: [] }
  }
  const codec = codecFor(input.compressType)
  const target = `${input.repoPath}${codec.extension}`
  const firstBlock = input.pageCheck ? input.pageCheck.firstBlock + Math.floor(input.offset / input.pageCheck.blockSize) : 0
  const repo = posixStorage(input.repoRoot)

  if (length <= SMALL_FILE) {
    const data = Buffer.allocUnsafe(length)
    let read = 0
    try {
      while (read < length) {
        const bytes = readSync(fd, data, read, length - read, input.offset + read)
        if (bytes === 0) break
        read += bytes
      }
    } finally {
      closeSync(fd)
    }
    const content = data.subarray(0, read)
    const badPages = input.pageCheck
      ? pagesVerify(content, input.pageCheck.blockSize, firstBlock, BigInt(input.pageCheck.startLsn))
      : []
    const compressed = await compressBuffer(codec, input.compressLevel, content)
    // In place, not atomic: the backup becomes valid only when its manifest is saved, after everything is durable.
    await repo.write(target, compressed, { atomic: false, sync: input.syncEach })
    return {
      copied: true,
      size: read,
      sha256: createHash('sha256').update(content).digest('hex'),
      repoSize: compressed.length,
      badPages: pagesRecheck(input, badPages, firstBlock),
    }
  }

  const source = createReadStream(input.source, {
    fd,
    start: input.offset,
    end: input.offset + length - 1,
    highWaterMark: 1024 * 1024,
  })
  const hash = new HashStream()
  const count = new CountStream()
  const pages = input.pageCheck
    ? new PageVerifyStream(input.pageCheck.blockSize, firstBlock, BigInt(input.pageCheck.startLsn))
    : undefined
  const stages: Transform[] = [...(pages ? [pages] : []), hash, codec.compress(input.compressLevel), count]
  await streamInto(source, stages, await repo.openWrite(target, { atomic: false }))
  return {
    copied: true,
    size: hash.size,
    sha256: hash.digest(),
    repoSize: count.size,
    badPages: pagesRecheck(input, pages?.badPages ?? [], firstBlock),
  }
}
