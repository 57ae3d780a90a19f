// Snapshot images: clones that share unchanged blocks, where the file system has reflinks (XFS with reflink=1,
// Btrfs). An image is one snapshot restored once, with no recovery settings (restore --type=none), never started,
// at `<folder of clone-path>/.walden-image-<stanza>-<label>` (mode 0700): its data folder in `data/`, its
// tablespaces in `tablespaces/<OID>`. Beside the clones, because a reflink only works inside one file system. Each
// clone of that snapshot (any --type/--target) is then a reflink copy of the image, every regular file cloned with
// FICLONE, so clones and image share every block until one of them writes it; the clone's own recovery settings are
// written into the copy as the restore would have written them, and it starts as any clone does.
//
// Crash-safety order:
//  - an image is built in `<image>.partial` and renamed to its name only once the restore is complete and durable, so
//    an image under its name is always whole; a `.partial` left by a killed clone-create is removed before the next
//    build (clone-create holds the stanza's staging lock, so no two build at once);
//  - a clone's copy has no global/pg_control until everything else, its recovery settings included, is durable: a
//    half-copied clone cannot start, as with a restore.
// An image is removed by the clone-destroy of the last clone that uses it, or by the undo of a failed clone-create
// when no other clone uses it. Where the probe finds no reflinks, no image is made and each clone is a full restore.

import { constants } from 'node:fs'
import { chmod, copyFile, lstat, mkdir, open, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { syncFilesystem, syncFilesystemAvailable, syncFolder } from '../../storage/posix.js'

const IMAGE_PREFIX = '.walden-image-'
const PG_CONTROL = join('global', 'pg_control')

/** Where the image of a snapshot goes for a clone in `clonePath`: beside it, on its file system. */
export function imagePathFor(clonePath: string, stanza: string, label: string): string {
  return join(dirname(clonePath), `${IMAGE_PREFIX}${stanza}-${label}`)
}

/** Whether `path` is named as walden names images: nothing else is ever removed as one, whatever a record says. */
export function isImagePath(path: string): boolean {
  return basename(path).startsWith(IMAGE_PREFIX)
}

/**
 * Whether a file in `from` can be reflinked into `to`: a small probe file cloned with COPYFILE_FICLONE_FORCE, which
 * fails (EOPNOTSUPP, EXDEV) where the file system has no reflinks or the two folders are on different ones.
 */
export async function reflinkProbe(from: string, to: string): Promise<boolean> {
  const name = `.walden-reflink-probe-${process.pid}`
  const source = join(from, name)
  const copy = join(to, `${name}.copy`)
  // Created, never opened through what is there: the folder holding clone-path may be shared, and a link planted
  // under the probe's name must not be written through (nor removed: it is not ours). Then no image, as without reflinks.
  try {
    await writeFile(source, 'walden reflink probe\n', { mode: 0o600, flag: 'wx' })
  } catch {
    return false
  }
  try {
    await copyFile(source, copy, constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL)
    return true
  } catch {
    return false
  } finally {
    await rm(source, { force: true })
    await rm(copy, { force: true })
  }
}

export async function imageExists(imagePath: string): Promise<boolean> {
  return (await stat(join(imagePath, 'data', PG_CONTROL)).catch(() => undefined))?.isFile() === true
}

/**
 * Builds the image: `restore` fills `<image>.partial/data` (and tablespaces under `<image>.partial/tablespaces`),
 * then the folder takes the image's name.
 */
export async function imageBuild(imagePath: string, restore: (dataPath: string, tablespaceRoot: string) => Promise<void>): Promise<void> {
  const partial = `${imagePath}.partial`
  await rm(partial, { recursive: true, force: true })
  await mkdir(partial, { mode: 0o700 })
  // Private whatever the umask: it holds a whole cluster's data.
  await chmod(partial, 0o700)
  await mkdir(join(partial, 'data'), { mode: 0o700 })
  try {
    await restore(join(partial, 'data'), join(partial, 'tablespaces'))
    await rename(partial, imagePath)
    await syncFolder(dirname(imagePath))
  } catch (error) {
    await rm(partial, { recursive: true, force: true })
    throw error
  }
}

/** Removes an image and any half-built one beside it. */
export async function imageRemove(imagePath: string): Promise<void> {
  if (!isImagePath(imagePath)) fail('FileInvalid', `'${imagePath}' is not a snapshot image's folder`, { hint: 'remove the clone record under spool-path by hand after checking it.' })
  await rm(imagePath, { recursive: true, force: true })
  await rm(`${imagePath}.partial`, { recursive: true, force: true })
}

/** Bytes the image's files hold on disk (allocated blocks; those shared with clones are counted here too). */
export async function imageBytes(imagePath: string): Promise<number | undefined> {
  const walk = async (path: string): Promise<number> => {
    const info = await lstat(path)
    let bytes = info.blocks * 512
    if (info.isDirectory()) for (const entry of await readdir(path)) bytes += await walk(join(path, entry))
    return bytes
  }
  return walk(imagePath).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? undefined : Promise.reject(error)))
}

