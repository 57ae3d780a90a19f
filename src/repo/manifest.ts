// The backup manifest: everything a restore needs to rebuild the cluster, and what diff/incr backups compare with.
// Saved as backup/<stanza>/<label>/backup.manifest; a backup without one never happened.

import { createHash } from 'node:crypto'
import type { StoredCompressType } from '../io/compress.js'
import type { Storage } from '../storage/storage.js'
import { fail } from '../common/errors.js'
import type { BackupType } from './label.js'
import { infoFileLoad, infoFileSave } from './info-file.js'
import { layout } from './layout.js'
import { storedAddressInBundle } from './stored-file.js'
import { PgbrFormatFound } from './pgbackrest/ini.js'
import { pgbrManifestLoad } from './pgbackrest/info.js'
import { arrayOf, boolean, nullable, number, object, oneOf, optional, string } from './shape.js'
import type { Shape } from './shape.js'
import { BACKUP_LABEL_SHAPE, BACKUP_SOURCE_SHAPE, BACKUP_TYPE_SHAPE, COMPRESS_TYPE_SHAPE } from './stanza-info.js'
import type { BackupSource } from './stanza-info.js'

export type ManifestSource = BackupSource

export interface ManifestTarget {
  /** 'pg_data', or 'pg_tblspc/<oid>' for a tablespace. */
  name: string
  /** Absolute path on the backed-up host. */
  path: string
  tablespaceOid?: number
  tablespaceName?: string
}

export interface ManifestPath {
  name: string
  mode: number
}

export interface ManifestLink {
  name: string
  destination: string
}

/**
 * One part of a file stored in parts: bytes [index × partSize, index × partSize + size) of the file. A part is
 * shorter than partSize (or empty) when the file was truncated while it was copied; bytes between the end of a short
 * part and the next part read back as zeros, which PostgreSQL's WAL replay rewrites.
 */
export interface ManifestPart {
  size: number
  sha256: string
  /** XXH3-128 of the same bytes, which delta restore compares (see ManifestFile.xxh3). */
  xxh3?: string
  repoSize: number
}

export interface ManifestFile {
  /** Path under its target, e.g. 'pg_data/base/5/16384' or 'pg_tblspc/16400/PG_15_202209061/5/16401'. */
  name: string
  size: number
  mtimeMs: number
  mode: number
  sha256: string
  /**
   * XXH3-128 of the content (of a file not in parts), recorded where walden's libxxhash binding is built. Delta
   * restore compares a cluster's existing file with it rather than with `sha256`: ten times faster to compute, and at
   * 128 bits as unlikely to match changed data by accident. Every read from the repository is still checked against
   * `sha256`.
   */
  xxh3?: string
  /** Bytes in the repository (compressed); 0 for an empty file, which is not stored. */
  repoSize: number
  /** Never bz2 in walden's own backups; bz2 only from a repository pgBackRest wrote (repo/pgbackrest). */
  compressType: StoredCompressType
  /** Label of the earlier backup that holds this file; absent when this backup stored it. */
  reference?: string
  /** Block numbers whose page checksum failed while copying. */
  badPages?: number[]
  /**
   * Present when the file is larger than the manifest's partSize and was stored in parts, each its own repository
   * file, so several workers share a large file. `sha256` is then partsChecksum(parts).
   */
  parts?: ManifestPart[]
  /** Bytes per part, for a file stored in parts; kept per file because a referenced file keeps its old layout. */
  partSize?: number
  /**
   * A file pgBackRest stored in a bundle (repo1-bundle): `repoSize` bytes from `offset` of the backup's bundle/<id>,
   * compressed (and encrypted) on their own. walden never writes bundles.
   */
  bundle?: { id: number; offset: number }
}

/**
 * A configuration file the server reads from outside its data folder (Debian keeps postgresql.conf, pg_hba.conf and
 * pg_ident.conf under /etc/postgresql/<version>/<cluster>/). Small, so kept whole in the manifest, which is sealed
 * and encrypted like the rest of the backup's metadata; restore puts them back only when asked (--config-restore).
 */
export interface ManifestConfigFile {
  /** config_file, hba_file or ident_file; include for a file postgresql.conf includes. */
  kind: 'config_file' | 'hba_file' | 'ident_file' | 'include'
  /** Absolute path on the backed-up host. */
  path: string
  mode: number
  size: number
  sha256: string
  /** The file's bytes, base64. */
  content: string
}

