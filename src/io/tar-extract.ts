// Streaming tar extractor for PostgreSQL base backups: the tar files pg_basebackup -F t writes (optionally gz, lz4 or
// zstd compressed) and the tar streams a BASE_BACKUP command sends over the replication protocol.
//
// Formats read: ustar and the old GNU form ("ustar  "), GNU long names and long link names ('L', 'K'), pax extended
// headers ('x': path, linkpath, size; 'g' is read and ignored), octal and base-256 sizes. Entry kinds: regular files,
// directories and symbolic links. Anything else (hard links, devices, FIFOs) is refused: a PostgreSQL data directory
// holds none, so meeting one means the archive is not what the caller thinks it is.
//
// Safety: an entry name that is absolute or has a '..' component is refused, and so is a symbolic link whose target
// leads outside the folder being extracted into (unless the caller allows it, as restoring tablespace links does).
// A file is never held in memory: each chunk goes to disk as it arrives, and the input is paused while it is written.
//
// Durability follows walden's rules: every file is written under a temporary name and renamed into place only when
// complete, so a file under its real name is always whole. Data reaches the disk either by one file-system sync at the
// end (where the host can, as restore does) or by an fsync per file plus an fsync of every folder that gained entries.

import { constants as fsConstants } from 'node:fs'
import { chmod, lstat, mkdir, open, readdir, rename, symlink, unlink, type FileHandle } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Writable, type Readable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { WaldenError, errnoCode, fail } from '../common/errors.js'
import { storageError, syncFilesystem, syncFilesystemAvailable, syncFolder } from '../storage/posix.js'
import { codecFromExtension } from './compress.js'

const BLOCK = 512

// Meta entries (long names, pax headers) are small; a larger one means a corrupt or hostile archive.
const META_LIMIT = 1024 * 1024

export interface TarEntry {
  /** Path relative to the target folder, '/'-separated, without a trailing slash. */
  readonly name: string
  readonly type: 'file' | 'directory' | 'symlink'
  /** Permission bits (mode & 0o777). */
  readonly mode: number
  /** Bytes of a file's content; 0 for the other kinds. */
  readonly size: number
  /** Target of a symbolic link. */
  readonly linkTarget?: string
}

export interface TarExtractOptions {
  /**
   * BASE_BACKUP streams (PG13-18) and pg_basebackup's own per-tablespace streams end without the two zero blocks that
   * close a tar file; accept an end of input at an entry boundary as the end of the archive.
   */
  allowMissingTrailer?: boolean
  /** Whether a symbolic link may point at this absolute or relative target, which lies outside the target folder. */
  allowLinkOutside?: (entry: TarEntry) => boolean
  /**
   * Called for each entry before it is written. Returning a Writable diverts a file's content there instead of the
   * target folder (e.g. backup_manifest kept aside); returning 'skip' drops the entry.
   */
  onEntry?: (entry: TarEntry) => Writable | 'skip' | undefined
  /**
   * 'auto' (default): one file-system sync at the end where the host can, else fsync each file and folder.
   * 'each': always fsync each file and folder. 'none': leave durability to the caller (who syncs afterwards).
   */
  sync?: 'auto' | 'each' | 'none'
  /**
   * Create the target folder (and missing parents) with mode 0700 before the first entry, instead of requiring it;
   * an existing one must be empty ('PathNotEmpty' otherwise), so nothing extracted mixes with files already there.
   */
  createTarget?: boolean
}

export interface TarExtractSummary {
  files: number
  directories: number
  symlinks: number
  /** Bytes of file content written. */
  bytes: number
}

/** Parses an octal or GNU base-256 numeric header field. */
export function tarNumber(field: Buffer): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    // GNU base-256: the remaining bits of the first byte and the following bytes, big-endian.
    let value = field[0]! & 0x7f
    for (let index = 1; index < field.length; index++) value = value * 256 + field[index]!
    return value
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '')
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text)) fail('Format', `tar header field '${text}' is not an octal number`)
  return Number.parseInt(text, 8)
}

/** A NUL-terminated string field. */
function tarString(field: Buffer): string {
  const end = field.indexOf(0)
  return field.toString('utf8', 0, end === -1 ? field.length : end)
}

/** Parses the records of a pax extended header: "<length> <key>=<value>\n" each. */
export function paxParse(body: Buffer): Map<string, string> {
  const records = new Map<string, string>()
  let offset = 0
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset)
    if (space === -1) break
    const length = Number.parseInt(body.toString('latin1', offset, space), 10)
    if (!Number.isInteger(length) || length <= space - offset || offset + length > body.length) {
      fail('Format', 'tar pax header has a malformed record')
    }
    const record = body.toString('utf8', space + 1, offset + length - 1)
    const equals = record.indexOf('=')
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1))
    offset += length
  }
  return records
}

