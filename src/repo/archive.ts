// Finding WAL in the archive. Two ways a file is stored, both checksummed, both readable from a folder listing alone:
//
// - WAL segments and '.partial' segments: named <wal name>-<sha256 of its uncompressed content>.<ext>, so the checksum
//   to verify against and the compression to undo are both in the name (pgBackRest names segments the same way, with
//   SHA-1).
// - Timeline history files ('00000002.history') and backup history files ('…00000028.backup'): stored under their own
//   name, uncompressed (sealed when the repository is encrypted), as pgBackRest 2.45 stores them, so tools that list
//   the archive (check_pgbackrest follows timeline switches through '<timeline>.history') find them. The checksum is
//   recorded beside the file in an empty file named '<wal name>.sha256-<sha256>' (a checksum record). Written after
//   the file, it is what makes the file archived: a file without its record is a push that did not finish, never
//   served, and the next push writes over it; two records with different checksums are two clusters pushing one name, refused as a duplicate, as two
//   differently named copies of a segment are. A record is one name, created whole or not at all on every storage
//   (an empty object on S3), and needs no read: an index shared by many files would have to be rewritten by
//   concurrent pushes, which an object store cannot do atomically.
//
// Repositories written before (issue #15) hold history and backup files under the checksummed name instead; they are
// read as before, and a push of the same content finds them there.

import { fail } from '../common/errors.js'
import { isBackupHistoryName, isTimelineHistoryName } from '../pg/wal.js'
import type { Storage } from '../storage/storage.js'
import type { ArchiveInfo } from './stanza-info.js'
import { archiveIdOf } from './stanza-info.js'
import { layout } from './layout.js'
import { pgbrHistoryFind } from './pgbackrest/info.js'

export interface ArchivedFile {
  /** Repository path of the stored file. */
  path: string
  sha256: string
  /** File name suffix after the checksum: '', '.zst', '.lz4', '.gz' (or '.bz2' from pgBackRest); always '' for a file stored under its own name. */
  extension: string
  archiveId: string
  /** A checksum record whose file is not there (the repository lost it): reading it fails. */
  fileMissing?: true
  /** For a file stored under its own name: the repository path of its checksum record. */
  recordPath?: string
}

// SHA-256 in walden's names; SHA-1 in those pgBackRest writes (repo/pgbackrest/), which readers verify as SHA-1
// (io/hash.ts digestAlgorithmOf).
const ARCHIVED = /^(.+)-([0-9a-f]{64}|[0-9a-f]{40})(\.[a-z0-9]+)?$/
const CHECKSUM_RECORD = /^(.+)\.sha256-([0-9a-f]{64})$/

/** History and backup history files are stored under their own name, with a checksum record beside them. */
export function isStoredAsNamed(walName: string): boolean {
  return isTimelineHistoryName(walName) || isBackupHistoryName(walName)
}

/** One entry of an archive folder, by its name. */
export type ArchiveEntry =
  /** A file under its checksummed name: a segment, or a history or backup file of the earlier layout. */
  | { kind: 'checksummed'; walName: string; sha256: string; extension: string }
  /** A history or backup history file under its own name. */
  | { kind: 'named'; walName: string }
  /** The checksum record of a file stored under its own name. */
  | { kind: 'checksum'; walName: string; sha256: string }

/** What an archive folder entry is; undefined for anything else (a temporary file, a stray). */
export function archiveEntryParse(entry: string): ArchiveEntry | undefined {
  const record = CHECKSUM_RECORD.exec(entry)
  if (record) return isStoredAsNamed(record[1]!) ? { kind: 'checksum', walName: record[1]!, sha256: record[2]! } : undefined
  if (isStoredAsNamed(entry)) return { kind: 'named', walName: entry }
  const match = ARCHIVED.exec(entry)
  return match ? { kind: 'checksummed', walName: match[1]!, sha256: match[2]!, extension: match[3] ?? '' } : undefined
}

