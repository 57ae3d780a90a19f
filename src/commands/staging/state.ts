// What walden remembers about staging copies on this host: one record per stanza's staging copy, one per clone, and
// the host-wide table of ports assigned to them, all under SPOOL-PATH/staging (mode 0700: the records name folders,
// ports and the source's connection string).
//
//   SPOOL-PATH/staging/copy/<stanza>.json          the staging copy of a stanza
//   SPOOL-PATH/staging/clone/<stanza>/<name>.json  its clones
//   SPOOL-PATH/staging/ports.json                  port -> owner, for every staging copy and clone on this host
//   SPOOL-PATH/staging/jobs/                       the jobs journal (jobs.ts)
//
// Every write is a temporary file, fsync, rename over the old name, fsync of the folder: a crash leaves either the
// old record or the new one, never half of one. Operations on one stanza's staging copy hold the lock
// '<stanza>-staging' (lock-path) for their whole run, and changes to ports.json hold 'staging-ports', so that two
// links started at once on one host cannot both take a port.

import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, readdir, rename, rm, chmod, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { lockAcquire } from '../../common/lock.js'
import type { Lock } from '../../common/lock.js'
import type { Config } from '../../config/config.js'

export type StagingMethod = 'initiated' | 'external-wal' | 'external-streaming'

/** A fault that keeps the staging copy from being in sync; snapshots are refused while one stands. */
export interface StagingFault {
  message: string
  /** WAL-folder mode: the WAL file the staging copy needs next. */
  expectedWal?: string
  /** ISO time the fault was raised. */
  at: string
}

export interface StagingRecord {
  stanza: string
  method: StagingMethod
  /** Data folder of the staging cluster. */
  path: string
  port: number
  /** The pg_basebackup loaded at link or the last resync (external ways). */
  backupPath?: string
  /** external-wal: the folder the source's archived WAL files appear in. */
  walPath?: string
  /** Streaming ways: the replication connection string, never with a password. */
  source?: string
  /** Streaming ways: the physical replication slot on the source. */
  slotName?: string
  /** staging-setting as given (name=value or #name), applied at link, enable and resync. */
  settings: string[]
  /** False after staging-disable: the cluster is meant to be stopped. */
  enabled: boolean
  fault?: StagingFault
  /** WAL-folder mode: the WAL file the staging copy asks for next, as staging-wal-get last saw it. */
  expectedWal?: string
  systemId?: string
  /** PostgreSQL major version of the staging cluster (13 for 13, 150000-style numbers are not used). */
  pgVersion?: number
  linkedAt: string
  /** ISO time of the last successful (re)load: link or resync. */
  syncedAt?: string
}

export interface CloneRecord {
  stanza: string
  name: string
  path: string
  port: number
  /** Label of the snapshot (backup) the clone was made from. */
  snapshot?: string
  /** Recovery type and target when made from a point in time after the snapshot. */
  type?: string
  target?: string
  settings: string[]
  created: string
  /** ISO time clone-create finished (started, hooks run); absent while it runs, or for good when it was killed. */
  ready?: string
  /** Where the clone's tablespaces went (`<path>.tablespaces`, one folder per OID), when the snapshot has any. */
  tablespacePath?: string
  /** The snapshot image the clone may be a reflink copy of (clone-image.ts); removed with the last clone naming it. */
  imagePath?: string
}

export interface PortOwner {
  kind: 'staging' | 'clone'
  stanza: string
  /** The clone's name, for kind 'clone'. */
  clone?: string
}

export const STAGING_FOLDER_MODE = 0o700
const STAGING_FILE_MODE = 0o600

/** SPOOL-PATH/staging, where every staging record of this host lives. */
export function stagingRoot(cfg: Config): string {
  return join(cfg.string('spool-path') ?? '/var/spool/walden', 'staging')
}

