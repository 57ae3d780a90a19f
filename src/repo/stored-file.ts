// Reading a file back out of the repository: decrypt, decompress, verify its SHA-256, write. Shared by restore and
// archive-get (and any other reader), so all report a damaged repository file the same way, and every reader of an
// encrypted repository decrypts here: each chunk's tag is verified before its plaintext moves on (io/cipher.ts).

import { Writable } from 'node:stream'
import { createHash } from 'node:crypto'
import { closeSync, openSync, readSync, rmSync } from 'node:fs'
import { errnoCode, fail, WaldenError } from '../common/errors.js'
import { decompressBuffer } from '../io/buffer-codec.js'
import { codecFromExtension } from '../io/compress.js'
import { chunkDecodeAll } from '../io/lz4-frame.js'
import { digestAlgorithmOf, HashStream } from '../io/hash.js'
import { alignedAllocUnsafe } from '../io/aligned.js'
import { DirectWriter } from '../storage/direct-write.js'
import { PosixStorage, storageError } from '../storage/posix.js'
import type { ReadOptions, ReadRange, Storage } from '../storage/storage.js'
import { buffer } from 'node:stream/consumers'
import { Opener, OpenStream, openBuffer } from '../io/cipher.js'
import { cipherOpenKeys, cipherPgbrPassFor } from './cipher.js'
import { pgbrDecrypt, PgbrDecryptStream } from './pgbackrest/cipher.js'
import { streamInto } from '../storage/stream-into.js'

/**
 * A stored file's address: its repository path, or, for a file pgBackRest stored in a bundle (repo/pgbackrest/info.ts),
 * `backup/<stanza>/<label>/bundle/<id>#<offset>+<length><extension>`: `length` bytes from `offset` of the bundle,
 * compressed as the extension says. The form cannot be met by any other stored file: those lie under pg_data/ or
 * pg_tblspc/ of their backup, never under bundle/.
 */
export function storedAddressInBundle(bundlePath: string, offset: number, length: number, extension: string): string {
  return `${bundlePath}#${offset}+${length}${extension}`
}

const IN_BUNDLE = /^(backup\/[^/]+\/[^/]+\/bundle\/\d+)#(\d+)\+(\d+)((?:\.[a-z0-9]+)?)$/

/** The file to open, the bytes of it to read (for a file in a bundle), and the name whose extension gives its codec. */
function storedAddress(address: string): { path: string; range?: ReadRange; codecName: string } {
  const match = IN_BUNDLE.exec(address)
  if (!match) return { path: address, codecName: address }
  return { path: match[1]!, range: { offset: Number(match[2]), length: Number(match[3]) }, codecName: `bundled${match[4]}` }
}

/** The stored bytes at an address, whole. */
async function storedBytes(repo: Storage, address: string, options: ReadOptions): Promise<Buffer> {
  const { path, range } = storedAddress(address)
  if (!range) return repo.read(path, options)
  return buffer(await repo.openRead(path, range, options))
}

/**
 * A stored file that does not decompress is as damaged as one whose content fails its checksum, and usually fails
 * this way first (a flipped bit breaks the compressed stream). The codec's own error names no file, so the user
 * would not know which one to repair: report it like a checksum mismatch, naming the file.
 */
function damaged(error: unknown, what: string): unknown {
  if (!(error instanceof WaldenError) || error.kind !== 'Format') return error
  return new WaldenError('Checksum', `${what} is damaged: ${error.message}`, {
    hint: DAMAGED_HINT,
    cause: error,
  })
}

const DAMAGED_HINT = 'the repository file is damaged; use another backup, or repair the repository from a copy.'

/**
 * Every reader here checks the content's SHA-256 where it lands, so a backup host need not hash the stored bytes in
 * transit too (a stream altered on the way fails that check, or fails to decompress, and is reported as damaged).
 */
const CONTENT_VERIFIED = { contentVerified: true } as const

/**
 * A small stored file, decompressed and verified, in memory: for the many small files of a cluster streams cost
 * more than the data. The caller bounds the size.
 */
