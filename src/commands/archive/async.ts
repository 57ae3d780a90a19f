// What the asynchronous archive-push and archive-get share: the spool folders, starting the background process, and
// the polling wait of the foreground process that PostgreSQL runs.
//
// The spool holds, per stanza, archive/<stanza>/out (acknowledgements of pushed segments) and archive/<stanza>/in
// (prefetched segments). Nothing in it is the only copy of anything: losing the spool only costs time.

import { spawn } from 'node:child_process'
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { fail } from '../../common/errors.js'
import { lockHeld } from '../../common/lock.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { QUEUE_LIST } from './get-queue.js'
import { isBackupHistoryName, isPartialName, isTimelineHistoryName, isWalSegmentName } from '../../pg/wal.js'

/** archive-push's WAL_PATH parameter, absolute, checked to name a file PostgreSQL archives. */
export function archivePushPath(cfg: Config): string {
  const walPath = resolve(cfg.params[0]!)
  const walName = basename(walPath)
  if (!isWalSegmentName(walName) && !isTimelineHistoryName(walName) && !isBackupHistoryName(walName) && !isPartialName(walName)) {
    fail('ParamInvalid', `'${walPath}' is not a WAL segment, timeline history or backup history file`, {
      hint: "archive_command should be 'walden --stanza=NAME archive-push %p'.",
    })
  }
  return walPath
}

export function spoolFolder(cfg: Config, direction: 'in' | 'out'): string {
  return join(cfg.string('spool-path') ?? '/var/spool/walden', 'archive', cfg.stanza(), direction)
}

/**
 * archive-push-queue-max: whether to drop this segment unarchived because too much WAL waits for the archive. Only
 * plain segments are dropped; history files are small and recovery cannot follow a timeline without them. Dropping
 * loses point-in-time recovery across the segment, so it is said as loudly as walden says anything that succeeds.
 */
export async function archivePushDrop(cfg: Config, walPath: string): Promise<boolean> {
  const max = cfg.number('archive-push-queue-max')
  const walName = basename(walPath)
  if (max === undefined || !isWalSegmentName(walName)) return false
  const ready = (await readdir(join(dirname(walPath), 'archive_status')).catch(() => [] as string[])).filter((entry) =>
    isWalSegmentName(entry.replace(/\.ready$/, '')) && entry.endsWith('.ready'),
  )
  const segmentSize = (await stat(walPath)).size
  const waiting = ready.length * segmentSize
  if (waiting <= max) return false
  log.warn(
    `WAL file '${walName}' DROPPED, NOT ARCHIVED: ${ready.length} segments (${waiting} bytes) wait for the archive, ` +
      `more than archive-push-queue-max (${max} bytes)`,
  )
  log.warn(
    'point-in-time recovery across this WAL is no longer possible and backups taken before it cannot be recovered past ' +
      'it; make archiving work again, then take a new full backup',
  )
  return true
}

/**
 * Creates the spool folder in the foreground, so that a spool PostgreSQL's user cannot write fails here, in
 * PostgreSQL's log, and not unseen in the background process.
 */
export async function spoolFolderCreate(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode: 0o750 })
  } catch (error) {
    fail('FileWrite', `unable to create spool path '${path}': ${(error as Error).message}`, {
      hint: 'set spool-path to a folder the user PostgreSQL runs as may write.',
    })
  }
}

/** Lock names of the background processes: one of each per stanza. */
export function asyncLockName(cfg: Config): string {
  return `${cfg.stanza()}-${cfg.command === 'archive-push' ? 'archive' : 'archive-get'}`
}

export function asyncRunning(cfg: Config): boolean {
  return lockHeld(cfg.string('lock-path') ?? '/tmp/walden', asyncLockName(cfg))
}

/** A background process this foreground started; `exited` turns true when it ends. */
export interface AsyncChild {
  exited: boolean
}

/**
 * Starts the background process (`walden COMMAND:async PARAMS`) detached from this one, so it keeps working after
 * PostgreSQL's command returns. It gets this process's options and environment and runs in the same folder (the
 * data directory PostgreSQL runs its commands in).
 */
export function asyncStart(cfg: Config, params: readonly string[]): AsyncChild {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...cfg.explicitArguments(cfg.command), `${cfg.command}:async`, ...params], {
    detached: true,
    stdio: 'ignore',
  })
  const state: AsyncChild = { exited: false }
  child.on('exit', () => (state.exited = true))
  // A failure to start shows as the foreground's timeout, with the hint to read the background process's log.
  child.on('error', () => (state.exited = true))
  child.unref()
  return state
}

/** Ensures one background process runs: starts one unless this foreground's child or another process holds the lock. */
export function asyncEnsure(cfg: Config, child: AsyncChild | undefined, params: readonly string[]): AsyncChild | undefined {
  if (child !== undefined && !child.exited) return child
  if (asyncRunning(cfg)) return child
  return asyncStart(cfg, params)
}

/** Sleeps for the next poll: short at first (the answer is often already there), longer while waiting. */
export function pollSleep(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(5 * 2 ** Math.min(attempt, 5), 100)))
}

export function asyncLogHint(cfg: Config): string {
  return `check the log of the background process, ${join(cfg.string('log-path') ?? '/var/log/walden', `${cfg.stanza()}-${cfg.command}-async.log`)}.`
}

/** Names what the archive-get background process fetches next, so a foreground asking for one of them waits for it. */
export async function queueListWrite(queue: string, names: readonly string[]): Promise<void> {
  const temporary = join(queue, `${QUEUE_LIST}.tmp-${process.pid}`)
  await writeFile(temporary, names.join('\n') + '\n')
  await rename(temporary, join(queue, QUEUE_LIST))
}
