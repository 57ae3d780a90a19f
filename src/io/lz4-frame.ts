// Streaming LZ4 frame format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md) on top of lz4-napi's
// block functions. lz4-napi also has whole-frame functions, but they compress and decompress several times slower
// than its block functions (measured 1 MiB pieces: 133 vs 319 MB/s compressing, 194 vs 1245 MB/s decompressing) and
// take a whole frame in memory, which for a file written by the lz4 CLI or pgBackRest (one frame per file) means the
// whole file. Framing ourselves keeps memory at one block (at most 4 MiB by the format) for any input.
//
// lz4-napi's block functions use lz4_flex's "size prepended" layout: a 4-byte little-endian decompressed size, then
// one raw LZ4 block. The frame format's block header is also 4 little-endian bytes in front of the raw block, so a
// compressed block only needs its first 4 bytes rewritten, and decompression only needs the block copied behind a
// 4-byte upper bound of its size.

import { Transform, type TransformCallback } from 'node:stream'
import { WaldenError, fail } from '../common/errors.js'
import { alignedAllocUnsafe } from './aligned.js'
import { PacedTransform } from './paced-transform.js'
import { Xxh32, xxh32 } from './xxhash32.js'

/** The part of lz4-napi that walden uses. */
export interface Lz4Binding {
  compressSync(data: Buffer): Buffer
  uncompressSync(data: Uint8Array, dict?: Uint8Array): Buffer
}

const MAGIC = 0x184d2204
const LEGACY_MAGIC = 0x184c2102
const SKIPPABLE_MASK = 0xfffffff0
const SKIPPABLE_MAGIC = 0x184d2a50
const UNCOMPRESSED_BIT = 0x80000000
const EMPTY: Buffer = Buffer.alloc(0)
// Linked blocks may refer back this far into the data before them.
const WINDOW = 64 * 1024

// What walden writes: version 01, independent blocks (any block decodes alone, and the encoder keeps no state
// between blocks), and 1 MiB blocks: large enough that per-call overhead vanishes, small enough that a decoder holds
// little. No content checksum: LZ4 has no integrity check of its own, but walden never stores a file without the
// SHA-256 of its uncompressed content beside it (in the backup manifest, or in an archived WAL file's name) and
// checks that on every read, so an XXH32 over the same bytes would only cost time (in a short archive-push, where
// V8 has not optimised it yet, about as much as SHA-256 itself). Frames written by others may carry one; it is
// checked unless the caller verifies the content itself (DecompressOptions.verifiedByCaller).
const FLG_VERSION = 0x40
const FLG_BLOCK_INDEPENDENT = 0x20
const FLG_BLOCK_CHECKSUM = 0x10
const FLG_CONTENT_SIZE = 0x08
const FLG_CONTENT_CHECKSUM = 0x04
const FLG_RESERVED = 0x02
const FLG_DICT_ID = 0x01
export const LZ4_BLOCK_SIZE = 1024 * 1024
const BLOCK_SIZE_ID = 6 // 4: 64 KiB, 5: 256 KiB, 6: 1 MiB, 7: 4 MiB
const WRITE_FLG = FLG_VERSION | FLG_BLOCK_INDEPENDENT
const WRITE_BD = BLOCK_SIZE_ID << 4

/** The part of walden's liblz4 binding that works in buffers the caller owns (see lz4FrameInto, `reuse` below). */
export interface Lz4BlockInto {
  /** Compresses `data` as one raw block into `out` from `offset`; 0 when it does not fit in what is left of `out`. */
  compressBlockInto(data: Uint8Array, out: Uint8Array, offset: number): number
  /** Decodes one raw block into `out`, which bounds its size; returns the decoded length, throws if corrupt. */
  uncompressBlockInto(block: Uint8Array, out: Uint8Array, dict?: Uint8Array): number
  /** compressBlockInto on libuv's thread pool (both buffers must be left alone until it settles). */
  compressBlockIntoAsync?(data: Uint8Array, out: Uint8Array, offset: number): Promise<number>
}