/**
 * Checks that an entry name stays inside the target folder and returns it normalized ('./a//b/' becomes 'a/b').
 * Returns '' for the archive's root folder itself ('.' or './').
 */
export function tarSafeName(raw: string): string {
  if (raw.includes('\0')) fail('Format', `tar entry name '${raw.replaceAll('\0', '\\0')}' contains a NUL byte`)
  if (raw.startsWith('/')) {
    fail('FileInvalid', `tar entry '${raw}' has an absolute name`, { hint: 'extract only archives made by pg_basebackup or walden.' })
  }
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.')
  if (parts.includes('..')) {
    fail('FileInvalid', `tar entry '${raw}' leads outside the target folder ('..')`, { hint: 'extract only archives made by pg_basebackup or walden.' })
  }
  return parts.join('/')
}

/** Whether a symbolic link named `name` (relative to the root) pointing at `target` stays inside the root. */
export function tarLinkInside(name: string, target: string): boolean {
  if (isAbsolute(target)) return false
  const root = resolve('/', 'root')
  const resolved = normalize(join(dirname(join(root, name)), target))
  return resolved === root || resolved.startsWith(root + sep)
}

function temporaryName(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
}

type State =
  | { kind: 'header' }
  | { kind: 'meta'; type: 'L' | 'K' | 'x' | 'g'; remaining: number; padding: number; parts: Buffer[] }
  | { kind: 'body'; entry: TarEntry; remaining: number; padding: number; sink: FileSink | Writable | undefined }
  | { kind: 'padding'; remaining: number }
  | { kind: 'end' }

/** A file being written under a temporary name; renamed to its real name on close. */
class FileSink {
  readonly path: string
  readonly #temporary: string
  readonly #handle: FileHandle
  readonly #mode: number

  private constructor(path: string, temporary: string, handle: FileHandle, mode: number) {
    this.path = path
    this.#temporary = temporary
    this.#handle = handle
    this.#mode = mode
  }

  static async open(path: string, mode: number): Promise<FileSink> {
    const temporary = temporaryName(path)
    try {
      // O_EXCL|O_NOFOLLOW: never write through a link or into a file someone else made under our temporary name.
      const handle = await open(temporary, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600)
      return new FileSink(path, temporary, handle, mode)
    } catch (error) {
      throw storageError('FileWrite', 'unable to create', path, error)
    }
  }

  async write(data: Buffer): Promise<void> {
    try {
      for (let written = 0; written < data.length; ) {
        const { bytesWritten } = await this.#handle.write(data, written, data.length - written)
        written += bytesWritten
      }
    } catch (error) {
      throw storageError('FileWrite', 'unable to write', this.path, error)
    }
  }

