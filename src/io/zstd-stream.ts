// zstd streams for compress.ts: Transforms over zstd-napi's native binding, and a frame-boundary guard for Node's
// built-in zstd decoder.
//
// The binding rather than zstd-napi's own CompressStream/DecompressStream: those allocate a fresh 128 KiB output
// buffer after every piece of output and push each piece (often a few KiB) separately, and their errors carry no
// code. Here output collects in 256 KiB buffers that are pushed when nearly full, and every decoder error is a
// walden 'Format' error.

import { Transform, type TransformCallback } from 'node:stream'
import { WaldenError, fail } from '../common/errors.js'
import { PacedTransform } from './paced-transform.js'

type StreamResult = [remainingOrHint: number, produced: number, consumed: number]

/** The part of zstd-napi's native binding (`zstd-napi/binding`) that walden uses. */
export interface ZstdBinding {
  CCtx: new () => {
    setParameter(parameter: number, value: number): void
    compressStream2(destination: Uint8Array, source: Uint8Array, end: number): StreamResult
  }
  DCtx: new () => {
    decompressStream(destination: Uint8Array, source: Uint8Array): StreamResult
  }
  CParameter: { compressionLevel: number; checksumFlag: number }
  EndDirective: { continue: number; end: number }
}

const OUTPUT_SIZE = 256 * 1024
// Below this much free space the output buffer is pushed and replaced, so calls into zstd never get a tiny window.
const OUTPUT_MIN_SPACE = 32 * 1024
const EMPTY = Buffer.alloc(0)

/** Collects engine output into large buffers; only the filled part of a buffer is ever pushed. */
class OutputBuffer {
  #buffer = Buffer.allocUnsafe(OUTPUT_SIZE)
  #used = 0
  readonly #push: (chunk: Buffer) => boolean

  constructor(push: (chunk: Buffer) => boolean) {
    this.#push = push
  }

  space(): Buffer {
    return this.#buffer.subarray(this.#used)
  }