/** Bytes lz4FrameInto may need for `size` bytes of input: header, each block stored as it is at worst, end mark. */
export function lz4FrameBound(size: number): number {
  return 7 + Math.max(1, Math.ceil(size / LZ4_BLOCK_SIZE)) * 4 + size + 4
}

/**
 * The frame Lz4CompressStream writes for `data`, byte for byte, built in `out` (at least lz4FrameBound(data.length)
 * bytes); returns its length. For a caller compressing chunk after chunk: one output buffer serves them all, where
 * a new Buffer per chunk would pile up as garbage that V8 collects only every few tens of MB per thread.
 */
export function lz4FrameInto(lz4: Lz4BlockInto, data: Buffer, out: Buffer): number {
  FRAME_HEADER.copy(out, 0)
  let position = FRAME_HEADER.length
  for (let offset = 0; offset < data.length; offset += LZ4_BLOCK_SIZE) {
    const block = data.subarray(offset, offset + LZ4_BLOCK_SIZE)
    position = blockPlace(out, position, block, lz4.compressBlockInto(block, blockRoom(out, position, block), position + 4))
  }
  out.writeUInt32LE(0, position) // end mark
  return position + 4
}

/**
 * lz4FrameInto with each block compressed on libuv's thread pool, so the calling thread can do other work (hash the
 * next chunk) meanwhile; the same bytes. `data` and `out` must be left alone until it settles.
 */
export async function lz4FrameIntoAsync(lz4: Lz4BlockInto & Required<Pick<Lz4BlockInto, 'compressBlockIntoAsync'>>, data: Buffer, out: Buffer): Promise<number> {
  FRAME_HEADER.copy(out, 0)
  let position = FRAME_HEADER.length
  for (let offset = 0; offset < data.length; offset += LZ4_BLOCK_SIZE) {
    const block = data.subarray(offset, offset + LZ4_BLOCK_SIZE)
    position = blockPlace(out, position, block, await lz4.compressBlockIntoAsync(block, blockRoom(out, position, block), position + 4))
  }
  out.writeUInt32LE(0, position) // end mark
  return position + 4
}

/** Where a block is compressed: room for block.length - 1 bytes, as a block that does not get smaller is stored as it is. */
function blockRoom(out: Buffer, position: number, block: Buffer): Buffer {
  return out.subarray(0, position + 4 + block.length - 1)
}

/** Writes the block header for a block compressed to `size` bytes at `position` (0: stored as it is); returns what follows. */
function blockPlace(out: Buffer, position: number, block: Buffer, size: number): number {
  if (size > 0) {
    out.writeUInt32LE(size, position)
    return position + 4 + size
  }
  out.writeUInt32LE((block.length | UNCOMPRESSED_BIT) >>> 0, position)
  block.copy(out, position + 4)
  return position + 4 + block.length
}

function frameHeader(): Buffer {
  const header = Buffer.alloc(7)
  header.writeUInt32LE(MAGIC, 0)
  header[4] = WRITE_FLG
  header[5] = WRITE_BD
  header[6] = (xxh32(header.subarray(4, 6)) >>> 8) & 0xff
  return header
}

const FRAME_HEADER = frameHeader()

function uint32(value: number): Buffer {
  const buffer = Buffer.allocUnsafe(4)
  buffer.writeUInt32LE(value >>> 0, 0)
  return buffer
}

/** Compresses into one LZ4 frame of independent 1 MiB blocks, without a content checksum (see WRITE_FLG). */
export class Lz4CompressStream extends Transform {
  readonly #lz4: Lz4Binding
  // Input not yet making up a whole block: slices of the written chunks, copied together only once a block is full.
  #pending: Buffer[] = []
  #pendingBytes = 0
  #started = false

