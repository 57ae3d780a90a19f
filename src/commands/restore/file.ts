// Restores one file: with delta, keep it when size and SHA-256 already match; otherwise fetch it from the
// repository, decompress, verify its checksum and write it atomically. Runs in a worker thread or inline.

import { chmod, lstat, utimes } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { errnoCode, WaldenError } from '../../common/errors.js'
import { codecFromExtension } from '../../io/compress.js'
import { fileSha256, HashStream } from '../../io/hash.js'
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

/**
 * A stored file that does not decompress is as damaged as one whose content fails its checksum, and usually fails
 * this way first (a flipped bit breaks the compressed stream). The codec's own error names no file, so the user
 * would not know which one to repair: report it like a checksum mismatch, naming the file. Exported for archive-get.
 */
export function damagedStoredFile(error: unknown, what: string): unknown {
  if (!(error instanceof WaldenError) || error.kind !== 'Format') return error
  return new WaldenError('Checksum', `${what} is damaged: ${error.message}`, {
    hint: 'the repository file is damaged; use another backup, or repair the repository from a copy.',
    cause: error,
  })
}

/**
 * Waits until a writer destroyed by a failed pipeline() has finished its clean-up. pipeline() settles as soon as one
 * stream fails, while the writer is still closing and removing its partial file; a process that exits then (every
 * command does, right after reporting the error) would leave that file behind, under the final name when written in
 * place. Exported for archive-get and archive-push.
 */
export async function writerSettled(writer: Writable): Promise<void> {
  if (writer.destroyed && !writer.closed) await new Promise((resolve) => writer.once('close', resolve))
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
  const what = `repository file '${repo.describe(input.repoPath)}'`
  // Reader first: a missing repository file must fail before the destination is created.
  const reader = await repo.openRead(input.repoPath)
  const writer = await target.openWrite(name, { mode: input.mode, mtimeMs: input.mtimeMs, atomic: input.atomic })
  await pipeline(
    reader,
    codecFromExtension(input.repoPath).decompress(),
    new HashStream({ sha256: input.sha256, what }),
    writer,
  ).catch(async (error: unknown) => {
    await writerSettled(writer)
    throw damagedStoredFile(error, what)
  })
  // open() applies the umask to the mode; set it exactly.
  await chmod(input.destination, input.mode)
  return { fetched: true }
}
