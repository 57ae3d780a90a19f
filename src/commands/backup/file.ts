// Backs up one part of a file: read -> [page checksum check] -> SHA-256 -> compress -> [encrypt] -> repository, in one
// pass.
// A file up to the manifest's part size is one part; a larger one (a 1 GiB relation segment) is split so several
// workers share it instead of one worker holding up the end of the backup. Runs in a worker thread or inline;
// takes plain data and returns plain data.

import { closeSync, createReadStream, fstatSync, fsync, mkdirSync, openSync, readSync, rmSync } from 'node:fs'
import { promisify } from 'node:util'
import { dirname } from 'node:path'
import { createHash } from 'node:crypto'
import type { Transform } from 'node:stream'
import { errnoCode, fail, WaldenError } from '../../common/errors.js'
import { codecFor } from '../../io/compress.js'
import type { Codec, CompressType } from '../../io/compress.js'
import { CountStream, HashStream, SHA256_EMPTY, Xxh3Stream } from '../../io/hash.js'
import { pagesVerify, PageVerifyStream } from '../../io/page-verify.js'
import { xxh3Create } from '../../io/xxh3.js'
import { Sealer, SealStream } from '../../io/cipher.js'
import { cipherJobUse, cipherSealData } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { PosixStorage, storageError, writeAll } from '../../storage/posix.js'
import { storageOpen } from '../../storage/location.js'
import type { StorageLocation } from '../../storage/location.js'
import { streamInto } from '../../storage/stream-into.js'

/**
 * The line between small and large files. Restore reads a small stored file whole, in memory; backup and restore
 * fsync a large file as soon as it is written and leave small ones to one file-system flush at the end.
 */
export const SMALL_FILE = 1024 * 1024

/** Chunk of a file read, hashed and compressed at a time: a whole number of 8 KiB pages. */
const CHUNK_SIZE = 1024 * 1024

export interface BackupFileInput {
  /** Absolute path of the file in the cluster. */
  source: string
  /** First byte of the part, and its length; no length means to the end of the file. */
  offset: number
  length?: number
  /** The repository written to. */
  repo: StorageLocation
  /** Repository path of the stored copy, without the compression extension. */
  repoPath: string
  compressType: CompressType
  compressLevel: number
  /** Set for relation files of a cluster with data checksums; firstBlock is the block number at offset 0. */
  pageCheck?: { firstBlock: number; blockSize: number; startLsn: string }
  /** fsync the stored file now; false when the caller flushes the repository's file system once at the end. */
  syncEach: boolean
  /** Record XXH3-128 too (default true): for delta restore, so not for WAL. */
  xxh3?: boolean
  /**
   * Compress on libuv's thread pool while this thread reads and hashes the next chunk, where the codec can: for a
   * file copied by a process that has the machine to itself (one synchronous archive-push). Not for workers of a
   * parallel backup, whose threads already keep every core busy.
   */
  overlap?: boolean
  /** The repository's cipher state (repo/cipher.ts), for a job on a worker thread. */
  cipher?: CipherState
}

