// archive.info and backup.info: what a stanza is. Both record the cluster the stanza belongs to (system identifier
// and major version) with a history, so a WAL segment or backup from another cluster is refused by comparison.

import { fail } from '../common/errors.js'
import type { StoredCompressType } from '../io/compress.js'
import type { Storage } from '../storage/storage.js'
import type { BackupType } from './label.js'
import { cipherAdopt } from './cipher.js'
import type { CipherRecord } from './cipher.js'
import { infoFileLoad, infoFileSave } from './info-file.js'
import { archiveIdFormat, layout } from './layout.js'
import { PgbrFormatFound } from './pgbackrest/ini.js'
import { pgbrArchiveInfoLoad, pgbrBackupInfoLoad } from './pgbackrest/info.js'
import { arrayOf, integerIn, nullable, number, object, oneOf, optional, string, stringMatching } from './shape.js'
import type { Shape } from './shape.js'

export interface PgIdentity {
  /** History id: 1 for the first cluster of the stanza. */
  id: number
  /** 64-bit system identifier as a decimal string (JSON numbers cannot hold it). */
  systemId: string
  version: number
}

export interface ArchiveInfo {
  stanza: string
  db: PgIdentity
  history: PgIdentity[]
  /** The stanza's encryption (repo/cipher.ts), the same in both info files; absent when not encrypted. */
  cipher?: CipherRecord
  /** Set when pgBackRest wrote the repository (repo/pgbackrest/info.ts): walden reads it and never writes into it. */
  foreign?: 'pgbackrest'
}

export interface BackupRecord {
  label: string
  type: BackupType
  /** The backup this one is based on (diff: the full; incr: the previous backup). */
  prior: string | null
  /** Every earlier backup holding files this one uses. */
  reference: string[]
  /** Unix epoch seconds. */
  timestampStart: number
  timestampStop: number
  lsnStart: string
  lsnStop: string
  walStart: string
  walStop: string
  timeline: number
  /** Bytes of the cluster, and of the files copied by this backup. */
  size: number
  delta: number
  /** Bytes in the repository, for all files and for the files this backup stored. */
  repoSize: number
  repoDelta: number
  dbId: number
  /** Never bz2 in walden's own backups; bz2 only from a repository pgBackRest wrote (repo/pgbackrest). */
  compressType: StoredCompressType
  /** Data pages that failed their checksum while copying (details in the manifest). */
  pageErrors: number
  /** Which clusters the backup came from, when backup-standby was set. */
  source?: BackupSource
}

/** Where a backup came from: the backup-standby setting, the cluster it ran on, and the one relation files were read from. */
export interface BackupSource {
  backupStandby: 'n' | 'y' | 'prefer' | 'only'
  /** pgN where pg_backup_start and pg_backup_stop ran. */
  backupOn: string
  /** pgN whose data folder relation files were read from: a standby's, or the primary's when prefer fell back. */
  filesFrom: string
}

export const BACKUP_SOURCE_SHAPE: Shape<BackupSource> = object<BackupSource>({
  backupStandby: oneOf(['n', 'y', 'prefer', 'only'] as const),
  backupOn: string,
  filesFrom: string,
})

export interface BackupInfo {
  stanza: string
  db: PgIdentity
  history: PgIdentity[]
  /** Sorted by label, which is time order. */
  backups: BackupRecord[]
  cipher?: CipherRecord
  /** Set when pgBackRest wrote the repository (repo/pgbackrest/info.ts). */
  foreign?: 'pgbackrest'
  /** pgBackRest's encryption of such a repository, which has no walden cipher record. */
  foreignCipher?: 'aes-256-cbc'
}

/**
 * Every command reads one of the two info files before it touches anything else of the stanza: the place to check
 * the configured cipher fits the stanza's, and to unlock its keys.
 */
function adopt<T extends { cipher?: CipherRecord } | undefined>(info: T, stanza: string): T {
  if (info) cipherAdopt(info.cipher, `stanza '${stanza}'`)
  return info
}

// Shapes, checked on every load and save (info-file.ts). Labels and system identifiers are checked beyond their type:
// a label becomes part of a path that expire removes, and a system identifier is compared as a decimal string.

export const BACKUP_LABEL_SHAPE = stringMatching(/^\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?$/, 'a backup label')
export const BACKUP_TYPE_SHAPE: Shape<BackupType> = oneOf(['full', 'diff', 'incr'])
// bz2 is allowed for a record mapped from a repository pgBackRest wrote (walden itself never writes bz2).
export const COMPRESS_TYPE_SHAPE: Shape<StoredCompressType> = oneOf(['none', 'gz', 'zst', 'lz4', 'bz2'])
const SYSTEM_ID_SHAPE = stringMatching(/^\d{1,20}$/, 'a system identifier (decimal digits)')

const PG_IDENTITY_SHAPE: Shape<PgIdentity> = object<PgIdentity>({ id: number, systemId: SYSTEM_ID_SHAPE, version: number })

const CIPHER_RECORD_SHAPE: Shape<CipherRecord> = object<CipherRecord>({
  type: oneOf(['aes-256-gcm']),
  passphrase: optional(
    // Bounded: the record is not authenticated, and scrypt with other values fails, or allocates without limit.
    object<NonNullable<CipherRecord['passphrase']>>({
      kdf: oneOf(['scrypt']),
      n: integerIn(2 ** 14, 2 ** 18, { powerOfTwo: true }),
      r: integerIn(1, 8),
      p: integerIn(1, 4),
      salt: string,
      repoKey: string,
    }),
  ),
  publicKey: optional(string),
})

