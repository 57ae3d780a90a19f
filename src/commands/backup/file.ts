// Backs up one part of a file: read -> [page checksum check] -> SHA-256 -> compress -> [encrypt] -> repository, in one
// pass, into one repository or several at once (fan-out: the file is read, hashed and compressed once, and the
// compressed bytes are sealed with each repository's own cipher and written to each).
// A file up to the manifest's part size is one part; a larger one (a 1 GiB relation segment) is split so several
// workers share it instead of one worker holding up the end of the backup. Runs in a worker thread or inline;
// takes plain data and returns plain data.

import { closeSync, createReadStream, fstatSync, fsync, mkdirSync, openSync, readSync, rmSync } from 'node:fs'
import { promisify } from 'node:util'
import { dirname } from 'node:path'
import { createHash } from 'node:crypto'
import { PassThrough, Writable } from 'node:stream'
import type { Readable } from 'node:stream'
import type { Transform } from 'node:stream'
import { errnoCode, fail, WaldenError } from '../../common/errors.js'
import type { ErrorKind } from '../../common/errors.js'
import { codecFor } from '../../io/compress.js'
import type { Codec, CompressType } from '../../io/compress.js'
import { CountStream, HashStream, SHA256_EMPTY, Xxh3Stream } from '../../io/hash.js'
import { pagesVerify, PageVerifyStream } from '../../io/page-verify.js'
import { xxh3Create } from '../../io/xxh3.js'
import { Sealer, SealStream } from '../../io/cipher.js'
import type { SealKey } from '../../io/cipher.js'
import { cipherJobUse, cipherSealData } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { PosixStorage, storageError, writeAll } from '../../storage/posix.js'
import { storageOpen } from '../../storage/location.js'
import type { StorageLocation } from '../../storage/location.js'
import type { Storage } from '../../storage/storage.js'
import { streamInto } from '../../storage/stream-into.js'
import type { IncomingStream } from '../../protocol/connection.js'
import { pgHostClient } from '../pg-host-ops.js'
import type { PgRemote } from '../pg-host-ops.js'

/**
 * The line between small and large files. Restore reads a small stored file whole, in memory; backup and restore
 * fsync a large file as soon as it is written and leave small ones to one file-system flush at the end.
 */
export const SMALL_FILE = 1024 * 1024

/** Chunk of a file read, hashed and compressed at a time: a whole number of 8 KiB pages. */
const CHUNK_SIZE = 1024 * 1024

/** Where a copy goes: one repository, the file's path in it, and that repository's cipher state. */
export interface BackupFileTarget {
  /** The repository written to. */
  repo: StorageLocation
  /** Repository path of the stored copy, without the compression extension. */
  repoPath: string
  /** The repository's cipher state (repo/cipher.ts), for a job on a worker thread. */
  cipher?: CipherState
}

/** What is read and how it is compressed: the same for every repository a file goes to. */
export interface BackupFileSource {
  /** Absolute path of the file in the cluster. */
  source: string
  /** First byte of the part, and its length; no length means to the end of the file. */
  offset: number
  length?: number
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
  /**
   * Part buffers each upload to S3 may hold (default 1; WriteOptions.partBuffers): 2 only where one copy runs at a
   * time (a backup with process-max 1), so the next part fills while the last is sent.
   */
  partBuffers?: 1 | 2
  /**
   * One large upload to S3 at a time on this thread (see uploadTurn): for a backup, whose threads each run two jobs
   * of up to 64 MiB. archive-push leaves it off: its segments are one part at most, and its jobs overlap their PUTs.
   */
  uploadTurns?: boolean
  /**
   * The database host the source is on (pgN-host): the file is read, checked, hashed and compressed there, by the
   * `walden remote` of this thread's session, and only the compressed bytes cross the network.
   */
  remote?: PgRemote
  /** Bytes expected (the file's or part's size when it was listed): for a source on another host, known before it is read. */
  expectedSize?: number
}

/** One file into one repository; a failure to write it fails the job. */
export interface BackupFileInput extends BackupFileSource, BackupFileTarget {}

