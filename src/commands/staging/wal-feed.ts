// staging-wal-get WAL_NAME DEST_PATH: the restore_command of a staging cluster fed from a WAL folder
// (staging-method=external-wal). PostgreSQL asks it for every file it replays, so it sees the chain exactly:
//
// - a history file: copied as it is when the folder has it (exit 1 otherwise, the usual answer to a probe);
// - a segment present in the folder (plain, or .gz/.lz4/.zst): read once, checked while it is copied to DEST_PATH
//   (size, page headers and records, position, this cluster's system identifier), and given to PostgreSQL only when
//   whole and valid; the next file expected is recorded;
// - a segment absent: exit 1 quietly while it may still come (wal-chain.ts says when); a break otherwise.
//
// A break (the expected file missing while later ones are there, or a file that is not this cluster's WAL at this
// position) is recorded in the staging record as the fault, naming the expected WAL file, the file is refused, and
// the staging cluster is told to shut down fast (SIGINT to its postmaster, checked to be this data folder's). It does
// not wait for the shutdown: the postmaster waits for its startup process, which waits for this command.
//
// Order on a break: the fault is written first, then the signal, then the exit. A crash between them leaves a fault
// recorded on a cluster still running, which staging-status shows as INACTIVE anyway; the reverse order could leave
// a stopped cluster with no word of why.

import { constants } from 'node:fs'
import { lstat, open, readFile, readdir, readlink, realpath, rm, stat } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail, WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { codecFromExtension } from '../../io/compress.js'
import { pgControlRead } from '../../pg/control.js'
import type { TimelineHistoryEntry } from '../../pg/wal.js'
import { isTimelineHistoryName, isWalSegmentName, timelineHistoryParse, walSegmentParse } from '../../pg/wal.js'
import { WalSegmentVerifier } from '../../pg/wal-verify.js'
import type { Command } from '../command.js'
import { stagingRecordRequire, stagingRecordUpdate } from './state.js'
import type { StagingRecord } from './state.js'
import { expectedAfter, judgeMissingSegment, requestPosition, timelineChain, walFolderView, WAL_FOLDER_SUFFIXES, WAL_SETTLE_MS } from './wal-chain.js'

/** Bytes read and checked at a time: a whole number of pages for every WAL page size (up to 64 KiB). */
const PIECE_SIZE = 1024 * 1024

/** What one request came to; the command's exit status follows from it. */
export type WalFeedOutcome =
  | { kind: 'served'; file: string; expected?: string }
  | { kind: 'wait'; reason: string }
  | { kind: 'break'; expected: string; message: string; shutdown: string }

export interface WalFeedRequest {
  /** The staging copy, as recorded. */
  record: StagingRecord
  /** The WAL folder (the record's, or staging-wal-path when given). */
  walPath: string
  /** %f: the file PostgreSQL asks for. */
  walName: string
  /** %p: where PostgreSQL wants it. */
  destination: string
  /** Writes the record's changes (expected WAL, fault); the command passes stagingRecordUpdate. */
  update(change: (record: StagingRecord) => void): Promise<void>
  /** Clock for the settle time, injectable for tests. */
  now?: () => number
}

interface Cluster {
  systemId: bigint
  segmentSize: number
  timeline: number
}