/**
 * Parses a stored archive file name into its WAL name, checksum and extension: a file under its checksummed name only
 * (a file stored under its own name has its checksum in its record; see archiveFolderFiles).
 */
export function archivedNameParse(fileName: string): { walName: string; sha256: string; extension: string } | undefined {
  const parsed = archiveEntryParse(fileName)
  return parsed?.kind === 'checksummed' ? parsed : undefined
}

export function archivedName(walName: string, sha256: string, extension: string): string {
  return `${walName}-${sha256}${extension}`
}

/** The name of the checksum record of a file stored under its own name. */
export function checksumRecordName(walName: string, sha256: string): string {
  return `${walName}.sha256-${sha256}`
}

/** One archived file found in a folder listing, by its WAL name. */
export interface ArchivedEntryFile {
  walName: string
  /** Its folder entry. */
  entry: string
  sha256: string
  extension: string
}

/**
 * The archived files among the names a listing of one archive folder gave: files under their checksummed name, and
 * files under their own name that have a checksum record (one per record, so two records for one name show as the
 * duplicate they are). A record without its file is listed too (a reader finds the file missing: the repository lost
 * it); a file without a record is not (its push never finished).
 */
export function archiveFolderFiles(entries: readonly string[]): ArchivedEntryFile[] {
  const named = new Set<string>()
  const records: ArchivedEntryFile[] = []
  const found: ArchivedEntryFile[] = []
  for (const entry of entries) {
    const parsed = archiveEntryParse(entry)
    if (parsed?.kind === 'checksummed') found.push({ walName: parsed.walName, entry, sha256: parsed.sha256, extension: parsed.extension })
    else if (parsed?.kind === 'named') named.add(entry)
    else if (parsed?.kind === 'checksum') records.push({ walName: parsed.walName, entry: parsed.walName, sha256: parsed.sha256, extension: '' })
  }
  return [...found, ...records]
}

/** Every stored copy of `walName` under one archive id (more than one only if two clusters pushed it). */
export async function archiveFileList(storage: Storage, stanza: string, archiveId: string, walName: string): Promise<ArchivedFile[]> {
  const folder = layout.walFolder(stanza, archiveId, walName)
  return archivedFilesIn(folder, await storage.list(folder), archiveId, walName)
}

/**
 * The stored copies of `walName` among `entries`, the names a listing of its WAL folder (layout.walFolder) gave, one
 * per distinct content: for a caller that lists a folder once and looks up many segments in it. A file stored under
 * its own name comes before an earlier layout's copy of the same content. `fileMissing` marks a checksum record whose
 * file is not there.
 */
export function archivedFilesIn(folder: string, entries: readonly string[], archiveId: string, walName: string): ArchivedFile[] {
  const mine = entries.filter((entry) => entry.startsWith(walName))
  const present = new Set(mine)
  const bySha = new Map<string, ArchivedFile>()
  const files = archiveFolderFiles(mine).filter((file) => file.walName === walName)
  // Records (and so files under their own name) first: archiveFolderFiles lists them after the checksummed names.
  files.sort((a, b) => Number(b.entry === walName) - Number(a.entry === walName))
  for (const file of files) {
    const named = file.entry === walName && isStoredAsNamed(walName)
    const missing = !present.has(file.entry)
    const known = bySha.get(file.sha256)
    if (known !== undefined && !(known.fileMissing === true && !missing)) continue
    bySha.set(file.sha256, {
      path: `${folder}/${file.entry}`,
      sha256: file.sha256,
      extension: file.extension,
      archiveId,
      ...(missing ? { fileMissing: true as const } : {}),
      ...(named ? { recordPath: `${folder}/${checksumRecordName(walName, file.sha256)}` } : {}),
    })
  }
  return [...bySha.values()]
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
  // A file under its own name is told apart by its checksum record: the file itself holds only one of the contents.
  const names = found.map((file) => `'${storage.describe(file.recordPath ?? file.path)}'`)
  fail('ArchiveDuplicate', `WAL file '${walName}' is archived more than once with different content: ${names.join(', ')}`, {
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
