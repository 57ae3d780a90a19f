// Fetching one WAL file from the archive: the work shared by the synchronous archive-get and the background process
// that prefetches segments for the asynchronous one. Plain inputs, one result, so it runs inline or in a worker.

import { randomBytes } from 'node:crypto'
import { renameSync, rmSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { threadId } from 'node:worker_threads'
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
 * is a Checksum or ArchiveDuplicate error.
 */
export async function archiveGetFile(input: ArchiveGetFileInput): Promise<ArchiveGetFileResult> {
  cipherJobUse(input.cipher)
  const repo = posixStorage(input.repoPath)
  const found = await archiveFileFind(repo, input.info, input.walName)
  if (!found) return {}
  const what = `archived WAL file '${repo.describe(found.path)}'`
  if (!(await copySync(repo, found.path, found.sha256, what, input.destination))) {
    const target = new PosixStorage(dirname(input.destination))
    await storedFileCopy(repo, found.path, found.sha256, what, () => target.openWrite(basename(input.destination), { mode: 0o600 }))
  }
  return { archiveId: found.archiveId }
}

/**
 * The same as the stream copy above (temporary name, fsync, rename, folder fsync), with synchronous calls and reused
 * buffers (storedFileCopyToFileSync): the background process fetches segment after segment, and a new buffer per
 * block would be garbage and page faults. False, having written nothing, where the codec has no such path.
 */
async function copySync(repo: PosixStorage, path: string, sha256: string, what: string, destination: string): Promise<boolean> {
  const temporary = `${destination}.tmp-${process.pid}-${threadId}-${randomBytes(4).toString('hex')}`
  if (!storedFileCopyToFileSync(repo, path, sha256, what, { path: temporary, flags: 'wx', mode: 0o600, sync: true })) return false
  try {
    renameSync(temporary, destination)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
  await syncFolder(dirname(destination))
  return true
}