  async close(sync: boolean): Promise<void> {
    try {
      await this.#handle.chmod(this.#mode)
      if (sync) await this.#handle.sync()
      await this.#handle.close()
      await rename(this.#temporary, this.path)
    } catch (error) {
      await this.abort()
      throw storageError('FileWrite', 'unable to write', this.path, error)
    }
  }

  async abort(): Promise<void> {
    await this.#handle.close().catch(() => undefined)
    await unlink(this.#temporary).catch(() => undefined)
  }
}

/**
 * A Writable that extracts the tar stream written into it below `target` (which must exist). It finishes only after
 * every file is renamed into place and synced; an error (bad archive, refused entry, full disk) fails the stream and
 * leaves no temporary file behind. Files already extracted stay: the caller owns the folder and removes it on failure.
 */
export class TarExtractor extends Writable {
  readonly target: string
  readonly summary: TarExtractSummary = { files: 0, directories: 0, symlinks: 0, bytes: 0 }
  readonly #options: TarExtractOptions
  readonly #syncEach: boolean
  readonly #syncAtEnd: boolean
  #state: State = { kind: 'header' }
  #header = Buffer.alloc(BLOCK)
  #headerFill = 0
  #zeroBlocks = 0
  #longName: string | undefined
  #longLink: string | undefined
  #pax: Map<string, string> | undefined
  readonly #touchedFolders = new Set<string>()
  readonly #knownFolders = new Set<string>()

  constructor(target: string, options: TarExtractOptions = {}) {
    super({ highWaterMark: 1024 * 1024 })
    this.target = resolve(target)
    this.#options = options
    const sync = options.sync ?? 'auto'
    this.#syncAtEnd = sync === 'auto' && syncFilesystemAvailable()
    this.#syncEach = sync === 'each' || (sync === 'auto' && !this.#syncAtEnd)
    this.#knownFolders.add(this.target)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#targetReady()
      .then(() => this.#consume(chunk))
      .then(() => callback(), (error: unknown) => callback(error as Error))
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#targetReady()
      .then(() => this.#finish())
      .then(() => callback(), (error: unknown) => callback(error as Error))
  }

  #targetMade: Promise<void> | undefined
  /** With createTarget: the target was made or found empty here, so everything in it came from this archive. */
  targetOwned = false

  #targetReady(): Promise<void> {
    if (!this.#options.createTarget) return Promise.resolve()
    this.#targetMade ??= (async () => {
      try {
        const first = await mkdir(this.target, { recursive: true, mode: 0o700 })
        if (first !== undefined) this.#touchedFolders.add(dirname(first))
        else if ((await readdir(this.target)).length > 0) {
          fail('PathNotEmpty', `folder '${this.target}' is not empty`, { hint: 'remove its contents, or choose another folder.' })
        }
        this.targetOwned = true
        await chmod(this.target, 0o700)
      } catch (error) {
        throw storageError('FileWrite', 'unable to create path', this.target, error)
      }
    })()
    return this.#targetMade
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const state = this.#state
    if (state.kind === 'body' && state.sink instanceof FileSink) {
      state.sink.abort().then(() => callback(error))
      this.#state = { kind: 'end' }
      return
    }
    callback(error)
  }

  async #consume(chunk: Buffer): Promise<void> {
    let offset = 0
    while (offset < chunk.length) {
      const state = this.#state
      switch (state.kind) {
        case 'end':
          // Anything after the end blocks is padding to the record size (tar's 10240-byte records): zeros.
          for (let index = offset; index < chunk.length; index++) {
            if (chunk[index] !== 0) fail('Format', `tar archive has data after its end`)
          }
          return
        case 'header': {
          const take = Math.min(BLOCK - this.#headerFill, chunk.length - offset)
          chunk.copy(this.#header, this.#headerFill, offset, offset + take)
          this.#headerFill += take
          offset += take
          if (this.#headerFill === BLOCK) {
            this.#headerFill = 0
            await this.#onHeader(this.#header)
          }
          break
        }
        case 'meta': {
          const take = Math.min(state.remaining, chunk.length - offset)
          state.parts.push(Buffer.from(chunk.subarray(offset, offset + take)))
          state.remaining -= take
          offset += take
          if (state.remaining === 0) {
            this.#onMeta(state.type, Buffer.concat(state.parts))
            this.#state = state.padding > 0 ? { kind: 'padding', remaining: state.padding } : { kind: 'header' }
          }
          break
        }
        case 'body': {
          const take = Math.min(state.remaining, chunk.length - offset)
          const data = chunk.subarray(offset, offset + take)
          if (state.sink instanceof FileSink) await state.sink.write(data)
          else if (state.sink) await writeTo(state.sink, data)
          state.remaining -= take
          this.summary.bytes += take
          offset += take
          if (state.remaining === 0) await this.#endBody(state)
          break
        }
        case 'padding': {
          const take = Math.min(state.remaining, chunk.length - offset)
          state.remaining -= take
          offset += take
          if (state.remaining === 0) this.#state = { kind: 'header' }
          break
        }
      }
    }
  }

  async #onHeader(header: Buffer): Promise<void> {
    if (header.every((byte) => byte === 0)) {
      // Two zero blocks end the archive; GNU tar accepts one, so do we (at the end of input).
      if (++this.#zeroBlocks === 2) this.#state = { kind: 'end' }
      return
    }
    if (this.#zeroBlocks > 0) fail('Format', 'tar archive has a zero block in the middle')
    this.#checkSum(header)
    const typeFlag = String.fromCharCode(header[156]!)
    const size = tarNumber(header.subarray(124, 136))
    const padding = (BLOCK - (size % BLOCK)) % BLOCK

    if (typeFlag === 'L' || typeFlag === 'K' || typeFlag === 'x' || typeFlag === 'g') {
      if (size > META_LIMIT) fail('Format', `tar extended header of ${size} bytes is too large`)
      this.#state = { kind: 'meta', type: typeFlag, remaining: size, padding, parts: [] }
      if (size === 0) {
        this.#onMeta(typeFlag, Buffer.alloc(0))
        this.#state = { kind: 'header' }
      }
      return
    }

    const pax = this.#pax
    const magic = header.toString('latin1', 257, 263)
    let rawName = this.#longName ?? pax?.get('path')
    if (rawName === undefined) {
      const name = tarString(header.subarray(0, 100))
      const prefix = magic === 'ustar\0' ? tarString(header.subarray(345, 500)) : ''
      rawName = prefix === '' ? name : `${prefix}/${name}`
    }
    const rawLink = this.#longLink ?? pax?.get('linkpath') ?? tarString(header.subarray(157, 257))
    const paxSize = pax?.get('size')
    const entrySize = paxSize === undefined ? size : Number.parseInt(paxSize, 10)
    this.#longName = this.#longLink = this.#pax = undefined

    const name = tarSafeName(rawName)
    const mode = tarNumber(header.subarray(100, 108)) & 0o777
    let entry: TarEntry
    if (typeFlag === '0' || typeFlag === '\0' || typeFlag === '7') entry = { name, type: 'file', mode, size: entrySize }
    else if (typeFlag === '5') entry = { name, type: 'directory', mode, size: 0 }
    else if (typeFlag === '2') entry = { name, type: 'symlink', mode, size: 0, linkTarget: rawLink }
    else {
      const kind = typeFlag === '1' ? 'a hard link' : typeFlag === '3' || typeFlag === '4' ? 'a device' : typeFlag === '6' ? 'a FIFO' : `of type '${typeFlag}'`
      fail('FileInvalid', `tar entry '${rawName}' is ${kind}, which a PostgreSQL backup never holds`)
    }
    if (name === '' && entry.type !== 'directory') fail('FileInvalid', `tar entry '${rawName}' has no name`)

    const diverted = this.#options.onEntry?.(entry)
    const bodySize = entry.type === 'file' ? entrySize : size
    const bodyPadding = (BLOCK - (bodySize % BLOCK)) % BLOCK
    if (diverted === 'skip') {
      this.#state = bodySize + bodyPadding > 0 ? { kind: 'padding', remaining: bodySize + bodyPadding } : { kind: 'header' }
      return
    }

    switch (entry.type) {
      case 'directory':
        await this.#makeFolder(name === '' ? this.target : join(this.target, name), mode)
        this.summary.directories++
        break
      case 'symlink':
        await this.#makeSymlink(entry)
        this.summary.symlinks++
        break
      case 'file': {
        const path = join(this.target, name)
        await this.#ensureFolder(dirname(path))
        const sink = diverted ?? (await FileSink.open(path, mode))
        this.summary.files++
        const state: State = { kind: 'body', entry, remaining: entrySize, padding: bodyPadding, sink }
        this.#state = state
        if (entrySize === 0) await this.#endBody(state)
        return
      }
    }
    this.#state = bodySize + bodyPadding > 0 ? { kind: 'padding', remaining: bodySize + bodyPadding } : { kind: 'header' }
  }

  async #endBody(state: Extract<State, { kind: 'body' }>): Promise<void> {
    if (state.sink instanceof FileSink) {
      await state.sink.close(this.#syncEach)
      this.#touchedFolders.add(dirname(state.sink.path))
    } else if (state.sink) {
      const sink = state.sink
      await new Promise<void>((resolvePromise, reject) => sink.end((error?: Error | null) => (error ? reject(error) : resolvePromise())))
    }
    this.#state = state.padding > 0 ? { kind: 'padding', remaining: state.padding } : { kind: 'header' }
  }

  #onMeta(type: 'L' | 'K' | 'x' | 'g', body: Buffer): void {
    if (type === 'L') this.#longName = tarString(body)
    else if (type === 'K') this.#longLink = tarString(body)
    else if (type === 'x') this.#pax = paxParse(body)
    // 'g' (global pax header): pg_basebackup writes none, and nothing in it changes where bytes go.
  }

  #checkSum(header: Buffer): void {
    const stored = tarNumber(header.subarray(148, 156))
    let sum = 0
    for (let index = 0; index < BLOCK; index++) sum += index >= 148 && index < 156 ? 0x20 : header[index]!
    if (sum !== stored) fail('Format', `tar header checksum mismatch (stored ${stored}, computed ${sum}): the archive is damaged or not a tar file`)
  }

  async #makeFolder(path: string, mode: number): Promise<void> {
    if (path === this.target) {
      // The archive's own root ('./'): the caller's folder, whose mode the caller decides.
      return
    }
    await this.#ensureFolder(dirname(path))
    try {
      await mkdir(path, { mode })
      this.#touchedFolders.add(dirname(path))
      this.#touchedFolders.add(path)
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw storageError('FileWrite', 'unable to create path', path, error)
      const info = await lstat(path)
      if (!info.isDirectory()) fail('FileInvalid', `tar entry '${relative(this.target, path)}' is a folder, but a file of that name exists`)
    }
    // mkdir applies the umask; the archive's mode is what PostgreSQL expects (0700 or 0750).
    await chmod(path, mode).catch((error: unknown) => {
      throw storageError('FileWrite', 'unable to set the mode of', path, error)
    })
    this.#knownFolders.add(path)
  }

  /** Creates a file's parent folders (0700) when the archive did not list them first. */
  async #ensureFolder(path: string): Promise<void> {
    if (this.#knownFolders.has(path)) return
    if (!(path === this.target || path.startsWith(this.target + sep))) {
      throw new WaldenError('Assert', `tar extraction reached outside '${this.target}': '${path}'`)
    }
    await this.#ensureFolder(dirname(path))
    try {
      await mkdir(path, { mode: 0o700 })
      this.#touchedFolders.add(dirname(path))
      this.#touchedFolders.add(path)
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw storageError('FileWrite', 'unable to create path', path, error)
    }
    this.#knownFolders.add(path)
  }

  async #makeSymlink(entry: TarEntry): Promise<void> {
    const target = entry.linkTarget ?? ''
    if (target === '') fail('FileInvalid', `tar entry '${entry.name}' is a link with no target`)
    if (!tarLinkInside(entry.name, target) && !this.#options.allowLinkOutside?.(entry)) {
      fail('FileInvalid', `tar entry '${entry.name}' is a link to '${target}', outside the target folder`, {
        hint: 'extract only archives made by pg_basebackup or walden.',
      })
    }
    const path = join(this.target, entry.name)
    await this.#ensureFolder(dirname(path))
    try {
      await symlink(target, path)
    } catch (error) {
      throw storageError('FileWrite', 'unable to create link', path, error)
    }
    this.#touchedFolders.add(dirname(path))
  }