/** Serves one request of the staging cluster; see the top of this file. Never throws for a break: it returns it. */
export async function walFeed(request: WalFeedRequest): Promise<WalFeedOutcome> {
  const { record, walPath, walName } = request
  if (isTimelineHistoryName(walName)) return serveHistory(request)
  if (!isWalSegmentName(walName)) {
    // Backup history files and anything else PostgreSQL might ask for: served as they are, never judged.
    return (await copyPlain(join(walPath, walName), request.destination)) ? { kind: 'served', file: walName } : { kind: 'wait', reason: 'not in the WAL folder' }
  }

  const control = await pgControlRead(record.path)
  const cluster: Cluster = {
    systemId: control.systemId,
    segmentSize: control.walSegmentSize,
    // The timeline the cluster is on: pg_control's moves only at restartpoints, the expected file's as it is served.
    timeline: Math.max(control.timeline, record.expectedWal !== undefined && isWalSegmentName(record.expectedWal) ? walSegmentParse(record.expectedWal).timeline : 0),
  }
  const names = await listFolder(walPath)
  const histories = await historiesOf(walPath, names, join(record.path, 'pg_wal'))
  const chain = timelineChain(cluster.timeline, histories, requestPosition(walName, cluster.segmentSize), cluster.segmentSize)
  const present = WAL_FOLDER_SUFFIXES.map((suffix) => walName + suffix).find((name) => names.includes(name))

  if (present === undefined) {
    // Restarted from an older restartpoint, the cluster asks again for segments it was given before; pg_wal has them
    // (PostgreSQL reads it after the archive), and the folder may have been cleaned since.
    if (await wholeSegmentIn(join(record.path, 'pg_wal', walName), cluster.segmentSize)) return { kind: 'wait', reason: 'in pg_wal' }
    let verdict = judgeMissingSegment(walName, chain, walFolderView(names), cluster.segmentSize)
    if (verdict.kind !== 'wait') {
      // A later file proves a gap only once it is a regular file that has settled: an archiver copying several files
      // at once (or a neighbour's FIFO) must not shut the copy down while the expected file is still on its way.
      const settled = await settledNames(walPath, names, (request.now ?? Date.now)())
      verdict = judgeMissingSegment(walName, chain, walFolderView(settled), cluster.segmentSize)
    }
    if (verdict.kind === 'wait') {
      if (verdict.expected !== undefined) await noteExpected(request, verdict.expected)
      return { kind: 'wait', reason: 'not in the WAL folder' }
    }
    return breakChain(request, verdict.expected, verdict.message)
  }

  const source = join(walPath, present)
  try {
    await copyChecked(source, present, walName, request.destination, cluster)
  } catch (error) {
    await rm(request.destination, { force: true })
    if (error instanceof FileReadProblem) {
      fail('FileRead', error.message, { hint: `the OS user running PostgreSQL must be able to read the files in '${walPath}'.` })
    }
    if (!(error instanceof WaldenError)) throw error
    // A file still being copied into the folder fails its checks until it is whole.
    const changed = await lstat(source).then((info) => info.mtimeMs, () => 0)
    if ((request.now ?? Date.now)() - changed < WAL_SETTLE_MS) return { kind: 'wait', reason: `'${present}' is still changing: ${error.message}` }
    return breakChain(request, walName, `WAL file '${walName}' in the WAL folder is not valid WAL of this cluster at this position: ${error.message}`)
  }
  const expected = expectedAfter(walName, chain, cluster.segmentSize)
  await noteExpected(request, expected)
  return { kind: 'served', file: present, expected }
}

/** History files: the folder's copy as it is, after checking it parses (a damaged one would stop recovery). */
async function serveHistory(request: WalFeedRequest): Promise<WalFeedOutcome> {
  const source = join(request.walPath, request.walName)
  let text: string | undefined
  try {
    text = (await readRegular(source))?.toString('utf8')
  } catch (error) {
    if (!(error instanceof WaldenError)) throw error
    return breakChain(request, request.walName, error.message)
  }
  if (text === undefined) return { kind: 'wait', reason: 'not in the WAL folder' }
  const timeline = Number.parseInt(request.walName.slice(0, 8), 16)
  try {
    timelineHistoryParse(text, timeline)
  } catch (error) {
    if (!(error instanceof WaldenError)) throw error
    return breakChain(request, request.walName, `timeline history file '${request.walName}' in the WAL folder is damaged: ${error.message}`)
  }
  await writeWhole(request.destination, Buffer.from(text, 'utf8'))
  return { kind: 'served', file: request.walName }
}

async function noteExpected(request: WalFeedRequest, expected: string): Promise<void> {
  // Most requests are the same wait again every few seconds: the record is written only when the answer changes.
  if (request.record.expectedWal === expected) return
  await request.update((record) => {
    record.expectedWal = expected
  })
  request.record.expectedWal = expected
}

/** Records the fault, signals the cluster to stop, and returns the break for the command to report. */
async function breakChain(request: WalFeedRequest, expected: string, message: string): Promise<WalFeedOutcome> {
  const at = new Date((request.now ?? Date.now)()).toISOString()
  await request.update((record) => {
    record.fault = { message, expectedWal: expected, at }
    record.expectedWal = expected
  })
  const shutdown = await stopStagingCluster(request.record.path)
  return { kind: 'break', expected, message, shutdown }
}

/**
 * Asks the postmaster of `dataDir` for a fast shutdown (SIGINT), without waiting for it. The pid in postmaster.pid is
 * signalled only if that process's working folder is `dataDir` (the postmaster changes into its data folder) or it is
 * an ancestor of this process (PostgreSQL runs restore_command from the startup process, a child of the postmaster):
 * a stale postmaster.pid may name an unrelated process by now. Returns what was done, for the log.
 */
