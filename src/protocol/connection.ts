// One end of a protocol session: frames in from a Readable, frames out to a Writable, with the stream pieces both ends
// share (a Readable fed by data frames that grants credit as it is read, and a sender that waits for credit). The
// client (client.ts) and the server (server.ts) each build their requests and handlers on top.

import { Readable } from 'node:stream'
import type { Writable } from 'node:stream'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { fail, WaldenError, ERROR_CODES } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { CreditGate, creditEncode, FRAME_DATA_MAX, FrameDecoder, frameEncode, frameEncodeJson, frameHeader, FrameType } from './framing.js'
import type { Frame, FrameTypeCode, WireError } from './framing.js'

export class FrameConnection {
  readonly #output: Writable
  readonly #decoder = new FrameDecoder()
  #drainWaiters: Array<() => void> = []
  #closed: Error | undefined
  /** zlib level of data frames sent (compress-level-network); 0 sends them as they are. */
  readonly #deflateLevel: number

  constructor(input: Readable, output: Writable, onFrame: (frame: Frame) => void, onEnd: (error?: Error) => void, deflateLevel = 0) {
    this.#output = output
    this.#deflateLevel = deflateLevel
    input.on('data', (chunk: Buffer) => {
      if (this.#closed) return
      let frames: Frame[]
      try {
        frames = this.#decoder.push(chunk)
      } catch (error) {
        this.close(new WaldenError('Protocol', `protocol error: ${(error as Error).message}`))
        onEnd(this.#closed)
        input.destroy()
        return
      }
      for (const frame of frames) onFrame(frame.type === FrameType.DataDeflate ? { ...frame, type: FrameType.Data, payload: inflateRawSync(frame.payload) } : frame)
    })
    input.on('end', () => onEnd(this.#decoder.pending > 0 ? new WaldenError('Protocol', 'protocol stream ended in the middle of a frame') : undefined))
    input.on('error', (error) => onEnd(error))
    output.on('drain', () => this.#wakeDrain())
    output.on('error', (error) => {
      this.close(error)
      onEnd(error)
    })
    output.on('close', () => this.#wakeDrain())
  }

  get closed(): boolean {
    return this.#closed !== undefined
  }

  /** Stops sending; anything waiting for the output to drain is released. */
  close(error: Error): void {
    this.#closed ??= error
    this.#wakeDrain()
  }

  send(frame: Buffer): void {
    if (this.#closed || this.#output.destroyed) return
    this.#output.write(frame)
  }

  /** Several buffers in one write (writev), so they reach the pipe, and ssh, together. */
  sendv(frames: readonly Buffer[]): void {
    if (this.#closed || this.#output.destroyed) return
    this.#output.cork()
    for (const frame of frames) this.#output.write(frame)
    this.#output.uncork()
  }

  sendJson(type: FrameTypeCode, channel: number, value: unknown): void {
    this.send(frameEncodeJson(type, channel, value))
  }

  sendCredit(channel: number, bytes: number): void {
    this.send(creditEncode(channel, bytes))
  }

  /**
   * Sends a chunk of a stream as data frames, each taken from `gate`'s credit, waiting for credit and for the output
   * pipe to drain as needed: memory held is at most one window per channel plus the pipe's buffer.
   */
  async sendData(channel: number, gate: CreditGate, chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length; ) {
      const length = await gate.take(Math.min(FRAME_DATA_MAX, chunk.length - offset))
      if (this.#closed) throw this.#closed
      const part = chunk.subarray(offset, offset + length)
      offset += length
      if (this.#deflateLevel > 0) {
        const packed = deflateRawSync(part, { level: this.#deflateLevel })
        // Repository files are compressed already: send them as they are when deflate does not win.
        if (packed.length < part.length) {
          this.send(frameEncode(FrameType.DataDeflate, channel, packed))
          await this.drained()
          continue
        }
      }
      // One write for header and data: two would leave ssh a 9-byte packet, which Nagle's algorithm (ssh sets no
      // TCP_NODELAY without a terminal) holds back with the data behind it until the peer's delayed ACK, 40 ms.
      this.sendv([frameHeader(FrameType.Data, channel, part.length), part])
      await this.drained()
    }
  }

  /** Resolves once the output pipe has room again (at once when it has). */
  drained(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed)
    if (!this.#output.writableNeedDrain) return Promise.resolve()
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  #wakeDrain(): void {
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const wake of waiters) wake()
  }
}

/**
 * The receiving end of a stream: data frames pushed in, credit granted back as the consumer reads, so at most one
 * window plus the stream's own buffer is held.
 */
export class IncomingStream extends Readable {
  readonly #connection: FrameConnection
  readonly #channel: number
  readonly #onDestroy: (error: Error | null) => void
  #ungranted = 0
  #ended = false

  constructor(connection: FrameConnection, channel: number, onDestroy: (error: Error | null) => void) {
    super({ highWaterMark: 1024 * 1024 })
    this.#connection = connection
    this.#channel = channel
    this.#onDestroy = onDestroy
  }

  deliver(chunk: Buffer): void {
    this.#ungranted += chunk.length
    this.push(chunk)
  }

  finish(): void {
    this.#ended = true
    this.push(null)
  }

  get ended(): boolean {
    return this.#ended
  }

  override _read(): void {
    if (this.#ungranted > 0 && !this.#ended) {
      this.#connection.sendCredit(this.#channel, this.#ungranted)
      this.#ungranted = 0
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#onDestroy(error)
    callback(error)
  }
}

/** An error as it crosses the wire. */
export function wireError(error: unknown): WireError {
  if (error instanceof WaldenError) return { kind: error.kind, message: error.message, ...(error.hint !== undefined ? { hint: error.hint } : {}) }
  return { kind: 'Unhandled', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }
}

/** An error that crossed the wire, as a WaldenError of the same kind (and so the same exit code) on this side. */
export function wireErrorRestore(error: WireError): WaldenError {
  const kind = (Object.hasOwn(ERROR_CODES, error.kind) ? error.kind : 'Unhandled') as ErrorKind
  return new WaldenError(kind, error.message, error.hint !== undefined ? { hint: error.hint } : {})
}

/** Checks a decoded control payload is an object; anything else is a protocol error. */
export function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('Protocol', `protocol error: ${what} is not an object`)
  return value as Record<string, unknown>
}