/** Creates a folder of the staging state (and missing parents) with mode 0700, whatever the umask. */
async function stateFolder(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: STAGING_FOLDER_MODE })
  if (first !== undefined) {
    for (let folder = path; ; folder = dirname(folder)) {
      await chmod(folder, STAGING_FOLDER_MODE)
      if (folder === first || dirname(folder) === folder) break
    }
  }
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Writes `text` to `path` atomically and durably: temporary name, fsync, rename, fsync of the folder. */
export async function stateWrite(path: string, text: string): Promise<void> {
  await stateFolder(dirname(path))
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`
  const handle = await open(temporary, 'wx', STAGING_FILE_MODE)
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await rename(temporary, path)
  } catch (error) {
    await rm(temporary, { force: true })
    throw error
  }
  await fsyncPath(dirname(path))
}

/** Removes a state file durably; a missing one is fine. */
export async function stateRemove(path: string): Promise<void> {
  await rm(path, { force: true })
  await fsyncPath(dirname(path)).catch(() => undefined)
}

/** A JSON state file, or undefined when it does not exist. A damaged one is an error naming it, never ignored. */
export async function stateRead<T>(path: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    fail('FileRead', `unable to read staging state '${path}': ${(error as Error).message}`)
  }
  try {
    return JSON.parse(text) as T
  } catch (error) {
    fail('FileInvalid', `staging state '${path}' is damaged: ${(error as Error).message}`, {
      hint: 'it is written atomically, so something else changed it; restore it from a copy or unlink and link again.',
    })
  }
}

function copyPath(cfg: Config, stanza: string): string {
  return join(stagingRoot(cfg), 'copy', `${stanza}.json`)
}

function clonePath(cfg: Config, stanza: string, name: string): string {
  return join(stagingRoot(cfg), 'clone', stanza, `${name}.json`)
}

function portsPath(cfg: Config): string {
  return join(stagingRoot(cfg), 'ports.json')
}

/** The staging copy of a stanza, if it is linked on this host. */
export async function stagingRecordRead(cfg: Config, stanza: string): Promise<StagingRecord | undefined> {
  return stateRead<StagingRecord>(copyPath(cfg, stanza))
}

/** The staging copy of a stanza; fails with a hint when none is linked. */
export async function stagingRecordRequire(cfg: Config, stanza: string): Promise<StagingRecord> {
  const record = await stagingRecordRead(cfg, stanza)
  if (record === undefined) {
    fail('FileMissing', `stanza '${stanza}' has no staging copy on this host`, {
      hint: `link one with \`walden --stanza=${stanza} staging-link\`, or check spool-path ('${cfg.string('spool-path') ?? '/var/spool/walden'}').`,
    })
  }
  return record
}

export async function stagingRecordWrite(cfg: Config, record: StagingRecord): Promise<void> {
  await stateWrite(copyPath(cfg, record.stanza), `${JSON.stringify(record, null, 2)}\n`)
}

/** Reads, changes and writes a staging record; the caller holds the stanza's staging lock. */
export async function stagingRecordUpdate(
  cfg: Config,
  stanza: string,
  change: (record: StagingRecord) => void,
): Promise<StagingRecord> {
  const record = await stagingRecordRequire(cfg, stanza)
  change(record)
  await stagingRecordWrite(cfg, record)
  return record
}

export async function stagingRecordRemove(cfg: Config, stanza: string): Promise<void> {
  await stateRemove(copyPath(cfg, stanza))
}

/** Every staging copy linked on this host. */
export async function stagingRecordList(cfg: Config): Promise<StagingRecord[]> {
  const folder = join(stagingRoot(cfg), 'copy')
  const names = await readdir(folder).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? [] : Promise.reject(error)))
  const records: StagingRecord[] = []
  for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
    const record = await stateRead<StagingRecord>(join(folder, name))
    if (record !== undefined) records.push(record)
  }
  return records
}

export async function cloneRecordRead(cfg: Config, stanza: string, name: string): Promise<CloneRecord | undefined> {
  return stateRead<CloneRecord>(clonePath(cfg, stanza, name))
}

export async function cloneRecordWrite(cfg: Config, record: CloneRecord): Promise<void> {
  await stateWrite(clonePath(cfg, record.stanza, record.name), `${JSON.stringify(record, null, 2)}\n`)
}

export async function cloneRecordRemove(cfg: Config, stanza: string, name: string): Promise<void> {
  await stateRemove(clonePath(cfg, stanza, name))
}

