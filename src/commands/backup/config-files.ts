// Configuration files outside the data folder, collected for the manifest. The server says where its files are
// (config_file, hba_file, ident_file) and which files it read settings from (pg_file_settings: postgresql.conf's
// include, include_if_exists and include_dir files); those under the data folder are in the backup already.
// Asked before the backup starts: reading these settings needs superuser or pg_read_all_settings, and a refusal is
// then only a warning, never an error inside the server's backup mode.

import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import { log } from '../../common/log.js'
import type { ManifestConfigFile } from '../../repo/manifest.js'
import type { PgSession } from '../../pg/session.js'

/** Larger files are not configuration a DBA wrote; the manifest holds these whole. */
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024

/** The server's configuration files outside `dataDirectory`, with their content. */
export async function configFilesCollect(
  session: PgSession,
  dataDirectory: string,
  read: (path: string, kind: ManifestConfigFile['kind']) => Promise<ManifestConfigFile | null>,
): Promise<ManifestConfigFile[]> {
  let rows: Array<{ kind: ManifestConfigFile['kind']; path: string }>
  try {
    rows = await session.query<{ kind: ManifestConfigFile['kind']; path: string }>(
      `select name as kind, setting as path from pg_settings where name in ('config_file', 'hba_file', 'ident_file')
       union
       select distinct 'include', sourcefile from pg_file_settings where sourcefile is not null`,
    )
  } catch (error) {
    log.warn(`configuration files outside the data folder are not backed up: ${(error as Error).message}`)
    return []
  }
  const inData = (path: string): boolean => resolve(path).startsWith(`${resolve(dataDirectory)}/`)
  // postgresql.conf shows up as an include source too; its own kind wins.
  const named = new Map<string, ManifestConfigFile['kind']>()
  for (const row of rows) if (row.kind !== 'include' || !named.has(row.path)) named.set(row.path, row.kind)
  for (const row of rows) if (row.kind !== 'include') named.set(row.path, row.kind)

  const files: ManifestConfigFile[] = []
  for (const [path, kind] of [...named].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (inData(path) || path === '') continue
    const file = await read(path, kind)
    if (file !== null) files.push(file)
  }
  if (files.length > 0) log.info(`configuration files outside the data folder kept with the backup: ${files.map((file) => `'${file.path}'`).join(', ')}`)
  return files
}

export async function configFileRead(path: string, kind: ManifestConfigFile['kind']): Promise<ManifestConfigFile | undefined> {
  try {
    const handle = await open(path, 'r')
    try {
      const stat = await handle.stat()
      if (!stat.isFile()) {
        log.warn(`configuration file '${path}' (${kind}) is not a regular file; not backed up`)
        return undefined
      }
      if (stat.size > CONFIG_FILE_MAX_BYTES) {
        log.warn(`configuration file '${path}' (${kind}) is larger than ${CONFIG_FILE_MAX_BYTES} bytes; not backed up`)
        return undefined
      }
      const content = await handle.readFile()
      return { kind, path, mode: stat.mode & 0o7777, size: content.length, sha256: createHash('sha256').update(content).digest('hex'), content: content.toString('base64') }
    } finally {
      await handle.close()
    }
  } catch (error) {
    log.warn(`configuration file '${path}' (${kind}) cannot be read and is not backed up: ${(error as Error).message}`)
    return undefined
  }
}
