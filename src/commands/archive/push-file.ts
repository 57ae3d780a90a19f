// Pushing one WAL file into the archive of every repository: the work shared by the synchronous archive-push and the
// asynchronous process, which runs it in worker threads for many segments at once. Plain inputs, one result, so the
// same function runs inline or in a worker.
//
// The file is read once to check it (a segment whole and undamaged, and of the stanza's cluster). Each repository
// then gets it unless it already holds the same content (a retry), each with its own archive.info, archive id and
// encryption. A repository that fails (unreadable, full, of another cluster) is reported in the result and does not
// keep the others from getting the file.
//
// Requests to a repository per pushed segment (issue #12): its archive.info and a listing of the segment's folder,
// each skipped when the caller passes them (the background process loads archive.info once and lists each folder
// once per batch), then the write. Nothing is listed after the write: it would only catch another cluster storing a
// different copy of the same segment in the moment between the listing and the write, which the listing of the
// next push (the other cluster's or this one's) reports, and which archive-get refuses to guess between.
//
// The file is written through backup's copy (backup/file.ts): read, checksummed and compressed once, then sealed with
// each repository's keys and written to each, so a second repository costs its writes, not a second compression.
// Into folders only, a loop of synchronous 1 MiB chunks into reused buffers that compresses on a second core while
// reading (archive-push runs once per segment, so this is the path that matters); otherwise through streams. A folder
// gets the file under a temporary name beside its final one, fsynced, then renamed and the folder fsynced; an object
// store commits an object only once its upload completes, so there it is written under its final name. Measured on
// the 2-core test host (CPU time of one synchronous push of a 16 MiB segment, zst, folders): one repository 270 ms,
// two 280 ms, two with the second encrypted under its own passphrase 370 ms (its scrypt included).
//
// Timeline history and backup history files (a few hundred bytes) are read once into memory and stored under their own
// name, uncompressed, with their checksum record written after them (storeNamed; repo/archive.ts says why).
//
// Into an object store, whose object is named by the checksum and so can only be written once the checksum is known,
// a segment is instead kept in memory from the one read that checks it (and takes the checksum), then compressed once,
// sealed for each repository and written in one request: read and hashed once, not twice.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import { Writable } from 'node:stream'
import { isMainThread, threadId } from 'node:worker_threads'
import { errnoCode, fail, WaldenError } from '../../common/errors.js'
import { codecFor } from '../../io/compress.js'
import type { CompressType } from '../../io/compress.js'
import { compressBuffer } from '../../io/buffer-codec.js'
import { sealBuffer } from '../../io/cipher.js'
import { fileSha256 } from '../../io/hash.js'
import { pgControlRead } from '../../pg/control.js'
import { isPartialName, isWalSegmentName, WAL_LONG_HEADER_SIZE } from '../../pg/wal.js'
import type { WalHeader } from '../../pg/wal.js'
import { walSizeFail, WalSegmentVerifier } from '../../pg/wal-verify.js'
import { archivedFilesIn, archivedName, checksumRecordName, isStoredAsNamed } from '../../repo/archive.js'
import type { ArchivedFile } from '../../repo/archive.js'
import { cipherJobStateOf, cipherJobUse, cipherSealData, cipherUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { layout } from '../../repo/layout.js'
import { archiveIdOf, archiveInfoLoad, checkIdentity } from '../../repo/stanza-info.js'
import { pgbrWriteRefuse } from '../../repo/pgbackrest/info.js'
import type { ArchiveInfo } from '../../repo/stanza-info.js'
import { storedFileCopy } from '../../repo/stored-file.js'
import { storageOpen } from '../../storage/location.js'
import type { StorageLocation } from '../../storage/location.js'
import { PosixStorage } from '../../storage/posix.js'
import type { Storage } from '../../storage/storage.js'
import { backupFileFanOut } from '../backup/file.js'
import { repoFailureOf, repoFailuresError, repoList } from '../repo-failures.js'
import type { RepoFailure } from '../repo-failures.js'

/** One repository to push to. */
export interface ArchivePushRepo {
  /** Its number: repoN. */
  index: number
  location: StorageLocation
  /** Its cipher state (repo/cipher.ts), for a job on a worker thread; absent when it is not encrypted. */
  cipher?: CipherState
  /**
   * Its archive.info as the caller loaded it (the background process loads it once, not once per segment); `cipher`
   * then holds the keys unlocked with it. Absent: loaded here.
   */
  info?: ArchiveInfo
  /**
   * The names in the file's WAL folder (layout.walFolder under the archive id of `info`) as the caller listed them
   * for the batch this push belongs to, holding the archive lock. Absent: listed here.
   */
  walFolderList?: readonly string[]
}

export interface ArchivePushFileInput {
  stanza: string
  /** The repositories to store the file in, in order: every configured one, or the one --repo names. */
  repos: ArchivePushRepo[]
  /** Absolute path of the WAL file. */
  walPath: string
  /** The folder PostgreSQL ran archive_command in (its data directory), and pg1-path as a fallback. */
  dataDir: string
  pgPath: string | undefined
  compressType: CompressType
  compressLevel: number | undefined
}

export interface ArchivePushRepoResult {
  index: number
  /** The repository holds the file now. */
  stored: boolean
  /** It held the same content already; nothing was written there. */
  alreadyArchived: boolean
  /** Why it does not hold the file. */
  failure?: RepoFailure
}

export interface ArchivePushFileResult {
  walName: string
  /** One per repository of the input, in its order. */
  repos: ArchivePushRepoResult[]
}

/** A repository being pushed to, once opened. */
interface Target {
  repo: ArchivePushRepo
  storage: Storage
  info: ArchiveInfo
  archiveId: string
  folder: string
}

/** Bytes of a segment read and checked at a time. */
const VERIFY_CHUNK = 1024 * 1024
/**
 * The largest segment kept in memory for an object store (see the file comment); a larger one (wal_segment_size goes
 * to 1 GiB) is read twice instead, as into folders. Two pushes per worker thread hold at most twice this.
 */
const IN_MEMORY_MAX = 64 * 1024 * 1024
// Buffers of the in-memory path (a segment, and its compressed form) kept for this thread's next pushes: two pushes
// run on each worker thread, and a new 16 MiB buffer for each segment is memory the garbage collector returns late,
// which showed as 80 MB more peak RSS in the bench's 64-segment push.
const SPARE_MAX = 2
const spareSegments: Buffer[] = []
const spareCompressed: Buffer[] = []

function spareTake(spares: Buffer[], size: number): Buffer | undefined {
  const index = spares.findIndex((spare) => spare.length >= size)
  return index < 0 ? undefined : spares.splice(index, 1)[0]
}

function spareGive(spares: Buffer[], buffer: Buffer): void {
  if (spares.length < SPARE_MAX) spares.push(buffer)
}

// The read buffer of segmentVerify, one per thread (module state is per worker thread): it reads and checks a
// segment without yielding, so two pushes of one thread never share it, and a new 1 MiB buffer per segment would be
// memory to fault in again for every segment.
let verifyBuffer: Buffer | undefined

/**
 * Makes a repository's keys the ones this thread seals with. Its job state is taken once, at the start of a push
 * (archivePushFile); from then on the thread's own state for it, which reading its archive.info completed.
 */
function cipherFor(repo: ArchivePushRepo): void {
  cipherUse(repo.index)
}

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
 * anything is stored. The same pass takes its SHA-256 (which names it in the archive). Returns the long header.
 */
async function segmentVerify(
  input: ArchivePushFileInput,
  walName: string,
  onHeader: (header: WalHeader) => void,
  withSha256: boolean,
): Promise<{ header: WalHeader; sha256: string | undefined; data: Buffer | undefined }> {
  const { walPath } = input
  const what = `WAL file '${walPath}'`
  const fd = openSync(walPath, 'r')
  try {
    const size = fstatSync(fd).size
    const buffer = (verifyBuffer ??= Buffer.allocUnsafe(VERIFY_CHUNK))
    // With the checksum (for an object store), a segment of a sensible size is read into memory for the write too.
    const whole = withSha256 && size <= IN_MEMORY_MAX ? (spareTake(spareSegments, size)?.subarray(0, size) ?? Buffer.allocUnsafe(size)) : undefined
    const readAt = (offset: number): Buffer => {
      if (whole === undefined) return buffer.subarray(0, readSync(fd, buffer, 0, VERIFY_CHUNK, offset))
      const length = Math.min(VERIFY_CHUNK, size - offset)
      if (length > 0) return whole.subarray(offset, offset + readSync(fd, whole, offset, length, offset))
      // At the size fstat gave: anything more means the file grew meanwhile, and what was read is not the file.
      return buffer.subarray(0, readSync(fd, buffer, 0, 1, offset))
    }
    let chunk = readAt(0).subarray(0, Math.min(VERIFY_CHUNK, size))
    // Too short for a header: the size it should have comes from the cluster.
    if (chunk.length < WAL_LONG_HEADER_SIZE) walSizeFail(what, size, await controlSegmentSize(input))
    const verifier = new WalSegmentVerifier(chunk, { walName, what })
    // Whose segment it is comes first: a segment of another cluster is refused as that, whole or not.
    onHeader(verifier.header)
    // Refused at once, without reading the rest: the usual damage is a copy cut short.
    if (size !== verifier.header.segmentSize) walSizeFail(what, size, verifier.header.segmentSize)
    const hash = withSha256 ? createHash('sha256') : undefined
    let offset = 0
    while (chunk.length > 0) {
      verifier.update(chunk)
      hash?.update(chunk)
      offset += chunk.length
      chunk = readAt(offset)
    }
    verifier.finish(offset)
    // Read whole but not of the size checked above: it changed while it was read.
    if (whole !== undefined && offset !== size) changedFail(walPath)
    return { header: verifier.header, sha256: hash?.digest('hex'), data: whole }
  } finally {
    closeSync(fd)
  }
}

/** Who wrote a WAL file, and what it holds. `segmentSize` is set for a segment. */
interface WalIdentity {
  systemId: string
  version: number
  segmentSize?: number
  /** Taken while verifying when `withSha256` asked for it, else later if needed (see archivePushFile). */
  sha256: string | undefined
  /** The whole segment, as read while verifying, when `withSha256` asked for the checksum and it is not too large. */
  data?: Buffer
}

/**
 * The cluster a WAL file belongs to: from a segment's own header (the segment checked whole on the way), else from
 * the data folder it was pushed from. `check` sees the identity before the rest of a segment is read.
 */
async function walIdentity(
  input: ArchivePushFileInput,
  walName: string,
  check: (identity: { systemId: string; version: number }) => void,
  withSha256: boolean,
): Promise<WalIdentity> {
  const identityOf = (header: WalHeader) => ({ systemId: header.systemId.toString(), version: header.version })
  if (isWalSegmentName(walName) || isPartialName(walName)) {
    const { header, sha256, data } = await segmentVerify(input, walName, (first) => check(identityOf(first)), withSha256)
    return { ...identityOf(header), segmentSize: header.segmentSize, sha256, ...(data !== undefined ? { data } : {}) }
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
  // A few hundred bytes (a line per timeline, a dozen lines per backup): read once, checksummed and stored from memory.
  const data = await readFile(input.walPath)
  return { ...identity, sha256: createHash('sha256').update(data).digest('hex'), data }
}

/**
 * A segment that passed every check, refused because the archive holds a different copy: when that copy is short
 * (stored before walden checked segments, issue #11), say so and name it. archive-get refuses to serve it, so
 * recovery would stop there; the complete segment in hand is the repair, once the short copy is removed. Returns
 * when every copy is whole (the ordinary conflict).
 */
async function shortCopyFail(repo: Storage, walName: string, existing: readonly ArchivedFile[], segmentSize: number): Promise<void> {
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

/** A file that changed after it was checked is not the file that was checked: nothing of it may stay stored. */
function changedFail(walPath: string): never {
  fail('FileInvalid', `WAL file '${walPath}' changed while it was pushed`, {
    hint: 'PostgreSQL never rewrites a segment it asked to archive; find what else writes to pg_wal. The push is retried.',
  })
}

/**
 * Stores one WAL file in the archive of every repository of the input, durably: a repository whose result says
 * `stored` holds it fsynced under its final name. Throws (naming each repository when there are several) when no
 * repository could take it, and for a problem of the file itself (missing, damaged, of another cluster); a failure of
 * some repositories only is in the result, for archivePushOutcome to report once the others have the file.
 */
export async function archivePushFile(input: ArchivePushFileInput): Promise<ArchivePushFileResult> {
  const { stanza, walPath } = input
  const walName = basename(walPath)
  const several = input.repos.length > 1
  const results = new Map<number, ArchivePushRepoResult>(input.repos.map((repo) => [repo.index, { index: repo.index, stored: false, alreadyArchived: false }]))
  const failures = (): RepoFailure[] => [...results.values()].flatMap((result) => (result.failure ? [result.failure] : []))
  const failed = (repo: ArchivePushRepo, error: unknown): void => {
    results.get(repo.index)!.failure = repoFailureOf(repo.index, error)
  }
  const noneLeft = (targets: readonly Target[]): void => {
    if (targets.length === 0) throw repoFailuresError(failures(), { several })
  }

  for (const repo of input.repos) if (repo.cipher) cipherJobUse(repo.cipher)
  // Each repository's archive.info, with its keys unlocked: a repository that cannot be read is out of this push.
  let targets: Target[] = []
  for (const repo of input.repos) {
    try {
      cipherFor(repo)
      const storage = await storageOpen(repo.location)
      const info = repo.info ?? (await archiveInfoLoad(storage, stanza))
      pgbrWriteRefuse(info, 'archive-push', storage)
      const archiveId = archiveIdOf(info.db)
      targets.push({ repo, storage, info, archiveId, folder: layout.walFolder(stanza, archiveId, walName) })
    } catch (error) {
      failed(repo, error)
    }
  }
  noneLeft(targets)

  // The file's cluster must be the stanza's in each repository; one that records another cluster is refused alone.
  // When none is left, the file is refused before it is read any further. The checksum is taken on the way only for
  // an object store, written under its final name (see storeAll), and the segment is then kept in memory for the
  // write; otherwise the copy takes it: SHA-256 of a segment is a tenth of the work of a push (measured: 15 ms for
  // 16 MiB, of about 150 ms).
  let identity: WalIdentity
  try {
    identity = await walIdentity(input, walName, (found) => {
      targets = targets.filter((target) => {
        try {
          checkIdentity(stanza, target.info.db, found, `WAL file '${walName}'`)
          return true
        } catch (error) {
          failed(target.repo, error)
          return false
        }
      })
      noneLeft(targets)
    }, targets.some(atFinalName))
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') fail('FileMissing', `WAL file '${walPath}' does not exist`)
    throw error
  }

  // A retry (PostgreSQL did not see the earlier push's exit): where the same content is stored already, nothing is
  // written; a different one is that repository's loud failure.
  const toWrite: Target[] = []
  for (const target of targets) {
    try {
      cipherFor(target.repo)
      const listed = target.repo.walFolderList ?? (await target.storage.list(target.folder))
      const existing = archivedFilesIn(target.folder, listed, target.archiveId, walName)
      if (existing.length === 0) {
        toWrite.push(target)
        continue
      }
      identity.sha256 ??= await fileSha256(walPath)
      const same = existing.find((file) => file.sha256 === identity.sha256)
      // Recorded but lost (removed by hand): stored again, under the record that is there.
      if (same?.fileMissing) {
        toWrite.push(target)
        continue
      }
      if (same === undefined) {
        if (identity.segmentSize !== undefined) await shortCopyFail(target.storage, walName, existing, identity.segmentSize)
        fail('ArchiveDuplicate', `WAL file '${walName}' already exists in the archive with a different checksum`, {
          hint: 'another cluster may be archiving into this stanza; check every archive_command that names it.',
        })
      }
      // Synced again in case the earlier push failed after its rename.
      await target.storage.syncPath(target.folder, { missingOk: true })
      Object.assign(results.get(target.repo.index)!, { stored: true, alreadyArchived: true })
    } catch (error) {
      failed(target.repo, error)
    }
  }

  // No listing after the write (see the file comment): a write that completed is the file, durable, under its name.
  const written = isStoredAsNamed(walName)
    ? await storeNamed(input, walName, identity.data!, identity.sha256!, toWrite, failed)
    : identity.data !== undefined
      ? await storeFromMemory(input, walName, identity.data, identity.sha256!, toWrite, failed)
      : (await storeAll(input, walName, identity, toWrite, failed)).targets
  for (const target of written) results.get(target.repo.index)!.stored = true
  const repos = [...results.values()]
  if (!repos.some((result) => result.stored)) throw repoFailuresError(failures(), { several })
  return { walName, repos }
}

/** An object store commits an object only once its upload completes: it is written under its final name. */
function atFinalName(target: Target): boolean {
  return !(target.storage instanceof PosixStorage)
}

/**
 * Writes the file to each target through backup's copy (backup/file.ts, backupFileFanOut): read, checksummed and
 * compressed once, sealed with each repository's own keys and written to each. A folder gets it under a temporary
 * name beside the final one, fsynced, then renamed; an object store under its final name, which is why the
 * checksum must be known first there. A file that is not what was verified (gone, another size, another checksum)
 * is stored nowhere and fails the push. Returns the targets that got it, having reported the others through
 * `failed`, and the file's SHA-256.
 */
async function storeAll(
  input: ArchivePushFileInput,
  walName: string,
  identity: WalIdentity,
  targets: readonly Target[],
  failed: (repo: ArchivePushRepo, error: unknown) => void,
): Promise<{ targets: Target[]; sha256: string }> {
  if (targets.length === 0) return { targets: [], sha256: identity.sha256 ?? '' }
  const codec = codecFor(input.compressType)
  if (targets.some(atFinalName)) identity.sha256 ??= await fileSha256(input.walPath)
  const temporary = `${walName}.tmp-${process.pid}-${threadId}-${randomBytes(4).toString('hex')}`
  const paths = targets.map((target) => (atFinalName(target) ? join(target.folder, archivedName(walName, identity.sha256!, '')) : `${target.folder}/${temporary}`))
  const written = (index: number): string => `${paths[index]}${codec.extension}`
  // The copy creates a missing WAL folder (one in 256 segments) without making its entry durable: the folders above
  // it are fsynced once it holds the file.
  const newFolders = new Set<Target>()
  for (const target of targets) if (!atFinalName(target) && !(await target.storage.exists(target.folder))) newFolders.add(target)
  const output = await backupFileFanOut({
    source: input.walPath,
    offset: 0,
    compressType: input.compressType,
    compressLevel: input.compressLevel ?? codec.defaultLevel,
    syncEach: true,
    xxh3: false,
    // Pushed by this process alone (not by a worker of the background process), compression overlaps hashing on a
    // second core.
    overlap: isMainThread,
    targets: targets.map((target, index) => ({ repo: target.repo.location, repoPath: paths[index]!, cipher: cipherJobStateOf(target.repo.index) })),
  })
  const stored = targets.flatMap((target, index) => ('error' in output.stored[index]! ? [] : [{ target, index }]))
  targets.forEach((target, index) => {
    const result = output.stored[index]!
    if ('error' in result) failed(target.repo, new WaldenError(result.error.kind, result.error.message, result.error.hint !== undefined ? { hint: result.error.hint } : {}))
  })
  // Every repository failed: the copy stopped there, and what it read says nothing.
  if (stored.length === 0) return { targets: [], sha256: identity.sha256 ?? '' }
  const discard = async (): Promise<void> => {
    for (const { target, index } of stored) await target.storage.remove(written(index)).catch(() => undefined)
  }
  // What was read must be what was verified: a file that changed meanwhile is stored nowhere.
  if (!output.copied) {
    await discard()
    fail('FileMissing', `WAL file '${input.walPath}' does not exist`)
  }
  if (output.size === 0) {
    await discard()
    fail('FileInvalid', `WAL file '${input.walPath}' is empty`)
  }
  if (identity.segmentSize !== undefined && output.size !== identity.segmentSize) {
    await discard()
    walSizeFail(`WAL file '${input.walPath}'`, output.size, identity.segmentSize)
  }
  if (identity.sha256 !== undefined && output.sha256 !== identity.sha256) {
    await discard()
    changedFail(input.walPath)
  }
  const done: Target[] = []
  for (const { target, index } of stored) {
    try {
      // The temporary file was fsynced when written; the rename and the folder fsync make the name durable.
      if (!atFinalName(target)) await target.storage.move(written(index), join(target.folder, archivedName(walName, output.sha256, codec.extension)))
      if (newFolders.has(target)) await newFolderSync(input.stanza, target)
      done.push(target)
    } catch (error) {
      await target.storage.remove(written(index)).catch(() => undefined)
      failed(target.repo, error)
    }
  }
  return { targets: done, sha256: output.sha256 }
}

/** Makes a WAL folder that a write created durable: its entry, and those of the folders above it. */
async function newFolderSync(stanza: string, target: Target): Promise<void> {
  for (let folder = dirname(target.folder); folder !== layout.archiveRoot(stanza) && folder !== '.'; folder = dirname(folder)) {
    await target.storage.syncPath(folder)
  }
  await target.storage.syncPath(layout.archiveRoot(stanza))
}

/**
 * Writes a segment held in memory (read and checked once, its checksum taken then) to each target: compressed once,
 * sealed with each repository's own keys, then one write per repository, all at once. An object store commits the
 * object only when its upload completes; a folder gets it through write()'s temporary name, fsync and rename. The
 * bytes written are the bytes checked, so nothing is compared afterwards. Returns the targets that got it, having
 * reported the others through `failed`.
 */
async function storeFromMemory(
  input: ArchivePushFileInput,
  walName: string,
  data: Buffer,
  sha256: string,
  targets: readonly Target[],
  failed: (repo: ArchivePushRepo, error: unknown) => void,
): Promise<Target[]> {
  if (targets.length === 0) return []
  const codec = codecFor(input.compressType)
  // Where the engine compresses into a buffer of the caller's (compressBuffer), a kept one or a new one to keep.
  const bound = codec.compressIntoAsync && codec.compressBound ? codec.compressBound(data.length) : undefined
  const out = bound === undefined ? undefined : (spareTake(spareCompressed, bound) ?? Buffer.allocUnsafe(bound))
  const compressed = await compressBuffer(codec, data, input.compressLevel ?? codec.defaultLevel, out)
  const name = archivedName(walName, sha256, codec.extension)
  const writes = targets.map(async (target) => {
    // Sealed before the first await: the thread's active cipher is one repository's at a time.
    cipherFor(target.repo)
    const seal = cipherSealData()
    const body = seal ? sealBuffer(seal, compressed) : compressed
    const newFolder = !atFinalName(target) && !(await target.storage.exists(target.folder))
    await target.storage.write(join(target.folder, name), body)
    if (newFolder) await newFolderSync(input.stanza, target)
  })
  const done = await targetsSettled(targets, writes, failed)
  // Every write has settled: neither buffer is referenced any more.
  if (out !== undefined) spareGive(spareCompressed, out)
  spareGive(spareSegments, data)
  return done
}

/** Waits for every target's write; returns the targets that got it, having reported the others through `failed`. */
async function targetsSettled(
  targets: readonly Target[],
  writes: readonly Promise<void>[],
  failed: (repo: ArchivePushRepo, error: unknown) => void,
): Promise<Target[]> {
  const done: Target[] = []
  for (const [index, outcome] of (await Promise.allSettled(writes)).entries()) {
    if (outcome.status === 'fulfilled') done.push(targets[index]!)
    else failed(targets[index]!.repo, outcome.reason)
  }
  return done
}

/**
 * Writes a history or backup history file to each target under its own name, uncompressed (sealed where the
 * repository is encrypted), then its checksum record (repo/archive.ts): the file is archived only once its record
 * is there, so a crash between the two leaves a file that is not served and that the repeated push writes over.
 * Both are written whole or not at all (a temporary name, fsync and rename in a folder; one upload in an object
 * store). Returns the targets that got it, having reported the others through `failed`.
 */
async function storeNamed(
  input: ArchivePushFileInput,
  walName: string,
  data: Buffer,
  sha256: string,
  targets: readonly Target[],
  failed: (repo: ArchivePushRepo, error: unknown) => void,
): Promise<Target[]> {
  const writes = targets.map(async (target) => {
    // Sealed before the first await: the thread's active cipher is one repository's at a time.
    cipherFor(target.repo)
    const seal = cipherSealData()
    const body = seal ? sealBuffer(seal, data) : data
    const newFolder = !atFinalName(target) && !(await target.storage.exists(target.folder))
    await target.storage.write(join(target.folder, walName), body)
    await target.storage.write(join(target.folder, checksumRecordName(walName, sha256)), '')
    if (newFolder) await newFolderSync(input.stanza, target)
  })
  return targetsSettled(targets, writes, failed)
}

/**
 * What a push means for PostgreSQL: the line to log when every repository holds the file; otherwise the error naming
 * each repository that does not (thrown), after the others got it. A retry stores it where it is still missing.
 */
export function archivePushOutcome(result: ArchivePushFileResult): string {
  const failures = result.repos.flatMap((repo) => (repo.failure ? [repo.failure] : []))
  if (failures.length > 0) {
    throw repoFailuresError(failures, {
      several: result.repos.length > 1,
      stored: result.repos.filter((repo) => repo.stored).map((repo) => repo.index),
      retry: 'PostgreSQL retries the push, which stores it in the others once they work again.',
    })
  }
  const { walName } = result
  if (result.repos.every((repo) => repo.alreadyArchived)) return `WAL file '${walName}' is already in the archive with the same checksum`
  // A retry after another repository failed: say which ones got it now.
  const had = result.repos.filter((repo) => repo.alreadyArchived).map((repo) => repo.index)
  if (had.length === 0) return `pushed WAL file '${walName}' to the archive`
  const fresh = result.repos.filter((repo) => !repo.alreadyArchived).map((repo) => repo.index)
  return `pushed WAL file '${walName}' to the archive of ${repoList(fresh)} (${repoList(had)} had it already)`
}