/** The clones of a stanza's staging copy, by name. */
export async function cloneRecordList(cfg: Config, stanza: string): Promise<CloneRecord[]> {
  const folder = join(stagingRoot(cfg), 'clone', stanza)
  const names = await readdir(folder).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? [] : Promise.reject(error)))
  const records: CloneRecord[] = []
  for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
    const record = await stateRead<CloneRecord>(join(folder, name))
    if (record !== undefined) records.push(record)
  }
  return records
}

/** Ports assigned on this host to staging copies and clones, by port number. */
export async function portsAssigned(cfg: Config): Promise<Map<number, PortOwner>> {
  const table = (await stateRead<Record<string, PortOwner>>(portsPath(cfg))) ?? {}
  return new Map(Object.entries(table).map(([port, owner]) => [Number(port), owner]))
}

/** A port owner as messages name it: "the staging copy of stanza 'demo'" or "clone 'qa' of stanza 'demo'". */
export function portOwnerText(owner: PortOwner): string {
  return owner.kind === 'staging' ? `the staging copy of stanza '${owner.stanza}'` : `clone '${owner.clone}' of stanza '${owner.stanza}'`
}

function sameOwner(a: PortOwner, b: PortOwner): boolean {
  return a.kind === b.kind && a.stanza === b.stanza && a.clone === b.clone
}

/**
 * Records `port` as `owner`'s, under the host-wide port lock. `check` runs inside the lock, just before the
 * write, so the check that no server listens there (ports.ts) and the assignment are one step for every walden on the
 * host. Fails when another owner has the port.
 */
export async function portAssign(
  cfg: Config,
  port: number,
  owner: PortOwner,
  check?: () => Promise<void>,
  what = 'port',
): Promise<void> {
  const lock = await lockAcquire(cfg.string('lock-path') ?? '/tmp/walden', 'staging-ports')
  try {
    const table = await portsAssigned(cfg)
    const current = table.get(port)
    if (current !== undefined && !sameOwner(current, owner)) {
      fail('OptionInvalidValue', `${what} ${port} is assigned to ${portOwnerText(current)} on this host`, {
        hint: `choose another ${what}.`,
      })
    }
    await check?.()
    table.set(port, owner)
    await portsWrite(cfg, table)
  } finally {
    lock.release()
  }
}

/** Forgets every port `owner` holds. */
export async function portRelease(cfg: Config, owner: PortOwner): Promise<void> {
  const lock = await lockAcquire(cfg.string('lock-path') ?? '/tmp/walden', 'staging-ports')
  try {
    const table = await portsAssigned(cfg)
    let changed = false
    for (const [port, current] of table) {
      if (sameOwner(current, owner)) {
        table.delete(port)
        changed = true
      }
    }
    if (changed) await portsWrite(cfg, table)
  } finally {
    lock.release()
  }
}

async function portsWrite(cfg: Config, table: ReadonlyMap<number, PortOwner>): Promise<void> {
  const sorted = Object.fromEntries([...table].sort(([a], [b]) => a - b).map(([port, owner]) => [String(port), owner]))
  await stateWrite(portsPath(cfg), `${JSON.stringify(sorted, null, 2)}\n`)
}

/**
 * Takes the stanza's staging lock: no two staging operations (link, snapshot, enable, clone-create, ...) on one
 * stanza at once. Fails at once, naming the holder, rather than wait: these commands run from cron, and a second run
 * should say so and exit, not pile up.
 */
export async function stagingLock(cfg: Config, stanza: string): Promise<Lock> {
  return lockAcquire(cfg.string('lock-path') ?? '/tmp/walden', `${stanza}-staging`)
}

/** Runs `body` holding the stanza's staging lock. */
export async function withStagingLock<T>(cfg: Config, stanza: string, body: () => Promise<T>): Promise<T> {
  const lock = await stagingLock(cfg, stanza)
  try {
    return await body()
  } finally {
    lock.release()
  }
}

/** Whether a folder is absent or empty (a data folder walden may load into). */
export async function folderEmpty(path: string): Promise<boolean> {
  try {
    const info = await stat(path)
    if (!info.isDirectory()) return false
    return (await readdir(path)).length === 0
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return true
    throw error
  }
}
