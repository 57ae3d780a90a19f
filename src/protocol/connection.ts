// One end of a protocol session: frames in from a Readable, frames out to a Writable, with the stream pieces both ends
// share (a Readable fed by data frames that grants credit as it is read, and a sender that waits for credit). The
// client (client.ts) and the server (server.ts) each build their requests and handlers on top.

import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import { Duplex, Readable } from 'node:stream'
import type { Writable } from 'node:stream'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { fail, WaldenError, ERROR_CODES } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { creditEncode, FRAME_DATA_MAX, FrameDecoder, frameEncode, frameEncodeJson, frameHeader, FrameType } from './framing.js'
import type { CreditGate } from './framing.js'
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

  /** As sendv, and resolves once the output has taken the buffers (the last one's write callback ran). */
  #sendvTaken(frames: readonly Buffer[]): Promise<void> {
    if (this.#closed || this.#output.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      this.#output.cork()
      frames.forEach((frame, at) => this.#output.write(frame, at === frames.length - 1 ? () => resolve() : undefined))
      this.#output.uncork()
    })
  }

  /**
   * Sends a chunk of a stream as data frames, each taken from `gate`'s credit, waiting for credit and for the output
   * pipe to drain as needed: memory held is at most one window per channel plus the pipe's buffer. With `reuse`, it
   * resolves only once the output has taken every byte, so the caller may fill the chunk's buffer again (and need not
   * copy it first).
   */
  async sendData(channel: number, gate: CreditGate, chunk: Buffer, reuse = false): Promise<void> {
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
      const frames = [frameHeader(FrameType.Data, channel, part.length), part]
      if (reuse) await this.#sendvTaken(frames)
      else this.sendv(frames)
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
 * What the sender of a stream says at its end: the SHA-256 of every byte it sent on the channel (so the receiver
 * verifies what landed, whatever carried it), and for some requests a result known only once the stream is sent
 * (backupRead: the checksum of the file read, on the host that read it).
 */
export interface StreamEnd {
  sha256?: string
  trailer?: unknown
}

/** Checks the bytes received against the sender's SHA-256; undefined when they match (or it sent none). */
export function streamEndCheck(hash: Hash, end: StreamEnd, what: string): WaldenError | undefined {
  if (end.sha256 === undefined) return undefined
  const got = hash.digest('hex')
  if (got === end.sha256) return undefined
  return new WaldenError('Protocol', `${what}: the bytes received do not match the SHA-256 the sender computed (${got} against ${end.sha256})`, {
    hint: 'something between the two hosts altered the stream; nothing was kept, so run the command again.',
  })
}

/**
 * The receiving end of a stream: data frames pushed in, credit granted back as the consumer reads, so at most one
 * window plus the stream's own buffer is held. Every byte is hashed as it arrives and checked against the sender's
 * SHA-256 at the end: a stream that does not match ends in an error, never as data.
 */
export class IncomingStream extends Readable {
  readonly #connection: FrameConnection
  readonly #channel: number
  readonly #onDestroy: (error: Error | null) => void
  readonly #hash = createHash('sha256')
  #ungranted = 0
  #ended = false
  /** The sender's trailer, once the stream has ended. */
  trailer: unknown

  constructor(connection: FrameConnection, channel: number, onDestroy: (error: Error | null) => void) {
    super({ highWaterMark: 1024 * 1024 })
    this.#connection = connection
    this.#channel = channel
    this.#onDestroy = onDestroy
  }

  deliver(chunk: Buffer): void {
    this.#ungranted += chunk.length
    this.#hash.update(chunk)
    this.push(chunk)
  }

  finish(end: StreamEnd = {}): void {
    this.#ended = true
    const mismatch = streamEndCheck(this.#hash, end, 'stream from the remote host')
    if (mismatch) return void this.destroy(mismatch)
    this.trailer = end.trailer
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

/**
 * Both directions of one channel: a byte stream to a socket on the remote host (openSocket), with credit each way as
 * for files. Socket-like enough for the PostgreSQL driver, which takes any Duplex with connect() and setNoDelay().
 */
export class ChannelDuplex extends Duplex {
  readonly #connection: FrameConnection
  readonly #channel: number
  readonly #gate: CreditGate
  readonly #onDestroy: (error: Error | null, ended: boolean) => void
  readonly #open: () => Promise<void>
  #ungranted = 0
  #ended = false

  constructor(connection: FrameConnection, channel: number, gate: CreditGate, open: () => Promise<void>, onDestroy: (error: Error | null, ended: boolean) => void) {
    super({ highWaterMark: 256 * 1024, allowHalfOpen: true })
    this.#connection = connection
    this.#channel = channel
    this.#gate = gate
    this.#open = open
    this.#onDestroy = onDestroy
  }

  /** Opens the remote end; emits 'connect' once it is open, or 'error'. Arguments (port, host) are the caller's habit and ignored. */
  connect(): this {
    this.#open().then(
      () => this.emit('connect'),
      (error: Error) => this.destroy(error),
    )
    return this
  }

  setNoDelay(): this {
    return this
  }

  setKeepAlive(): this {
    return this
  }

  ref(): this {
    return this
  }

  unref(): this {
    return this
  }

  deliver(chunk: Buffer): void {
    this.#ungranted += chunk.length
    this.push(chunk)
  }

  finish(): void {
    this.#ended = true
    this.push(null)
  }

  override _read(): void {
    if (this.#ungranted > 0 && !this.#ended) {
      this.#connection.sendCredit(this.#channel, this.#ungranted)
      this.#ungranted = 0
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#connection.sendData(this.#channel, this.#gate, chunk).then(() => callback(), callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#connection.sendJson(FrameType.End, this.#channel, {})
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#onDestroy(error, this.#ended && this.writableFinished)
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
