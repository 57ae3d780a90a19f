// Posix storage driver: a folder on a local (or mounted) file system.

import { spawnSync } from 'node:child_process'
import { release } from 'node:os'
import { randomBytes } from 'node:crypto'
import { closeSync, createReadStream, fsyncSync, openSync, renameSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rm, rmdir, unlink, utimes } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { errnoCode, fail, WaldenError } from '../common/errors.js'
import type { ReadRange, Storage, StorageInfo, WriteOptions } from './storage.js'

const DEFAULT_FILE_MODE = 0o640
const DEFAULT_PATH_MODE = 0o750

export class PosixStorage implements Storage {
  readonly root: string
  readonly description: string
  // Folders known to exist, so a backup of thousands of files does not mkdir each time.
  readonly #knownPaths = new Set<string>()

  constructor(root: string) {
    this.root = resolve(root)
    this.description = `'${this.root}'`
  }

  describe(path: string): string {
    return join(this.root, path)
  }

  async info(path: string): Promise<StorageInfo | undefined> {
    try {
      const stat = await lstat(this.describe(path), { bigint: true })
      return {
        type: stat.isDirectory() ? 'path' : stat.isSymbolicLink() ? 'link' : 'file',
        size: Number(stat.size),
        mtimeMs: Number(stat.mtimeNs) / 1e6,
        mode: Number(stat.mode) & 0o7777,
      }
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      throw storageError('FileOpen', 'unable to get info for', this.describe(path), error)
    }
  }

  async exists(path: string): Promise<boolean> {
    return (await this.info(path)) !== undefined
  }

  async list(path: string): Promise<string[]> {
    try {
      return (await readdir(this.describe(path))).sort()
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return []
      throw storageError('FileOpen', 'unable to list', this.describe(path), error)
    }
  }

  async linkDestination(path: string): Promise<string> {
    try {
      return await readlink(this.describe(path))
    } catch (error) {
      throw storageError('FileOpen', 'unable to read link', this.describe(path), error)
    }
  }