/**
 * One file into several repositories. Each target names its cipher state explicitly (cipherJobStateOf), as the
 * job switches between them. A repository that cannot be written does not stop the others: its failure is reported
 * in the output, and the job fails only when the source cannot be read.
 */
export interface BackupFanOutInput extends BackupFileSource {
  targets: Array<BackupFileTarget & { cipher: CipherState }>
}

/** A WaldenError as plain data, to cross the thread boundary inside a result. */
export interface ErrorData {
  kind: ErrorKind
  message: string
  hint?: string
}

/** What one target of a fan-out got: the bytes it stores, or why it could not be written. */
export type BackupTargetResult = { repoSize: number } | { error: ErrorData }

/** What was read: the same for every repository. */
export interface BackupFileRead {
  /** False when the file disappeared before it could be read (dropped by PostgreSQL during the backup). */
  copied: boolean
  /** Bytes read: the part's length, or less if the file was truncated meanwhile. */
  size: number
  sha256: string
  /** XXH3-128 of the same bytes, for delta restore; absent where walden's libxxhash binding is not built. */
  xxh3?: string
  badPages: number[]
}

export interface BackupFileOutput extends BackupFileRead {
  repoSize: number
}

export interface BackupFanOutOutput extends BackupFileRead {
  /** Per target, in the order of the input's targets. */
  stored: BackupTargetResult[]
}

const MISSING: BackupFileRead = { copied: false, size: 0, sha256: SHA256_EMPTY, badPages: [] }

/**
 * Reads each failing page again and keeps only those that still fail: a page read while PostgreSQL was writing it
 * can look torn once and be whole a moment later. What still fails is reported, and the next backup copies the file
 * again.
 */