export interface Manifest {
  label: string
  type: BackupType
  prior: string | null
  pg: {
    version: number
    systemId: string
    dbId: number
    walSegmentSize: number
    blockSize: number
    dataChecksums: boolean
  }
  start: { lsn: string; wal: string; timeline: number; time: number }
  stop: { lsn: string; wal: string; time: number }
  /** Never bz2 in walden's own backups; bz2 only from a repository pgBackRest wrote (repo/pgbackrest). */
  compressType: StoredCompressType
  compressLevel: number
  targets: ManifestTarget[]
  paths: ManifestPath[]
  links: ManifestLink[]
  files: ManifestFile[]
  /** backup_label and tablespace_map as returned by pg_backup_stop. */
  backupLabel: string
  tablespaceMap: string
  /** Configuration files outside the data folder; absent in manifests of walden versions before it kept them. */
  configFiles?: ManifestConfigFile[]
  /** Which clusters the backup came from, when backup-standby was set (pgBackRest's backup-standby manifest option). */
  source?: ManifestSource
  /** Set when pgBackRest made the backup (repo/pgbackrest/info.ts): checksums are then SHA-1. */
  foreign?: 'pgbackrest'
  /** The cluster's databases when the backup began; absent in manifests of walden versions before it recorded them. */
  databases?: ManifestDatabase[]
}

/** A database of the backed-up cluster (pgBackRest's manifest [db] section). */
export interface ManifestDatabase {
  name: string
  oid: number
  /** Databases with an oid at or below this are the system's own (template0, template1); see pg/db.ts. */
  lastSystemOid: number
}


// The manifest's shape, checked on every load and save (info-file.ts).

const MANIFEST_PART_SHAPE: Shape<ManifestPart> = object<ManifestPart>({ size: number, sha256: string, xxh3: optional(string), repoSize: number })

const MANIFEST_FILE_SHAPE: Shape<ManifestFile> = object<ManifestFile>({
  name: string,
  size: number,
  mtimeMs: number,
  mode: number,
  sha256: string,
  xxh3: optional(string),
  repoSize: number,
  compressType: COMPRESS_TYPE_SHAPE,
  reference: optional(BACKUP_LABEL_SHAPE),
  badPages: optional(arrayOf(number)),
  parts: optional(arrayOf(MANIFEST_PART_SHAPE)),
  partSize: optional(number),
  bundle: optional(object<NonNullable<ManifestFile['bundle']>>({ id: number, offset: number })),
})

export const MANIFEST_SHAPE: Shape<Manifest> = object<Manifest>({
  label: BACKUP_LABEL_SHAPE,
  type: BACKUP_TYPE_SHAPE,
  prior: nullable(BACKUP_LABEL_SHAPE),
  pg: object<Manifest['pg']>({
    version: number,
    systemId: string,
    dbId: number,
    walSegmentSize: number,
    blockSize: number,
    dataChecksums: boolean,
  }),
  start: object<Manifest['start']>({ lsn: string, wal: string, timeline: number, time: number }),
  stop: object<Manifest['stop']>({ lsn: string, wal: string, time: number }),
  compressType: COMPRESS_TYPE_SHAPE,
  compressLevel: number,
  targets: arrayOf(
    object<ManifestTarget>({ name: string, path: string, tablespaceOid: optional(number), tablespaceName: optional(string) }),
  ),
  paths: arrayOf(object<ManifestPath>({ name: string, mode: number })),
  links: arrayOf(object<ManifestLink>({ name: string, destination: string })),
  files: arrayOf(MANIFEST_FILE_SHAPE),
  backupLabel: string,
  tablespaceMap: string,
  configFiles: optional(
    arrayOf(
      object<ManifestConfigFile>({
        kind: oneOf(['config_file', 'hba_file', 'ident_file', 'include'] as const),
        path: string,
        mode: number,
        size: number,
        sha256: string,
        content: string,
      }),
    ),
  ),
  source: optional(BACKUP_SOURCE_SHAPE),
  databases: optional(arrayOf(object<ManifestDatabase>({ name: string, oid: number, lastSystemOid: number }))),
  foreign: optional(oneOf(['pgbackrest'] as const)),
})

