// archive.info and backup.info: what a stanza is. Both record the cluster the stanza belongs to (system identifier
// and major version) with a history, so a WAL segment or backup from another cluster is refused by comparison.

import { fail } from '../common/errors.js'
import type { CompressType } from '../io/compress.js'
import type { Storage } from '../storage/storage.js'
import type { BackupType } from './label.js'
import { cipherAdopt } from './cipher.js'
import type { CipherRecord } from './cipher.js'
import { infoFileLoad, infoFileSave } from './info-file.js'
import { archiveIdFormat, layout } from './layout.js'

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
  compressType: CompressType
  /** Data pages that failed their checksum while copying (details in the manifest). */
  pageErrors: number
}

export interface BackupInfo {
  stanza: string
  db: PgIdentity
  history: PgIdentity[]
  /** Sorted by label, which is time order. */
  backups: BackupRecord[]
  cipher?: CipherRecord
}

/**
 * Every command reads one of the two info files before it touches anything else of the stanza: the place to check
 * the configured cipher fits the stanza's, and to unlock its keys.
 */
function adopt<T extends { cipher?: CipherRecord } | undefined>(info: T, stanza: string): T {
  if (info) cipherAdopt(info.cipher, `stanza '${stanza}'`)
  return info
}

export function archiveIdOf(identity: PgIdentity): string {
  return archiveIdFormat(identity.version, identity.id)
}

function missingStanza(stanza: string, storage: Storage): never {
  fail('RepoInvalid', `stanza '${stanza}' does not exist in repository ${storage.description}`, {
    hint: `check --stanza and repo1-path, or run \`walden --stanza=${stanza} stanza-create\`.`,
  })
}

export async function archiveInfoLoad(storage: Storage, stanza: string): Promise<ArchiveInfo> {
  return adopt((await infoFileLoad<ArchiveInfo>(storage, layout.archiveInfo(stanza))) ?? missingStanza(stanza, storage), stanza)
}

export async function archiveInfoLoadIfExists(storage: Storage, stanza: string): Promise<ArchiveInfo | undefined> {
  return adopt(await infoFileLoad<ArchiveInfo>(storage, layout.archiveInfo(stanza)), stanza)
}

export async function archiveInfoSave(storage: Storage, info: ArchiveInfo): Promise<void> {
  await infoFileSave(storage, layout.archiveInfo(info.stanza), info)
}

export async function backupInfoLoad(storage: Storage, stanza: string): Promise<BackupInfo> {
  return adopt((await infoFileLoad<BackupInfo>(storage, layout.backupInfo(stanza))) ?? missingStanza(stanza, storage), stanza)
}

export async function backupInfoLoadIfExists(storage: Storage, stanza: string): Promise<BackupInfo | undefined> {
  return adopt(await infoFileLoad<BackupInfo>(storage, layout.backupInfo(stanza)), stanza)
}

export async function backupInfoSave(storage: Storage, info: BackupInfo): Promise<void> {
  info.backups.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0))
  await infoFileSave(storage, layout.backupInfo(info.stanza), info)
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