function pagesRecheck(input: BackupFileSource, badPages: readonly number[], firstBlock: number): number[] {
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

// Where a copy gathers encrypted output for a writer (an S3 upload), one per copy: the shared stage above cannot be
// used, as another job of this thread runs while this one waits for its write. Kept for the next copies like slots.
// The Sealer is fed a cipher chunk's worth at a time, so a stage holds one chunk's ciphertext and tag (and the
// header): 128 KiB instead of a whole compressed chunk's 2 MiB, per copy, of the 256 MB a backup to S3 may use.
const WRITER_SEAL_PIECE = 64 * 1024
const WRITER_STAGE_SIZE = 2 * WRITER_SEAL_PIECE
const spareWriterStages: Buffer[] = []

function slotTake(codec: Codec, length: number): Slot {
  const spare = spareSlots.pop()
  // A file smaller than a chunk, with no spare slot to reuse, gets buffers of its own size: a backup to S3 keeps many
  // small copies in flight per thread (backup/copy.ts), and a full-size slot each would be megabytes per copy
  // waiting on the network. Such a slot is not kept for the next copy.
  const size = spare ? CHUNK_SIZE : Math.max(1, Math.min(CHUNK_SIZE, length))
  // Compressed into a reused buffer where the codec can: a new Buffer per chunk is garbage V8 lets grow by tens of
  // MB per thread before collecting it, so peak memory would grow with the size of the backup.
  const intoSize = codec.compressInto && codec.compressBound ? codec.compressBound(size) : 0
  return {
    buffer: spare?.buffer ?? Buffer.allocUnsafe(size),
    into: intoSize === 0 ? undefined : spare?.into && spare.into.length >= intoSize ? spare.into : Buffer.allocUnsafe(intoSize),
  }
}

/** Gives a slot's buffers back for the next copy; only once nothing (the thread pool) works in them any more. */
function slotGive(slot: Slot): void {
  if (slot.buffer.length === CHUNK_SIZE && spareSlots.length < SPARE_SLOTS_MAX) spareSlots.push({ buffer: slot.buffer, into: slot.into })
}

/** One repository a copy is written to, and how that went. */
interface Sink {
  /** Undefined when the repository could not even be opened (then `error` says why). */
  storage: Storage | undefined
  /** Storage path of the stored copy, with the compression extension. */
  path: string
  /** Where that is, for messages (for a folder: the absolute path the synchronous copy opens). */
  where: string
  seal: SealKey | undefined
  /** Bytes stored (after compression and encryption). */
  stored: number
  error?: WaldenError
  /** copyChunks: the open file of a folder, or the storage's writer for other storage (an S3 upload). */
  fd?: number
  writer?: Writable
  sealer?: Sealer
}

/** Records why a repository could not be written; its partial file goes (the caller's clean-up for posix files). */
function sinkFail(source: string, sink: Sink, error: unknown): void {
  if (sink.error) return
  const target = sink.where
  sink.error =
    error instanceof WaldenError
      ? error
      : new WaldenError('FileWrite', `unable to back up '${source}' to '${target}': ${(error as Error).message}`, { cause: error })
  if (sink.fd !== undefined) {
    try {
      closeSync(sink.fd)
    } catch {
      // already failed
    }
    sink.fd = undefined
    rmSync(target, { force: true })
  }
  // A writer destroyed before it finishes leaves nothing behind (an S3 upload is aborted).
  sink.writer?.destroy()
  sink.writer = undefined
}

const live = (sinks: readonly Sink[]): Sink[] => sinks.filter((sink) => sink.error === undefined)

/**
 * Copies a file or part in 1 MiB chunks with synchronous calls on this thread: read into one buffer, hash,
 * verify pages, compress the chunk as one frame and append it to every repository's file (each sealed by its own
 * Sealer). Standard readers take concatenated frames (zstd, lz4) and gzip members as one stream. Memory stays at a
 * few chunks (see YIELD_EVERY_BYTES) however large the file, and there are no stream hops per chunk. The stored files
 * are written in place; a repository whose write fails has its file removed and drops out, the others go on.
 *
 * A folder is written with synchronous calls; other storage (S3) through its writer, each chunk awaited before its
 * buffer is reused, so the writer copies it into a part and nothing else holds it (the stream path allocated new
 * buffers at every stage, which worker threads kept alive by the hundred MB before collecting them).
 */
async function copyChunks(input: BackupFileSource, fd: number, length: number, codec: Codec, firstBlock: number, sinks: readonly Sink[]): Promise<BackupFileRead> {
  // One large upload at a time on this thread (see uploadTurn); small files, whose buffers are small, go freely.
  const large = input.uploadTurns === true && length > SMALL_FILE
  const release = large && live(sinks).some((sink) => !(sink.storage instanceof PosixStorage)) ? await uploadTurn() : undefined
  try {
    return await copyChunksNow(input, fd, length, codec, firstBlock, sinks)
  } finally {
    release?.()
  }
}

// The turn of large uploads on this thread. A worker runs two jobs at once (pool.ts), and each upload of a large file
// holds a part buffer (16 MiB by default) until its last part is sent: two per worker at process-max 4 put the backup
// over 256 MB. One at a time, the other job copies small files meanwhile, or waits; the other threads keep the cores
// busy while this one waits for its part to be stored. A job waits for the turn before it opens any writer, holding
// nothing, so no two jobs wait for each other.
let uploadQueue: Promise<void> = Promise.resolve()
function uploadTurn(): Promise<() => void> {
  let release!: () => void
  const done = new Promise<void>((resolve) => (release = resolve))
  const before = uploadQueue
  uploadQueue = before.then(() => done)
  return before.then(() => release)
}

/**
 * The repositories' end of a copy: each compressed chunk sealed with each repository's cipher and appended to its
 * file (a folder: synchronous writes, sealed output gathered in the thread's stage) or handed to its writer (S3, a
 * backup host), awaited before the chunk's buffer is reused. A repository that fails drops out; the others go on.
 */
class SinkWriter {
  readonly #input: BackupFileSource
  readonly #sinks: readonly Sink[]
  /** Bytes expected, for the size hint of uploads. */
  readonly #length: number
  // The Sealer hands out a 64 KiB body and a 16-byte tag at a time: gathered here and written once per chunk, as
  // a write call each cost more system time than the encryption itself. One repository at a time: it is flushed
  // before the next repository's turn.
  #staged = 0
  // A writer's sealed output, gathered while the Sealer runs and written with one await after it returns. The
  // Sealer's pieces cannot be kept as they are: with native/cipher each chunk's ciphertext is a view of one output
  // buffer it overwrites with the next chunk (and gives back to its pool at end(), for another job of this thread to
  // fill), so pieces kept for a later write all came out as the last chunk's bytes: a stored file that fails
  // authentication at chunk 0.
  #writerStage: Buffer | undefined
  #gathered = 0

  constructor(input: BackupFileSource, sinks: readonly Sink[], length: number) {
    this.#input = input
    this.#sinks = sinks
    this.#length = length
  }

  /** Whether any repository is still being written. */
  get live(): boolean {
    return live(this.#sinks).length > 0
  }

  /** Opens every repository's file or writer; one that cannot be opened drops out. */
  async open(): Promise<void> {
    const input = this.#input
    for (const sink of live(this.#sinks)) {
      const target = sink.where
      if (!(sink.storage instanceof PosixStorage)) {
        try {
          // A writer given with the sink (the network, when a database host sends what it read) is open already.
          sink.writer ??= await sink.storage!.openWrite(sink.path, {
            atomic: false,
            sync: input.syncEach,
            // Compressed and sealed, the stored copy is at most a little larger than what is read.
            sizeHint: this.#length + (this.#length >> 6) + 1024,
            ...(input.partBuffers !== undefined ? { partBuffers: input.partBuffers } : {}),
          })
          // Failures come back through the write callbacks and end(); the event only must not go unhandled.
          sink.writer.on('error', () => undefined)
          if (sink.seal) sink.sealer = new Sealer(sink.seal)
        } catch (error) {
          sinkFail(input.source, sink, error)
        }
        continue
      }
      try {
        mkdirSync(dirname(target), { recursive: true, mode: 0o750 })
        sink.fd = openSync(target, 'w', 0o640)
        if (sink.seal) sink.sealer = new Sealer(sink.seal)
      } catch (error) {
        sinkFail(input.source, sink, storageError('FileOpen', 'unable to open for write', target, error))
      }
    }
  }

  #flush(sink: Sink): void {
    if (this.#staged > 0) writeAll(sink.fd!, sealStage!.subarray(0, this.#staged))
    this.#staged = 0
  }

  #writeOut(sink: Sink, data: Buffer): void {
    const stage = (sealStage ??= Buffer.allocUnsafe(SEAL_STAGE_SIZE))
    if (this.#staged + data.length > stage.length) this.#flush(sink)
    if (data.length > stage.length) writeAll(sink.fd!, data)
    else {
      data.copy(stage, this.#staged)
      this.#staged += data.length
    }
  }

  #gather(data: Buffer): void {
    let stage = (this.#writerStage ??= spareWriterStages.pop() ?? Buffer.allocUnsafe(WRITER_STAGE_SIZE))
    if (this.#gathered + data.length > stage.length) {
      // Not with the default cipher chunk of 64 KiB; kept correct for any chunk size.
      stage = Buffer.allocUnsafe(Math.max(2 * stage.length, this.#gathered + data.length))
      this.#writerStage!.copy(stage, 0, 0, this.#gathered)
      this.#writerStage = stage
    }
    data.copy(stage, this.#gathered)
    this.#gathered += data.length
  }

  async #writeGathered(writer: Writable): Promise<void> {
    const length = this.#gathered
    this.#gathered = 0
    if (length > 0) await writeTo(writer, this.#writerStage!.subarray(0, length))
  }

  /**
   * Compressed once, then encrypted per repository (compressing ciphertext gains nothing). What the Sealer emits is
   * copied (to a file, the shared stage or the writer's stage) before it returns, so the caller's buffer is free again
   * when this resolves.
   */
  async store(compressed: Buffer): Promise<void> {
    const gather = (data: Buffer): void => this.#gather(data)
    for (const sink of live(this.#sinks)) {
      this.#staged = 0
      try {
        if (sink.writer) {
          // Awaited: the writer has copied the bytes when it calls back, and the buffer may be reused.
          if (sink.sealer) {
            for (let offset = 0; offset < compressed.length; offset += WRITER_SEAL_PIECE) {
              this.#gathered = 0
              sink.sealer.write(compressed.subarray(offset, offset + WRITER_SEAL_PIECE), gather)
              await this.#writeGathered(sink.writer)
            }
          } else {
            await writeTo(sink.writer, compressed)
            sink.stored += compressed.length
          }
        } else if (sink.sealer) {
          sink.sealer.write(compressed, (data) => this.#writeOut(sink, data))
          this.#flush(sink)
        } else {
          writeAll(sink.fd!, compressed)
          sink.stored += compressed.length
        }
      } catch (error) {
        sinkFail(this.#input.source, sink, error)
      }
    }
  }

  /** Ends every repository's copy: the Sealer's last block, the writer's end (an upload's last part), the fsync. */
  async finish(): Promise<void> {
    const gather = (data: Buffer): void => this.#gather(data)
    for (const sink of live(this.#sinks)) {
      try {
        if (sink.writer) {
          if (sink.sealer) {
            this.#gathered = 0
            sink.sealer.end(gather)
            await this.#writeGathered(sink.writer)
            sink.stored = sink.sealer.written
          }
          await writerEnd(sink.writer)
          sink.writer = undefined
          continue
        }
        if (sink.sealer) {
          this.#staged = 0
          sink.sealer.end((data) => this.#writeOut(sink, data))
          this.#flush(sink)
          sink.stored = sink.sealer.written
        }
        // On the thread pool: another job of this thread (the background archive-push runs two per thread) computes
        // while this one waits for the disk.
        if (this.#input.syncEach) await fsyncAsync(sink.fd!)
        const closing = sink.fd!
        sink.fd = undefined
        closeSync(closing)
      } catch (error) {
        sinkFail(this.#input.source, sink, error)
      }
    }
  }

  /** After a failure: no repository keeps a partial copy. Clean-up failures must not hide the original error. */
  async abort(): Promise<void> {
    for (const sink of this.#sinks) {
      if (sink.writer) await writerDestroy(sink.writer)
      sink.writer = undefined
      if (sink.fd === undefined) continue
      try {
        closeSync(sink.fd)
      } catch {
        // already failed
      }
      sink.fd = undefined
      rmSync(sink.where, { force: true })
    }
  }

  /** Gives the writer's stage back for the next copy; only once every writer has ended or been destroyed. */
  release(): void {
    if (this.#writerStage && spareWriterStages.length < SPARE_SLOTS_MAX) spareWriterStages.push(this.#writerStage)
    this.#writerStage = undefined
  }
}

async function copyChunksNow(input: BackupFileSource, fd: number, length: number, codec: Codec, firstBlock: number, sinks: readonly Sink[]): Promise<BackupFileRead> {
  // With `overlap`, two chunks in flight: the thread pool compresses one while this thread reads and hashes the next.
  const overlap = input.overlap === true && codec.compressIntoAsync !== undefined
  // A file of one chunk or less has nothing to overlap.
  const slots = Array.from({ length: overlap && length > CHUNK_SIZE ? 2 : 1 }, () => slotTake(codec, length))
  const hash = createHash('sha256')
  const fast = input.xxh3 === false ? undefined : xxh3Create()
  const badPages: number[] = []
  const startLsn = input.pageCheck ? BigInt(input.pageCheck.startLsn) : 0n
  const out = new SinkWriter(input, sinks, length)
  let read = 0
  let turn = 0
  // Writes the slot's compressed chunk, if it has one. Slots take turns, so chunks are written in order.
  const drain = async (slot: Slot): Promise<void> => {
    if (!slot.pending) return
    const compressed = await slot.pending
    slot.pending = undefined
    await out.store(compressed)
  }
  try {
    await out.open()
    while (read < length && out.live) {
      const slot = slots[turn++ % slots.length]!
      await drain(slot)
      let bytes: number
      try {
        bytes = readSync(fd, slot.buffer, 0, Math.min(CHUNK_SIZE, length - read), input.offset + read)
      } catch (error) {
        throw storageError('FileRead', 'unable to read', input.source, error)
      }
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
        await out.store(compressed)
      }
      read += bytes
      if (!overlap && read % YIELD_EVERY_BYTES === 0) await yieldToEventLoop()
    }
    for (let left = slots.length; left > 0; left--) await drain(slots[turn++ % slots.length]!)
    await out.finish()
  } catch (error) {
    // The thread pool may still be compressing into our buffers: let it finish before they go.
    await Promise.allSettled(slots.map((slot) => slot.pending))
    await out.abort()
    if (error instanceof WaldenError) throw error
    fail('FileRead', `unable to back up '${input.source}': ${(error as Error).message}`, { cause: error })
  } finally {
    closeSync(fd)
    // Drained, or settled above: the thread pool is done with every slot's buffers. Every writer has ended or been
    // destroyed, so none reads the writer's stage any more.
    for (const slot of slots) slotGive(slot)
    out.release()
  }
  return {
    copied: true,
    size: read,
    sha256: hash.digest('hex'),
    ...(fast ? { xxh3: fast.digest() } : {}),
    badPages: pagesRecheck(input, badPages, firstBlock),
  }
}

/** Writes a chunk and resolves when the writer has taken it (the caller may then reuse the chunk's buffer). */
function writeTo(writer: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    writer.write(data, (error) => (error ? reject(error) : resolve()))
  })
}

/** Ends a writer and resolves when it has finished (for S3: the object is stored). */
function writerEnd(writer: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    writer.end((error?: Error | null) => (error ? reject(error) : resolve()))
  })
}

/** Destroys a writer and resolves once it has cleaned up (for S3: the upload is aborted). */
function writerDestroy(writer: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (writer.closed) return resolve()
    writer.once('close', () => resolve())
    writer.destroy()
  })
}

/** One repository's end of the stream path: [seal ->] count -> its storage writer. */
interface Branch {
  sink: Sink
  inlet: PassThrough
  /** Settles (never rejects) once the writer has finished or failed and cleaned up. */
  done: Promise<void>
}

/**
 * Hands every compressed chunk to each repository's branch, waiting for the slowest (so memory stays bounded). A
 * branch that fails drops out and the others go on; only when none is left does the copy stop, with `allFailed`.
 */
class Tee extends Writable {
  readonly #branches: readonly Branch[]
  /** The error this stream fails with when no repository is left: how the caller tells that from a read error. */
  allFailed: WaldenError | undefined

  constructor(branches: readonly Branch[]) {
    super({ highWaterMark: 1024 * 1024 })
    this.#branches = branches
  }

  #live(): Branch[] {
    return this.#branches.filter((branch) => branch.sink.error === undefined)
  }

  #noneLeft(): WaldenError | undefined {
    if (this.#live().length > 0) return undefined
    return (this.allFailed = this.#branches[0]!.sink.error!)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const waits: Promise<void>[] = []
    for (const branch of this.#live()) {
      if (branch.inlet.write(chunk)) continue
      waits.push(
        new Promise<void>((resolve) => {
          branch.inlet.once('drain', resolve)
          void branch.done.then(resolve)
        }),
      )
    }
    if (waits.length === 0) callback(this.#noneLeft())
    else void Promise.all(waits).then(() => callback(this.#noneLeft()))
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const branch of this.#live()) branch.inlet.end()
    void Promise.all(this.#branches.map((branch) => branch.done)).then(() => callback(this.#noneLeft()))
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The source failed (or the copy was aborted): every branch stops, and its writer removes its partial file.
    for (const branch of this.#branches) if (!branch.inlet.destroyed) branch.inlet.destroy(error ?? new Error('copy aborted'))
    void Promise.all(this.#branches.map((branch) => branch.done)).then(() => callback(error))
  }
}

/** The copy through streams, for storage other than a folder or codecs without a synchronous compressor. */
async function streamCopy(input: BackupFileSource, fd: number, length: number, codec: Codec, firstBlock: number, sinks: readonly Sink[]): Promise<BackupFileRead> {
  // The writers first: if none can be opened, the source descriptor is closed here rather than leaked.
  const branches: Branch[] = []
  for (const sink of live(sinks)) {
    let writer: Writable
    try {
      writer = sink.writer ?? (await sink.storage!.openWrite(sink.path, { atomic: false, sync: input.syncEach }))
    } catch (error) {
      sinkFail(input.source, sink, error)
      continue
    }
    const inlet = new PassThrough({ highWaterMark: 1024 * 1024 })
    const count = new CountStream()
    const done = streamInto(inlet, [...(sink.seal ? [new SealStream(sink.seal)] : []), count], writer).then(
      () => {
        sink.stored = count.size
      },
      (error: unknown) => sinkFail(input.source, sink, error),
    )
    branches.push({ sink, inlet, done })
  }
  if (branches.length === 0) {
    closeSync(fd)
    return { ...MISSING, copied: true }
  }
  const source = createReadStream(input.source, {
    fd,
    start: input.offset,
    end: input.offset + length - 1,
    highWaterMark: 1024 * 1024,
  })
  const hash = new HashStream()
  const pages = input.pageCheck
    ? new PageVerifyStream(input.pageCheck.blockSize, firstBlock, BigInt(input.pageCheck.startLsn))
    : undefined
  const fast = new Xxh3Stream()
  const tee = new Tee(branches)
  const stages: Transform[] = [...(pages ? [pages] : []), hash, fast, codec.compress(input.compressLevel)]
  try {
    await streamInto(source, stages, tee)
  } catch (error) {
    // Every repository failed: each has its reason. Anything else (the source) fails the job.
    if (tee.allFailed !== undefined && error === tee.allFailed) return { ...MISSING, copied: true }
    throw error
  }
  const xxh3 = fast.digest()
  return {
    copied: true,
    size: hash.size,
    sha256: hash.digest(),
    ...(xxh3 ? { xxh3 } : {}),
    badPages: pagesRecheck(input, pages?.badPages ?? [], firstBlock),
  }
}

/** Test hook: `streams` takes the stream path for folders too, to prove both paths store the same bytes. */
export const backupPathForTest = { streams: false }

/** Reads the source once into every sink; MISSING when the source is gone. */
async function copyToSinks(input: BackupFileSource, sinks: readonly Sink[], codec: Codec): Promise<BackupFileRead> {
  if (input.remote !== undefined) return remoteCopy(input, input.remote, sinks)
  let fd: number
  try {
    fd = openSync(input.source, 'r')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return MISSING
    fail('FileOpen', `unable to open '${input.source}' for read: ${(error as Error).message}`)
  }
  let available: number
  try {
    available = Math.max(0, fstatSync(fd).size - input.offset)
  } catch (error) {
    closeSync(fd)
    throw error
  }
  const length = Math.min(input.length ?? available, available)
  // An empty file (or part) is recorded but not stored.
  if (length === 0) {
    closeSync(fd)
    return { copied: true, size: 0, sha256: SHA256_EMPTY, badPages: [] }
  }
  const firstBlock = input.pageCheck ? input.pageCheck.firstBlock + Math.floor(input.offset / input.pageCheck.blockSize) : 0
  if (codec.compressSync && !backupPathForTest.streams) return copyChunks(input, fd, length, codec, firstBlock, sinks)
  return streamCopy(input, fd, length, codec, firstBlock, sinks)
}

/**
 * The copy of a file on a database host (pgN-host): the `walden remote` there reads, checks pages, hashes and
 * compresses it (backupRead, the same copy as here with the network for its one repository) and sends the compressed
 * bytes, which this side seals and writes to each repository, as they come. The stream is verified against the
 * SHA-256 the remote computed of what it sent; the file's own checksums come in its trailer.
 */
async function remoteCopy(input: BackupFileSource, remote: PgRemote, sinks: readonly Sink[]): Promise<BackupFileRead> {
  const { remote: _remote, ...source } = input
  const expected = input.expectedSize ?? input.length ?? 0
  const large = input.uploadTurns === true && expected > SMALL_FILE
  const release = large && live(sinks).some((sink) => !(sink.storage instanceof PosixStorage)) ? await uploadTurn() : undefined
  const out = new SinkWriter(input, sinks, expected)
  let stream: Readable | undefined
  try {
    stream = await pgHostClient(remote).openStream('backupRead', source as unknown as Record<string, unknown>)
    let opened = false
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // Opened on the first bytes: a file gone or empty on the database host stores nothing, as here.
      if (!opened) {
        await out.open()
        opened = true
      }
      await out.store(chunk)
      if (!out.live) {
        // Every repository failed (each has its reason): the remote stops reading.
        stream.destroy()
        return { ...MISSING, copied: true }
      }
    }
    if (opened) await out.finish()
    return (stream as IncomingStream).trailer as BackupFileRead
  } catch (error) {
    stream?.destroy()
    await out.abort()
    if (error instanceof WaldenError) throw error
    throw new WaldenError('FileRead', `unable to back up '${input.source}' from '${remote.target.host}': ${(error as Error).message}`, { cause: error })
  } finally {
    release?.()
    out.release()
  }
}

/**
 * The database host's side of remoteCopy: the copy of `input` with the network for its one repository. Each
 * compressed chunk goes to `send`, which resolves once the connection has taken it (the copy then fills the same
 * buffer again, with no copy of the chunk in between); resolves with the read's result once the last chunk is sent.
 */
export async function backupRead(input: BackupFileSource, send: (chunk: Buffer) => Promise<void>): Promise<BackupFileRead> {
  const codec = codecFor(input.compressType)
  const writer = new Writable({
    highWaterMark: 0,
    write(chunk: Buffer, _encoding, callback) {
      send(chunk).then(() => callback(), callback)
    },
  })
  const sink: Sink = { storage: undefined, path: '', where: 'the network', seal: undefined, stored: 0, writer }
  const read = await copyToSinks({ ...input, syncEach: false }, [sink], codec)
  if (sink.error) throw sink.error
  return read
}

/** Opens a target's storage; a storage that cannot be opened is that repository's failure. */
async function sinkOpen(source: string, target: BackupFileTarget, extension: string, seal: SealKey | undefined): Promise<Sink> {
  const path = `${target.repoPath}${extension}`
  try {
    const storage = await storageOpen(target.repo)
    return { storage, path, where: storage.describe(path), seal, stored: 0 }
  } catch (error) {
    const failed: Sink = { storage: undefined, path, where: path, seal, stored: 0 }
    sinkFail(source, failed, error)
    return failed
  }
}

function errorData(error: WaldenError): ErrorData {
  return { kind: error.kind, message: error.message, ...(error.hint !== undefined ? { hint: error.hint } : {}) }
}

/** One file (or part) into one repository. */
export async function backupFile(input: BackupFileInput): Promise<BackupFileOutput> {
  cipherJobUse(input.cipher)
  const codec = codecFor(input.compressType)
  const sink = await sinkOpen(input.source, input, codec.extension, cipherSealData())
  if (sink.error) throw sink.error
  const read = await copyToSinks(input, [sink], codec)
  if (sink.error) throw sink.error
  return { ...read, repoSize: sink.stored }
}

/** One file (or part) into several repositories: read, hashed and compressed once, sealed and written per repository. */
export async function backupFileFanOut(input: BackupFanOutInput): Promise<BackupFanOutOutput> {
  const codec = codecFor(input.compressType)
  const sinks: Sink[] = []
  for (const target of input.targets) {
    cipherJobUse(target.cipher)
    sinks.push(await sinkOpen(input.source, target, codec.extension, cipherSealData()))
  }
  const read = live(sinks).length === 0 ? { ...MISSING, copied: true } : await copyToSinks(input, sinks, codec)
  return { ...read, stored: sinks.map((sink) => (sink.error ? { error: errorData(sink.error) } : { repoSize: sink.stored })) }
}
