// Asynchronous archive-push (archive-async=y): the background process.
//
// One per stanza, under the stanza's archive lock, started by a foreground process (archive-push-wait.ts). It pushes
// every file PostgreSQL has marked ready in pg_wal/archive_status, several at once in worker threads, with the same
// push as the synchronous command, and acknowledges each in the spool only once the push has returned.
//
// Fewer requests per segment than the synchronous command (issue #12): each repository's archive.info is loaded once
// per process, and each WAL folder a batch needs is listed once for the batch, not once per segment; a push then
// costs its write. The listing may be older than a segment's push by the batch's duration. Nothing of this process
// changes a folder in that time except by storing the batch's own segments, each pushed once per batch; only another
// writer could add a copy meanwhile, which the archive lock keeps out on this host and which, from anywhere else
// (two clusters archiving into one stanza), the per-segment listing of the synchronous push would also miss when it
// lands just after it. A copy found with the same content is the retry it always was; a different one is refused.

import { readdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { ERROR_CODES, errnoCode, WaldenError } from '../../common/errors.js'
import { lockAcquire, stopFileCheck } from '../../common/lock.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { WorkerPool } from '../../parallel/pool.js'
import { posixStorage } from '../../storage/posix.js'
import { asyncLockName, spoolFolder } from './async.js'
import { archivePushInput } from './push.js'
import { archivePushOutcome } from './push-file.js'
import type { ArchivePushFileInput } from './push-file.js'
import { archiveIdOf, archiveInfoLoadIfExists } from '../../repo/stanza-info.js'
import type { ArchiveInfo } from '../../repo/stanza-info.js'
import { layout } from '../../repo/layout.js'
import { repoOpen, repoSelected } from '../repo-storage.js'
import { BACKGROUND_FOLDER, fileIdentity } from './push-wait.js'
import type { AckError } from './push-wait.js'
import type { Command } from '../command.js'

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
async function archivePushAsync(cfg: Config): Promise<number> {
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
  // Each repository's archive.info, loaded once per process (issue #12); one that could not be loaded is tried again
  // for the next batch, and its pushes meanwhile load it themselves and report why they cannot.
  const infos = new Map<number, ArchiveInfo>()
  log.info(`archive-push background process for '${walDir}', process-max ${processMax}`)
  try {
    await spool.write(BACKGROUND_FOLDER, `${walDir}\n`)
    let idleSince = Date.now()
    for (;;) {
      // `walden stop` ends a running background process too, before it pushes anything more.
      await stopFileCheck(lockPath, cfg.stanza())
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
      // Two pushes per worker thread: while one waits on its reads and fsyncs, the other compresses.
      await pushAll(cfg, pool, spool, walDir, todo, 2 * processMax, infos)
      idleSince = Date.now()
    }
  } finally {
    await pool.close()
    lock.release()
  }
  return 0
}

async function pushAll(
  cfg: Config,
  pool: WorkerPool,
  spool: ReturnType<typeof posixStorage>,
  walDir: string,
  names: readonly string[],
  lanes: number,
  infos: Map<number, ArchiveInfo>,
): Promise<void> {
  const stanza = cfg.stanza()
  // Loading archive.info here also unlocks each repository's keys once, so worker threads get them unwrapped instead
  // of each running the KDF. A failure is left to each push, which reports it for its own segment.
  const listings = new Map<number, Map<string, readonly string[]>>()
  for (const index of repoSelected(cfg)) {
    const repo = await repoOpen(cfg, index).catch(() => undefined)
    if (repo === undefined) continue
    if (!infos.has(index)) {
      const info = await archiveInfoLoadIfExists(repo.storage, stanza).catch(() => undefined)
      if (info === undefined) continue
      infos.set(index, info)
    }
    // Each WAL folder of the batch, listed once: 256 segments share one (of 16 MiB), so a batch needs one or two.
    const archiveId = archiveIdOf(infos.get(index)!.db)
    const folders = new Map<string, readonly string[]>()
    for (const walName of names) {
      const folder = layout.walFolder(stanza, archiveId, walName)
      if (folders.has(folder)) continue
      // A folder that cannot be listed is listed by each push of it, which reports the failure.
      const entries = await repo.storage.list(folder).catch(() => undefined)
      if (entries !== undefined) folders.set(folder, entries)
    }
    listings.set(index, folders)
  }
  /** The push's input with what this process loaded and listed for each repository. */
  const inputOf = (walPath: string, walName: string): ArchivePushFileInput => {
    const input = archivePushInput(cfg, walPath)
    for (const repo of input.repos) {
      const info = infos.get(repo.index)
      if (info === undefined) continue
      repo.info = info
      const listed = listings.get(repo.index)?.get(layout.walFolder(stanza, archiveIdOf(info.db), walName))
      if (listed !== undefined) repo.walFolderList = listed
    }
    return input
  }
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < names.length) {
      const walName = names[next++]!
      const walPath = join(walDir, walName)
      try {
        // Taken before the push: the acknowledgement is for the file that was pushed.
        const identity = await fileIdentity(walPath)
        const result = await pool.run('archive.push', inputOf(walPath, walName))
        // A repository that failed loads its archive.info again for the next batch: it may have changed meanwhile.
        for (const repo of result.repos) if (repo.failure) infos.delete(repo.index)
        // Throws when a repository does not have it: that is the segment's error, acknowledged as such below.
        const done = archivePushOutcome(result)
        // Only now, with the file durable in every repository, may the foreground be told. Written whole (temporary
        // name, rename) but not fsynced: the repository files already are, so an ok lost in a crash only costs a push
        // that finds the file there, and one that survives it is true.
        await spool.write(`${walName}.ok`, JSON.stringify(identity) + '\n', { sync: false })
        log.info(done)
      } catch (error) {
        const ack: AckError =
          error instanceof WaldenError
            ? { kind: error.kind, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
            : { kind: 'Unhandled', message: `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}` }
        log.error(`[${String(ERROR_CODES[ack.kind]).padStart(3, '0')}]: ${ack.message}`)
        await spool.write(`${walName}.error`, JSON.stringify(ack) + '\n', { sync: false })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, lanes) }, lane))
}

export const archivePushBackground: Command = { run: archivePushAsync }