/**
 * Copies a folder tree: folders and symbolic links recreated, regular files reflinked, modes kept. `skip` names files
 * left out (pg_control); `linkTarget` may rewrite a link's target. Returns the folders made, for their fsync.
 */
async function treeClone(from: string, to: string, options: { skip: ReadonlySet<string>; linkTarget: (path: string, target: string) => string; files: string[]; folders: string[] }): Promise<void> {
  for (const entry of (await readdir(from)).sort()) {
    const source = join(from, entry)
    const destination = join(to, entry)
    if (options.skip.has(source)) continue
    const info = await lstat(source)
    if (info.isDirectory()) {
      await mkdir(destination, { mode: 0o700 })
      await treeClone(source, destination, options)
      await chmod(destination, info.mode & 0o7777)
      options.folders.push(destination)
    } else if (info.isSymbolicLink()) {
      await symlink(options.linkTarget(source, await readlink(source)), destination)
    } else if (info.isFile()) {
      await copyFile(source, destination, constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL)
      await chmod(destination, info.mode & 0o7777)
      options.files.push(destination)
    } else {
      fail('FileInvalid', `'${source}' in a snapshot image is neither a file, a folder nor a link`, { hint: 'remove the image folder; the next clone-create builds it again.' })
    }
  }
}

async function fileSync(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Makes a clone in `clonePath` (an existing empty folder) from the image: its data folder reflinked, its tablespaces
 * reflinked to `<tablespacePath>/<OID>` with pg_tblspc's links pointing there, then `recovery` writes the clone's
 * recovery settings, and pg_control comes last, once the rest is durable.
 */
export async function cloneFromImage(imagePath: string, clonePath: string, tablespacePath: string | undefined, recovery: () => Promise<void>): Promise<void> {
  const data = join(imagePath, 'data')
  const files: string[] = []
  const folders: string[] = [clonePath]
  const spaces: string[] = await readdir(join(imagePath, 'tablespaces')).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? [] : Promise.reject(error)))
  if (spaces.length > 0 && tablespacePath === undefined) fail('Assert', `the image '${imagePath}' has tablespaces, the clone has no place for them`)
  const linkTarget = (path: string, target: string): string =>
    // pg_tblspc/<OID> named the image's (or its .partial's) tablespace folder: the clone's own is beside it.
    dirname(path) === join(data, 'pg_tblspc') && spaces.includes(basename(path)) ? join(tablespacePath!, basename(path)) : target
  await treeClone(data, clonePath, { skip: new Set([join(data, PG_CONTROL)]), linkTarget, files, folders })
  if (tablespacePath !== undefined && spaces.length > 0) {
    await mkdir(tablespacePath, { recursive: true, mode: 0o700 })
    folders.push(tablespacePath)
    for (const oid of spaces) {
      const source = join(imagePath, 'tablespaces', oid)
      await mkdir(join(tablespacePath, oid), { mode: 0o700 })
      await treeClone(source, join(tablespacePath, oid), { skip: new Set(), linkTarget: (_path, target) => target, files, folders })
      await chmod(join(tablespacePath, oid), (await lstat(source)).mode & 0o7777)
      folders.push(join(tablespacePath, oid))
    }
  }
  await recovery()
  if (syncFilesystemAvailable()) {
    syncFilesystem(clonePath)
    if (tablespacePath !== undefined && spaces.length > 0) syncFilesystem(tablespacePath)
  } else {
    for (const file of files) await fileSync(file)
    for (const name of ['postgresql.auto.conf', 'recovery.signal']) await fileSync(join(clonePath, name)).catch(() => undefined)
    for (const folder of folders) await syncFolder(folder)
  }
  // Last, as restore writes it: from here on the folder is a cluster that starts into recovery.
  await copyFile(join(data, PG_CONTROL), join(clonePath, PG_CONTROL), constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL)
  await chmod(join(clonePath, PG_CONTROL), (await lstat(join(data, PG_CONTROL))).mode & 0o7777)
  await fileSync(join(clonePath, PG_CONTROL))
  await syncFolder(join(clonePath, 'global'))
}
