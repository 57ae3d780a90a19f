// Asynchronous archive-get (archive-async=y): the background process, which fills the queue ahead of recovery
// (archive-get-queued.ts is the foreground side). One per stanza, under its own lock. It queues only what it found
// and verified, and stops at the first segment it cannot deliver.

import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fail, WaldenError } from '../../common/errors.js'
import { lockAcquire } from '../../common/lock.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { RepoIndex } from '../../config/options.js'
import { WorkerPool } from '../../parallel/pool.js'
import { pgControlRead } from '../../pg/control.js'
import { isWalSegmentName } from '../../pg/wal.js'
import { archiveInfoLoad } from '../../repo/stanza-info.js'
import { cipherJobInput } from '../../repo/cipher.js'
import { asyncLockName, queueListWrite, spoolFolder } from './async.js'
import { archiveGetRepos } from './get.js'
import type { ArchiveGetRepo } from './get-file.js'
import { queueWanted } from './get-queue.js'
import type { Command } from '../command.js'
import { repoFailureOf } from '../repo-failures.js'
import { repoOpen } from '../repo-storage.js'

/** How long the background process waits for recovery to take segments from a full queue before it ends. */
const LINGER_MS = 2000

async function queuedCount(queue: string): Promise<number> {
  return (await readdir(queue).catch(() => [] as string[])).filter((entry) => isWalSegmentName(entry)).length
}

/**
 * The background process: fetches the segments named on its command line into the queue, in order, then keeps the
 * queue topped up with the segments after them while recovery takes them out, so that one process (and its worker
 * threads, once warm) serves a whole recovery rather than one process per refill. It ends at the first segment it
 * cannot deliver (not archived yet, or damaged: the foreground then asks the repository itself), or once recovery
 * has stopped taking segments for a while (it reached its target, or switched to a timeline this queue is not on).
 */
async function archiveGetAsync(cfg: Config): Promise<number> {
  const names = cfg.params
  for (const name of names) {
    if (!isWalSegmentName(name)) fail('ParamInvalid', `'${name}' is not a WAL segment name`)
  }
  let lock
  try {
    lock = await lockAcquire(cfg.string('lock-path') ?? '/tmp/walden', asyncLockName(cfg))
  } catch (error) {
    if (error instanceof WaldenError && error.kind === 'LockAcquire') return 0
    throw error
  }
  const queue = spoolFolder(cfg, 'in')
  const stanza = cfg.stanza()
  const processMax = cfg.number('process-max') ?? 1
  // The data folder being recovered (the foreground's, inherited) names the segment size; without it, no top-ups.
  const control = await pgControlRead(process.cwd()).catch(() => undefined)
  const depth = control === undefined ? 0 : Math.floor((cfg.number('archive-get-queue-max') ?? 0) / control.walSegmentSize)
  const pool = new WorkerPool(processMax)
  try {
    // Each repository's archive.info once, with its keys unlocked, for every segment this process fetches.
    const repos: ArchiveGetRepo[] = []
    for (const repo of archiveGetRepos(cfg)) {
      if (repo.unavailable) {
        repos.push(repo)
        continue
      }
      try {
        const { storage } = await repoOpen(cfg, repo.index as RepoIndex)
        repos.push({ ...repo, info: await archiveInfoLoad(storage, stanza), ...cipherJobInput() })
      } catch (error) {
        repos.push({ index: repo.index, unavailable: repoFailureOf(repo.index, error) })
      }
    }

    /** Fetches `batch` in order, process-max at once; false when one could not be queued. */
    const fetchBatch = async (batch: readonly string[]): Promise<boolean> => {
      let next = 0
      let stopped = false
      const lane = async (): Promise<void> => {
        while (!stopped && next < batch.length) {
          const walName = batch[next++]!
          try {
            const result = await pool.run('archive.get', { stanza, repos, walName, destination: join(queue, walName) })
            // A copy taken from a later repository: the foreground will not see it, so its log is the place.
            for (const warning of result.warnings) log.warn(warning)
            if (result.archiveId === undefined) {
              // The end of the archive for now; later segments are asked for again when recovery gets there.
              stopped = true
              log.info(`WAL file '${walName}' is not in the archive (yet); queue ends before it`)
            } else log.info(`queued WAL file '${walName}' from the archive (${repos.length > 1 ? `repo${result.repo}: ` : ''}${result.archiveId})`)
          } catch (error) {
            // Not queued: the foreground fetches it itself and reports the error to PostgreSQL.
            stopped = true
            log.error(error instanceof WaldenError ? `[${String(error.code).padStart(3, '0')}]: ${error.message}` : String(error))
          }
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, processMax) }, lane))
      return !stopped
    }

    let batch: readonly string[] = names
    while (await fetchBatch(batch)) {
      if (depth === 0 || control === undefined || batch.length === 0) break
      const last = batch.at(-1)!
      // Wait for recovery to take half the queue, then fetch what follows the last segment fetched.
      let count = await queuedCount(queue)
      let idleSince = Date.now()
      while (count > depth / 2 && Date.now() - idleSince < LINGER_MS) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        const now = await queuedCount(queue)
        if (now < count) idleSince = Date.now()
        count = now
      }
      if (count > depth / 2) break
      batch = queueWanted(last, control.walSegmentSize, depth - count)
      await queueListWrite(queue, batch)
    }
  } finally {
    await pool.close()
    // Nothing is being fetched any more: bin/walden-archive-get waits only for segments on this list.
    await queueListWrite(queue, []).catch(() => undefined)
    lock.release()
  }
  return 0
}

export const archiveGetBackground: Command = { run: archiveGetAsync }