  async #finish(): Promise<void> {
    const state = this.#state
    const atBoundary = state.kind === 'header' && this.#headerFill === 0
    if (state.kind !== 'end' && !(atBoundary && (this.#zeroBlocks > 0 || this.#options.allowMissingTrailer))) {
      fail('Format', state.kind === 'body' ? `tar archive ends inside file '${state.entry.name}': it is truncated` : 'tar archive is truncated')
    }
    if (this.#longName !== undefined || this.#pax !== undefined) fail('Format', 'tar archive ends after an extended header')
    if (this.#syncAtEnd) syncFilesystem(this.target)
    else if (this.#syncEach) {
      for (const folder of this.#touchedFolders) await syncFolder(folder)
      await syncFolder(dirname(this.target))
    }
  }
}

function writeTo(sink: Writable, data: Buffer): Promise<void> {
  // Copied: the caller's chunk is reused by the parser once this resolves, the sink may keep it longer.
  const copy = Buffer.from(data)
  return new Promise((resolvePromise, reject) => {
    const ok = sink.write(copy, (error) => (error ? reject(error) : undefined))
    if (ok) resolvePromise()
    else sink.once('drain', () => resolvePromise())
  })
}

/** Extracts a tar stream below `target` (an existing folder); resolves when every file is in place and durable. */
export async function tarExtract(source: Readable, target: string, options: TarExtractOptions = {}): Promise<TarExtractSummary> {
  const extractor = new TarExtractor(target, options)
  await pipeline(source, extractor)
  return extractor.summary
}

/**
 * Extracts a tar file (base.tar, 16384.tar, pg_wal.tar; with .gz, .lz4 or .zst after the name when compressed) below
 * `target`.
 */
export async function tarExtractFile(file: string, target: string, options: TarExtractOptions = {}): Promise<TarExtractSummary> {
  const codec = codecFromExtension(file)
  const extractor = new TarExtractor(target, options)
  const source = createReadStream(file)
  source.on('error', () => undefined)
  try {
    if (codec.type === 'none') await pipeline(source, extractor)
    else await pipeline(source, codec.decompress(), extractor)
  } catch (error) {
    if (errnoCode(error) !== undefined && !(error instanceof WaldenError)) throw storageError('FileRead', 'unable to read', file, error)
    if (error instanceof WaldenError && error.kind === 'Format') {
      throw new WaldenError('Format', `${file}: ${error.message}`, { ...(error.hint ? { hint: error.hint } : {}), cause: error })
    }
    throw error
  }
  return extractor.summary
}
