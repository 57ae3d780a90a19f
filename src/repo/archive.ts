// Finding WAL in the archive. Each archived file is named <wal name>-<sha256 of its uncompressed content>.<ext> (SHA-1
// in a repository pgBackRest wrote), so
// the checksum to verify against and the compression to undo are both known from a folder listing.

import { fail } from '../common/errors.js'
import type { Storage } from '../storage/storage.js'
import type { ArchiveInfo } from './stanza-info.js'
import { archiveIdOf } from './stanza-info.js'
import { layout } from './layout.js'
import { isTimelineHistoryName } from '../pg/wal.js'
import { pgbrHistoryFind } from './pgbackrest/info.js'

export interface ArchivedFile {
  /** Repository path of the stored file. */
  path: string
  sha256: string
  /** File name suffix after the checksum: '', '.zst', '.lz4' or '.gz'. */
  extension: string
  archiveId: string
}

// SHA-256 in walden's names; SHA-1 in those pgBackRest writes (repo/pgbackrest/), which readers verify as SHA-1
// (io/hash.ts digestAlgorithmOf).
const ARCHIVED = /^(.+)-([0-9a-f]{64}|[0-9a-f]{40})(\.[a-z0-9]+)?$/

/** Parses a stored archive file name into its WAL name, checksum and extension. */
export function archivedNameParse(fileName: string): { walName: string; sha256: string; extension: string } | undefined {
  const match = ARCHIVED.exec(fileName)
  return match ? { walName: match[1]!, sha256: match[2]!, extension: match[3] ?? '' } : undefined
}

export function archivedName(walName: string, sha256: string, extension: string): string {
  return `${walName}-${sha256}${extension}`
}

/** Every stored copy of `walName` under one archive id (more than one only if the repository was tampered with). */
export async function archiveFileList(storage: Storage, stanza: string, archiveId: string, walName: string): Promise<ArchivedFile[]> {
  const folder = layout.walFolder(stanza, archiveId, walName)
  return archivedFilesIn(folder, await storage.list(folder), archiveId, walName)
}

/**
 * The stored copies of `walName` among `entries`, the names a listing of its WAL folder (layout.walFolder) gave: for
 * a caller that lists a folder once and looks up many segments in it.
 */
export function archivedFilesIn(folder: string, entries: readonly string[], archiveId: string, walName: string): ArchivedFile[] {
  const found: ArchivedFile[] = []
  for (const entry of entries) {
    if (!entry.startsWith(`${walName}-`)) continue
    const parsed = archivedNameParse(entry)
    if (parsed?.walName === walName) found.push({ path: `${folder}/${entry}`, sha256: parsed.sha256, extension: parsed.extension, archiveId })
  }
  return found
}

/**
 * Finds a WAL file, searching the stanza's current archive id first and then those of earlier history entries,
 * newest first, as recovery may need WAL written before a stanza upgrade. Two different files under one name (two
 * clusters archiving into one stanza) is an error: picking one would be a guess.
 */
export async function archiveFileFind(storage: Storage, info: ArchiveInfo, walName: string): Promise<ArchivedFile | undefined> {
  const candidates = [info.db, ...[...info.history].reverse().filter((entry) => entry.id !== info.db.id)]
  for (const identity of candidates) {
    if (info.foreign === 'pgbackrest' && isTimelineHistoryName(walName)) {
      const history = await pgbrHistoryFind(storage, info.stanza, archiveIdOf(identity), walName)
      if (history) return history
      continue
    }
    const found = await archiveFileList(storage, info.stanza, archiveIdOf(identity), walName)
    if (found.length > 1) archiveDuplicateFail(storage, walName, found)
    if (found[0]) return found[0]
  }
  return undefined
}

export function archiveDuplicateFail(storage: Storage, walName: string, found: readonly ArchivedFile[]): never {
  fail('ArchiveDuplicate', `WAL file '${walName}' is archived more than once with different content: ${found.map((file) => `'${storage.describe(file.path)}'`).join(', ')}`, {
    hint: 'two clusters may be archiving into this stanza; find which copy belongs to the cluster being recovered and remove the other.',
  })
}

/**
 * Waits until every named WAL file is in the archive (current archive id), polling the folder listings.
 * Returns the names still missing when the timeout ran out; an empty list means all arrived.
 */
export async function archiveWaitFor(
  storage: Storage,
  info: ArchiveInfo,
  walNames: readonly string[],
  timeoutMs: number,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs
  let missing = [...walNames]
  for (;;) {
    const stillMissing: string[] = []
    for (const walName of missing) {
      if ((await archiveFileList(storage, info.stanza, archiveIdOf(info.db), walName)).length === 0) stillMissing.push(walName)
    }
    missing = stillMissing
    if (missing.length === 0 || Date.now() >= deadline) return missing
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, Math.max(1, deadline - Date.now()))))
  }
}
