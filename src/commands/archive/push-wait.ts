// Asynchronous archive-push (archive-async=y): the foreground process, and the acknowledgements it reads.
//
// The foreground process, which PostgreSQL runs per segment, pushes nothing itself: it waits for an acknowledgement
// of its segment in the spool, and makes sure the background process runs. The background process (one per stanza,
// under the stanza's archive lock) pushes every file PostgreSQL has marked ready in pg_wal/archive_status, several at
// once in worker threads, with the same push as the synchronous command (identity checks, checksums, atomic and
// fsynced writes, duplicate checks). Only after a push has returned, so the file is durable in the repository, does
// it write NAME.ok; a failure writes NAME.error with the error, which the foreground reports as its own. Both are
// written atomically (temporary name, fsync, rename, fsync of the folder), so a crash leaves a whole
// acknowledgement or none, and none only costs a push again (which finds the same file and writes nothing).

import { readFile, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ERROR_CODES, errnoCode, fail, WaldenError } from '../../common/errors.js'
import type { ErrorKind } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { archivePushDrop, archivePushPath, asyncEnsure, asyncLogHint, pollSleep, spoolFolder, spoolFolderCreate } from './async.js'
import type { AsyncChild } from './async.js'
import type { Command } from '../command.js'

/**
 * Which file an acknowledgement is for. A segment name alone is not enough: a spool that outlived its cluster (a
 * stanza deleted and created again for a new cluster) could hold an ok for another file of the same name.
 */
export interface FileIdentity {
  dev: string
  ino: string
  size: string
  mtimeNs: string
}

export interface AckError {
  kind: ErrorKind
  message: string
  hint?: string
}

type Ack = { state: 'ok' } | { state: 'error'; error: AckError } | { state: 'none' }

export async function fileIdentity(path: string): Promise<FileIdentity> {
  try {
    const info = await stat(path, { bigint: true })
    return { dev: String(info.dev), ino: String(info.ino), size: String(info.size), mtimeNs: String(info.mtimeNs) }
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') fail('FileMissing', `WAL file '${path}' does not exist`)
    throw error
  }
}

const sameFile = (a: FileIdentity, b: FileIdentity): boolean => a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs

async function readIfExists(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw error
  })
}

/** The acknowledgement of `walName` in the spool; an ok for another file of that name is removed and counts as none. */
async function ackRead(out: string, walName: string, identity: FileIdentity): Promise<Ack> {
  const ok = await readIfExists(join(out, `${walName}.ok`))
  if (ok !== undefined) {
    let acked: FileIdentity | undefined
    try {
      acked = JSON.parse(ok) as FileIdentity
    } catch {
      acked = undefined
    }
    if (acked !== undefined && sameFile(acked, identity)) return { state: 'ok' }
    await rm(join(out, `${walName}.ok`), { force: true })
    return { state: 'none' }
  }
  const error = await readIfExists(join(out, `${walName}.error`))
  if (error === undefined) return { state: 'none' }
  try {
    const parsed = JSON.parse(error) as AckError
    const kind: ErrorKind = Object.hasOwn(ERROR_CODES, parsed.kind) ? parsed.kind : 'Unhandled'
    return { state: 'error', error: { kind, message: String(parsed.message), ...(parsed.hint ? { hint: String(parsed.hint) } : {}) } }
  } catch {
    return { state: 'error', error: { kind: 'Unhandled', message: `unreadable acknowledgement '${join(out, `${walName}.error`)}'` } }
  }
}

/** Spool file naming the pg_wal folder the running background process serves. */
export const BACKGROUND_FOLDER = 'background'

/** The foreground: waits until the background process has pushed `walPath`, or fails with its error. */
export async function archivePushWait(cfg: Config, walPath: string): Promise<number> {
  const out = spoolFolder(cfg, 'out')
  const walName = basename(walPath)
  const identity = await fileIdentity(walPath)

  let ack = await ackRead(out, walName, identity)
  if (ack.state === 'ok') {
    log.info(`pushed WAL file '${walName}' to the archive asynchronously`)
    return 0
  }
  // An error found before this call asked is from an earlier attempt: PostgreSQL retries, and so does walden.
  if (ack.state === 'error') await rm(join(out, `${walName}.error`), { force: true })
  await spoolFolderCreate(out)

  const timeout = cfg.number('archive-timeout') ?? 60
  const deadline = Date.now() + timeout * 1000
  let child: AsyncChild | undefined
  for (let attempt = 0; ; attempt++) {
    child = asyncEnsure(cfg, child, [walPath])
    await pollSleep(attempt)
    ack = await ackRead(out, walName, identity)
    if (ack.state === 'ok') {
      log.info(`pushed WAL file '${walName}' to the archive asynchronously`)
      return 0
    }
    if (ack.state === 'error') throw new WaldenError(ack.error.kind, ack.error.message, ack.error.hint ? { hint: ack.error.hint } : {})
    // A background process this call did not start may serve another cluster's pg_wal (two clusters archiving into
    // one stanza on this host, as after a promotion beside the old primary): push here rather than wait for it.
    if (attempt >= 2 && (child === undefined || child.exited) && (await readIfExists(join(out, BACKGROUND_FOLDER)))?.trim() !== dirname(walPath)) {
      log.info(`the background process serves another pg_wal folder; pushing '${walName}' here`)
      return (await import('./push.js')).archivePush.run(cfg)
    }
    if (Date.now() >= deadline) {
      fail('ArchiveTimeout', `unable to push WAL file '${walName}' to the archive asynchronously after ${timeout} second(s)`, {
        hint: asyncLogHint(cfg),
      })
    }
  }
}

/** PostgreSQL's archiver marked the file ready: pg_wal/archive_status/NAME.ready beside it. */
async function isReady(walPath: string): Promise<boolean> {
  return stat(join(dirname(walPath), 'archive_status', `${basename(walPath)}.ready`)).then(
    () => true,
    () => false,
  )
}

/** archive-push with archive-async: loads none of the code that pushes, unless it has to push itself. */
export const archivePushQueued: Command = {
  async run(cfg) {
    const walPath = archivePushPath(cfg)
    // The background process pushes what the archiver marked ready; a file pushed by hand is pushed here.
    if (!(await isReady(walPath))) return (await import('./push.js')).archivePush.run(cfg)
    if (await archivePushDrop(cfg, walPath)) return 0
    return archivePushWait(cfg, walPath)
  },
}
