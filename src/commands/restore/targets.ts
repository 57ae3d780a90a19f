// Where a backup's targets go on this host: pg_data to pg1-path, each tablespace to its recorded location or the
// one --tablespace-map gives. A tablespace location is shared ground: another major version's folder, or another
// cluster's, may sit beside ours. Restore therefore only ever writes and cleans inside the backup's own version
// folder (PG_<major>_<catversion>), and only touches a non-empty one that is provably this cluster's own.

import { readdir, realpath } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import type { Manifest, ManifestTarget } from '../../repo/manifest.js'

export interface RestoreTarget {
  /** 'pg_data' or 'pg_tblspc/<oid>'. */
  name: string
  /** Where the target goes. */
  location: string
  /** The folder restore may clean: pg1-path, or for a tablespace its version folder inside the location. */
  ownRoot: string
  tablespace?: ManifestTarget
}

/** The name a user knows a tablespace by (and gives to --tablespace-map): its name, or its OID if unknown. */
export function tablespaceDisplayName(target: ManifestTarget): string {
  return target.tablespaceName ?? String(target.tablespaceOid)
}

/** True for an empty or missing folder. Anything unreadable is an error: taking it for empty would write into it. */
export async function isEmptyFolder(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length === 0
  } catch (error) {
    const code = errnoCode(error)
    if (code === 'ENOENT') return true
    if (code === 'ENOTDIR') fail('PathMissing', `unable to restore to '${path}' because it is not a folder`)
    fail('FileOpen', `unable to list '${path}': ${code === 'EACCES' ? 'permission denied' : (error as Error).message}`, {
      hint: 'run restore as the user that owns the data folder (usually postgres).',
    })
  }
}

export function restoreTargets(manifest: Manifest, pgPath: string, remap: Readonly<Record<string, string>>): RestoreTarget[] {
  // A key that names no tablespace of the backup is a mistake, typically a misspelt name: ignoring it would put the
  // tablespace back in its old location instead of where the user asked.
  const tablespaces = manifest.targets.filter((target) => target.name !== 'pg_data')
  for (const key of Object.keys(remap)) {
    if (!tablespaces.some((target) => target.tablespaceName === key || String(target.tablespaceOid) === key)) {
      fail('OptionInvalidValue', `option 'tablespace-map' names tablespace '${key}', but backup ${manifest.label} has no tablespace with that name or OID`, {
        hint:
          tablespaces.length === 0
            ? 'the backup has no tablespaces.'
            : `the backup's tablespaces are ${tablespaces.map((target) => `'${tablespaceDisplayName(target)}' (OID ${target.tablespaceOid})`).join(', ')}.`,
      })
    }
  }
  return manifest.targets.map((target) => {
    if (target.name === 'pg_data') return { name: target.name, location: pgPath, ownRoot: pgPath }
    const byName = target.tablespaceName === undefined ? undefined : remap[target.tablespaceName]
    const location = resolve(byName ?? remap[String(target.tablespaceOid)] ?? target.path)
    // The version folder is the one folder the backup recorded directly under the tablespace.
    const versionFolder = manifest.paths.map((path) => path.name).find((name) => name.startsWith(`${target.name}/`) && !name.slice(target.name.length + 1).includes('/'))
    return {
      name: target.name,
      location,
      ownRoot: versionFolder === undefined ? location : join(location, versionFolder.slice(target.name.length + 1)),
      tablespace: target,
    }
  })
}

/**
 * Refuses a tablespace whose version folder already holds files unless the restore may overwrite (--delta or
 * --force) and pg1-path's own link for that tablespace points there: then the files are this cluster's, checked
 * by its pg_control. Anything else may be a running cluster's tablespace.
 */
export async function checkTablespaceTargets(targets: readonly RestoreTarget[], pgPath: string, mayOverwrite: boolean): Promise<void> {
  for (const target of targets) {
    if (!target.tablespace || (await isEmptyFolder(target.ownRoot))) continue
    const name = tablespaceDisplayName(target.tablespace)
    const linked = await realpath(join(pgPath, target.name)).catch(() => undefined)
    const location = await realpath(target.location).catch(() => target.location)
    if (mayOverwrite && linked === location) continue
    fail('PathNotEmpty', `unable to restore tablespace '${name}' to '${target.ownRoot}' because it contains files`, {
      hint: mayOverwrite
        ? `these files do not belong to the cluster in '${pgPath}'; move the tablespace with --tablespace-map=${name}=PATH to an empty folder.`
        : `move it with --tablespace-map=${name}=PATH to an empty folder, or give --delta if it is the tablespace of the cluster in '${pgPath}'.`,
    })
  }
}

/** Absolute destination of a manifest entry name such as 'pg_data/base/5/1259' or 'pg_tblspc/16400/PG_.../x'. */
export function destinationOf(name: string, targets: readonly RestoreTarget[]): string {
  const tablespace = /^(pg_tblspc\/\d+)(\/.*)?$/.exec(name)
  if (tablespace) return `${targets.find((target) => target.name === tablespace[1])!.location}${tablespace[2] ?? ''}`
  return `${targets[0]!.location}${name.slice('pg_data'.length)}`
}
