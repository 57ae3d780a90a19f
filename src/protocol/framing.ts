// The walden remote protocol's frames: what crosses an SSH session's stdin and stdout between a walden process and the
// `walden remote` it started on another host. Pure encoding and decoding; no I/O.
//
// A frame is a 9-byte header (type, channel, payload length) and its payload. Control frames carry JSON; data frames
// carry raw bytes, at most FRAME_DATA_MAX per frame, so a file of any size crosses in bounded pieces and neither end
// ever holds a whole file. A channel is one request and, for openRead and openWrite, the stream it opens; several
// channels share the session, so one worker's SSH session serves a read and a write at the same time.
//
// Flow control is by credit, per channel: the side that receives data grants the sender a number of bytes it may send
// (CREDIT_WINDOW at the start) and grants more as its consumer takes the bytes. A slow disk on one end therefore stops
// the sender after one window, instead of filling the other process's memory.

/** Bumped on any change an older walden could not read; both ends must agree exactly (the handshake checks). */
export const PROTOCOL_VERSION = 3

export const FRAME_HEADER_BYTES = 9
/** Largest payload of a data frame; larger writes are split. */
export const FRAME_DATA_MAX = 256 * 1024
/** Largest payload any frame may announce: a control frame above this is a corrupted or foreign stream. */
export const FRAME_PAYLOAD_MAX = 4 * 1024 * 1024
/** Bytes a receiver lets the sender have in flight on one channel before it grants more. */
export const CREDIT_WINDOW = 4 * 1024 * 1024

export const FrameType = {
  /** Handshake: {walden, protocol}, each end sends one first. */
  Hello: 0x48, // H
  /** A request: {op, args}; its channel is new. */
  Request: 0x51, // Q
  /** The answer to a request: {result} or {error}. */
  Response: 0x52, // R
  /** Bytes of the stream of a channel. */
  Data: 0x44, // D
  /** Data compressed with raw deflate (compress-level-network). */
  DataDeflate: 0x5a, // Z
  /** The sender of a stream has sent everything: {} (a read's end, or a write's end before its close). */
  End: 0x45, // E
  /** The stream of a channel is abandoned: {error?}; a write abandoned leaves nothing under its name. */
  Abort: 0x58, // X
  /** The receiver grants the sender more bytes: payload is a 4-byte unsigned count. */
  Credit: 0x41, // A
} as const

export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType]

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType))

export interface Frame {
  type: FrameTypeCode
  channel: number
  payload: Buffer
}

/** A frame's bytes: header and payload in one buffer (control frames) or the header alone to write before the data. */
export function frameHeader(type: FrameTypeCode, channel: number, payloadLength: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  header.writeUInt8(type, 0)
  header.writeUInt32BE(channel >>> 0, 1)
  header.writeUInt32BE(payloadLength, 5)
  return header
}

