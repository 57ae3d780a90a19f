// Fetching one WAL file from the archive: the work shared by the synchronous archive-get and the background process
// that prefetches segments for the asynchronous one. Plain inputs, one result, so it runs inline or in a worker.

import { randomBytes } from 'node:crypto'
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { threadId } from 'node:worker_threads'
import { WaldenError } from '../common/errors.js'
import { isPartialName, isWalSegmentName, WAL_LONG_HEADER_SIZE } from '../pg/wal.js'
import { walSizeFail, WalSegmentVerifier } from '../pg/wal-verify.js'
import { archiveFileFind } from '../repo/archive.js'
import { cipherJobUse } from '../repo/cipher.js'
import type { CipherState } from '../repo/cipher.js'
import type { ArchiveInfo } from '../repo/stanza-info.js'
import { storedFileCopy, storedFileCopyToFileSync } from '../repo/stored-file.js'
import { posixStorage, PosixStorage, syncFolder } from '../storage/posix.js'

export interface ArchiveGetFileInput {
  repoPath: string
  info: ArchiveInfo
  walName: string
  /** Absolute path to write the file to; written under a temporary name and renamed once verified. */
  destination: string
  /** The repository's cipher state (repo/cipher.ts), for a job on a worker thread. */
  cipher?: CipherState
}

export interface ArchiveGetFileResult {
  /** The archive id the file was found under, or undefined when it is not in the archive. */
  archiveId?: string
}

/**
 * Copies a WAL file out of the archive, decompressed and verified against its checksum. PostgreSQL must never find
 * a damaged segment at the destination, so it appears there only once verified. A damaged or ambiguous archive file
 * is a Checksum or ArchiveDuplicate error; a segment that is not whole, FileInvalid.
 */
export async function archiveGetFile(input: ArchiveGetFileInput): Promise<ArchiveGetFileResult> {
  cipherJobUse(input.cipher)
  const repo = posixStorage(input.repoPath)
  const found = await archiveFileFind(repo, input.info, input.walName)
  if (!found) return {}
  const what = `archived WAL file '${repo.describe(found.path)}'`
  const { destination } = input
  // Written under a temporary name, checked there, then renamed: PostgreSQL never finds a damaged or short segment.
  const temporary = `${destination}.tmp-${process.pid}-${threadId}-${randomBytes(4).toString('hex')}`
  try {
    if (!storedFileCopyToFileSync(repo, found.path, found.sha256, what, { path: temporary, flags: 'wx', mode: 0o600, sync: true })) {
      const target = new PosixStorage(dirname(destination))
      await storedFileCopy(repo, found.path, found.sha256, what, () => target.openWrite(basename(temporary), { mode: 0o600, atomic: false }))
    }
    if (isWalSegmentName(input.walName) || isPartialName(input.walName)) segmentCheck(temporary, input.walName, what)
    renameSync(temporary, destination)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
  await syncFolder(dirname(destination))
  return { archiveId: found.archiveId }
}

/**
 * A segment decoded from the repository must be a whole segment of the position its name says: its checksum only
 * proves it is what was pushed, and pushes before walden checked segments (issue #11) stored short copies.
 * PostgreSQL would take a short segment for the end of WAL and end recovery early, so any problem here is 'FileInvalid', which archive-get answers
 * with exit 126: recovery stops rather than ends.
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