export interface BackupFileOutput {
  /** False when the file disappeared before it could be read (dropped by PostgreSQL during the backup). */
  copied: boolean
  /** Bytes read: the part's length, or less if the file was truncated meanwhile. */
  size: number
  sha256: string
  /** XXH3-128 of the same bytes, for delta restore; absent where walden's libxxhash binding is not built. */
  xxh3?: string
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

/**
 * Native codecs (lz4-napi, zstd-napi) return each compressed chunk in memory V8 neither counts nor frees until the
 * event loop turns: their finalizers run from it. A loop that never yields kept every chunk of a 64 MiB part alive
 * (measured with lz4 on incompressible data: 3 GB of RSS after 2000 chunks, 199 MB when yielding every 16).
 */
const YIELD_EVERY_BYTES = 16 * 1024 * 1024
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const fsyncAsync = promisify(fsync)

/** A read buffer and the buffer its chunk is compressed into, and the chunk being compressed, not yet written. */
interface Slot {
  buffer: Buffer
  into: Buffer | undefined
  pending?: Promise<Buffer> | undefined
}

// Buffers of finished copies, kept for the next copy on this thread (module state is per worker thread). Each copy
// needs its own (two jobs of one thread interleave at their awaits), but a new 1 MiB buffer per file is memory the
// kernel must fault in and zero again for every file, or segment, and that cost as much as reading the data
// (measured in the background archive-push). A few sets cover the jobs one thread runs at once.
const SPARE_SLOTS_MAX = 4

// Where copyChunks gathers encrypted output before writing it (one per thread: it is always empty again when the
// synchronous store of a chunk returns, so interleaved jobs of one thread never see each other's bytes in it).
const SEAL_STAGE_SIZE = 2 * CHUNK_SIZE
let sealStage: Buffer | undefined
const spareSlots: Slot[] = []

function slotTake(codec: Codec): Slot {
  const spare = spareSlots.pop()
  // Compressed into a reused buffer where the codec can: a new Buffer per chunk is garbage V8 lets grow by tens of
  // MB per thread before collecting it, so peak memory would grow with the size of the backup.
  const intoSize = codec.compressInto && codec.compressBound ? codec.compressBound(CHUNK_SIZE) : 0
  return {
    buffer: spare?.buffer ?? Buffer.allocUnsafe(CHUNK_SIZE),
    into: intoSize === 0 ? undefined : spare?.into && spare.into.length >= intoSize ? spare.into : Buffer.allocUnsafe(intoSize),
  }
}

/** Gives a slot's buffers back for the next copy; only once nothing (the thread pool) works in them any more. */
function slotGive(slot: Slot): void {
  if (spareSlots.length < SPARE_SLOTS_MAX) spareSlots.push({ buffer: slot.buffer, into: slot.into })
}

/**
 * Copies a file or part in 1 MiB chunks with synchronous calls on this thread: read into one buffer, hash,
 * verify pages, compress the chunk as one frame and append it. Standard readers take concatenated frames (zstd,
 * lz4) and gzip members as one stream. Memory stays at a few chunks (see YIELD_EVERY_BYTES) however large the file,
 * and there are no stream hops per chunk. The stored file is written in place; on failure it is removed.
 */
async function copyChunks(input: BackupFileInput, fd: number, length: number, codec: Codec, firstBlock: number, target: string): Promise<BackupFileOutput> {
  // With `overlap`, two chunks in flight: the thread pool compresses one while this thread reads and hashes the next.
  const overlap = input.overlap === true && codec.compressIntoAsync !== undefined
  const slots = Array.from({ length: overlap ? 2 : 1 }, () => slotTake(codec))
  const hash = createHash('sha256')
  const fast = input.xxh3 === false ? undefined : xxh3Create()
  const badPages: number[] = []
  const startLsn = input.pageCheck ? BigInt(input.pageCheck.startLsn) : 0n
  let out: number | undefined
  let read = 0
  let stored = 0
  let turn = 0
  // Compressed, then encrypted (compressing ciphertext gains nothing). The Sealer emits fresh ciphertext only, so the
  // reused `into` buffers are free again when it returns.
  const seal = cipherSealData()
  const sealer = seal ? new Sealer(seal) : undefined
  // The Sealer hands out a 64 KiB body and a 16-byte tag at a time: gathered here and written once per chunk, as
  // a write call each cost more system time than the encryption itself.
  let staged = 0
  const flush = (): void => {
    if (staged > 0) writeAll(out!, sealStage!.subarray(0, staged))
    staged = 0
  }
  const writeOut = (data: Buffer): void => {
    const stage = (sealStage ??= Buffer.allocUnsafe(SEAL_STAGE_SIZE))
    if (staged + data.length > stage.length) flush()
    if (data.length > stage.length) writeAll(out!, data)
    else {
      data.copy(stage, staged)
      staged += data.length
    }
  }
  const store = (compressed: Buffer): void => {
    if (sealer) {
      sealer.write(compressed, writeOut)
      flush()
    } else {
      writeAll(out!, compressed)
      stored += compressed.length
    }
  }
  // Writes the slot's compressed chunk, if it has one. Slots take turns, so chunks are written in order.
  const drain = async (slot: Slot): Promise<void> => {
    if (!slot.pending) return
    const compressed = await slot.pending
    slot.pending = undefined
    store(compressed)
  }
  try {
    mkdirSync(dirname(target), { recursive: true, mode: 0o750 })
    try {
      out = openSync(target, 'w', 0o640)
    } catch (error) {
      throw storageError('FileOpen', 'unable to open for write', target, error)
    }
    while (read < length) {
      const slot = slots[turn++ % slots.length]!
      await drain(slot)
      const bytes = readSync(fd, slot.buffer, 0, Math.min(CHUNK_SIZE, length - read), input.offset + read)
      if (bytes === 0) break // truncated meanwhile
      const chunk = slot.buffer.subarray(0, bytes)
      // Started first, so the thread pool works while this thread hashes.
      if (overlap) slot.pending = codec.compressIntoAsync!(chunk, input.compressLevel, slot.into!).then((size) => slot.into!.subarray(0, size))
      hash.update(chunk)
      fast?.update(chunk)
      if (input.pageCheck) {
        const chunkFirstBlock = firstBlock + Math.floor(read / input.pageCheck.blockSize)
        badPages.push(...pagesVerify(chunk, input.pageCheck.blockSize, chunkFirstBlock, startLsn))
      }
      if (!overlap) {
        const compressed = slot.into ? slot.into.subarray(0, codec.compressInto!(chunk, input.compressLevel, slot.into)) : codec.compressSync!(chunk, input.compressLevel)
        store(compressed)
      }
      read += bytes
      if (!overlap && read % YIELD_EVERY_BYTES === 0) await yieldToEventLoop()
    }
    for (let left = slots.length; left > 0; left--) await drain(slots[turn++ % slots.length]!)
    if (sealer) {
      sealer.end(writeOut)
      flush()
      stored = sealer.written
    }
    // On the thread pool: another job of this thread (the background archive-push runs two per thread) computes
    // while this one waits for the disk.
    if (input.syncEach) await fsyncAsync(out)
    const closing = out
    out = undefined
    closeSync(closing)
  } catch (error) {
    // The thread pool may still be compressing into our buffers: let it finish before they go.
    await Promise.allSettled(slots.map((slot) => slot.pending))
    // Keep the original error: clean-up failures must not hide it.
    try {
      if (out !== undefined) closeSync(out)
    } catch {
      // already failed
    }
    rmSync(target, { force: true })
    if (error instanceof WaldenError) throw error
    fail('FileWrite', `unable to back up '${input.source}' to '${target}': ${(error as Error).message}`, { cause: error })
  } finally {
    closeSync(fd)
    // Drained, or settled above: the thread pool is done with every slot's buffers.
    for (const slot of slots) slotGive(slot)
  }
  return {
    copied: true,
    size: read,
    sha256: hash.digest('hex'),
    ...(fast ? { xxh3: fast.digest() } : {}),
    repoSize: stored,
    badPages: pagesRecheck(input, badPages, firstBlock),
  }
}

export async function backupFile(input: BackupFileInput): Promise<BackupFileOutput> {
  cipherJobUse(input.cipher)
  let fd: number
  try {
    fd = openSync(input.source, 'r')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return MISSING
    fail('FileOpen', `unable to open '${input.source}' for read: ${(error as Error).message}`)
  }
  let available: number
  let codec: Codec
  try {
    available = Math.max(0, fstatSync(fd).size - input.offset)
    codec = codecFor(input.compressType)
  } catch (error) {
    closeSync(fd)
    throw error
  }
  const length = Math.min(input.length ?? available, available)
  // An empty file (or part) is recorded but not stored.
  if (length === 0) {
    closeSync(fd)
    return { copied: true, size: 0, sha256: SHA256_EMPTY, repoSize: 0, badPages: [] }
  }
  const target = `${input.repoPath}${codec.extension}`
  const firstBlock = input.pageCheck ? input.pageCheck.firstBlock + Math.floor(input.offset / input.pageCheck.blockSize) : 0
  const repo = await storageOpen(input.repo)

  // The synchronous path writes the stored file directly, so only into a folder.
  if (codec.compressSync && repo instanceof PosixStorage) return copyChunks(input, fd, length, codec, firstBlock, repo.describe(target))

  // The writer first: if it cannot be opened, the source descriptor is closed here rather than leaked.
  let writer
  try {
    writer = await repo.openWrite(target, { atomic: false, sync: input.syncEach })
  } catch (error) {
    closeSync(fd)
    throw error
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
  const fast = new Xxh3Stream()
  const seal = cipherSealData()
  const stages: Transform[] = [...(pages ? [pages] : []), hash, fast, codec.compress(input.compressLevel), ...(seal ? [new SealStream(seal)] : []), count]
  await streamInto(source, stages, writer)
  const xxh3 = fast.digest()
  return {
    copied: true,
    size: hash.size,
    sha256: hash.digest(),
    ...(xxh3 ? { xxh3 } : {}),
    repoSize: count.size,
    badPages: pagesRecheck(input, pages?.badPages ?? [], firstBlock),
  }
}
