// bzip2 decompression (read only) through walden's binding of the system libbz2 (native/bz2/walden_bz2.c): for
// repositories pgBackRest wrote with compress-type=bz2. walden never writes bz2.
//
// One decoder per stored file, streaming: input is taken in whatever pieces arrive and decoded into one reused 256 KiB
// buffer, so memory stays flat (libbz2's own ~3.6 MB of tables, plus that buffer) however large the file. Several
// bz2 streams one after another decode as one file, as `bzip2 -d` reads them. Empty input, input that ends inside a
// stream, and anything after the last stream that is not another stream are 'Format' errors, like a corrupt block.

import { Transform, type TransformCallback } from 'node:stream'
import { WaldenError } from '../common/errors.js'
import type { ChunkDecoder } from './lz4-frame.js'
import { nativeAddonLoad } from './native.js'

interface Bz2NativeDecoder {
  decode(input: Uint8Array, out: Uint8Array, result: Uint32Array): void
  reset(): void
  release(): void
}

type Bz2DecoderConstructor = new () => Bz2NativeDecoder

/** The binding's decoder class, or undefined where native/bz2 was not built. */
export function bz2Binding(): Bz2DecoderConstructor | undefined {
  return nativeAddonLoad<{ Bz2Decoder: Bz2DecoderConstructor }>('bz2', 'Bz2Decoder')?.Bz2Decoder
}

/** Decoded bytes handed on at a time. */
const OUT_SIZE = 256 * 1024

/**
 * A synchronous bz2 decoder over chunks of input: each decoded piece goes to `sink` before write() returns and is
 * valid only during that call (one buffer serves every piece).
 */
export function bz2ChunkDecoder(Decoder: Bz2DecoderConstructor): ChunkDecoder {
  const native = new Decoder()
  const out = Buffer.allocUnsafe(OUT_SIZE)
  const result = new Uint32Array(3)
  let sawInput = false
  // Inside a stream: from its first byte until libbz2 reports its end.
  let inStream = false
  let released = false
  const format = (message: string, cause?: unknown): WaldenError => new WaldenError('Format', message, cause === undefined ? {} : { cause })
  return {
    write(chunk, sink) {
      if (released) throw new WaldenError('Assert', 'bz2 decoder used after release')
      let offset = 0
      for (;;) {
        if (offset === chunk.length) return
        if (!inStream) {
          // Data after a stream's end must be another stream; the decoder starts over for it.
          if (sawInput) native.reset()
          inStream = true
          sawInput = true
        }
        try {
          native.decode(chunk.subarray(offset), out, result)
        } catch (error) {
          const message = (error as Error).message
          if (message.startsWith('bz2: ')) throw format(`bz2 data is corrupt: ${message.slice('bz2: '.length)}`, error)
          throw error
        }
        const consumed = result[0]!
        const produced = result[1]!
        offset += consumed
        if (produced > 0) sink(out.subarray(0, produced))
        if (result[2] === 1) inStream = false
        // libbz2 always moves while it has input and room; a call that does neither would loop forever.
        else if (consumed === 0 && produced === 0) throw format('bz2 data is corrupt: the decoder made no progress')
        // A full buffer may leave decoded data behind in libbz2 with all input consumed: ask again.
        if (offset === chunk.length && produced === out.length && inStream) offset = drain(sink, offset)
      }
    },
    end(sink) {
      if (!sawInput) throw format('bz2 data is empty')
      if (inStream) {
        drain(sink, 0)
        if (inStream) throw format('bz2 data ends in the middle of a stream')
      }
    },
    release() {
      if (!released) native.release()
      released = true
    },
  }

  // Takes what libbz2 still holds decoded, with no more input; returns `offset` unchanged for the caller's loop.
  function drain(sink: (data: Buffer) => void, offset: number): number {
    const none = Buffer.alloc(0)
    for (;;) {
      try {
        native.decode(none, out, result)
      } catch (error) {
        const message = (error as Error).message
        if (message.startsWith('bz2: ')) throw format(`bz2 data is corrupt: ${message.slice('bz2: '.length)}`, error)
        throw error
      }
      const produced = result[1]!
      if (produced > 0) sink(out.subarray(0, produced))
      if (result[2] === 1) {
        inStream = false
        return offset
      }
      if (produced < out.length) return offset
    }
  }
}

/** bz2ChunkDecoder as a Transform: each decoded piece is copied out, as the stream's reader keeps it. */
export class Bz2DecompressStream extends Transform {
  readonly #decoder: ChunkDecoder
  readonly #push = (piece: Buffer): void => void this.push(Buffer.from(piece))

  constructor(Decoder: Bz2DecoderConstructor) {
    super()
    this.#decoder = bz2ChunkDecoder(Decoder)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#decoder.write(chunk, this.#push)
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#decoder.end(this.#push)
    } catch (error) {
      callback(error as Error)
      return
    }
    this.#decoder.release()
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#decoder.release()
    callback(error)
  }
}
