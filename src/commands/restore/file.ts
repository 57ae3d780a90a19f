// Restores one file, or one part of a file stored in parts: with delta, keep it when its SHA-256 already matches;
// otherwise fetch it from the repository, decompress, verify its checksum and write it. Runs in a worker thread or
// inline; takes plain data and returns plain data.

import { createHash } from 'node:crypto'
import { chmodSync, closeSync, fstatSync, fsyncSync, lstatSync, openSync, readSync, utimesSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { Writable } from 'node:stream'
import { errnoCode, WaldenError } from '../../common/errors.js'
import type { ErrorKind } from '../../common/errors.js'
import { xxh3Create } from '../../io/xxh3.js'
import { digestAlgorithmOf } from '../../io/hash.js'
import { storedFileCopy, storedFileCopyToFileSync, storedFileRead } from '../../repo/stored-file.js'
import { cipherJobUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import type { Storage } from '../../storage/storage.js'
import { posixStorage, writeAll } from '../../storage/posix.js'
import { storageOpen } from '../../storage/location.js'
import type { StorageLocation } from '../../storage/location.js'
import { SMALL_FILE } from '../backup/file.js'
import type { ErrorData } from '../backup/file.js'

export interface RestoreFileInput {
  destination: string
  /** The repository read from. */
  repo: StorageLocation
  /** Repository path with extension; empty for an empty file, which is not stored. */
  repoPath: string
  /** Bytes of the file, or of the part. */
  size: number
  sha256: string
  /** XXH3-128 of the same bytes, when the backup recorded one: delta compares existing data with it. */
  xxh3?: string
  mode: number
  mtimeMs: number
  delta: boolean
  /** Write under a temporary name and rename (for the file written last, global/pg_control). */
  atomic: boolean
  /** fsync each file now; false when the caller flushes the file system once at the end. */
  syncEach: boolean
  /** Write with O_DIRECT where the file system takes it (option direct-io; see storage/direct-write.ts). */
  directIo: boolean
  /**
   * For one part of a file stored in parts: where the part starts. The caller has created the file at its full
   * size and sets its mode and time once every part is in place.
   */
  partOffset?: number
  /** The repository's cipher state (repo/cipher.ts), for a job on a worker thread. */
  cipher?: CipherState
  /**
   * A stored file that is missing or damaged is reported in the output (`unreadable`) instead of failing the job,
   * so the caller can fetch the same content from another repository.
   */
  healable?: boolean
}

export interface RestoreFileOutput {
  /** True when the data was written from the repository, false when the existing data was kept. */
  fetched: boolean
  /** With `healable`: why the stored file could not be read (it is missing, or fails its checksum or decryption). */
  unreadable?: ErrorData
}

/**
 * What makes a stored file unreadable in one repository while another may hold it whole: it is missing, fails its
 * checksum or does not decompress (both 'Checksum', see stored-file.ts), or fails decryption. Not failures to write
 * the destination, which another repository's copy would meet just the same.
 */
const UNREADABLE: ReadonlySet<ErrorKind> = new Set(['FileMissing', 'Checksum', 'Crypto'])

/**
 * Whether `size` bytes of a file from `offset` are the backed-up ones: by XXH3-128 when the backup recorded it and
 * the binding is here, else by the recorded checksum (SHA-256; SHA-1 for a backup pgBackRest made). False when the file is missing or too short.
 */
function existingMatches(path: string, offset: number, size: number, expected: { sha256: string; xxh3?: string }): boolean {
  const fast = expected.xxh3 === undefined ? undefined : xxh3Create()
  const hash = fast ?? createHash(digestAlgorithmOf(expected.sha256))
  const digest = existingDigest(path, offset, size, hash)
  return digest !== undefined && (fast ? digest === expected.xxh3 : digest === expected.sha256)
}

/** Digest of `size` bytes of a file from `offset`, or undefined when the file is missing or too short. */
function existingDigest(path: string, offset: number, size: number, hash: { update(data: Uint8Array): unknown; digest(encoding: 'hex'): string }): string | undefined {
  let fd: number
  try {
    if (!lstatSync(path).isFile()) return undefined
    fd = openSync(path, 'r')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw error
  }
  try {
    if (fstatSync(fd).size < offset + size) return undefined
    const buffer = Buffer.allocUnsafe(Math.min(size, 1024 * 1024))
    for (let done = 0; done < size; ) {
      const bytes = readSync(fd, buffer, 0, Math.min(buffer.length, size - done), offset + done)
      if (bytes === 0) return undefined
      hash.update(buffer.subarray(0, bytes))
      done += bytes
    }
    return hash.digest('hex')
  } finally {
    closeSync(fd)
  }
}

/** Writes a stream into an open file at a position (then fsyncs it if asked): one part of a file restored in parts. */
class PositionalWriter extends Writable {
  readonly #fd: number
  #position: number

  readonly #sync: boolean

  constructor(path: string, position: number, sync: boolean) {
    super({ highWaterMark: 1024 * 1024 })
    this.#fd = openSync(path, 'r+')
    this.#position = position
    this.#sync = sync
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      // writeSync on a worker thread: one fewer thread-pool round trip per chunk, and nothing else waits on us.
      writeAll(this.#fd, chunk, this.#position)
      this.#position += chunk.length
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      if (this.#sync) fsyncSync(this.#fd)
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    try {
      closeSync(this.#fd)
    } catch {
      // already closed
    }
    callback(error)
  }
}

/** The stored file or part into the destination with synchronous calls (storedFileCopyToFileSync). */
function copySync(repo: Storage, input: RestoreFileInput, what: string, flags: 'w' | 'r+', position: number): boolean {
  const target = { path: input.destination, flags, mode: input.mode, position, sync: input.syncEach, direct: input.directIo }
  return storedFileCopyToFileSync(repo, input.repoPath, input.sha256, what, target)
}

export async function restoreFile(input: RestoreFileInput): Promise<RestoreFileOutput> {
  try {
    return await restoreFileFrom(input)
  } catch (error) {
    if (input.healable && error instanceof WaldenError && UNREADABLE.has(error.kind)) {
      return { fetched: false, unreadable: { kind: error.kind, message: error.message, ...(error.hint !== undefined ? { hint: error.hint } : {}) } }
    }
    throw error
  }
}

async function restoreFileFrom(input: RestoreFileInput): Promise<RestoreFileOutput> {
  cipherJobUse(input.cipher)
  const offset = input.partOffset ?? 0
  // An empty part (the file shrank while it was backed up) is not stored; the file already has its final size.
  if (input.partOffset !== undefined && input.size === 0) return { fetched: false }
  if (input.delta && existingMatches(input.destination, offset, input.size, input)) {
    if (input.partOffset === undefined) {
      // Whole file kept: its size must match too, not only its first `size` bytes.
      if (lstatSync(input.destination).size === input.size) {
        chmodSync(input.destination, input.mode)
        utimesSync(input.destination, input.mtimeMs / 1000, input.mtimeMs / 1000)
        return { fetched: false }
      }
    } else return { fetched: false }
  }

  const repo = await storageOpen(input.repo)
  const what = `repository file '${repo.describe(input.repoPath)}'`

  if (input.partOffset !== undefined) {
    if (copySync(repo, input, what, 'r+', offset)) return { fetched: true }
    await storedFileCopy(repo, input.repoPath, input.sha256, what, async () => new PositionalWriter(input.destination, offset, input.syncEach))
    return { fetched: true }
  }

  const target = posixStorage(dirname(input.destination))
  const name = basename(input.destination)
  const writeOptions = { mode: input.mode, mtimeMs: input.mtimeMs, atomic: input.atomic, sync: input.syncEach }
  if (input.size === 0) {
    await target.write(name, Buffer.alloc(0), writeOptions)
  } else if (!input.atomic && copySync(repo, input, what, 'w', 0)) {
    utimesSync(input.destination, input.mtimeMs / 1000, input.mtimeMs / 1000)
  } else if (input.size <= SMALL_FILE) {
    // Small files in memory: the stored copy is smaller still, and streams cost more than the data here.
    await target.write(name, await storedFileRead(repo, input.repoPath, input.sha256, what), writeOptions)
  } else {
    await storedFileCopy(repo, input.repoPath, input.sha256, what, () => target.openWrite(name, writeOptions))
  }
  // open() applies the umask to the mode; set it exactly.
  chmodSync(input.destination, input.mode)
  return { fetched: true }
}