export async function storedFileRead(repo: Storage, path: string, sha256: string, what: string): Promise<Buffer> {
  const stored = await storedBytes(repo, path, CONTENT_VERIFIED)
  const keys = cipherOpenKeys()
  const pgbrPass = cipherPgbrPassFor(path)
  let content: Buffer
  try {
    const compressed = pgbrPass
      ? pgbrDecrypt(pgbrPass, stored, `repository file '${repo.describe(path)}'`)
      : keys
        ? openBuffer(keys, stored, `repository file '${repo.describe(path)}'`)
        : stored
    const codec = codecFromExtension(storedAddress(path).codecName)
    content = chunkDecodeWhole(codec, compressed) ?? (await decompressBuffer(codec, compressed, { verifiedByCaller: true }))
  } catch (error) {
    throw damaged(error, what)
  }
  const actual = createHash(digestAlgorithmOf(sha256)).update(content).digest('hex')
  if (actual !== sha256) fail('Checksum', `${what} has checksum ${actual}, expected ${sha256}`, { hint: DAMAGED_HINT })
  return content
}

/**
 * A whole compressed buffer through the codec's synchronous chunk decoder, where it has one (none, lz4 through
 * walden's liblz4 binding), else undefined. The decoder's buffers are reused from file to file; the general decoder
 * (decompressBuffer) has lz4-napi allocate a block's maximum, 4 MiB, for every block, so a restore from a backup
 * host or S3, which reads each small file this way, made 4 MiB of garbage per file: measured over SSH, a third more
 * CPU in the workers and a peak RSS of 240 MB where the same restore from a folder stays near 100 MB. Each decoded
 * piece is valid only during the sink call, so it is copied out.
 */
function chunkDecodeWhole(codec: ReturnType<typeof codecFromExtension>, data: Buffer): Buffer | undefined {
  const decoder = codec.chunkDecoder?.({ verifiedByCaller: true })
  return decoder ? chunkDecodeAll(decoder, data) : undefined
}

/**
 * Copies a stored file, decompressed and verified, into the writer `openWriter` creates. The repository file is
 * opened first, so a missing one fails before anything is created at the destination.
 */
export async function storedFileCopy(
  repo: Storage,
  path: string,
  sha256: string,
  what: string,
  openWriter: () => Promise<Writable>,
): Promise<void> {
  const stored = storedAddress(path)
  const reader = await repo.openRead(stored.path, stored.range, CONTENT_VERIFIED)
  const writer = await openWriter()
  const keys = cipherOpenKeys()
  const pgbrPass = cipherPgbrPassFor(path)
  const decrypt = pgbrPass
    ? [new PgbrDecryptStream(pgbrPass, `repository file '${repo.describe(path)}'`)]
    : keys
      ? [new OpenStream(keys, `repository file '${repo.describe(path)}'`)]
      : []
  await streamInto(reader, [...decrypt, codecFromExtension(stored.codecName).decompress({ verifiedByCaller: true }), new HashStream({ sha256, what })], writer).catch((error: unknown) => {
    throw damaged(error, what)
  })
}

/** Bytes read from the repository at a time by storedFileCopySync. */
const READ_CHUNK = 1024 * 1024

// storedFileCopySync's read buffer, one per thread (module state is per worker thread): it runs from start to end
// without yielding, so calls never overlap, and a new 1 MiB buffer per restored file would be garbage. Aligned, as
// an uncompressed file's pieces are handed on as they were read, to be written with O_DIRECT.
let readBuffer: Buffer | undefined

/**
 * storedFileCopy without streams, where the file's codec has a synchronous chunk decoder (none, lz4 through walden's
 * liblz4 binding): reads the stored file in 1 MiB pieces into one buffer, decodes into reused buffers and hands each
 * decoded piece to `write`, which must be done with it when it returns. Nothing is allocated per piece, so memory
 * stays flat and page faults few however much is restored. Returns false, having done nothing, for other codecs.
 * The SHA-256 is checked at the end: what `write` received is only good once this returns.
 */
export function storedFileCopySync(repo: Storage, path: string, sha256: string, what: string, write: (data: Buffer) => void): boolean {
  const actual = storedFileDecodeSync(repo, path, what, write, digestAlgorithmOf(sha256))
  if (actual === undefined) return false
  if (actual !== sha256) fail('Checksum', `${what} has checksum ${actual}, expected ${sha256}`, { hint: DAMAGED_HINT })
  return true
}

/**
 * The decoding loop of storedFileCopySync, and of storedFileDigest: hands each decoded piece to `write` and returns
 * the SHA-256 of everything decoded, or undefined, having done nothing, where the codec has no synchronous decoder.
 */