export function frameEncode(type: FrameTypeCode, channel: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > FRAME_PAYLOAD_MAX) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${FRAME_PAYLOAD_MAX}`)
  return Buffer.concat([frameHeader(type, channel, payload.length), payload])
}

export function frameEncodeJson(type: FrameTypeCode, channel: number, value: unknown): Buffer {
  return frameEncode(type, channel, Buffer.from(JSON.stringify(value), 'utf8'))
}

export function creditEncode(channel: number, bytes: number): Buffer {
  const payload = Buffer.allocUnsafe(4)
  payload.writeUInt32BE(bytes, 0)
  return frameEncode(FrameType.Credit, channel, payload)
}

export function creditDecode(payload: Buffer): number {
  if (payload.length !== 4) throw new FrameError(`credit frame of ${payload.length} bytes`)
  return payload.readUInt32BE(0)
}

export function jsonDecode(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'))
  } catch {
    throw new FrameError(`control frame is not JSON: '${payload.subarray(0, 60).toString('utf8')}'`)
  }
}

/** The byte stream is not walden frames (a corrupted stream, or text a login script printed). */
export class FrameError extends Error {}

/**
 * Cuts a byte stream into frames, whatever the chunk boundaries. Bytes wait in a list of chunks until a whole frame is
 * there; a data frame's payload is handed over as a view of the received chunk where it lies in one chunk (no copy).
 */
export class FrameDecoder {
  readonly #chunks: Buffer[] = []
  #buffered = 0

  /** Adds received bytes and returns the frames they complete, in order. Throws FrameError on a malformed stream. */
  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
    }
    const frames: Frame[] = []
    while (this.#buffered >= FRAME_HEADER_BYTES) {
      const header = this.#peek(FRAME_HEADER_BYTES)
      const type = header.readUInt8(0)
      const channel = header.readUInt32BE(1)
      const length = header.readUInt32BE(5)
      if (!KNOWN_TYPES.has(type)) {
        throw new FrameError(`unknown frame type 0x${type.toString(16).padStart(2, '0')} ('${printable(header)}')`)
      }
      if (length > FRAME_PAYLOAD_MAX) throw new FrameError(`frame payload of ${length} bytes exceeds ${FRAME_PAYLOAD_MAX}`)
      if (this.#buffered < FRAME_HEADER_BYTES + length) break
      this.#take(FRAME_HEADER_BYTES)
      frames.push({ type: type as FrameTypeCode, channel, payload: this.#take(length) })
    }
    return frames
  }

  /** Bytes received but not yet part of a whole frame: a stream that ends with some was cut mid-frame. */
  get pending(): number {
    return this.#buffered
  }

  #peek(length: number): Buffer {
    const first = this.#chunks[0]!
    if (first.length >= length) return first.subarray(0, length)
    return Buffer.concat(this.#chunks).subarray(0, length)
  }

  #take(length: number): Buffer {
    this.#buffered -= length
    if (length === 0) return Buffer.alloc(0)
    const first = this.#chunks[0]!
    if (first.length > length) {
      this.#chunks[0] = first.subarray(length)
      return first.subarray(0, length)
    }
    if (first.length === length) {
      this.#chunks.shift()
      return first
    }
    const out = Buffer.allocUnsafe(length)
    let copied = 0
    while (copied < length) {
      const chunk = this.#chunks[0]!
      const part = Math.min(chunk.length, length - copied)
      chunk.copy(out, copied, 0, part)
      copied += part
      if (part === chunk.length) this.#chunks.shift()
      else this.#chunks[0] = chunk.subarray(part)
    }
    return out
  }
}

function printable(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[^\x20-\x7e]/g, '.')
}

/**
 * Credit a sender holds on one channel. `take` waits until some credit is there and takes at most `wanted` bytes of
 * it; `grant` adds credit and wakes the waiter; `close` wakes it with an error (the channel ended).
 */
export class CreditGate {
  #credit: number
  #waiter: { resolve: () => void; reject: (error: Error) => void } | undefined
  #closed: Error | undefined
  readonly #onWait: ((waiting: boolean) => void) | undefined

  /** `onWait` hears when a sender starts and stops waiting for credit. */
  constructor(initial = CREDIT_WINDOW, onWait?: (waiting: boolean) => void) {
    this.#credit = initial
    this.#onWait = onWait
  }

  get available(): number {
    return this.#credit
  }

  async take(wanted: number): Promise<number> {
    if (this.#credit <= 0) {
      this.#onWait?.(true)
      try {
        while (this.#credit <= 0) {
          if (this.#closed) throw this.#closed
          await new Promise<void>((resolve, reject) => (this.#waiter = { resolve, reject }))
        }
      } finally {
        this.#onWait?.(false)
      }
    }
    if (this.#closed) throw this.#closed
    const granted = Math.min(wanted, this.#credit)
    this.#credit -= granted
    return granted
  }

  grant(bytes: number): void {
    this.#credit += bytes
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.resolve()
  }

  close(error: Error): void {
    this.#closed ??= error
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(error)
  }
}

/** The handshake each end sends first. */
export interface Hello {
  walden: string
  protocol: number
  /** Server only: where its storage is, for messages (e.g. "'/var/lib/walden'"), and the root paths are under. */
  description?: string
  root?: string
}

/** An error carried across: the kind keeps its exit code on the other side. */
export interface WireError {
  kind: string
  message: string
  hint?: string
}
