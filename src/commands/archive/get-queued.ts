// Asynchronous archive-get (archive-async=y): a queue of segments fetched ahead of recovery. This is the foreground
// process; archive-get-async.ts is the background one.
//
// The foreground process, which PostgreSQL runs per segment, moves its segment out of the queue when it is there
// (already decompressed and verified when fetched), and otherwise fetches it itself exactly as the synchronous
// command does. Either way it then tops the queue up: a background process (one per stanza, under its own lock)
// fetches the following segments, several at once, up to archive-get-queue-max.
//
// The queue only ever holds segments that were found and verified. "Not in the archive" and "damaged" are never
// queued: the background process stops at the first segment it cannot deliver and leaves it to the foreground, which
// asks the repository again. So a segment archived after recovery first missed it is still delivered, and a damaged
// one still ends in exit 126 (abort recovery), from the one code path that decides those answers.

import { copyFile, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { errnoCode } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { pgControlRead } from '../../pg/control.js'
import type { PgControl } from '../../pg/control.js'
import { isWalSegmentName, walHeaderParse, walSegmentStartLsn, WAL_LONG_HEADER_SIZE } from '../../pg/wal.js'
import { asyncRunning, asyncStart, pollSleep, queueListWrite, spoolFolder, spoolFolderCreate } from './async.js'
import { QUEUE_LIST, queuePlan, queueWanted } from './get-queue.js'
import type { Command } from '../command.js'

/** Fetches in this process, as the synchronous command does; its code is loaded only when needed. */
async function archiveGetSync(cfg: Config, walName: string, destination: string): Promise<number> {
  return (await import('./get.js')).archiveGetSync(cfg, walName, destination)
}

/**
 * Moves a queued segment to where PostgreSQL wants it. The queued file is checked to be the whole segment of this
 * cluster at this position (its size and page header), so a spool left over from another cluster under the same stanza name is never
 * replayed; anything else is removed and fetched afresh.
 */
async function queueTake(queue: string, walName: string, destination: string, control: PgControl): Promise<boolean> {
  const queued = join(queue, walName)
  let handle
  try {
    handle = await open(queued, 'r')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false
    throw error
  }
  let matches: boolean
  try {
    const header = Buffer.alloc(WAL_LONG_HEADER_SIZE)
    await handle.read(header, 0, WAL_LONG_HEADER_SIZE, 0)
    const parsed = walHeaderParse(header, queued)
    // A whole segment, as bin/walden-archive-get checks too: PostgreSQL would take a short one for the end of WAL.
    matches =
      (await handle.stat()).size === control.walSegmentSize &&
      parsed.systemId === control.systemId &&
      parsed.segmentSize === control.walSegmentSize &&
      parsed.pageAddress === walSegmentStartLsn(walName, control.walSegmentSize)
  } catch {
    matches = false
  } finally {
    await handle.close()
  }
  if (!matches) {
    log.warn(`queued WAL file '${queued}' is not this cluster's segment '${walName}'; removed, fetching it from the archive`)
    await rm(queued, { force: true })
    return false
  }
  try {
    await rename(queued, destination)
  } catch (error) {
    if (errnoCode(error) !== 'EXDEV') throw error
    // The spool is on another file system than the data folder: copy beside the destination, then rename, so
    // PostgreSQL never finds part of a segment there.
    const temporary = `${destination}.walden-${process.pid}`
    try {
      await copyFile(queued, temporary)
      await rename(temporary, destination)
    } catch (copyError) {
      await rm(temporary, { force: true })
      throw copyError
    }
    await rm(queued, { force: true })
  }
  return true
}

/** Removes what recovery will not ask for next, and starts a background process when the queue runs low. */
async function queueRefill(cfg: Config, queue: string, walName: string, segmentSize: number, depth: number): Promise<void> {
  // A running background process is still filling the queue; the next call looks again.
  if (asyncRunning(cfg)) return
  const entries = await readdir(queue).catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return [] as string[]
    throw error
  })
  const plan = queuePlan(entries, queueWanted(walName, segmentSize, depth))
  for (const entry of plan.remove) await rm(join(queue, entry), { force: true })
  if (plan.fetch.length === 0) return
  await spoolFolderCreate(queue)
  await queueListWrite(queue, plan.fetch)
  asyncStart(cfg, plan.fetch)
}

/** The foreground: delivers `walName` from the queue, or fetches it here; then tops the queue up. */
async function archiveGetQueued(cfg: Config, walName: string, destination: string): Promise<number> {
  const queue = spoolFolder(cfg, 'in')
  // PostgreSQL runs restore_command in the data folder it recovers; its pg_control gives the segment size (which
  // names the following segments) and the system identifier (which the queued segments must carry).
  const control = await pgControlRead(process.cwd()).catch(() => undefined)
  const depth = control === undefined ? 0 : Math.floor((cfg.number('archive-get-queue-max') ?? 0) / control.walSegmentSize)
  if (control === undefined || depth === 0) {
    if (control === undefined) log.detail(`no pg_control in '${process.cwd()}': fetching '${walName}' without a queue`)
    return archiveGetSync(cfg, walName, destination)
  }
  const segmentSize = control.walSegmentSize

  // The queue only ever saves time. Any failure of its own (a spool that cannot be written, say) must not become
  // archive-get's answer: PostgreSQL reads most failures as "not in the archive" and would end recovery early.
  const tolerate = async <T>(what: string, work: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      log.warn(`unable to ${what} in spool '${queue}': ${(error as Error).message}; the archive is used directly`)
      return fallback
    }
  }
  const served = async (): Promise<number> => {
    log.info(`found WAL file '${walName}' in the queue`)
    await tolerate('refill the queue', () => queueRefill(cfg, queue, walName, segmentSize, depth), undefined)
    return 0
  }

  if (await tolerate('read the queue', () => queueTake(queue, walName, destination, control), false)) return served()

  // Asking whether the background process runs reads lock-path, which walden may refuse (not private to it): then
  // none is waited for, and the segment is fetched here.
  const running = (): boolean => {
    try {
      return asyncRunning(cfg)
    } catch (error) {
      log.warn(`unable to tell whether the background process runs: ${(error as Error).message}; the archive is used directly`)
      return false
    }
  }
  // The running background process may be fetching this very segment: wait for it rather than fetch it twice.
  const listed = await readFile(join(queue, QUEUE_LIST), 'utf8').catch(() => '')
  if (running() && listed.split('\n').includes(walName)) {
    const deadline = Date.now() + (cfg.number('archive-timeout') ?? 60) * 1000
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      await pollSleep(attempt)
      if (await tolerate('read the queue', () => queueTake(queue, walName, destination, control), false)) return served()
      // Ended without it: not in the archive, or damaged. Fetching it here gives the answer.
      if (!running()) break
    }
  }

  const code = await archiveGetSync(cfg, walName, destination)
  // Prefetch only behind a segment that exists: a standby waiting for new WAL asks again and again for a segment
  // not yet archived, and should not start a background process each time.
  if (code === 0) await tolerate('refill the queue', () => queueRefill(cfg, queue, walName, segmentSize, depth), undefined)
  return code
}

/** archive-get with archive-async. Only segments are queued: history files and partial segments are small, rare and asked for out of order. */
export const archiveGetQueuedCommand: Command = {
  async run(cfg) {
    const walName = cfg.params[0]!
    const destination = resolve(cfg.params[1]!)
    if (!isWalSegmentName(walName)) return archiveGetSync(cfg, walName, destination)
    return archiveGetQueued(cfg, walName, destination)
  },
}
