// Lists what a backup copies: the data directory and each tablespace, with PostgreSQL's exclusions applied.
// Only names and stat results are held in memory, never file contents.

import { lstat, readdir, readlink, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import {
  EXCLUDE_ANY_FILES,
  EXCLUDE_FOLDER_CONTENTS,
  EXCLUDE_ROOT_FILES,
  isDatabaseFolder,
  isRelationFolder,
  isTemporaryName,
  relationFileParse,
  unloggedExclusions,
} from '../../pg/data-dir.js'
import type { ManifestLink, ManifestPath, ManifestTarget } from '../../repo/manifest.js'

export interface ScannedFile {
  /** Manifest name: 'pg_data/...' or 'pg_tblspc/<oid>/...'. */
  name: string
  /** Absolute path to read. */
  path: string
  size: number
  mtimeMs: number
  mode: number
  /** Segment number when the file is relation data whose pages carry checksums. */
  relationSegment?: number
}

export interface ClusterScan {
  targets: ManifestTarget[]
  paths: ManifestPath[]
  links: ManifestLink[]
  files: ScannedFile[]
}

export async function scanCluster(pgPath: string, tablespaceNames: ReadonlyMap<number, string>): Promise<ClusterScan> {
  const scan: ClusterScan = { targets: [{ name: 'pg_data', path: pgPath }], paths: [], links: [], files: [] }
  await scanFolder(scan, pgPath, 'pg_data', '', true)

  // Tablespaces are the symlinks in pg_tblspc; each becomes its own target.
  for (const entry of await readdir(join(pgPath, 'pg_tblspc')).catch(() => [] as string[])) {
    const linkPath = join(pgPath, 'pg_tblspc', entry)
    if (!/^\d+$/.test(entry) || !(await lstat(linkPath)).isSymbolicLink()) continue
    const destination = await readlink(linkPath)
    const oid = Number(entry)
    const name = `pg_tblspc/${entry}`
    scan.targets.push({ name, path: destination, tablespaceOid: oid, ...(tablespaceNames.has(oid) ? { tablespaceName: tablespaceNames.get(oid)! } : {}) })
    await scanFolder(scan, destination, name, '', false)
  }
  return scan
}

async function scanFolder(scan: ClusterScan, absolute: string, name: string, relative: string, isDataRoot: boolean): Promise<void> {
  let entries: string[]
  try {
    entries = (await readdir(absolute)).sort()
  } catch (error) {
    // A database dropped while the backup runs: its folder vanishes, and WAL replay drops it again.
    if (errnoCode(error) === 'ENOENT') return
    fail('FileOpen', `unable to list '${absolute}': ${(error as Error).message}`)
  }
  // stat, not lstat: a folder reached through a link (pg_wal elsewhere) takes the mode of what it points to.
  const folderStat = await stat(absolute).catch(() => undefined)
  if (!folderStat) return
  scan.paths.push({ name, mode: folderStat.mode & 0o7777 })

  const atRoot = isDataRoot && relative === ''
  const unlogged = isDatabaseFolder(relative) ? unloggedExclusions(entries) : undefined
  const relationFolder = isRelationFolder(relative)

  for (const entry of entries) {
    if (isTemporaryName(entry) || EXCLUDE_ANY_FILES.has(entry) || unlogged?.has(entry)) continue
    if (atRoot && EXCLUDE_ROOT_FILES.has(entry)) continue
    const childAbsolute = join(absolute, entry)
    const childName = `${name}/${entry}`
    const childRelative = relative === '' ? entry : `${relative}/${entry}`
    let fileStat
    try {
      fileStat = await lstat(childAbsolute, { bigint: true })
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') continue
      throw error
    }
    if (fileStat.isSymbolicLink()) {
      // Links in pg_tblspc are the tablespaces, scanned above as targets of their own.
      if (isDataRoot && relative === 'pg_tblspc') continue
      // Any other link (pg_wal on another disk, a configuration file kept in /etc) is backed up as what it points
      // to, and restored as a plain folder or file: recreating the link could point a restored copy at the live
      // cluster's files on the same host.
      scan.links.push({ name: childName, destination: await readlink(childAbsolute) })
      const target = await stat(childAbsolute, { bigint: true }).catch(() => undefined)
      if (!target || (!target.isDirectory() && !target.isFile())) {
        log.warn(`link '${childAbsolute}' points at nothing walden can back up; it is left out`)
        continue
      }
      fileStat = target
    }
    if (fileStat.isDirectory()) {
      if (atRoot && EXCLUDE_FOLDER_CONTENTS.has(entry)) {
        scan.paths.push({ name: childName, mode: Number(fileStat.mode) & 0o7777 })
        continue
      }
      await scanFolder(scan, childAbsolute, childName, childRelative, isDataRoot)
      continue
    }
    if (!fileStat.isFile()) continue
    const relation = relationFolder ? relationFileParse(entry) : undefined
    scan.files.push({
      name: childName,
      path: childAbsolute,
      size: Number(fileStat.size),
      mtimeMs: Number(fileStat.mtimeNs) / 1e6,
      mode: Number(fileStat.mode) & 0o7777,
      ...(relation ? { relationSegment: relation.segmentNo } : {}),
    })
  }
}