function storedFileDecodeSync(
  repo: Storage,
  path: string,
  what: string,
  write: (data: Buffer) => void,
  algorithm: 'sha256' | 'sha1' = 'sha256',
): string | undefined {
  // A local repository only: the path is opened directly. A file pgBackRest encrypted takes the stream path.
  const local = repo instanceof PosixStorage && cipherPgbrPassFor(path) === undefined && storedAddress(path).range === undefined
  const decoder = local ? codecFromExtension(path).chunkDecoder?.({ verifiedByCaller: true }) : undefined
  if (!decoder) return undefined
  const fullPath = repo.describe(path)
  let fd: number
  try {
    fd = openSync(fullPath, 'r')
  } catch (error) {
    decoder.release()
    if (errnoCode(error) === 'ENOENT') fail('FileMissing', `unable to open missing file '${fullPath}' for read`)
    throw storageError('FileOpen', 'unable to open', fullPath, error)
  }
  const hash = createHash(algorithm)
  const sink = (data: Buffer): void => {
    hash.update(data)
    write(data)
  }
  // Encrypted: each verified chunk goes on to the decoder (pieces of at most 64 KiB, not aligned: DirectWriter
  // gathers them into its aligned staging buffer for O_DIRECT).
  const keys = cipherOpenKeys()
  const opener = keys ? new Opener(keys, `repository file '${fullPath}'`) : undefined
  const decode = (data: Buffer): void => decoder.write(data, sink)
  try {
    const buffer = (readBuffer ??= alignedAllocUnsafe(READ_CHUNK))
    for (;;) {
      const bytes = readSync(fd, buffer, 0, READ_CHUNK, null)
      if (bytes === 0) break
      if (opener) opener.write(buffer.subarray(0, bytes), decode)
      else decoder.write(buffer.subarray(0, bytes), sink)
    }
    opener?.end(decode)
    decoder.end(sink)
  } catch (error) {
    throw damaged(error, what)
  } finally {
    decoder.release()
    closeSync(fd)
  }
  return hash.digest('hex')
}

/** What a stored file decodes to. */
export interface StoredFileDigest {
  /** Bytes after decompression. */
  size: number
  sha256: string
}

/** Where storedFileDigest's stream path sends the decoded bytes: nowhere. */
class Discard extends Writable {
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    callback()
  }
}

/**
 * Reads a stored file through to its end, decompressed, keeping nothing: its size and SHA-256 (`algorithm`: SHA-1
 * for a file pgBackRest stored), for verify to compare
 * with what the manifest or the archived name records. Through the same decoding as a restore (the synchronous loop
 * where the codec has one, which allocates nothing per piece; else the codec's stream), so a file verify passes is
 * one a restore can read. A missing file is a 'FileMissing' error; one that does not decompress a 'Checksum' error
 * naming `what`.
 */
export async function storedFileDigest(repo: Storage, path: string, what: string, algorithm: 'sha256' | 'sha1' = 'sha256'): Promise<StoredFileDigest> {
  let size = 0
  const sha256 = storedFileDecodeSync(
    repo,
    path,
    what,
    (data) => {
      size += data.length
    },
    algorithm,
  )
  if (sha256 !== undefined) return { size, sha256 }
  const stored = storedAddress(path)
  const reader = await repo.openRead(stored.path, stored.range, CONTENT_VERIFIED)
  const hash = new HashStream(undefined, algorithm)
  const keys = cipherOpenKeys()
  const pgbrPass = cipherPgbrPassFor(path)
  const decrypt = pgbrPass
    ? [new PgbrDecryptStream(pgbrPass, `repository file '${repo.describe(path)}'`)]
    : keys
      ? [new OpenStream(keys, `repository file '${repo.describe(path)}'`)]
      : []
  await streamInto(reader, [...decrypt, codecFromExtension(stored.codecName).decompress({ verifiedByCaller: true }), hash], new Discard()).catch((error: unknown) => {
    throw damaged(error, what)
  })
  return { size: hash.size, sha256: hash.digest() }
}

// Copies that wait for their input (storedFileCopyToFileFromStream) take turns within a thread: each holds the
// thread's yielding decoder and O_DIRECT stage across its awaits. Other jobs of the same worker (small files, read
// whole) run meanwhile; large ones wait here, before their stream is opened, so no window of data waits with them.
let yieldingTurn: Promise<void> = Promise.resolve()

