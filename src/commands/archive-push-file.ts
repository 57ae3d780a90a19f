// Pushing one WAL file into the archive: the work shared by the synchronous archive-push and the asynchronous
// process, which runs it in worker threads for many segments at once. Plain inputs, one result, so the same function
// runs inline or in a worker.
//
// The usual case is one pass over the file: compress and checksum into a temporary file beside the final one, then
// name it by its checksum. A retry of a segment already archived reads the file once more to compare checksums.

import { randomBytes } from 'node:crypto'
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs'
import { basename, join } from 'node:path'
import { Writable } from 'node:stream'
import { isMainThread, threadId } from 'node:worker_threads'
import { errnoCode, fail } from '../common/errors.js'
import { codecFor } from '../io/compress.js'
import type { CompressType } from '../io/compress.js'
import { fileSha256, HashStream } from '../io/hash.js'
import { pgControlRead } from '../pg/control.js'
import { isPartialName, isWalSegmentName, WAL_LONG_HEADER_SIZE } from '../pg/wal.js'
import type { WalHeader } from '../pg/wal.js'
import { walSizeFail, WalSegmentVerifier } from '../pg/wal-verify.js'
import { archivedName, archiveDuplicateFail, archiveFileList } from '../repo/archive.js'
import type { ArchivedFile } from '../repo/archive.js'
import { layout } from '../repo/layout.js'
import { archiveIdOf, archiveInfoLoad, checkIdentity } from '../repo/stanza-info.js'
import { storedFileCopy } from '../repo/stored-file.js'
import { posixStorage } from '../storage/posix.js'
import type { PosixStorage } from '../storage/posix.js'
import { streamInto } from '../storage/stream-into.js'
import { backupFile } from './backup/file.js'
import { SealStream } from '../io/cipher.js'
import { cipherJobInput, cipherJobUse, cipherSealData } from '../repo/cipher.js'
import type { CipherState } from '../repo/cipher.js'

export interface ArchivePushFileInput {
  stanza: string
  repoPath: string
  /** Absolute path of the WAL file. */
  walPath: string
  /** The folder PostgreSQL ran archive_command in (its data directory), and pg1-path as a fallback. */
  dataDir: string
  pgPath: string | undefined
  compressType: CompressType
  compressLevel: number | undefined
  /** The repository's cipher state (repo/cipher.ts), for a job on a worker thread. */
  cipher?: CipherState
}

export interface ArchivePushFileResult {
  walName: string
  /** The same content was already in the archive; nothing was written. */
  alreadyArchived: boolean
}

/** Bytes of a segment read and checked at a time. */
const VERIFY_CHUNK = 1024 * 1024
// The read buffer of segmentVerify, one per thread (module state is per worker thread): it reads and checks a
// segment without yielding, so two pushes of one thread never share it, and a new 1 MiB buffer per segment would be
// memory to fault in again for every segment.
let verifyBuffer: Buffer | undefined

/** wal_segment_size of the cluster the file was pushed from, to name the size an empty or tiny file should have. */
async function controlSegmentSize(input: ArchivePushFileInput): Promise<number | undefined> {
  for (const dataDir of [input.dataDir, input.pgPath]) {
    if (dataDir === undefined) continue
    const control = await pgControlRead(dataDir).catch(() => undefined)
    if (control !== undefined) return control.walSegmentSize
  }
  return undefined
}

/**
 * Reads a segment (or '.partial' segment) through and checks it is whole and undamaged (src/pg/wal-verify.ts): the
 * size its long header gives, every page header, and each record's CRC up to the end of valid WAL. PostgreSQL would
 * read a short or damaged segment as the end of WAL during a recovery, so such a file is refused here, before
 * anything is stored. Returns the long header and the size checked.
 */
