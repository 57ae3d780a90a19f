// Fetching one WAL file from the archive: the work shared by the synchronous archive-get and the background process
// that prefetches segments for the asynchronous one. Plain inputs, one result, so it runs inline or in a worker.

import { basename, dirname } from 'node:path'
import { archiveFileFind } from '../repo/archive.js'
import type { ArchiveInfo } from '../repo/stanza-info.js'
import { storedFileCopy } from '../repo/stored-file.js'
import { posixStorage, PosixStorage } from '../storage/posix.js'

export interface ArchiveGetFileInput {
  repoPath: string
  info: ArchiveInfo
  walName: string
  /** Absolute path to write the file to; written under a temporary name and renamed once verified. */
  destination: string
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
  const repo = posixStorage(input.repoPath)
  const found = await archiveFileFind(repo, input.info, input.walName)
  if (!found) return {}
  const target = new PosixStorage(dirname(input.destination))
  const what = `archived WAL file '${repo.describe(found.path)}'`
  await storedFileCopy(repo, found.path, found.sha256, what, () => target.openWrite(basename(input.destination), { mode: 0o600 }))
  return { archiveId: found.archiveId }
}
