// Asynchronous archive-get (archive-async=y): the background process, which fetches the segments named on its
// command line into the queue (archive-get-queued.ts is the foreground side). One per stanza, under its own lock. It
// queues only what it found and verified, and stops at the first segment it cannot deliver.

import { join } from 'node:path'
import { fail, WaldenError } from '../common/errors.js'
import { lockAcquire } from '../common/lock.js'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { WorkerPool } from '../parallel/pool.js'
import { isWalSegmentName } from '../pg/wal.js'
import { archiveInfoLoad } from '../repo/stanza-info.js'
import { posixStorage } from '../storage/posix.js'
import { asyncLockName, spoolFolder } from './archive-async.js'
import type { Command } from './command.js'

/** The background process: fetches the segments named on its command line into the queue, in order. */
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
  const repoPath = cfg.string('repo1-path') ?? '/var/lib/walden'
  const processMax = cfg.number('process-max') ?? 1
  const pool = new WorkerPool(processMax)
  try {
    const info = await archiveInfoLoad(posixStorage(repoPath), cfg.stanza())
    let next = 0
    let stopped = false
    const lane = async (): Promise<void> => {
      while (!stopped && next < names.length) {
        const walName = names[next++]!
        try {
          const result = await pool.run('archive.get', { repoPath, info, walName, destination: join(queue, walName) })
          if (result.archiveId === undefined) {
            // The end of the archive for now; later segments are asked for again when recovery gets there.
            stopped = true
            log.info(`WAL file '${walName}' is not in the archive (yet); queue ends before it`)
          } else log.info(`queued WAL file '${walName}' from the archive (${result.archiveId})`)
        } catch (error) {
          // Not queued: the foreground fetches it itself and reports the error to PostgreSQL.
          stopped = true
          log.error(error instanceof WaldenError ? `[${String(error.code).padStart(3, '0')}]: ${error.message}` : String(error))
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, processMax) }, lane))
  } finally {
    await pool.close()
    lock.release()
  }
  return 0
}

export const archiveGetBackground: Command = { run: archiveGetAsync }
