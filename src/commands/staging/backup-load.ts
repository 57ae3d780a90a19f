// The initial load of ways 2 and 3: a base backup the user took with pg_basebackup, copied into the staging folder.
// Two formats:
//   plain (-F p): a data folder; copied file by file. Tablespaces are where pg_tblspc/OID's links point.
//   tar (-F t -X stream): base.tar, pg_wal.tar and OID.tar per tablespace, each maybe compressed (.gz, .lz4, .zst);
//     extracted with io/tar-extract.ts.
// The user's backup is only read, never changed or moved: it may be needed again (a resync, another staging host).
// Tablespaces of the staging copy live beside its data folder, in STAGING-PATH.tablespaces/OID, each linked from
// pg_tblspc/OID: the backup's own locations are the source's (or the user's backup's), never ours to write.

import { cp, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { tarExtractFile } from '../../io/tar-extract.js'
import { pgControlRead } from '../../pg/control.js'
import type { PgControl } from '../../pg/control.js'
import { syncFilesystem, syncFilesystemAvailable } from '../../storage/posix.js'

/** A pg_basebackup found at staging-backup-path. */
export type BaseBackupSource =
  | { format: 'plain'; path: string; major: number; tablespaces: Array<{ oid: string; location: string }> }
  | { format: 'tar'; path: string; base: string; wal?: string; tablespaces: Array<{ oid: string; file: string }> }

/** The compressions a tar file of pg_basebackup may carry, as suffixes after '.tar'. */
const TAR_SUFFIXES = ['', '.gz', '.lz4', '.zst'] as const

/** The file `<name>.tar[.gz|.lz4|.zst]` in a folder's listing, if there is exactly one. */
function tarFile(path: string, entries: readonly string[], name: string): string | undefined {
  const found = TAR_SUFFIXES.map((suffix) => `${name}.tar${suffix}`).filter((file) => entries.includes(file))
  if (found.length > 1) {
    fail('FileInvalid', `staging-backup-path '${path}' holds ${found.map((file) => `'${file}'`).join(' and ')}: more than one backup`, {
      hint: 'give a folder holding exactly one pg_basebackup.',
    })
  }
  return found[0] === undefined ? undefined : join(path, found[0])
}

/** Where the staging copy's tablespaces live: beside its data folder, so that it owns them. */
export function tablespaceRoot(stagingPath: string): string {
  return `${stagingPath}.tablespaces`
}

/**
 * What the folder at staging-backup-path holds: a plain-format backup (PG_VERSION, global/pg_control, backup_label)
 * or a tar-format one (base.tar...). Anything else is refused with a message saying what was expected.
 */
export async function baseBackupInspect(path: string): Promise<BaseBackupSource> {
  let entries: string[]
  try {
    entries = await readdir(path)
  } catch (error) {
    const code = errnoCode(error)
    fail(code === 'ENOENT' ? 'PathMissing' : 'FileOpen', `staging-backup-path '${path}' ${code === 'ENOENT' ? 'does not exist' : `cannot be read: ${(error as Error).message}`}`, {
      hint: 'give the folder pg_basebackup -D wrote (plain format, or -F t).',
    })
  }
  const base = tarFile(path, entries, 'base')
  if (base !== undefined) {
    const wal = tarFile(path, entries, 'pg_wal')
    const tablespaces = entries
      .map((entry) => /^(\d+)\.tar(\.gz|\.lz4|\.zst)?$/.exec(entry))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => ({ oid: match[1]!, file: join(path, match[0]) }))
    return { format: 'tar', path, base, ...(wal !== undefined ? { wal } : {}), tablespaces }
  }
  if (entries.includes('PG_VERSION') && entries.includes('global')) {
    if (!entries.includes('backup_label')) {
      fail('FileInvalid', `staging-backup-path '${path}' is a data folder without backup_label: not a base backup`, {
        hint: 'give a backup taken with pg_basebackup (a copy of a running or stopped server is not one).',
      })
    }
    const major = Number.parseInt((await readFile(join(path, 'PG_VERSION'), 'utf8')).trim(), 10)
    const tablespaces: Array<{ oid: string; location: string }> = []
    for (const oid of await readdir(join(path, 'pg_tblspc')).catch(() => [] as string[])) {
      const link = join(path, 'pg_tblspc', oid)
      if ((await lstat(link)).isSymbolicLink()) tablespaces.push({ oid, location: await readlink(link) })
    }
    return { format: 'plain', path, major, tablespaces }
  }
  fail('FileInvalid', `staging-backup-path '${path}' holds neither a plain-format base backup (PG_VERSION, global/) nor a tar-format one (base.tar)`, {
    hint: 'take it with `pg_basebackup -D FOLDER -F t -X stream` (or -F p), and give that FOLDER.',
  })
}