export async function stopStagingCluster(dataDir: string): Promise<string> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined)
  const pid = text === undefined ? NaN : Number.parseInt(text, 10)
  if (!Number.isInteger(pid) || pid <= 0) return 'the staging cluster is not running (no postmaster.pid)'
  const folder = await realpath(dataDir).catch(() => dataDir)
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined)
  if (cwd !== folder && !(await isAncestor(pid))) {
    return `postmaster.pid names process ${pid}, which is not the staging cluster's postmaster: not signalled`
  }
  try {
    process.kill(pid, 'SIGINT')
  } catch (error) {
    return `could not signal the staging cluster's postmaster (pid ${pid}): ${(error as Error).message}`
  }
  return `fast shutdown of the staging cluster requested (SIGINT to postmaster pid ${pid})`
}

async function isAncestor(pid: number): Promise<boolean> {
  for (let current = process.ppid, depth = 0; current > 1 && depth < 8; depth++) {
    if (current === pid) return true
    const stat = await readFile(`/proc/${current}/stat`, 'utf8').catch(() => undefined)
    if (stat === undefined) return false
    current = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  }
  return false
}

async function listFolder(path: string): Promise<string[]> {
  try {
    return await readdir(path)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      fail('PathMissing', `staging-wal-path '${path}' does not exist`, { hint: 'create it, or point the source\'s archive_command at the folder the staging copy was linked with.' })
    }
    throw error
  }
}

/** History files of the folder and of the staging cluster's own pg_wal, by timeline (the folder's copy first). */
async function historiesOf(walPath: string, names: readonly string[], pgWal: string): Promise<Map<number, TimelineHistoryEntry[]>> {
  const histories = new Map<number, TimelineHistoryEntry[]>()
  const own = await readdir(pgWal).catch(() => [] as string[])
  for (const [folder, list] of [[walPath, names], [pgWal, own]] as const) {
    for (const name of list) {
      if (!isTimelineHistoryName(name)) continue
      const timeline = Number.parseInt(name.slice(0, 8), 16)
      if (histories.has(timeline)) continue
      try {
        const text = await readRegular(join(folder, name))
        if (text !== undefined) histories.set(timeline, timelineHistoryParse(text.toString('utf8'), timeline))
      } catch {
        // A damaged or vanished history file is judged when PostgreSQL asks for it, not here.
      }
    }
  }
  return histories
}

async function wholeSegmentIn(path: string, segmentSize: number): Promise<boolean> {
  const info = await stat(path).catch(() => undefined)
  return info !== undefined && info.isFile() && info.size === segmentSize
}

/** Copies a file as it is; false when it does not exist. */
async function copyPlain(source: string, destination: string): Promise<boolean> {
  const data = await readRegular(source)
  if (data === undefined) return false
  await writeWhole(destination, data)
  return true
}

async function writeWhole(destination: string, data: Buffer): Promise<void> {
  const handle = await open(destination, 'w', 0o600)
  try {
    await handle.writeFile(data)
  } finally {
    await handle.close()
  }
}

/**
 * Opens a file of the WAL folder for reading, only if it is a regular file under that very name: never through a
 * symbolic link (which could hand PostgreSQL, or an error message, another file postgres can read) and never a FIFO
 * or device (which would block restore_command for good). Undefined when it does not exist.
 */
async function openRegular(path: string): Promise<FileHandle | undefined> {
  let handle: FileHandle
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    if (errnoCode(error) === 'ELOOP') fail('FileInvalid', `'${path}' in the WAL folder is a symbolic link; walden serves regular files only`)
    throw error
  }
  const info = await handle.stat().catch(async (error: unknown) => {
    await handle.close()
    throw error
  })
  if (!info.isFile()) {
    await handle.close()
    fail('FileInvalid', `'${path}' in the WAL folder is not a regular file (a FIFO, device or folder); walden serves regular files only`)
  }
  return handle
}

/** A regular file of the WAL folder, whole (history and backup history files: small); undefined when missing. */
async function readRegular(path: string): Promise<Buffer | undefined> {
  const handle = await openRegular(path)
  if (handle === undefined) return undefined
  try {
    return await handle.readFile()
  } finally {
    await handle.close()
  }
}

/** The names of the folder that are regular files unchanged for WAL_SETTLE_MS (see walFeed's missing case). */
async function settledNames(walPath: string, names: readonly string[], now: number): Promise<string[]> {
  const settled: string[] = []
  for (const name of names) {
    const info = await lstat(join(walPath, name)).catch(() => undefined)
    if (info !== undefined && info.isFile() && now - info.mtimeMs >= WAL_SETTLE_MS) settled.push(name)
  }
  return settled
}

/** A file of the folder that cannot be read at all: reported to PostgreSQL, never judged as a break. */
class FileReadProblem extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause })
  }
}

/**
 * Reads `source` once (decompressing by its suffix), checks every piece and writes it to `destination`. The checks
 * are archive-push's (wal-verify.ts) plus this cluster's: system identifier and segment size. Throws a WaldenError on
 * the first problem; the caller removes what was written.
 */