  constructor(lz4: Lz4Binding) {
    super()
    this.#lz4 = lz4
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#start()
      let offset = 0
      if (this.#pendingBytes > 0) {
        const take = Math.min(LZ4_BLOCK_SIZE - this.#pendingBytes, chunk.length)
        this.#pending.push(chunk.subarray(0, take))
        this.#pendingBytes += take
        offset = take
        if (this.#pendingBytes === LZ4_BLOCK_SIZE) this.#flushPending()
      }
      // Whole blocks straight from the chunk, without copying.
      for (; chunk.length - offset >= LZ4_BLOCK_SIZE; offset += LZ4_BLOCK_SIZE) {
        this.#block(chunk.subarray(offset, offset + LZ4_BLOCK_SIZE))
      }
      if (offset < chunk.length) {
        this.#pending.push(chunk.subarray(offset))
        this.#pendingBytes += chunk.length - offset
      }
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#start()
      if (this.#pendingBytes > 0) this.#flushPending()
      this.push(uint32(0)) // end mark
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }

  #start(): void {
    if (this.#started) return
    this.#started = true
    this.push(Buffer.from(FRAME_HEADER))
  }

  #flushPending(): void {
    const pending = this.#pending
    const block = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, this.#pendingBytes)
    this.#pending = []
    this.#pendingBytes = 0
    this.#block(block)
  }

  #block(data: Buffer): void {
    const compressed = this.#lz4.compressSync(data)
    const size = compressed.length - 4
    if (size < data.length) {
      compressed.writeUInt32LE(size, 0)
      this.push(compressed)
    } else {
      // Incompressible: the format stores such a block as it is, flagged by the high bit of its size.
      this.push(uint32(data.length | UNCOMPRESSED_BIT))
      this.push(data)
    }
  }
}

const enum State {
  Magic,
  SkippableSize,
  SkippableData,
  Descriptor,
  BlockSize,
  BlockData,
  BlockChecksum,
  ContentChecksum,
}

interface Frame {
  blockMax: number
  independent: boolean
  blockChecksum: boolean
  contentSize: bigint | undefined
  /** The frame ends with a content checksum (4 bytes to read, whether or not they are checked). */
  hasContentChecksum: boolean
  contentHash: Xxh32 | undefined
  decoded: bigint
  // Linked blocks only: the last 64 KiB decoded, which the next block may copy from.
  window: Buffer | undefined
}

const corrupt = (reason: string): never => fail('Format', `lz4 data is corrupt: ${reason}`)

/**
 * Decompresses an LZ4 stream: any number of frames (skippable frames are passed over), linked or independent blocks,
 * with or without block and content checksums, which are verified. Holds at most one block.
 */
export class Lz4DecompressStream extends PacedTransform {
  readonly #lz4: Lz4Binding
  #state = State.Magic
  // Fixed-size fields (magic, descriptor, sizes, checksums) collect here, as they may straddle chunks.
  readonly #field = Buffer.alloc(16)
  #fieldLength = 0
  #need = 4
  #frame: Frame | undefined
  // The block being collected, 4 spare bytes first for lz4-napi's size prefix.
  #block = EMPTY
  #blockFill = 0
  #blockCompressed = false
  #skip = 0
  #sawFrame = false
  readonly #contentChecksum: boolean

  // With `reuse`: one buffer collects every compressed block and one receives every decoded block (REUSED, shared
  // by the decoders of this thread).
  readonly #into: Lz4BlockInto | undefined
  readonly #reused: ReusedBuffers

