// What in a data directory belongs in a backup. Follows PostgreSQL's documentation ("Making a Base Backup Using
// the Low Level API") and the exclusions of its own base backup (src/backend/backup/basebackup.c).

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pidAlive } from '../common/lock.js'

/** Folders at the data directory root whose contents are recreated by PostgreSQL and must not be copied. */
export const EXCLUDE_FOLDER_CONTENTS: ReadonlySet<string> = new Set([
  'pg_wal', // WAL comes from the archive; replaying stale segments copied mid-write would be wrong
  'pg_replslot', // slots would hold back WAL on the restored cluster
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_stat_tmp',
  'pg_subtrans',
])

/** Files at the data directory root that must not be copied. */
export const EXCLUDE_ROOT_FILES: ReadonlySet<string> = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label', // restore writes the one pg_backup_stop returned
  'backup_label.old',
  'tablespace_map',
  'backup_manifest',
  'current_logfiles',
  'recovery.signal', // restore writes the signal the chosen recovery type needs
  'standby.signal',
  'postgresql.auto.conf.tmp',
])

/** Files excluded wherever they are. */
export const EXCLUDE_ANY_FILES: ReadonlySet<string> = new Set(['pg_internal.init'])

/**
 * Temporary files and folders (pgsql_tmp*) and temporary relations (t<backend>_<relfilenode>, with any fork or
 * segment suffix) hold nothing a restored cluster could use: PostgreSQL removes them at start-up.
 */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('pgsql_tmp') || /^t\d+_\d+(_(fsm|vm|init))?(\.\d+)?$/.test(name)
}

const RELATION_FILE = /^(\d+)(?:_(fsm|vm|init))?(?:\.(\d+))?$/

export interface RelationFile {
  relfilenode: string
  fork: 'main' | 'fsm' | 'vm' | 'init'
  segmentNo: number
}

/** Parses a relation file name such as 16384, 16384.2 or 16384_fsm; undefined for anything else. */
export function relationFileParse(name: string): RelationFile | undefined {
  const match = RELATION_FILE.exec(name)
  if (!match) return undefined
  return {
    relfilenode: match[1]!,
    fork: (match[2] as RelationFile['fork'] | undefined) ?? 'main',
    segmentNo: match[3] === undefined ? 0 : Number(match[3]),
  }
}

/**
 * Names in one database folder to leave out because they belong to unlogged relations: every fork except the
 * init fork, which restore needs to recreate the relation empty (PostgreSQL's own rule for base backups).
 */
export function unloggedExclusions(names: readonly string[]): Set<string> {
  const unlogged = new Set<string>()
  for (const name of names) {
    const relation = relationFileParse(name)
    if (relation?.fork === 'init') unlogged.add(relation.relfilenode)
  }
  const excluded = new Set<string>()
  if (unlogged.size === 0) return excluded
  for (const name of names) {
    const relation = relationFileParse(name)
    if (relation && relation.fork !== 'init' && unlogged.has(relation.relfilenode)) excluded.add(name)
  }
  return excluded
}

/**
 * True for a path (relative to the data directory or a tablespace target) whose files are relation data with
 * page checksums: global/, base/<db>/ and, in tablespaces, PG_<version>_<catversion>/<db>/.
 */
export function isRelationFolder(relativeFolder: string): boolean {
  return /^(global|base\/\d+|PG_[^/]+\/\d+)$/.test(relativeFolder)
}

/** True for a database folder, where unlogged relations live. */
export function isDatabaseFolder(relativeFolder: string): boolean {
  return /^(base\/\d+|PG_[^/]+\/\d+)$/.test(relativeFolder)
}

/** True when a postmaster.pid names a live process: PostgreSQL is running on that data folder. */
export async function pgRunning(dataDir: string): Promise<boolean> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined)
  const pid = text === undefined ? NaN : Number.parseInt(text, 10)
  return Number.isFinite(pid) && pidAlive(pid)
}
