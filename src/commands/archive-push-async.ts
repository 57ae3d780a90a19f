// Asynchronous archive-push (archive-async=y).
//
// The foreground process, which PostgreSQL runs per segment, pushes nothing itself: it waits for an acknowledgement
// of its segment in the spool, and makes sure the background process runs. The background process (one per stanza,
// under the stanza's archive lock) pushes every file PostgreSQL has marked ready in pg_wal/archive_status, several at
// once in worker threads, with the same push as the synchronous command (identity checks, checksums, atomic and
// fsynced writes, duplicate checks). Only after a push has returned, so the file is durable in the repository, does
// it write NAME.ok; a failure writes NAME.error with the error, which the foreground reports as its own. Both are
// written atomically (temporary name, fsync, rename, fsync of the folder), so a crash leaves a whole
// acknowledgement or none, and none only costs a push again (which finds the same file and writes nothing).

import { readdir, readFile, rm, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { ERROR_CODES, errnoCode, fail, WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { lockAcquire } from '../common/lock.js'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { WorkerPool } from '../parallel/pool.js'
import { posixStorage } from '../storage/posix.js'
import { asyncEnsure, asyncLockName, asyncLogHint, pollSleep, spoolFolder, spoolFolderCreate } from './archive-async.js'
import type { AsyncChild } from './archive-async.js'
import { archivePushInput } from './archive-push.js'

/**
 * Which file an acknowledgement is for. A segment name alone is not enough: a spool that outlived its cluster (a
 * stanza deleted and created again for a new cluster) could hold an ok for another file of the same name.
 */
interface FileIdentity {
  dev: string
  ino: string
  size: string
  mtimeNs: string
}

interface AckError {
  kind: ErrorKind
  message: string
  hint?: string
}

type Ack = { state: 'ok' } | { state: 'error'; error: AckError } | { state: 'none' }

async function fileIdentity(path: string): Promise<FileIdentity> {
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
    if (Date.now() >= deadline) {
      fail('ArchiveTimeout', `unable to push WAL file '${walName}' to the archive asynchronously after ${timeout} second(s)`, {
        hint: asyncLogHint(cfg),
      })
    }
  }
}

/** How long the background process keeps looking for newly ready files before it ends. */
const LINGER_MS = 2000

/** Names of the files PostgreSQL's archiver marked ready, oldest first. */
async function readyList(statusDir: string): Promise<string[]> {
  const entries = await readdir(statusDir).catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return [] as string[]
    throw error
  })
  return entries.filter((entry) => entry.endsWith('.ready')).map((entry) => entry.slice(0, -'.ready'.length)).sort()
}

/**
 * The background process: pushes every ready file without an acknowledgement, writes one for each, and repeats
 * until nothing new has become ready for a while. Started by a foreground with the path of its segment.
 */
export async function archivePushAsync(cfg: Config): Promise<number> {
  const lockPath = cfg.string('lock-path') ?? '/tmp/walden'
  let lock
  try {
    lock = await lockAcquire(lockPath, asyncLockName(cfg))
  } catch (error) {
    // Another background process serves the stanza already; the foreground waits for it.
    if (error instanceof WaldenError && error.kind === 'LockAcquire') return 0
    throw error
  }
  const walDir = dirname(resolve(cfg.params[0]!))
  const statusDir = join(walDir, 'archive_status')
  const out = spoolFolder(cfg, 'out')
  const spool = posixStorage(out)
  const processMax = cfg.number('process-max') ?? 1
  const pool = new WorkerPool(processMax)
  log.info(`archive-push background process for '${walDir}', process-max ${processMax}`)
  try {
    let idleSince = Date.now()
    for (;;) {
      const ready = await readyList(statusDir)
      const readySet = new Set(ready)
      const acked = new Set<string>()
      for (const entry of await spool.list('.')) {
        const name = entry.replace(/\.(ok|error)$/, '')
        // Acknowledgements of files no longer ready (PostgreSQL has seen them archived), and temporary files of a
        // background process that was killed while writing one.
        if ((name !== entry && !readySet.has(name)) || entry.includes('.tmp-')) await spool.remove(entry)
        else if (name !== entry) acked.add(name)
      }
      // Files with an error wait until a foreground asks for them again (it removes the error).
      const todo = ready.filter((name) => !acked.has(name))
      if (todo.length === 0) {
        if (Date.now() - idleSince > LINGER_MS) break
        await new Promise((resolve_) => setTimeout(resolve_, 100))
        continue
      }
      await pushAll(cfg, pool, spool, walDir, todo, processMax)
      idleSince = Date.now()
    }
  } finally {
    await pool.close()
    lock.release()
  }
  return 0
}

async function pushAll(cfg: Config, pool: WorkerPool, spool: ReturnType<typeof posixStorage>, walDir: string, names: readonly string[], lanes: number): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < names.length) {
      const walName = names[next++]!
      const walPath = join(walDir, walName)
      try {
        // Taken before the push: the acknowledgement is for the file that was pushed.
        const identity = await fileIdentity(walPath)
        const result = await pool.run('archive.push', archivePushInput(cfg, walPath))
        // Only now, with the file durable in the repository, may the foreground be told.
        await spool.write(`${walName}.ok`, JSON.stringify(identity) + '\n')
        log.info(result.alreadyArchived ? `WAL file '${walName}' is already in the archive with the same checksum` : `pushed WAL file '${walName}' to the archive`)
      } catch (error) {
        const ack: AckError =
          error instanceof WaldenError
            ? { kind: error.kind, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
            : { kind: 'Unhandled', message: `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}` }
        log.error(`[${String(ERROR_CODES[ack.kind]).padStart(3, '0')}]: ${ack.message}`)
        await spool.write(`${walName}.error`, JSON.stringify(ack) + '\n')
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, lanes) }, lane))
}