export async function manifestSave(storage: Storage, stanza: string, manifest: Manifest): Promise<void> {
  await infoFileSave(storage, layout.backupManifest(stanza, manifest.label), manifest, MANIFEST_SHAPE, { sealed: true })
}

export async function manifestLoad(storage: Storage, stanza: string, label: string): Promise<Manifest> {
  let manifest: Manifest | undefined
  try {
    manifest = await infoFileLoad(storage, layout.backupManifest(stanza, label), MANIFEST_SHAPE)
  } catch (error) {
    if (!(error instanceof PgbrFormatFound)) throw error
    return pgbrManifestLoad(storage, stanza, label)
  }
  if (!manifest) {
    fail('FileMissing', `manifest of backup '${label}' is missing from ${storage.describe(layout.backup(stanza, label))}`, {
      hint: 'the repository is damaged; choose another backup with --set.',
    })
  }
  return manifest
}

/**
 * The repository path of a file's stored copy (or of one part of it), following a reference to an earlier backup.
 * Parts are named <file>.part-<index>: no PostgreSQL file name contains '.part-'. A file in a pgBackRest bundle has an
 * address naming its bytes in the bundle (stored-file.ts storedAddressInBundle), which every reader of stored files takes.
 */
export function manifestFileRepoPath(stanza: string, label: string, file: ManifestFile, extension: string, part?: number): string {
  if (file.bundle) return storedAddressInBundle(`${layout.backup(stanza, file.reference ?? label)}/bundle/${file.bundle.id}`, file.bundle.offset, file.repoSize, extension)
  return `${layout.backup(stanza, file.reference ?? label)}/${file.name}${part === undefined ? '' : `.part-${part}`}${extension}`
}

/**
 * The checksum of a file stored in parts: SHA-256 over the concatenated SHA-256 digests of its parts. Every byte is
 * still covered by SHA-256, and the parts can be hashed by different workers.
 */
export function partsChecksum(parts: readonly ManifestPart[]): string {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(Buffer.from(part.sha256, 'hex'))
  return hash.digest('hex')
}

export interface ManifestDiff {
  /** Files to copy: new, or changed since the prior backup. */
  copy: string[]
  /** Files unchanged since the prior backup: reference its stored copy. */
  reference: Map<string, ManifestFile>
}

/**
 * A file whose modification time falls this close to the prior backup's start (or later) is copied again even if
 * its size and time are unchanged: file systems keep times in ticks (up to seconds on some), so a file written twice
 * within one tick around the prior copy could show the same time with different content.
 */
export const MTIME_UNSAFE_WINDOW_MS = 1000
/**
 * Two modification times closer than this are the same time. Restore sets a file's time from the manifest through
 * utimes, which takes seconds as a double and reaches the file system a microsecond or so off (measured: 1 µs low on
 * this machine's ext4). Any real change after a backup is at least MTIME_UNSAFE_WINDOW_MS away, so this tolerance
 * costs no safety, and without it every file restored (a standby, a failed-over primary) would be copied again by
 * the next incremental backup.
 */
export const MTIME_SAME_MS = 0.01

/**
 * Which files a diff or incr backup must copy. A file is unchanged when its size and modification time equal the
 * prior backup's record and that time is safely before the prior backup began; the prior record holds the time read
 * before its copy was made, so a file written during that copy shows a newer time now and is copied again.
 * Referenced records take mode and time from the current scan, so a chmod is not lost.
 */
export function manifestDiff(
  prior: Manifest,
  priorLabel: string,
  current: ReadonlyArray<{ name: string; size: number; mtimeMs: number; mode: number }>,
): ManifestDiff {
  const priorFiles = new Map(prior.files.map((file) => [file.name, file]))
  const unsafeFrom = prior.start.time - MTIME_UNSAFE_WINDOW_MS
  const result: ManifestDiff = { copy: [], reference: new Map() }
  for (const file of current) {
    const before = priorFiles.get(file.name)
    if (
      before &&
      before.size === file.size &&
      Math.abs(before.mtimeMs - file.mtimeMs) < MTIME_SAME_MS &&
      file.mtimeMs < unsafeFrom &&
      (before.badPages?.length ?? 0) === 0
    ) {
      result.reference.set(file.name, { ...before, mode: file.mode, mtimeMs: file.mtimeMs, reference: before.reference ?? priorLabel })
    } else {
      result.copy.push(file.name)
    }
  }
  return result
}
