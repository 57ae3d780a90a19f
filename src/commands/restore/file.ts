// Restores one file: with delta, keep it when size and SHA-256 already match; otherwise fetch it from the
// repository, decompress, verify its checksum and write it atomically. Runs in a worker thread or inline.

import { chmod, lstat, utimes } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { errnoCode } from '../../common/errors.js'
import { fileSha256 } from '../../io/hash.js'
import { storedFileCopy } from '../../repo/stored-file.js'
import { posixStorage } from '../../storage/posix.js'

export interface RestoreFileInput {
  destination: string
  repoRoot: string
  /** Repository path with extension; empty for an empty file, which is not stored. */
  repoPath: string
  size: number
  sha256: string
  mode: number
  mtimeMs: number
  delta: boolean
  /** Write under a temporary name and rename (for the file written last, global/pg_control). */
  atomic: boolean
}

export interface RestoreFileOutput {
  /** True when the file was written from the repository, false when the existing one was kept. */
  fetched: boolean
}

async function matches(input: RestoreFileInput): Promise<boolean> {
  let stat
  try {
    stat = await lstat(input.destination)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false
    throw error
  }
  if (!stat.isFile() || stat.size !== input.size) return false
  return (await fileSha256(input.destination)) === input.sha256
}

export async function restoreFile(input: RestoreFileInput): Promise<RestoreFileOutput> {
  const mtime = new Date(input.mtimeMs)
  if (input.delta && (await matches(input))) {
    await chmod(input.destination, input.mode)
    await utimes(input.destination, mtime, mtime)
    return { fetched: false }
  }
  // Usually in place, not atomic: restore writes global/pg_control last, so a cluster restored part-way cannot start.
  const target = posixStorage(dirname(input.destination))
  const name = basename(input.destination)
  if (input.size === 0) {
    await target.write(name, Buffer.alloc(0), { mode: input.mode, mtimeMs: input.mtimeMs, atomic: input.atomic })
    return { fetched: true }
  }
  const repo = posixStorage(input.repoRoot)
  await storedFileCopy(repo, input.repoPath, input.sha256, `repository file '${repo.describe(input.repoPath)}'`, () =>
    target.openWrite(name, { mode: input.mode, mtimeMs: input.mtimeMs, atomic: input.atomic }),
  )
  // open() applies the umask to the mode; set it exactly.
  await chmod(input.destination, input.mode)
  return { fetched: true }
}
