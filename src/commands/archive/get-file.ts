// Fetching one WAL file from the archive: the work shared by the synchronous archive-get and the background process
// that prefetches segments for the asynchronous one. Plain inputs, one result, so it runs inline or in a worker.
//
// Several repositories are searched in order (repo1 first: put the fastest, nearest one there), and the file is taken
// from the first that holds a good copy. A copy that turns out damaged, or a repository that cannot be read, does not
// end the search: a later repository's good copy is delivered, with a warning naming both. Only when no repository
// delivers does the answer depend on why: not archived anywhere is "not found"; damaged everywhere it is stored is
// the damage (archive-get then aborts recovery, exit 126); otherwise the first repository's error.

import { randomBytes } from 'node:crypto'
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { threadId } from 'node:worker_threads'
import { fail, WaldenError } from '../../common/errors.js'
import type { ErrorKind } from '../../common/errors.js'
import { isPartialName, isWalSegmentName, WAL_LONG_HEADER_SIZE } from '../../pg/wal.js'
import { walSizeFail, WalSegmentVerifier } from '../../pg/wal-verify.js'
import { archiveFileFind } from '../../repo/archive.js'
import { cipherJobUse, cipherUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { archiveInfoLoad } from '../../repo/stanza-info.js'
import type { ArchiveInfo } from '../../repo/stanza-info.js'
import { storedFileCopy, storedFileCopyToFileSync } from '../../repo/stored-file.js'
import { storageOpen } from '../../storage/location.js'
import type { StorageLocation } from '../../storage/location.js'
import { PosixStorage, syncFolder } from '../../storage/posix.js'
import type { Storage } from '../../storage/storage.js'
import { repoFailureOf, repoFailuresError } from '../repo-failures.js'
import type { RepoFailure } from '../repo-failures.js'

/**
 * One repository to search: its archive.info as read by the caller (the background process reads each once for all
 * its segments), or nothing, to have it read only if the search gets there; or why it cannot be searched.
 */
export interface ArchiveGetRepo {
  /** Its number: repoN. */
  index: number
  location?: StorageLocation
  info?: ArchiveInfo
  /** The repository cannot be searched (its configuration or its archive.info could not be read). */
  unavailable?: RepoFailure
  /** Its cipher state (repo/cipher.ts), for a job on a worker thread; absent when it is not encrypted. */
  cipher?: CipherState
}

export interface ArchiveGetFileInput {
  stanza: string
  /** The repositories to search, in order. */
  repos: ArchiveGetRepo[]
  walName: string
  /** Absolute path to write the file to; written under a temporary name and renamed once verified. */
  destination: string
}

export interface ArchiveGetFileResult {
  /** The archive id the file was found under, or undefined when it is not in the archive. */
  archiveId?: string
  /** The repository it was taken from. */
  repo?: number
  /** Repositories passed over on the way (a damaged copy, an unreadable repository), for the caller to log. */
  warnings: string[]
}

/** Errors that mean the copy itself cannot be trusted, rather than that the repository could not be asked. */
const DAMAGE: ReadonlySet<ErrorKind> = new Set<ErrorKind>(['Checksum', 'Format', 'FileInvalid', 'Crypto'])

/**
 * Copies a WAL file out of the archive, decompressed and verified against its checksum. PostgreSQL must never find
 * a damaged segment at the destination, so it appears there only once verified. When no repository delivers it: a
 * damaged copy is a Checksum, FileInvalid or Crypto error (see the header); a file archived twice with different
 * content in a repository is an ArchiveDuplicate error at once, as picking either copy would be a guess.
 */
export async function archiveGetFile(input: ArchiveGetFileInput): Promise<ArchiveGetFileResult> {
  const several = input.repos.length > 1
  const damaged: RepoFailure[] = []
  const unreadable: RepoFailure[] = []
  for (const repo of input.repos) {
    if (repo.unavailable || !repo.location) {
      unreadable.push(repo.unavailable ?? { repo: repo.index, kind: 'Assert', message: 'no location given' })
      continue
    }
    if (repo.cipher) cipherJobUse(repo.cipher)
    else cipherUse(repo.index)
    let archiveId: string | undefined
    try {
      const storage = await storageOpen(repo.location)
      archiveId = await fetchFrom(storage, repo.info ?? (await archiveInfoLoad(storage, input.stanza)), input)
    } catch (error) {
      const failure = repoFailureOf(repo.index, error)
      if (failure.kind === 'ArchiveDuplicate') throw repoFailuresError([failure], { several })
      ;(DAMAGE.has(failure.kind) ? damaged : unreadable).push(failure)
      continue
    }
    if (archiveId === undefined) continue
    const warnings = [...damaged, ...unreadable].map((failure) =>
      DAMAGE.has(failure.kind)
        ? `WAL file '${input.walName}' in repo${failure.repo} is damaged (${failure.message}); it was taken from repo${repo.index}`
        : `repo${failure.repo} could not be searched for WAL file '${input.walName}' (${failure.message}); it was taken from repo${repo.index}`,
    )
    return { archiveId, repo: repo.index, warnings }
  }
  // Damage first, and its kind decides the exit status: the file exists, so "not found" (or a code PostgreSQL reads as
  // that) would end recovery at the wrong point.
  if (damaged.length > 0) throw repoFailuresError([...damaged, ...unreadable], { several })
  // A repository that could not be asked may hold it: its own error, not "not found".
  if (unreadable.length > 0) throw repoFailuresError(unreadable, { several })
  return { warnings: [] }
}

/** Copies the file from one repository to the destination; the archive id it was found under, or undefined. */
async function fetchFrom(storage: Storage, info: ArchiveInfo, input: ArchiveGetFileInput): Promise<string | undefined> {
  const found = await archiveFileFind(storage, info, input.walName)
  if (!found) return undefined
  if (found.fileMissing) {
    fail('FileMissing', `WAL file '${input.walName}' is recorded in the archive but missing from it: '${storage.describe(found.path)}' is gone, its checksum record '${storage.describe(found.recordPath ?? found.path)}' is there`, {
      hint: 'restore the file from a copy of the repository, or push it again from the pg_wal of the cluster that wrote it.',
    })
  }
  const what = `archived WAL file '${storage.describe(found.path)}'`
  const { destination } = input
  // Written under a temporary name, checked there, then renamed: PostgreSQL never finds a damaged or short segment.
  const temporary = `${destination}.tmp-${process.pid}-${threadId}-${randomBytes(4).toString('hex')}`
  try {
    if (!storedFileCopyToFileSync(storage, found.path, found.sha256, what, { path: temporary, flags: 'wx', mode: 0o600, sync: true })) {
      const target = new PosixStorage(dirname(destination))
      await storedFileCopy(storage, found.path, found.sha256, what, () => target.openWrite(basename(temporary), { mode: 0o600, atomic: false }))
    }
    if (isWalSegmentName(input.walName) || isPartialName(input.walName)) segmentCheck(temporary, input.walName, what)
    renameSync(temporary, destination)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
  await syncFolder(dirname(destination))
  return found.archiveId
}

/**
 * A segment decoded from the repository must be a whole segment of the position its name says: its checksum only
 * proves it is what was pushed, and pushes before walden checked segments (issue #11) stored short copies.
 * PostgreSQL would take a short segment for the end of WAL and end recovery early, so any problem here is
 * 'FileInvalid', which archive-get answers with exit 126: recovery stops rather than ends.
 */
function segmentCheck(path: string, walName: string, what: string): void {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    const first = Buffer.alloc(WAL_LONG_HEADER_SIZE)
    const read = readSync(fd, first, 0, WAL_LONG_HEADER_SIZE, 0)
    let segmentSize: number
    try {
      if (read < WAL_LONG_HEADER_SIZE) walSizeFail(what, size, undefined)
      segmentSize = new WalSegmentVerifier(first, { walName, what }).header.segmentSize
      if (size !== segmentSize) walSizeFail(what, size, segmentSize)
    } catch (error) {
      if (!(error instanceof WaldenError)) throw error
      throw new WaldenError('FileInvalid', error.message, { hint: SERVED_HINT, cause: error })
    }
  } finally {
    closeSync(fd)
  }
}

const SERVED_HINT =
  'the repository holds a damaged copy of this segment; recovery must not go on past it. Replace it with the ' +
  'complete segment (from pg_wal of the cluster that wrote it, or another copy), or recover to a point before it.'