export const ARCHIVE_INFO_SHAPE: Shape<ArchiveInfo> = object<ArchiveInfo>({
  stanza: string,
  db: PG_IDENTITY_SHAPE,
  history: arrayOf(PG_IDENTITY_SHAPE),
  cipher: optional(CIPHER_RECORD_SHAPE),
  foreign: optional(oneOf(['pgbackrest'] as const)),
})

const BACKUP_RECORD_SHAPE: Shape<BackupRecord> = object<BackupRecord>({
  label: BACKUP_LABEL_SHAPE,
  type: BACKUP_TYPE_SHAPE,
  prior: nullable(BACKUP_LABEL_SHAPE),
  reference: arrayOf(BACKUP_LABEL_SHAPE),
  timestampStart: number,
  timestampStop: number,
  lsnStart: string,
  lsnStop: string,
  walStart: string,
  walStop: string,
  timeline: number,
  size: number,
  delta: number,
  repoSize: number,
  repoDelta: number,
  dbId: number,
  compressType: COMPRESS_TYPE_SHAPE,
  pageErrors: number,
  source: optional(BACKUP_SOURCE_SHAPE),
})

export const BACKUP_INFO_SHAPE: Shape<BackupInfo> = object<BackupInfo>({
  stanza: string,
  db: PG_IDENTITY_SHAPE,
  history: arrayOf(PG_IDENTITY_SHAPE),
  backups: arrayOf(BACKUP_RECORD_SHAPE),
  cipher: optional(CIPHER_RECORD_SHAPE),
  foreign: optional(oneOf(['pgbackrest'] as const)),
  foreignCipher: optional(oneOf(['aes-256-cbc'] as const)),
})

export function archiveIdOf(identity: PgIdentity): string {
  return archiveIdFormat(identity.version, identity.id)
}

function missingStanza(stanza: string, storage: Storage): never {
  fail('RepoInvalid', `stanza '${stanza}' does not exist in repository ${storage.description}`, {
    hint: `check --stanza and the repository's path (repo1-path, or repoN-path of repository N), or run \`walden --stanza=${stanza} stanza-create\`.`,
  })
}

/**
 * walden's own document, or, where the file is in pgBackRest's format, the same record read from that
 * (repo/pgbackrest/info.ts). A pgBackRest stanza's cipher is checked by its loader, not adopted here.
 */
async function loadEither<T extends { cipher?: CipherRecord }>(own: () => Promise<T | undefined>, pgbr: () => Promise<T | undefined>, stanza: string): Promise<T | undefined> {
  try {
    return adopt(await own(), stanza)
  } catch (error) {
    if (!(error instanceof PgbrFormatFound)) throw error
  }
  return pgbr()
}

export async function archiveInfoLoad(storage: Storage, stanza: string): Promise<ArchiveInfo> {
  return (await archiveInfoLoadIfExists(storage, stanza)) ?? missingStanza(stanza, storage)
}

/** `repair`: rewrite a damaged copy from the whole one (only under the stanza's backup lock; see infoFileLoad). */
export async function archiveInfoLoadIfExists(storage: Storage, stanza: string, options: { repair?: boolean } = {}): Promise<ArchiveInfo | undefined> {
  return loadEither(
    () => infoFileLoad(storage, layout.archiveInfo(stanza), ARCHIVE_INFO_SHAPE, options),
    () => pgbrArchiveInfoLoad(storage, stanza),
    stanza,
  )
}

export async function archiveInfoSave(storage: Storage, info: ArchiveInfo): Promise<void> {
  await infoFileSave(storage, layout.archiveInfo(info.stanza), info, ARCHIVE_INFO_SHAPE)
}

export async function backupInfoLoad(storage: Storage, stanza: string): Promise<BackupInfo> {
  return (await backupInfoLoadIfExists(storage, stanza)) ?? missingStanza(stanza, storage)
}

export async function backupInfoLoadIfExists(storage: Storage, stanza: string, options: { repair?: boolean } = {}): Promise<BackupInfo | undefined> {
  return loadEither(
    () => infoFileLoad(storage, layout.backupInfo(stanza), BACKUP_INFO_SHAPE, options),
    () => pgbrBackupInfoLoad(storage, stanza),
    stanza,
  )
}

export async function backupInfoSave(storage: Storage, info: BackupInfo): Promise<void> {
  info.backups.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0))
  await infoFileSave(storage, layout.backupInfo(info.stanza), info, BACKUP_INFO_SHAPE)
}

/** Refuses a cluster that is not the stanza's: the check that keeps two clusters' WAL and backups apart. */
export function checkIdentity(
  stanza: string,
  db: PgIdentity,
  found: { systemId: string; version: number },
  what: string,
): void {
  if (db.systemId !== found.systemId || db.version !== found.version) {
    fail(
      'ArchiveMismatch',
      `${what} is from PostgreSQL ${found.version} with system identifier ${found.systemId}, ` +
        `but stanza '${stanza}' is PostgreSQL ${db.version} with system identifier ${db.systemId}`,
      {
        hint: 'check that --stanza and pg1-path name the same cluster; a cluster rebuilt by initdb or pg_upgrade needs a new stanza.',
      },
    )
  }
}