  read(path: string, options?: { missingOk?: false }): Promise<Buffer>
  read(path: string, options: { missingOk: true }): Promise<Buffer | undefined>
  async read(path: string, options?: { missingOk?: boolean }): Promise<Buffer | undefined> {
    try {
      return await readFile(this.describe(path))
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') {
        if (options?.missingOk) return undefined
        fail('FileMissing', `unable to open missing file '${this.describe(path)}' for read`)
      }
      throw storageError('FileRead', 'unable to read', this.describe(path), error)
    }
  }

  async openRead(path: string, range?: ReadRange): Promise<Readable> {
    const fullPath = this.describe(path)
    let handle: FileHandle
    try {
      handle = await open(fullPath, 'r')
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') fail('FileMissing', `unable to open missing file '${fullPath}' for read`)
      throw storageError('FileOpen', 'unable to open', fullPath, error)
    }
    // Large reads: every copy is CPU-bound on hashing and compression, and big chunks keep per-chunk costs low.
    if (range === undefined) return createReadStream(fullPath, { fd: handle, highWaterMark: 1024 * 1024 })
    if (range.length === 0) {
      await handle.close()
      return Readable.from([])
    }
    return createReadStream(fullPath, {
      fd: handle,
      highWaterMark: 1024 * 1024,
      start: range.offset,
      ...(range.length !== undefined ? { end: range.offset + range.length - 1 } : {}),
    })
  }

  async write(path: string, data: Buffer | string, options: WriteOptions = {}): Promise<void> {
    const target = this.describe(path)
    await this.#ensurePath(dirname(target))
    const atomic = options.atomic ?? true
    const written = atomic ? temporaryName(target) : target
    // Synchronous calls: write() is for small files (metadata, small data files), where each thread-pool round trip
    // of the asynchronous API costs more than the write itself. Large files go through openWrite().
    try {
      const fd = openSync(written, atomic ? 'wx' : 'w', options.mode ?? DEFAULT_FILE_MODE)
      try {
        writeFileSync(fd, data)
        if (options.sync ?? true) fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      if (options.mtimeMs !== undefined) utimesSync(written, Date.now() / 1000, options.mtimeMs / 1000)
      if (atomic) renameSync(written, target)
    } catch (error) {
      try {
        unlinkSync(written)
      } catch {
        // nothing to remove
      }
      throw storageError('FileWrite', 'unable to write', target, error)
    }
    if (atomic && (options.sync ?? true)) await syncFolder(dirname(target))
  }

  async openWrite(path: string, options: WriteOptions = {}): Promise<Writable> {
    const target = this.describe(path)
    await this.#ensurePath(dirname(target))
    const atomic = options.atomic ?? true
    const written = atomic ? temporaryName(target) : target
    let handle: FileHandle
    try {
      handle = await open(written, atomic ? 'wx' : 'w', options.mode ?? DEFAULT_FILE_MODE)
    } catch (error) {
      throw storageError('FileOpen', 'unable to open for write', target, error)
    }
    return new FileWriter(handle, written, target, options.mtimeMs, options.sync ?? true)
  }

  async move(from: string, to: string): Promise<void> {
    const target = this.describe(to)
    await this.#ensurePath(dirname(target))
    try {
      renameSync(this.describe(from), target)
    } catch (error) {
      throw storageError('FileWrite', 'unable to move', this.describe(from), error)
    }
    await syncFolder(dirname(target))
  }

  async remove(path: string): Promise<void> {
    try {
      await unlink(this.describe(path))
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw storageError('FileWrite', 'unable to remove', this.describe(path), error)
    }
  }

  async removeEmptyPath(path: string): Promise<void> {
    try {
      await rmdir(this.describe(path))
    } catch (error) {
      const code = errnoCode(error)
      if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return
      throw storageError('FileWrite', 'unable to remove path', this.describe(path), error)
    }
    this.#knownPaths.delete(this.describe(path))
    await syncFolder(dirname(this.describe(path))).catch(() => undefined)
  }

  async removePath(path: string): Promise<void> {
    const fullPath = this.describe(path)
    try {
      await rm(fullPath, { recursive: true, force: true })
    } catch (error) {
      throw storageError('FileWrite', 'unable to remove path', fullPath, error)
    }
    for (const known of this.#knownPaths) if (known === fullPath || known.startsWith(`${fullPath}/`)) this.#knownPaths.delete(known)
    await syncFolder(dirname(fullPath)).catch(() => undefined)
  }

  async syncPath(path: string, options: { missingOk?: boolean } = {}): Promise<void> {
    await syncFolder(this.describe(path), options)
  }

  /** Creates a folder and its parents, fsyncing each parent whose entries changed so the folder survives a crash. */
  async #ensurePath(fullPath: string): Promise<void> {
    if (this.#knownPaths.has(fullPath)) return
    const parent = dirname(fullPath)
    let created = false
    try {
      await mkdir(fullPath, { mode: DEFAULT_PATH_MODE })
      created = true
    } catch (error) {
      const code = errnoCode(error)
      if (code === 'ENOENT' && parent !== fullPath) {
        await this.#ensurePath(parent)
        return this.#ensurePath(fullPath)
      }
      if (code !== 'EEXIST') throw storageError('FileWrite', 'unable to create path', fullPath, error)
    }
    if (created) await syncFolder(parent)
    this.#knownPaths.add(fullPath)
  }
}

/**
 * Writes a file; on finish fsyncs it and, when writing under a temporary name, renames it into place and fsyncs the
 * folder. On error or destroy the written file is removed, so a failed copy never stays under the target name.
 */
class FileWriter extends Writable {
  readonly #handle: FileHandle
  readonly #temporary: string
  readonly #target: string
  readonly #mtimeMs: number | undefined
  readonly #sync: boolean
  #closed = false

  constructor(handle: FileHandle, temporary: string, target: string, mtimeMs: number | undefined, sync: boolean) {
    super({ highWaterMark: 1024 * 1024 })
    this.#handle = handle
    this.#temporary = temporary
    this.#target = target
    this.#mtimeMs = mtimeMs
    this.#sync = sync
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#handle.write(chunk).then(
      () => callback(),
      (error: unknown) => callback(storageError('FileWrite', 'unable to write', this.#target, error)),
    )
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#handle.writev(chunks.map(({ chunk }) => chunk)).then(
      () => callback(),
      (error: unknown) => callback(storageError('FileWrite', 'unable to write', this.#target, error)),
    )
  }

  override _final(callback: (error?: Error | null) => void): void {
    const finish = async (): Promise<void> => {
      if (this.#sync) await this.#handle.sync()
      this.#closed = true
      await this.#handle.close()
      if (this.#mtimeMs !== undefined) await utimes(this.#temporary, Date.now() / 1000, this.#mtimeMs / 1000)
      if (this.#temporary !== this.#target) {
        await rename(this.#temporary, this.#target)
        await syncFolder(dirname(this.#target))
      }
    }
    finish().then(
      () => callback(),
      (error: unknown) => callback(storageError('FileWrite', 'unable to write', this.#target, error)),
    )
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.writableFinished) return callback(error)
    const cleanUp = async (): Promise<void> => {
      if (!this.#closed) {
        this.#closed = true
        await this.#handle.close().catch(() => undefined)
      }
      await unlink(this.#temporary).catch(() => undefined)
    }
    cleanUp().then(() => callback(error))
  }
}

/** Matches TEMPORARY_NAME in storage.ts, which cleaning up after a killed writer relies on. */
function temporaryName(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
}

let syncfs: boolean | undefined

/**
 * Whether this host can flush a whole file system at once (`sync -f`, syncfs(2)), so bulk copies need not fsync
 * every file. Checked once per process.
 */
export function syncFilesystemAvailable(): boolean {
  // Before Linux 5.8 syncfs(2) did not report write-back errors, so a failed write could go unnoticed.
  const [major = 0, minor = 0] = release().split('.').map((part) => Number.parseInt(part, 10))
  // GNU coreutils' sync has had -f since 8.24. Asking its version flushes nothing, where trying `sync -f` would flush
  // a whole file system just to learn that it can.
  syncfs ??= (major > 5 || (major === 5 && minor >= 8)) && gnuSyncHasFileSystemOption(spawnSync('sync', ['--version'], { encoding: 'utf8' }).stdout ?? '')
  return syncfs
}

/** Writes all of `data` to an open file, at `position` or else at its current offset, with synchronous calls. */
export function writeAll(fd: number, data: Uint8Array, position?: number): void {
  for (let written = 0; written < data.length; ) {
    written += writeSync(fd, data, written, data.length - written, position === undefined ? null : position + written)
  }
}

/** Whether `sync --version` output is GNU coreutils 8.24 or later (which has `sync -f`). */
export function gnuSyncHasFileSystemOption(versionOutput: string): boolean {
  const match = /\(GNU coreutils\) (\d+)\.(\d+)/.exec(versionOutput)
  if (!match) return false
  const [major, minor] = [Number(match[1]), Number(match[2])]
  return major > 8 || (major === 8 && minor >= 24)
}

/**
 * Makes everything written to the file system holding `path` durable: data, metadata and folder entries. One call
 * after a bulk copy replaces an fsync per file and per folder (PostgreSQL's own --sync-method=syncfs does the same).
 */
export function syncFilesystem(path: string): void {
  const result = spawnSync('sync', ['-f', path], { encoding: 'utf8' })
  if (result.status !== 0) {
    fail('FileWrite', `unable to sync the file system of '${path}': ${(result.stderr || result.error?.message || '').trim()}`)
  }
}

const cache = new Map<string, PosixStorage>()

/**
 * One PosixStorage per root for the life of the process (or worker thread), so the folders it has created are
 * remembered across the thousands of files of a backup.
 */
export function posixStorage(root: string): PosixStorage {
  let storage = cache.get(root)
  if (!storage) cache.set(root, (storage = new PosixStorage(root)))
  return storage
}

/**
 * fsync of a folder, so the entries created or renamed in it survive a crash. A failure is an error (EIO means the
 * data may not be on disk); only a folder that does not exist may be skipped, when the caller says so.
 */
export async function syncFolder(fullPath: string, options: { missingOk?: boolean } = {}): Promise<void> {
  let handle: FileHandle
  try {
    handle = await open(fullPath, 'r')
  } catch (error) {
    if (options.missingOk && errnoCode(error) === 'ENOENT') return
    throw storageError('FileWrite', 'unable to sync', fullPath, error)
  }
  try {
    await handle.sync()
  } catch (error) {
    throw storageError('FileWrite', 'unable to sync', fullPath, error)
  } finally {
    await handle.close()
  }
}

export function storageError(kind: 'FileOpen' | 'FileRead' | 'FileWrite', action: string, path: string, error: unknown): Error {
  if (error instanceof WaldenError) return error
  const code = errnoCode(error)
  const reason = code === 'EACCES' ? 'permission denied' : code === 'ENOSPC' ? 'no space left on device' : (error as Error).message
  return new WaldenError(kind, `${action} '${path}': ${reason}`, {
    ...(code === 'EACCES' ? { hint: 'check that the user running walden owns or can write this path.' } : {}),
    cause: error,
  })
}