async function segmentVerify(input: ArchivePushFileInput, walName: string, onHeader: (header: WalHeader) => void): Promise<WalHeader> {
  const { walPath } = input
  const what = `WAL file '${walPath}'`
  const fd = openSync(walPath, 'r')
  try {
    const size = fstatSync(fd).size
    const buffer = (verifyBuffer ??= Buffer.allocUnsafe(VERIFY_CHUNK))
    let read = readSync(fd, buffer, 0, Math.min(VERIFY_CHUNK, size), 0)
    // Too short for a header: the size it should have comes from the cluster.
    if (read < WAL_LONG_HEADER_SIZE) walSizeFail(what, size, await controlSegmentSize(input))
    const verifier = new WalSegmentVerifier(buffer.subarray(0, read), { walName, what })
    // Whose segment it is comes first: a segment of another cluster is refused as that, whole or not.
    onHeader(verifier.header)
    // Refused at once, without reading the rest: the usual damage is a copy cut short.
    if (size !== verifier.header.segmentSize) walSizeFail(what, size, verifier.header.segmentSize)
    let offset = 0
    while (read > 0) {
      verifier.update(buffer.subarray(0, read))
      offset += read
      read = readSync(fd, buffer, 0, VERIFY_CHUNK, offset)
    }
    verifier.finish(offset)
    return verifier.header
  } finally {
    closeSync(fd)
  }
}

/**
 * The cluster a WAL file belongs to: from a segment's own header (the segment checked whole on the way), else from
 * the data folder it was pushed from. `segmentSize` is set for a segment.
 */
async function walIdentity(
  input: ArchivePushFileInput,
  walName: string,
  check: (identity: { systemId: string; version: number }) => void,
): Promise<{ systemId: string; version: number; segmentSize?: number }> {
  const identityOf = (header: WalHeader) => ({ systemId: header.systemId.toString(), version: header.version })
  if (isWalSegmentName(walName) || isPartialName(walName)) {
    const header = await segmentVerify(input, walName, (first) => check(identityOf(first)))
    return { ...identityOf(header), segmentSize: header.segmentSize }
  }
  // History and backup files carry no header. PostgreSQL runs archive_command in its data directory, which is the
  // cluster that wrote the file even when pg1-path names another (a standby promoted on the same host).
  const dataDir = (await pgControlRead(input.dataDir).then(() => input.dataDir, () => undefined)) ?? input.pgPath
  if (dataDir === undefined) {
    fail('OptionRequired', `archive-push command requires option 'pg1-path' for '${walName}'`, {
      hint: 'give --pg1-path, set WALDEN_PG1_PATH, or set pg1-path in the config file.',
    })
  }
  const control = await pgControlRead(dataDir)
  const identity = { systemId: control.systemId.toString(), version: control.version }
  check(identity)
  return identity
}

/**
 * A segment that passed every check, refused because the archive holds a different copy: when that copy is short
 * (stored before walden checked segments, issue #11), say so and name it. archive-get refuses to serve it, so
 * recovery would stop there; the complete segment in hand is the repair, once the short copy is removed. Returns
 * when every copy is whole (the ordinary conflict).
 */
async function shortCopyFail(repo: PosixStorage, walName: string, existing: readonly ArchivedFile[], segmentSize: number): Promise<void> {
  for (const file of existing) {
    let size = 0
    const counter = new Writable({
      write(chunk: Buffer, _encoding, done) {
        size += chunk.length
        done()
      },
    })
    const what = `archived WAL file '${repo.describe(file.path)}'`
    await storedFileCopy(repo, file.path, file.sha256, what, () => Promise.resolve(counter))
    if (size !== segmentSize) {
      fail('ArchiveDuplicate', `WAL file '${walName}' is archived as a short copy of ${size} bytes, not the ${segmentSize} of a whole segment: '${repo.describe(file.path)}'`, {
        hint: 'that copy was stored damaged and cannot be restored; this push has the complete segment. Remove the short copy and the next push stores it.',
      })
    }
  }
}

/**
 * Stores one WAL file in the archive, durably: when this returns, the file is fsynced under its final name and the
 * folder entry is fsynced too. Throws a WaldenError when the file belongs to another cluster or conflicts with an
 * archived file of the same name.
 */
