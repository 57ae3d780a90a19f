// What happens to what is already in pg1-path before a restore writes there: a server running on it is stopped only
// when asked (--stop-old), and the old folder can be kept aside whole (--keep-old-data, walmgr3's backup_datadir)
// instead of being overwritten. Nothing here ever deletes a file.

import { chmod, lstat, mkdir, readdir, rename } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { pgControlRead } from '../../pg/control.js'
import { pgRunning } from '../../pg/data-dir.js'
import { serverControl } from '../server-control.js'
import { isEmptyFolder } from './targets.js'

/** `<path>.<UTC timestamp>`: sorts by age beside the data folder, and names when it was set aside. */
export function keepAsideName(pgPath: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
  return `${pgPath}.${stamp}`
}

/**
 * Stops a server running on pg1-path when --stop-old is given; refuses otherwise, so a running standby is never
 * taken down by accident. `major` picks pg_ctl when the postmaster's own binary cannot be found.
 */
export async function oldServerStop(cfg: Config, pgPath: string, major: number): Promise<void> {
  if (!(await pgRunning(pgPath))) return
  if (!cfg.boolean('stop-old')) {
    fail('PgRunning', `PostgreSQL is running on '${pgPath}'`, {
      hint: 'stop it before restoring over it, or give --stop-old to have walden stop it (pg_ctl stop -m fast).',
    })
  }
  await serverControl(cfg, 'stop', pgPath, major)
}

/** Checks the options about the old folder agree with the rest of the restore, before anything is read or written. */
export function oldDataOptionsCheck(cfg: Config): void {
  if (cfg.has('keep-old-data-path') && (cfg.source('keep-old-data') ?? 'default') !== 'default' && !cfg.boolean('keep-old-data')) {
    fail('OptionInvalid', "option 'keep-old-data-path' contradicts --no-keep-old-data")
  }
  if (keepOldData(cfg) && (cfg.boolean('delta') || cfg.boolean('force'))) {
    fail('OptionInvalid', "option 'keep-old-data' restores into a fresh folder; it cannot be combined with --delta or --force", {
      hint: 'choose one: keep the old folder aside, or repair it in place with --delta.',
    })
  }
}

export function keepOldData(cfg: Config): boolean {
  return cfg.boolean('keep-old-data') || cfg.has('keep-old-data-path')
}

/**
 * Where --keep-old-data will move a non-empty pg1-path, checked before anything is stopped or written: the place
 * must not exist, and the old cluster must have no tablespaces, which live outside its folder and would be
 * overwritten by the restore while the kept folder still links to them. Undefined when there is nothing to keep.
 */
export async function oldDataAsideCheck(cfg: Config, pgPath: string, now: Date): Promise<string | undefined> {
  if (await isEmptyFolder(pgPath)) return undefined
  const given = cfg.string('keep-old-data-path')
  const aside = given !== undefined ? resolve(given) : keepAsideName(pgPath, now)
  if (aside === pgPath || aside.startsWith(`${pgPath}/`)) {
    fail('OptionInvalidValue', `keep-old-data-path '${aside}' is inside the data folder '${pgPath}'`, { hint: 'choose a folder beside it, on the same file system.' })
  }
  if (await lstat(aside).then(() => true, () => false)) {
    fail('PathNotEmpty', `unable to keep the old data folder as '${aside}' because that already exists`, {
      hint: 'give another --keep-old-data-path, or move the existing one away.',
    })
  }
  const tablespaces = await readdir(join(pgPath, 'pg_tblspc')).catch(() => [] as string[])
  if (tablespaces.length > 0) {
    fail('PathNotEmpty', `the old cluster in '${pgPath}' has tablespaces (${tablespaces.join(', ')}), which --keep-old-data cannot keep aside`, {
      hint: 'a tablespace lives outside the data folder, and the restore would overwrite it; copy them away yourself, or restore with --delta.',
    })
  }
  return aside
}

/**
 * Moves the old pg1-path to `aside` (a rename: instant, nothing copied or deleted) and leaves an empty folder with
 * the same mode in its place.
 */
export async function oldDataKeepAside(pgPath: string, aside: string): Promise<void> {
  const control = await pgControlRead(pgPath).catch(() => undefined)
  const mode = (await lstat(pgPath)).mode & 0o777
  try {
    await rename(pgPath, aside)
  } catch (error) {
    const code = errnoCode(error)
    fail('FileWrite', `unable to move the old data folder '${pgPath}' to '${aside}': ${(error as Error).message}`, {
      hint:
        code === 'EXDEV' || code === 'EBUSY'
          ? `'${basename(pgPath)}' is a mount point or '${dirname(aside)}' another file system; give --keep-old-data-path on the same file system, or move the folder yourself.`
          : `check that the user running walden may write '${dirname(pgPath)}' and '${dirname(aside)}'.`,
    })
  }
  await mkdir(pgPath, { mode })
  await chmod(pgPath, mode)
  log.info(`old data folder kept as '${aside}'${control ? ` (system identifier ${control.systemId})` : ''}`)
}