  /**
   * `contentChecksum: false` skips the frames' content checksums (see DecompressOptions.verifiedByCaller). `reuse`
   * (with a binding that decodes into a given buffer) decodes every block into the same buffer, so what push() gets
   * is valid only until the next push: only for a caller that takes each chunk synchronously (see lz4ChunkDecoder).
   */
  constructor(lz4: Lz4Binding, options: { contentChecksum?: boolean; reuse?: Lz4BlockInto; buffers?: ReusedBuffers } = {}) {
    super()
    this.#lz4 = lz4
    this.#contentChecksum = options.contentChecksum ?? true
    this.#into = options.reuse
    this.#reused = options.buffers ?? REUSED
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#sawFrame) {
      callback(new WaldenError('Format', 'lz4 data is empty'))
    } else if (this.#state !== State.Magic || this.#fieldLength > 0) {
      callback(new WaldenError('Format', 'lz4 data ends in the middle of a frame'))
    } else {
      callback()
    }
  }

  // Stops after a decoded block the reader has no room for.
  protected override process(chunk: Buffer): [number, boolean] {
    let offset = 0
    while (offset < chunk.length) {
      let room = true
      if (this.#state === State.SkippableData) {
        const take = Math.min(this.#skip, chunk.length - offset)
        offset += take
        this.#skip -= take
        if (this.#skip === 0) this.#expect(State.Magic, 4)
      } else if (this.#state === State.BlockData) {
        const take = Math.min(this.#block.length - this.#blockFill, chunk.length - offset)
        chunk.copy(this.#block, this.#blockFill, offset, offset + take)
        this.#blockFill += take
        offset += take
        if (this.#blockFill === this.#block.length) {
          if (this.#frame?.blockChecksum) this.#expect(State.BlockChecksum, 4)
          else room = this.#decodeBlock()
        }
      } else {
        const take = Math.min(this.#need - this.#fieldLength, chunk.length - offset)
        chunk.copy(this.#field, this.#fieldLength, offset, offset + take)
        this.#fieldLength += take
        offset += take
        if (this.#fieldLength === this.#need) room = this.#fieldComplete()
      }
      if (!room) return [offset, true]
    }
    return [offset, false]
  }

  #expect(state: State, bytes: number): void {
    this.#state = state
    this.#need = bytes
    this.#fieldLength = 0
  }

  // Returns false when it decoded a block that the reader had no room for.
  #fieldComplete(): boolean {
    const field = this.#field
    switch (this.#state) {
      case State.Magic: {
        const magic = field.readUInt32LE(0)
        this.#sawFrame = true
        if (magic === MAGIC) this.#expect(State.Descriptor, 2)
        else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) this.#expect(State.SkippableSize, 4)
        else if (magic === LEGACY_MAGIC) fail('Format', 'lz4 legacy format is not supported', { hint: 'recompress the file without lz4 -l' })
        else corrupt(`unknown frame magic '0x${magic.toString(16)}'`)
        return true
      }
      case State.SkippableSize:
        this.#skip = field.readUInt32LE(0)
        if (this.#skip === 0) this.#expect(State.Magic, 4)
        else this.#state = State.SkippableData
        return true
      case State.Descriptor:
        this.#descriptor()
        return true
      case State.BlockSize: {
        const word = field.readUInt32LE(0)
        const frame = this.#frame as Frame
        if (word === 0) {
          if (frame.hasContentChecksum) this.#expect(State.ContentChecksum, 4)
          else this.#endFrame()
          return true
        }
        const size = word & ~UNCOMPRESSED_BIT
        if (size > frame.blockMax) corrupt(`block of ${size} bytes exceeds the frame's maximum of ${frame.blockMax}`)
        this.#blockCompressed = (word & UNCOMPRESSED_BIT) === 0
        if (this.#into) {
          const reused = this.#reused
          if (reused.block.length < size + 4) reused.block = Buffer.allocUnsafe(frame.blockMax + 4)
          this.#block = reused.block.subarray(0, size + 4)
        } else this.#block = Buffer.allocUnsafe(size + 4)
        this.#blockFill = 4
        this.#state = State.BlockData
        if (size > 0) return true
        // An empty block: legal, if odd, and still followed by its checksum when the frame has them.
        if (frame.blockChecksum) {
          this.#expect(State.BlockChecksum, 4)
          return true
        }
        return this.#decodeBlock()
      }
      case State.BlockChecksum:
        if (xxh32(this.#block.subarray(4)) !== field.readUInt32LE(0)) corrupt('block checksum mismatch')
        return this.#decodeBlock()
      case State.ContentChecksum: {
        const frame = this.#frame as Frame
        if (frame.contentHash && frame.contentHash.digest() !== field.readUInt32LE(0)) corrupt('content checksum mismatch')
        this.#endFrame()
        return true
      }
      default:
        return true
    }
  }

  // The descriptor arrives in two steps: FLG and BD first, which tell how many optional bytes and the header
  // checksum follow, then the field is extended to the whole descriptor so the checksum covers all of it.
  #descriptor(): void {
    const field = this.#field
    const flg = field[0] as number
    const bd = field[1] as number
    const length = 2 + (flg & FLG_CONTENT_SIZE ? 8 : 0) + (flg & FLG_DICT_ID ? 4 : 0) + 1
    if (this.#need < length) {
      this.#need = length
      return
    }
    if ((flg & 0xc0) !== FLG_VERSION) corrupt(`unsupported frame version '${flg >> 6}'`)
    if (flg & FLG_RESERVED || bd & 0x8f) corrupt('reserved descriptor bits are set')
    if (flg & FLG_DICT_ID) fail('Format', 'lz4 frames that need a dictionary are not supported')
    const blockSizeId = (bd >> 4) & 0x07
    if (blockSizeId < 4) corrupt(`invalid block size id '${blockSizeId}'`)
    if (((xxh32(field.subarray(0, length - 1)) >>> 8) & 0xff) !== field[length - 1]) corrupt('header checksum mismatch')
    this.#frame = {
      blockMax: 1 << (2 * blockSizeId + 8),
      independent: (flg & FLG_BLOCK_INDEPENDENT) !== 0,
      blockChecksum: (flg & FLG_BLOCK_CHECKSUM) !== 0,
      contentSize: flg & FLG_CONTENT_SIZE ? field.readBigUInt64LE(2) : undefined,
      hasContentChecksum: (flg & FLG_CONTENT_CHECKSUM) !== 0,
      contentHash: flg & FLG_CONTENT_CHECKSUM && this.#contentChecksum ? new Xxh32() : undefined,
      decoded: 0n,
      window: undefined,
    }
    this.#expect(State.BlockSize, 4)
  }

  // Returns push()'s verdict on the decoded data: false when the reader is full.
  #decodeBlock(): boolean {
    const frame = this.#frame as Frame
    const block = this.#block
    let data: Buffer
    if (this.#blockCompressed) {
      // The prefix is only an upper bound: lz4-napi sizes its output from it and returns what the block holds.
      block.writeUInt32LE(frame.blockMax, 0)
      try {
        if (this.#into) {
          // Aligned, so restore can write whole decoded blocks with O_DIRECT as they are.
          const reused = this.#reused
          if (reused.out.length < frame.blockMax) reused.out = alignedAllocUnsafe(frame.blockMax)
          const out = reused.out.subarray(0, frame.blockMax)
          data = out.subarray(0, this.#into.uncompressBlockInto(block.subarray(4), out, frame.window))
        } else data = frame.window ? this.#lz4.uncompressSync(block, frame.window) : this.#lz4.uncompressSync(block)
      } catch (error) {
        return corrupt(`'${(error as Error).message}'`)
      }
    } else {
      data = block.subarray(4)
    }
    this.#block = EMPTY
    frame.decoded += BigInt(data.length)
    if (frame.contentSize !== undefined && frame.decoded > frame.contentSize) corrupt('more data than the frame declares')
    frame.contentHash?.update(data)
    if (!frame.independent) {
      // Copy: the pushed buffer belongs to the reader from now on.
      frame.window =
        data.length >= WINDOW || !frame.window
          ? Buffer.from(data.subarray(Math.max(0, data.length - WINDOW)))
          : Buffer.concat([frame.window, data]).subarray(-WINDOW)
    }
    this.#expect(State.BlockSize, 4)
    return data.length > 0 ? this.push(data) : true
  }

  #endFrame(): void {
    const frame = this.#frame as Frame
    if (frame.contentSize !== undefined && frame.decoded !== frame.contentSize) corrupt('less data than the frame declares')
    this.#frame = undefined
    this.#expect(State.Magic, 4)
  }
}


/**
 * The buffers of the decoders in `reuse` mode, one pair per thread (module state is per worker thread): a restore
 * decodes thousands of small files, and a pair of 1 MiB buffers per file would be garbage that V8 collects only
 * every few tens of MB. Safe because such a decoder runs from start to end without yielding (lz4ChunkDecoder's
 * callers are synchronous), so two never interleave; `inUse` makes sure of it.
 */
const REUSED: ReusedBuffers = { block: EMPTY, out: EMPTY, inUse: false }

/**
 * A second pair, for the one decoder of this thread whose caller waits for its input between pieces (restore from a
 * backup host, fed by the session's frames): the first pair stays free for the synchronous decoders that run while it
 * waits (the small files of the same worker). Its caller makes sure only one such decoder runs at a time per thread.
 */
const REUSED_YIELDING: ReusedBuffers = { block: EMPTY, out: EMPTY, inUse: false }

interface ReusedBuffers {
  block: Buffer
  out: Buffer
  inUse: boolean
}

/**
 * A synchronous LZ4 frame decoder over chunks of input: each decoded piece goes to `sink` before write() returns,
 * and is valid only during that call (the same buffers serve every block). For restore's copy loop, which hashes and
 * writes each piece at once: no allocation per block, so memory stays flat however much is restored.
 */
export function lz4ChunkDecoder(lz4: Lz4Binding, into: Lz4BlockInto, options: { contentChecksum?: boolean; yielding?: boolean }): ChunkDecoder {
  const buffers = options.yielding ? REUSED_YIELDING : REUSED
  const stream = new Lz4DecompressStream(lz4, { contentChecksum: options.contentChecksum ?? true, reuse: into, buffers })
  let sink: (data: Buffer) => void = () => undefined
  stream.push = (chunk: Buffer | null): boolean => {
    if (chunk) sink(chunk)
    return true
  }
  const run = (step: (callback: TransformCallback) => void): void => {
    let failure: Error | null | undefined
    step((error) => {
      failure ??= error
    })
    if (failure) throw failure
  }
  if (buffers.inUse) fail('Assert', 'two lz4 chunk decoders in use at once in one thread')
  buffers.inUse = true
  return {
    write(chunk, to) {
      sink = to
      run((callback) => stream._transform(chunk, 'buffer' as BufferEncoding, callback))
    },
    end(to) {
      sink = to
      run((callback) => stream._flush(callback))
    },
    release() {
      buffers.inUse = false
    },
  }
}

/** See Codec.chunkDecoder. */
export interface ChunkDecoder {
  write(chunk: Buffer, sink: (data: Buffer) => void): void
  end(sink: (data: Buffer) => void): void
  /** Called once the decoder is done with, whether it finished or failed. */
  release(): void
}

/**
 * All of `data` through a chunk decoder, into one buffer of its own, and the decoder released. Each decoded piece is
 * valid only during the sink call (the decoder reuses its buffers), so it is copied out.
 */
export function chunkDecodeAll(decoder: ChunkDecoder, data: Buffer): Buffer {
  const pieces: Buffer[] = []
  const sink = (piece: Buffer): void => void pieces.push(Buffer.from(piece))
  try {
    decoder.write(data, sink)
    decoder.end(sink)
  } finally {
    decoder.release()
  }
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces)
}