async function copyChecked(source: string, fileName: string, walName: string, destination: string, cluster: Cluster): Promise<void> {
  const what = fileName === walName ? 'the file' : `its compressed copy '${fileName}'`
  const codec = codecFromExtension(fileName)
  let file: FileHandle | undefined
  try {
    file = await openRegular(source)
  } catch (error) {
    if (error instanceof WaldenError) throw error
    throw new FileReadProblem(`unable to read WAL file '${source}': ${(error as Error).message}`, error)
  }
  // Gone between the listing and the open (cleaned up meanwhile): reported to PostgreSQL, which asks again.
  if (file === undefined) throw new FileReadProblem(`WAL file '${source}' went away before it could be read`, undefined)
  const input = file.createReadStream({ highWaterMark: PIECE_SIZE, autoClose: true })
  const stream = codec.type === 'none' ? input : input.pipe(codec.decompress())
  if (stream !== input) input.on('error', (error) => stream.destroy(error))
  const handle = await open(destination, 'w', 0o600)
  let verifier: WalSegmentVerifier | undefined
  const piece = Buffer.alloc(PIECE_SIZE)
  let filled = 0
  let total = 0
  const check = async (data: Buffer): Promise<void> => {
    if (verifier === undefined) {
      verifier = new WalSegmentVerifier(data, { walName, what })
      const header = verifier.header
      if (header.systemId !== cluster.systemId) {
        fail('ArchiveMismatch', `${what} is WAL of system ${header.systemId}, not of the staging cluster (system ${cluster.systemId})`)
      }
      if (header.segmentSize !== cluster.segmentSize) {
        fail('ArchiveMismatch', `${what} has segment size ${header.segmentSize}, the staging cluster ${cluster.segmentSize}`)
      }
    }
    verifier.update(data)
    await handle.write(data)
  }
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length; ) {
        const take = Math.min(chunk.length - at, PIECE_SIZE - filled)
        chunk.copy(piece, filled, at, at + take)
        filled += take
        at += take
        total += take
        if (filled === PIECE_SIZE) {
          await check(piece)
          filled = 0
        }
        // More than a segment is never valid: stop reading a runaway file early.
        if (total > cluster.segmentSize) fail('FileInvalid', `${what} is larger than a WAL segment (${cluster.segmentSize} bytes)`)
      }
    }
    if (filled > 0 || verifier === undefined) await check(piece.subarray(0, filled))
    verifier!.finish(total)
  } catch (error) {
    input.destroy()
    if (error instanceof WaldenError) throw error
    // The file cannot be read (permissions, I/O): nothing is known about its content, so no break is declared.
    // PostgreSQL logs the error and asks again.
    if (errnoCode(error) !== undefined) {
      throw new FileReadProblem(`unable to read WAL file '${source}': ${(error as Error).message}`, error)
    }
    // A decompression error or a short compressed file: the file is damaged (or still being written).
    fail('FileInvalid', `${what} cannot be read: ${(error as Error).message}`, { cause: error })
  } finally {
    await handle.close()
  }
}

/** staging-wal-get: exits 0 having written the file, 1 when it is not there yet, and an error's code on a break. */
export const stagingWalGet: Command = {
  async run(cfg: Config): Promise<number> {
    const stanza = cfg.stanza()
    const [walName, destination] = cfg.params
    if (walName === undefined || destination === undefined) fail('ParamRequired', 'WAL file name and destination path required')
    const record = await stagingRecordRequire(cfg, stanza)
    const walPath = cfg.string('staging-wal-path') ?? record.walPath
    if (walPath === undefined) {
      fail('OptionRequired', `the staging copy of stanza '${stanza}' has no WAL folder`, {
        hint: 'staging-wal-get serves staging copies linked with staging-method=external-wal.',
      })
    }
    const outcome = await walFeed({
      record,
      walPath,
      walName,
      destination,
      update: async (change) => {
        await stagingRecordUpdate(cfg, stanza, change)
      },
    })
    switch (outcome.kind) {
      case 'served':
        log.info(`served WAL file '${outcome.file}' to the staging cluster${outcome.expected === undefined ? '' : `, next expected '${outcome.expected}'`}`)
        return 0
      case 'wait':
        log.detail(`WAL file '${walName}' not served: ${outcome.reason}`)
        return 1
      case 'break':
        log.info(outcome.shutdown)
        fail('ArchiveMismatch', `staging copy of stanza '${stanza}' stopped: expected WAL file '${outcome.expected}': ${outcome.message}`, {
          hint: `put WAL file '${outcome.expected}' into the WAL folder, then run staging-disable and staging-enable; or run staging-resync.`,
        })
    }
  },
}