/**
 * storedFileCopyToFileSync for a repository read as a stream (a backup host over SSH): the stream's pieces, as the
 * session's frames bring them, go through the codec's synchronous chunk decoder, are hashed and written with the
 * same reused buffers and O_DIRECT writer as a copy from a folder, instead of a chain of Transform streams and writes
 * through the page cache. Same contract: the SHA-256 is checked at the end; 'w' removes the file again if the copy
 * fails; false, having done nothing, where the codec has no chunk decoder.
 */
export async function storedFileCopyToFileFromStream(
  repo: Storage,
  path: string,
  sha256: string,
  what: string,
  target: { path: string; flags: 'w' | 'r+'; mode: number; position?: number; sync: boolean; direct?: boolean },
): Promise<boolean> {
  // A file pgBackRest wrote (SHA-1, its own encryption, or inside a bundle) takes storedFileCopy's stream path.
  if (digestAlgorithmOf(sha256) !== 'sha256' || cipherPgbrPassFor(path) !== undefined || storedAddress(path).range !== undefined) return false
  const codec = codecFromExtension(path)
  if (!codec.chunkDecoder) return false
  const before = yieldingTurn
  let release: () => void = () => undefined
  yieldingTurn = new Promise((resolve) => (release = resolve))
  try {
    await before
    await copyFromStream(repo, path, sha256, what, target, codec.chunkDecoder)
    return true
  } finally {
    release()
  }
}

async function copyFromStream(
  repo: Storage,
  path: string,
  sha256: string,
  what: string,
  target: { path: string; flags: 'w' | 'r+'; mode: number; position?: number; sync: boolean; direct?: boolean },
  chunkDecoder: NonNullable<ReturnType<typeof codecFromExtension>['chunkDecoder']>,
): Promise<void> {
  // Opened first: a missing stored file fails before anything is created at the destination.
  const reader = await repo.openRead(path, undefined, CONTENT_VERIFIED)
  const decoder = chunkDecoder({ verifiedByCaller: true, yielding: true })
  let writer: DirectWriter | undefined
  const open = (): DirectWriter => (writer ??= new DirectWriter({ ...target, direct: target.direct ?? false }))
  const hash = createHash('sha256')
  const sink = (data: Buffer): void => {
    hash.update(data)
    open().write(data)
  }
  const keys = cipherOpenKeys()
  const opener = keys ? new Opener(keys, `repository file '${repo.describe(path)}'`) : undefined
  const decode = (data: Buffer): void => decoder.write(data, sink)
  try {
    try {
      for await (const chunk of reader as AsyncIterable<Buffer>) {
        if (opener) opener.write(chunk, decode)
        else decoder.write(chunk, sink)
      }
      opener?.end(decode)
      decoder.end(sink)
    } catch (error) {
      throw damaged(error, what)
    }
    const actual = hash.digest('hex')
    if (actual !== sha256) fail('Checksum', `${what} has checksum ${actual}, expected ${sha256}`, { hint: DAMAGED_HINT })
    // A stored file that decodes to nothing still leaves the file there.
    if (target.sync) open().sync()
    else open().finish()
  } catch (error) {
    reader.destroy()
    if (target.flags !== 'r+' && writer !== undefined) {
      writer.close()
      writer = undefined
      rmSync(target.path, { force: true })
    }
    throw error
  } finally {
    decoder.release()
    writer?.close()
  }
}

/**
 * storedFileCopySync into a local file: `flags` 'w' writes a whole file (removed again if the copy fails, as it is
 * neither the old file nor the new one), 'r+' writes into an existing one from `position` (a part of a file restored
 * in parts); then fsyncs it if asked. With `direct`, through O_DIRECT where the file system takes it (DirectWriter).
 * False, having written nothing, where storedFileCopySync has no such path.
 */
export function storedFileCopyToFileSync(
  repo: Storage,
  path: string,
  sha256: string,
  what: string,
  target: { path: string; flags: 'w' | 'wx' | 'r+'; mode: number; position?: number; sync: boolean; direct?: boolean },
): boolean {
  let writer: DirectWriter | undefined
  const open = (): DirectWriter => (writer ??= new DirectWriter({ ...target, direct: target.direct ?? false }))
  try {
    const copied = storedFileCopySync(repo, path, sha256, what, (data) => open().write(data))
    if (!copied) return false
    // A stored file that decodes to nothing still leaves the file there.
    if (target.sync) open().sync()
    else open().finish()
    return true
  } catch (error) {
    if (target.flags !== 'r+' && writer !== undefined) rmSync(target.path, { force: true })
    throw error
  } finally {
    writer?.close()
  }
}
