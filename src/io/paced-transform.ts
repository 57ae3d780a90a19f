// A Transform that can stop in the middle of an input chunk when its reader is full, and go on when the reader asks
// for more. Node's Transform only waits between chunks, which is enough when output is about as large as input, but
// a decompressor's output is not: 64 KiB of zstd holding zeros expands to gigabytes, and all of it would sit in
// memory before the next chunk. node:zlib paces itself the same way internally.

import { Transform, type TransformCallback } from 'node:stream'

// Room for a few output buffers before pausing, so the decoder does not stop and start after every one.
const READABLE_HIGH_WATER_MARK = 1024 * 1024
const EMPTY: Buffer = Buffer.alloc(0)

export abstract class PacedTransform extends Transform {
  #input: Buffer = EMPTY
  #callback: TransformCallback | undefined
  #paused = false

  constructor() {
    super({ readableHighWaterMark: READABLE_HIGH_WATER_MARK })
  }

  /**
   * Works through input from its start. Returns how many bytes it consumed and whether it stopped because push()
   * returned false; in that case it is called again, with the rest of the input (perhaps none), once the reader wants
   * more. Otherwise it must have consumed everything. Errors thrown here fail the stream.
   */
  protected abstract process(input: Buffer): [consumed: number, paused: boolean]

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#input = chunk
    this.#callback = callback
    this.#run()
  }

  override _read(size: number): void {
    if (this.#paused) {
      this.#paused = false
      this.#run()
      // The chunk finished inside _read: Transform parked its write callback waiting for a _read that is already
      // running, so hand the request on or the stream stalls with its input half consumed.
      if (!this.#paused) super._read(size)
    } else {
      super._read(size)
    }
  }

  #run(): void {
    const callback = this.#callback as TransformCallback
    try {
      const [consumed, paused] = this.process(this.#input)
      this.#input = this.#input.subarray(consumed)
      if (paused) {
        this.#paused = true
        return
      }
    } catch (error) {
      this.#finish(callback, error as Error)
      return
    }
    this.#finish(callback)
  }

  #finish(callback: TransformCallback, error?: Error): void {
    this.#callback = undefined
    this.#input = EMPTY
    callback(error)
  }
}
