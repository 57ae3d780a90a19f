// Lists what a backup copies: the data directory and each tablespace, with PostgreSQL's exclusions applied.
// Only names and stat results are held in memory, never file contents.

import { lstat, readdir, readlink, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { walSegmentRange } from '../../pg/wal.js'
import type { PgRemote } from '../pg-host-ops.js'
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
  /** The database host the file is read on (pgN-host); set by backup, not by the scan. */
  remote?: PgRemote
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

/**
 * The WAL segments from start to last (inclusive LSNs) in a standby's pg_wal, as files of the backup
 * (pg_data/pg_wal/...), with the timeline's history file when there is one. The last segment is usually still being
 * filled: recovery reads it only up to the stop LSN. A segment already recycled by a restartpoint fails the backup.
 */
export async function walFilesList(dataFolder: string, timeline: number, start: bigint, last: bigint, segmentSize: number): Promise<ScannedFile[]> {
  const names = walSegmentRange(timeline, start, last, segmentSize)
  if (timeline > 1) names.unshift(`${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`)
  const files: ScannedFile[] = []
  for (const name of names) {
    const path = join(dataFolder, 'pg_wal', name)
    let found
    try {
      found = await stat(path)
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error
      if (name.endsWith('.history')) continue
      fail('FileMissing', `WAL segment '${name}' needed by the backup is no longer in the standby's pg_wal '${join(dataFolder, 'pg_wal')}'`, {
        hint: 'the standby recycled it before walden copied it: raise wal_keep_size on the standby and run the backup again.',
      })
    }
    files.push({ name: `pg_data/pg_wal/${name}`, path, size: found.size, mtimeMs: found.mtimeMs, mode: found.mode & 0o7777 })
  }
  return files
}