  /** Counts bytes the engine wrote into space(); false when a push was refused because the reader is full. */
  produced(bytes: number): boolean {
    this.#used += bytes
    if (this.#buffer.length - this.#used >= OUTPUT_MIN_SPACE) return true
    const room = this.#push(this.#buffer.subarray(0, this.#used))
    this.#buffer = Buffer.allocUnsafe(OUTPUT_SIZE)
    this.#used = 0
    return room
  }

  flush(): void {
    if (this.#used > 0) this.#push(this.#buffer.subarray(0, this.#used))
    this.#buffer = EMPTY
    this.#used = 0
  }
}

/** zstd compression through zstd-napi: one frame with a content checksum. */
/** Sets a compression context (new, or done with a frame) up for the next frame walden writes. */
function contextPrepare(zstd: ZstdBinding, context: InstanceType<ZstdBinding['CCtx']>, level: number): InstanceType<ZstdBinding['CCtx']> {
  context.setParameter(zstd.CParameter.compressionLevel, level)
  // zstd's own default is no checksum; the CLI's is a checksum, and it is cheap insurance against damage.
  context.setParameter(zstd.CParameter.checksumFlag, 1)
  return context
}

export class ZstdNapiCompressStream extends Transform {
  readonly #context: InstanceType<ZstdBinding['CCtx']>
  readonly #end: ZstdBinding['EndDirective']
  readonly #output = new OutputBuffer((chunk) => this.push(chunk))

  /** `context` may be one a previous stream finished with, to spare creating one per small file. */
  constructor(zstd: ZstdBinding, level: number, context?: InstanceType<ZstdBinding['CCtx']>) {
    super()
    this.#context = contextPrepare(zstd, context ?? new zstd.CCtx(), level)
    this.#end = zstd.EndDirective
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      let input = chunk
      while (input.length > 0) {
        const [, produced, consumed] = this.#context.compressStream2(this.#output.space(), input, this.#end.continue)
        this.#output.produced(produced)
        input = input.subarray(consumed)
      }
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }

  override _flush(callback: TransformCallback): void {
    try {
      for (;;) {
        const [remaining, produced] = this.#context.compressStream2(this.#output.space(), EMPTY, this.#end.end)
        this.#output.produced(produced)
        if (remaining === 0) break
      }
      this.#output.flush()
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }
}

/**
 * zstdCompressInto's worst case for `size` bytes (ZSTD_compressBound, plus room for the frame header and checksum):
 * what does not compress is stored in raw blocks, a few bytes per 128 KiB block more than the input.
 */
export function zstdCompressBound(size: number): number {
  const small = size < 128 * 1024 ? (128 * 1024 - size) >>> 11 : 0
  return size + (size >>> 8) + small + 64
}

/**
 * The frame ZstdNapiCompressStream writes for `data`, compressed with `context` straight into `out` (at least
 * zstdCompressBound(data.length) bytes); returns its length. For a caller compressing chunk after chunk: one output
 * buffer serves them all, where the stream would allocate new ones per chunk for V8 to collect later.
 */
export function zstdCompressInto(zstd: ZstdBinding, context: InstanceType<ZstdBinding['CCtx']>, level: number, data: Buffer, out: Buffer): number {
  contextPrepare(zstd, context, level)
  let produced = 0
  let input = data
  for (;;) {
    const [remaining, made, consumed] = context.compressStream2(out.subarray(produced), input, zstd.EndDirective.end)
    produced += made
    input = input.subarray(consumed)
    if (remaining === 0 && input.length === 0) return produced
    if (made === 0 && consumed === 0) fail('Assert', `zstd output buffer of ${out.length} bytes too small for ${data.length} bytes`)
  }
}

/** zstd decompression through zstd-napi: any number of frames; an incomplete last frame is an error. */
export class ZstdNapiDecompressStream extends PacedTransform {
  readonly #context: InstanceType<ZstdBinding['DCtx']>
  readonly #output = new OutputBuffer((chunk) => this.push(chunk))
  #sawInput = false
  // zstd's hint after the last call: 0 once a frame is completely decoded and flushed.
  #hint = 0

  constructor(zstd: ZstdBinding) {
    super()
    this.#context = new zstd.DCtx()
  }

  protected override process(input: Buffer): [number, boolean] {
    if (input.length > 0) this.#sawInput = true
    let offset = 0
    for (;;) {
      const space = this.#output.space()
      let result: StreamResult
      try {
        result = this.#context.decompressStream(space, offset === 0 ? input : input.subarray(offset))
      } catch (error) {
        throw new WaldenError('Format', `zst data is corrupt: '${(error as Error).message}'`, { cause: error })
      }
      const [hint, produced, consumed] = result
      // A call that did nothing says nothing about the frame: after a finished frame it reports the header size
      // of a next one.
      if (produced > 0 || consumed > 0) this.#hint = hint
      offset += consumed
      const room = this.#output.produced(produced)
      // A full output window may mean more output is waiting inside zstd even with no input left.
      if (offset === input.length && produced < space.length) return [offset, false]
      if (!room) return [offset, true]
    }
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#sawInput) callback(new WaldenError('Format', 'zst data is empty'))
    else if (this.#hint !== 0) callback(new WaldenError('Format', 'zst data ends in the middle of a frame'))
    else {
      this.#output.flush()
      callback()
    }
  }
}

const enum Guard {
  Magic,
  FrameHeader,
  SkipHeader,
  BlockHeader,
  SkipBlock,
  SkipChecksum,
}

const ZSTD_MAGIC = 0xfd2fb528
const BUILTIN_HINT = "Node.js's built-in zstd reads one frame only; install the optional package 'zstd-napi' to read this file"

/**
 * Follows the frame structure of a zstd stream (headers and block sizes only; payload is skipped over) to catch what
 * Node's built-in decoder lets through: as of Node 24.9 it accepts empty and truncated input without an error, and
 * drops whatever follows the first frame in the same chunk (nodejs/node#64592). So the guard accepts one frame with
 * data, which is what walden and the zstd CLI write, followed only by frames without data: Node's own compressor
 * appends an empty frame whenever end() finds a write still queued, and losing an empty frame loses nothing.
 */
export class ZstdFrameGuard {
  #state = Guard.Magic
  #need = 4
  readonly #field = Buffer.alloc(4)
  #fieldLength = 0
  #skip = 0
  #checksum = false
  #lastBlock = false
  #frames = 0 // completed
  #sawInput = false

  /** Throws a 'Format' error as soon as the stream cannot be what the guard accepts. */
  update(chunk: Buffer): void {
    let offset = 0
    if (chunk.length > 0) this.#sawInput = true
    while (offset < chunk.length) {
      if (this.#state === Guard.SkipHeader || this.#state === Guard.SkipBlock || this.#state === Guard.SkipChecksum) {
        const take = Math.min(this.#skip, chunk.length - offset)
        offset += take
        this.#skip -= take
        if (this.#skip === 0) this.#skipped()
      } else {
        const take = Math.min(this.#need - this.#fieldLength, chunk.length - offset)
        chunk.copy(this.#field, this.#fieldLength, offset, offset + take)
        this.#fieldLength += take
        offset += take
        if (this.#fieldLength === this.#need) this.#fieldComplete()
      }
    }
  }

  /** Throws unless the stream ended after a complete frame. */
  finish(): void {
    if (!this.#sawInput) fail('Format', 'zst data is empty')
    if (this.#state !== Guard.Magic || this.#fieldLength > 0 || this.#frames === 0) {
      fail('Format', 'zst data ends in the middle of a frame')
    }
  }

  #collect(state: Guard, bytes: number): void {
    this.#state = state
    this.#need = bytes
    this.#fieldLength = 0
  }

  #skipTo(state: Guard, bytes: number): void {
    this.#state = state
    this.#skip = bytes
    if (bytes === 0) this.#skipped()
  }

  #skipped(): void {
    if (this.#state === Guard.SkipHeader || (this.#state === Guard.SkipBlock && !this.#lastBlock)) {
      this.#collect(Guard.BlockHeader, 3)
    } else if (this.#state === Guard.SkipBlock && this.#checksum) {
      this.#skipTo(Guard.SkipChecksum, 4)
    } else {
      this.#frames++
      this.#collect(Guard.Magic, 4)
    }
  }

  #fieldComplete(): void {
    const field = this.#field
    if (this.#state === Guard.Magic) {
      const magic = field.readUInt32LE(0)
      if (magic !== ZSTD_MAGIC) {
        fail('Format', `zst data is corrupt: unknown frame magic '0x${magic.toString(16)}'`, this.#frames > 0 ? { hint: BUILTIN_HINT } : undefined)
      }
      this.#collect(Guard.FrameHeader, 1)
    } else if (this.#state === Guard.FrameHeader) {
      // Frame_Header_Descriptor: content size flag (2 bits), single segment, unused, reserved, checksum, dict id (2).
      const descriptor = field[0] as number
      const contentSizeFlag = descriptor >> 6
      const singleSegment = (descriptor >> 5) & 1
      if (descriptor & 0x08) fail('Format', 'zst data is corrupt: reserved frame header bit is set')
      this.#checksum = ((descriptor >> 2) & 1) === 1
      const dictIdBytes = [0, 1, 2, 4][descriptor & 3] as number
      const contentSizeBytes = contentSizeFlag === 0 ? singleSegment : ([0, 2, 4, 8][contentSizeFlag] as number)
      this.#skipTo(Guard.SkipHeader, (singleSegment ? 0 : 1) + dictIdBytes + contentSizeBytes)
    } else {
      // Block_Header: last block (1 bit), type (2 bits: raw, RLE, compressed, reserved), size (21 bits). An RLE
      // block's size is what it expands to; it stores one byte.
      const header = field.readUIntLE(0, 3)
      const type = (header >> 1) & 3
      const size = header >>> 3
      if (type === 3) fail('Format', 'zst data is corrupt: reserved block type')
      if (this.#frames > 0 && (type === 2 || size > 0)) {
        fail('Format', 'zst data continues after its first frame', { hint: BUILTIN_HINT })
      }
      this.#lastBlock = (header & 1) === 1
      this.#skipTo(Guard.SkipBlock, type === 1 ? 1 : size)
    }
  }
}
