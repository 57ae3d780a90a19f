// Synchronous writes of a file's content from a starting position, through O_DIRECT where asked and possible.
//
// Restore writes gigabytes that nothing reads before PostgreSQL starts. Through the page cache every one of those
// pages must first be allocated, which on a virtual machine that hands free memory back to its host costs more
// system time than the copy itself (measured here: 1.5 GB in 2.6-4.2 s through the cache, against 1.1-1.5 s with
// O_DIRECT, fsync included). O_DIRECT also leaves the host's cache to the databases it serves.
//
// O_DIRECT takes only aligned memory, offsets and lengths (DIRECT_ALIGNMENT). Aligned pieces are written as they
// come, without a copy: restore decodes each 1 MiB block into an aligned buffer. Anything else is gathered into an
// aligned staging buffer, and a file's last few bytes that make up no whole block go through a second, ordinary
// descriptor. A file system that refuses O_DIRECT (at open, or at the first write) gets ordinary writes instead.
// Durability is unchanged: O_DIRECT alone promises nothing after a crash, so callers fsync exactly as before.

import { closeSync, constants, fsyncSync, openSync } from 'node:fs'
import { errnoCode } from '../common/errors.js'
import { alignedAllocUnsafe, alignmentKnown, DIRECT_ALIGNMENT, isAligned } from '../io/aligned.js'
import { writeAll } from './posix.js'

/** Linux's O_DIRECT; undefined where Node.js does not define it. */
const O_DIRECT: number | undefined = (constants as Record<string, number | undefined>).O_DIRECT

const STAGE_SIZE = 1024 * 1024

// The staging buffer, one per thread (module state is per worker thread). A writer runs from open to close without
// yielding (restore's copy is synchronous); should a second one open meanwhile, it writes without O_DIRECT rather
// than share the stage (`inUse`).
const STAGE = { buffer: undefined as Buffer | undefined, inUse: false }

export interface DirectWriterTarget {
  path: string
  /** 'w': create or truncate; 'wx': create, failing if it exists; 'r+': write into an existing file. */
  flags: 'w' | 'wx' | 'r+'
  mode: number
  /** Where the first byte goes; 0 when absent. */
  position?: number
  /** Try O_DIRECT (ignored where the position is not aligned or alignment cannot be known). */
  direct: boolean
}

const OPEN_FLAGS = {
  w: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
  wx: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
  'r+': constants.O_RDWR,
} as const

/** Whether an error means "this file system or this piece is not for O_DIRECT". */
function directRefused(error: unknown): boolean {
  return errnoCode(error) === 'EINVAL'
}

export class DirectWriter {
  readonly #path: string
  #fd: number
  #direct: boolean
  /** An ordinary descriptor for what O_DIRECT cannot take, opened when first needed. */
  #plain: number | undefined
  #position: number
  #stage: Buffer | undefined
  #pending = 0

  constructor(target: DirectWriterTarget) {
    this.#path = target.path
    this.#position = target.position ?? 0
    const tryDirect = target.direct && O_DIRECT !== undefined && this.#position % DIRECT_ALIGNMENT === 0 && alignmentKnown() && !STAGE.inUse
    const flags = OPEN_FLAGS[target.flags]
    let fd: number | undefined
    if (tryDirect) {
      try {
        fd = openSync(target.path, flags | O_DIRECT!, target.mode)
      } catch (error) {
        if (!directRefused(error)) throw error
      }
    }
    // Refused at open: the file was not opened, so opening it again with the same flags means the same thing.
    this.#fd = fd ?? openSync(target.path, flags, target.mode)
    this.#direct = fd !== undefined
    if (this.#direct) {
      STAGE.inUse = true
      this.#stage = STAGE.buffer ??= alignedAllocUnsafe(STAGE_SIZE)
    }
  }

  /** Whether writes still go through O_DIRECT. */
  get direct(): boolean {
    return this.#direct
  }

  /** Writes `data` next; it may be reused by the caller as soon as this returns. */
  write(data: Buffer): void {
    if (!this.#direct) {
      writeAll(this.#fd, data, this.#position)
      this.#position += data.length
      return
    }
    let offset = 0
    if (this.#pending === 0 && isAligned(data)) {
      offset = data.length - (data.length % DIRECT_ALIGNMENT)
      if (offset > 0) this.#writeDirect(data.subarray(0, offset))
    }
    const stage = this.#stage!
    while (offset < data.length) {
      const take = Math.min(STAGE_SIZE - this.#pending, data.length - offset)
      data.copy(stage, this.#pending, offset, offset + take)
      this.#pending += take
      offset += take
      if (this.#pending === STAGE_SIZE) this.#flushStage()
    }
  }

  /** Writes whatever is still staged; then the file holds everything written. */
  finish(): void {
    if (this.#pending > 0) this.#flushStage()
  }

  /** fsync: one call covers both descriptors, as it flushes the file, not the descriptor. */
  sync(): void {
    this.finish()
    fsyncSync(this.#fd)
  }

  close(): void {
    if (this.#stage) STAGE.inUse = false
    this.#stage = undefined
    this.#direct = false
    const plain = this.#plain
    this.#plain = undefined
    try {
      if (plain !== undefined) closeSync(plain)
    } finally {
      closeSync(this.#fd)
    }
  }

  #flushStage(): void {
    const stage = this.#stage!
    const whole = this.#pending - (this.#pending % DIRECT_ALIGNMENT)
    if (whole > 0) this.#writeDirect(stage.subarray(0, whole))
    if (whole < this.#pending) {
      // The file's last bytes, short of a whole block: an ordinary write.
      const plain = (this.#plain ??= openSync(this.#path, 'r+'))
      writeAll(plain, stage.subarray(whole, this.#pending), this.#position)
      this.#position += this.#pending - whole
    }
    this.#pending = 0
  }

  #writeDirect(data: Buffer): void {
    try {
      writeAll(this.#fd, data, this.#position)
    } catch (error) {
      if (!directRefused(error)) throw error
      // Opened, but the first write was refused (a file system that takes the flag and not the I/O): from here on,
      // ordinary writes through a new descriptor (staged bytes still leave through the stage). What a refused write
      // left behind is written again in full.
      this.#switchToPlain()
      writeAll(this.#fd, data, this.#position)
    }
    this.#position += data.length
  }

  #switchToPlain(): void {
    const fd = openSync(this.#path, 'r+')
    closeSync(this.#fd)
    this.#fd = fd
    this.#direct = false
  }
}