// Files of a plain backup that are not part of the cluster: pg_basebackup's manifest of the backup itself.
const PLAIN_SKIP = new Set(['backup_manifest'])

/**
 * Loads the backup into `stagingPath` (empty or absent), its tablespaces into STAGING-PATH.tablespaces, and makes
 * it durable. Returns the cluster's pg_control as loaded.
 */
export async function baseBackupLoad(source: BaseBackupSource, stagingPath: string): Promise<PgControl> {
  await mkdir(stagingPath, { recursive: true, mode: 0o700 })
  // PostgreSQL refuses a data folder anyone else may read; mkdir leaves an existing empty folder's mode alone.
  await chmod(stagingPath, 0o700)
  const started = Date.now()
  if (source.format === 'plain') await plainLoad(source, stagingPath)
  else await tarLoad(source, stagingPath)
  if (syncFilesystemAvailable()) syncFilesystem(stagingPath)
  log.info(`base backup '${source.path}' (${source.format} format) loaded into '${stagingPath}' in ${((Date.now() - started) / 1000).toFixed(1)}s`)
  return pgControlRead(stagingPath)
}

async function plainLoad(source: Extract<BaseBackupSource, { format: 'plain' }>, stagingPath: string): Promise<void> {
  const tablespaceLinks = new Set(source.tablespaces.map((space) => join(source.path, 'pg_tblspc', space.oid)))
  await cp(source.path, stagingPath, {
    recursive: true,
    errorOnExist: true,
    force: false,
    preserveTimestamps: true,
    verbatimSymlinks: true,
    filter: (from) => !(PLAIN_SKIP.has(basename(from)) && from === join(source.path, basename(from))) && !tablespaceLinks.has(from),
  })
  for (const space of source.tablespaces) {
    const target = join(tablespaceRoot(stagingPath), space.oid)
    await mkdir(target, { recursive: true, mode: 0o700 })
    await cp(space.location, target, { recursive: true, errorOnExist: true, force: false, preserveTimestamps: true, verbatimSymlinks: true })
    await symlink(target, join(stagingPath, 'pg_tblspc', space.oid))
  }
}

async function tarLoad(source: Extract<BaseBackupSource, { format: 'tar' }>, stagingPath: string): Promise<void> {
  // Links in pg_tblspc point at the source's tablespace folders: made anew below, pointing at ours.
  await tarExtractFile(source.base, stagingPath, {
    sync: 'none',
    onEntry: (entry) => (entry.type === 'symlink' && /^pg_tblspc\/\d+$/.test(entry.name) ? 'skip' : undefined),
  })
  if (source.wal !== undefined) {
    await mkdir(join(stagingPath, 'pg_wal'), { recursive: true, mode: 0o700 })
    await tarExtractFile(source.wal, join(stagingPath, 'pg_wal'), { sync: 'none' })
  }
  const map: string[] = []
  for (const space of source.tablespaces) {
    const target = join(tablespaceRoot(stagingPath), space.oid)
    await mkdir(target, { recursive: true, mode: 0o700 })
    await tarExtractFile(space.file, target, { sync: 'none' })
    await rm(join(stagingPath, 'pg_tblspc', space.oid), { force: true })
    await mkdir(join(stagingPath, 'pg_tblspc'), { recursive: true, mode: 0o700 })
    await symlink(target, join(stagingPath, 'pg_tblspc', space.oid))
    map.push(`${space.oid} ${target}`)
  }
  // With a tablespace_map in the backup, recovery makes pg_tblspc's links from it: it must name our folders too.
  const tablespaceMap = join(stagingPath, 'tablespace_map')
  if (map.length > 0 && (await lstat(tablespaceMap).catch(() => undefined)) !== undefined) {
    await writeFile(tablespaceMap, `${map.join('\n')}\n`, { mode: 0o600 })
  }
}