export async function archivePushFile(input: ArchivePushFileInput): Promise<ArchivePushFileResult> {
  cipherJobUse(input.cipher)
  const { stanza, walPath } = input
  const walName = basename(walPath)
  const repo = posixStorage(input.repoPath)
  const info = await archiveInfoLoad(repo, stanza)
  let identity: { systemId: string; version: number; segmentSize?: number }
  try {
    identity = await walIdentity(input, walName, (found) => checkIdentity(stanza, info.db, found, `WAL file '${walName}'`))
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') fail('FileMissing', `WAL file '${walPath}' does not exist`)
    throw error
  }

  const archiveId = archiveIdOf(info.db)
  const folder = layout.walFolder(stanza, archiveId, walName)

  // A retry (PostgreSQL did not see the earlier push's exit): compare checksums only, writing nothing. The same
  // content is already safe, so say nothing; a different one is the loud failure.
  const existing = await archiveFileList(repo, stanza, archiveId, walName)
  if (existing.length > 0) {
    const sha256 = await fileSha256(walPath)
    if (!existing.some((file) => file.sha256 === sha256)) {
      if (identity.segmentSize !== undefined) await shortCopyFail(repo, walName, existing, identity.segmentSize)
      fail('ArchiveDuplicate', `WAL file '${walName}' already exists in the archive with a different checksum`, {
        hint: 'another cluster may be archiving into this stanza; check every archive_command that names it.',
      })
    }
    // Synced again in case the earlier push failed after its rename.
    await repo.syncPath(folder)
    return { walName, alreadyArchived: true }
  }

  const codec = codecFor(input.compressType)
  const level = input.compressLevel ?? codec.defaultLevel
  const temporary = `${folder}/${walName}.tmp-${process.pid}-${threadId}-${randomBytes(4).toString('hex')}`
  let sha256: string
  try {
    if (isWalSegmentName(walName) || isPartialName(walName)) {
      // A segment goes through backup's copy loop: 1 MiB at a time into reused buffers, hashed, compressed and
      // appended with synchronous calls (the background process pushes segment after segment, and per-chunk buffers
      // would be garbage and page faults), fsynced. It writes TEMPORARY plus the codec's extension. Pushed by this
      // process alone (not by a worker of the background process), compression overlaps hashing on a second core.
      const copied = await backupFile({ source: walPath, offset: 0, repo: { type: 'posix', path: input.repoPath }, repoPath: temporary, compressType: input.compressType, compressLevel: level, syncEach: true, xxh3: false, overlap: isMainThread, ...cipherJobInput() })
      if (!copied.copied) fail('FileMissing', `WAL file '${walPath}' does not exist`)
      // Checked whole a moment ago; a file that changed size since is not what was checked.
      if (copied.size !== identity.segmentSize) walSizeFail(`WAL file '${walPath}'`, copied.size, identity.segmentSize)
      sha256 = copied.sha256
      await repo.move(`${temporary}${codec.extension}`, join(folder, archivedName(walName, sha256, codec.extension)))
    } else {
      const hash = new HashStream()
      const seal = cipherSealData()
      const encrypt = seal ? [new SealStream(seal)] : []
      await streamInto(createReadStream(walPath, { highWaterMark: 1024 * 1024 }), [hash, codec.compress(level), ...encrypt], await repo.openWrite(temporary, { atomic: false }))
      sha256 = hash.digest()
      // The temporary file was fsynced when written; the rename and the folder fsync make the name durable.
      await repo.move(temporary, join(folder, archivedName(walName, sha256, codec.extension)))
    }
  } catch (error) {
    await repo.remove(temporary).catch(() => undefined)
    await repo.remove(`${temporary}${codec.extension}`).catch(() => undefined)
    throw error
  }

  // Another cluster may have pushed a different file under this name at the same moment: look again, so the
  // conflict is reported here and not first discovered during a recovery.
  const after = await archiveFileList(repo, stanza, archiveId, walName)
  if (after.some((file) => file.sha256 !== sha256)) archiveDuplicateFail(repo, walName, after)
  return { walName, alreadyArchived: false }
}
