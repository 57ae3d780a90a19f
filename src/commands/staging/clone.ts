// clone-create, clone-list, clone-destroy: writable copies of the staging copy, each a started cluster on its own
// folder and port, made from a snapshot in the stanza's repository or from a point in time after one.
//
// clone-create, in order, holding the stanza's staging lock and recorded as the job CLONE:
//  1. refusals, before anything is made: a name already used, a clone-path that is not empty, a port in use or
//     assigned, a walden-owned clone-setting, a target before the snapshot (or before the oldest one), a target past
//     the archived WAL (clone-reach.ts);
//  2. the port is assigned and the record written before the folder is touched, so that a clone-create killed half-way
//     leaves a clone that clone-list shows and clone-destroy removes, never an orphan folder holding a port;
//  3. the restore (clone-restore.ts), the clone's settings, the start, waiting for promotion;
//  4. the configure-clone hooks, with WALDEN_* variables naming the clone.
// A failure after step 2 undoes it all: the server stopped, the folder emptied (removed if clone-create made it),
// port and record released. A half-made clone is worth nothing and would hold a port.

import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { lsnFormat, lsnParse } from '../../pg/lsn.js'
import { timelineHistoryParse } from '../../pg/wal.js'
import { pgRunning } from '../../pg/data-dir.js'
import { manifestLoad } from '../../repo/manifest.js'
import type { BackupRecord } from '../../repo/stanza-info.js'
import { backupInfoLoad } from '../../repo/stanza-info.js'
import type { Command } from '../command.js'
import { repoOpen } from '../repo-storage.js'
import { targetCheck, targetTimeParse } from '../restore/target.js'
import { pgCtlPathCheck, serverControl } from '../server-control.js'
import { cloneSnapshotEnd, cloneTargetReachCheck } from './clone-reach.js'
import type { CloneTarget } from './clone-reach.js'
import { imageBytes, imagePathFor, imageRemove, isImagePath, reflinkProbe } from './clone-image.js'
import { cloneOwnSettings, cloneRestore, cloneRestoreFromImage, cloneStart } from './clone-restore.js'
import { hookError, hooksRun } from './hooks.js'
import type { HookContext } from './hooks.js'
import { jobRun } from './jobs.js'
import type { JobHandle } from './jobs.js'
import { portCheck, portReserve } from './ports.js'
import { settingsApply, settingsParse } from './settings.js'
import { cloneRecordList, cloneRecordRead, cloneRecordRemove, cloneRecordWrite, folderEmpty, portRelease, stagingRecordRead, withStagingLock } from './state.js'
import type { CloneRecord, PortOwner } from './state.js'

const CLONE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

function cloneName(cfg: Config): string {
  const name = cfg.requireString('clone')
  if (!CLONE_NAME.test(name) || name.length > 64) {
    fail('OptionInvalidValue', `clone name '${name}' is not valid`, { hint: 'use letters, digits, "-", "_" and "." only, starting with a letter or digit, at most 64 characters.' })
  }
  return name
}

/** The recovery target of a clone-create, checked for its form; undefined for a clone of the snapshot itself. */
function cloneTarget(cfg: Config): CloneTarget | undefined {
  const type = cfg.string('type') ?? 'immediate'
  const target = cfg.string('target')
  if (type === 'immediate') {
    if (target !== undefined) fail('OptionInvalid', "option 'target' needs --type=time, lsn, xid or name", { hint: 'without a type the clone is the snapshot itself.' })
    return undefined
  }
  if (target === undefined) fail('OptionRequired', `clone-create --type=${type} requires option 'target'`, { hint: `give --target=... for the ${type} the clone recovers to.` })
  targetCheck(type, target)
  return { type: type as CloneTarget['type'], target, exclusive: false }
}

const isoOf = (seconds: number): string => new Date(seconds * 1000).toISOString()

/**
 * The snapshot a clone is made from: --set, else the newest; with a time or LSN target, the newest one consistent
 * (its backup ended) at or before the target, since recovery only plays forward. xid and name targets cannot be
 * placed in time without reading WAL: the newest snapshot (or --set) is used, and the reach check then says whether
 * the target comes after it.
 */
function snapshotChoose(backups: readonly BackupRecord[], stanza: string, set: string | undefined, target: CloneTarget | undefined): BackupRecord {
  if (backups.length === 0) fail('BackupMismatch', `stanza '${stanza}' has no snapshots to clone`, { hint: 'take one with staging-snapshot first.' })
  const chosen = set === undefined ? undefined : backups.find((backup) => backup.label === set)
  if (set !== undefined && chosen === undefined) {
    fail('BackupMismatch', `snapshot '${set}' does not exist in stanza '${stanza}'`, { hint: `the snapshots are: ${backups.map((backup) => backup.label).join(', ')}.` })
  }
  if (target === undefined || target.type === 'xid' || target.type === 'name') return chosen ?? backups.at(-1)!
  const before = (backup: BackupRecord): boolean =>
    target.type === 'time' ? backup.timestampStop * 1000 <= targetTimeParse(target.target) : lsnParse(backup.lsnStop) <= lsnParse(target.target)
  const consistentAt = (backup: BackupRecord): string => (target.type === 'time' ? isoOf(backup.timestampStop) : `LSN ${backup.lsnStop}`)
  if (chosen !== undefined) {
    if (!before(chosen)) {
      const earlier = backups.filter(before)
      fail('BackupMismatch', `target ${target.type} '${target.target}' is before snapshot ${chosen.label} is consistent`, {
        hint: `${chosen.label} is consistent from ${consistentAt(chosen)}; give a later target${earlier.length > 0 ? `, or an earlier snapshot (${earlier.map((backup) => backup.label).join(', ')})` : ''}.`,
      })
    }
    return chosen
  }
  const newest = backups.filter(before).at(-1)
  if (newest === undefined) {
    const oldest = backups[0]!
    fail('BackupMismatch', `target ${target.type} '${target.target}' is before the oldest snapshot, ${oldest.label}`, {
      hint: `${oldest.label} is consistent from ${consistentAt(oldest)}; a clone can only be made at or after a snapshot.`,
    })
  }
  return newest
}

/** Refuses a folder a clone cannot go to: not empty, or the staging cluster's, or inside another clone's. */
async function clonePathCheck(cfg: Config, stanza: string, clonePath: string, others: readonly CloneRecord[]): Promise<void> {
  const staging = await stagingRecordRead(cfg, stanza)
  const overlaps = (other: string): boolean => clonePath === other || clonePath.startsWith(`${other}/`) || other.startsWith(`${clonePath}/`)
  if (staging !== undefined && overlaps(resolve(staging.path))) {
    fail('OptionInvalidValue', `clone path '${clonePath}' overlaps the staging copy's folder '${staging.path}'`, { hint: 'give the clone a folder of its own.' })
  }
  const other = others.find((record) => overlaps(record.path))
  if (other !== undefined) fail('OptionInvalidValue', `clone path '${clonePath}' overlaps the folder of clone '${other.name}' ('${other.path}')`, { hint: 'give the clone a folder of its own.' })
  const empty = await folderEmpty(clonePath).catch((error: unknown) =>
    fail('FileOpen', `unable to read clone path '${clonePath}': ${errnoCode(error) === 'EACCES' ? 'permission denied' : (error as Error).message}`, {
      hint: 'give a folder the user running walden (the PostgreSQL OS user) owns, or may create.',
    }),
  )
  if (!empty) {
    fail('PathNotEmpty', `clone path '${clonePath}' is not empty`, { hint: 'give an empty or absent folder; walden never writes into a folder that holds anything.' })
  }
}

/**
 * Runs the configure-clone hooks in order (hooks.ts: /bin/sh, WALDEN_* variables, output into the job's log); the
 * first that fails fails the clone.
 */
async function configureHooksRun(hooks: readonly string[], context: HookContext, job: JobHandle): Promise<void> {
  // Lines are appended one after another, in the order the hooks wrote them.
  let written: Promise<void> = Promise.resolve()
  const failure = await hooksRun('configure-clone', hooks, { ...context, jobId: job.job.id }, {
    output: (line) => {
      written = written.then(() => job.logAppend(line))
    },
  })
  await written
  if (failure !== undefined) throw hookError(failure)
}

/**
 * After a recovery to the end of the archive (cloneSnapshotEnd's 'end'), checks the clone stopped at the snapshot: the
 * new timeline's history file names where the old one ended. WAL archived between the check and the restore would
 * have taken it further; that clone is not the snapshot, and is refused.
 */
async function cloneEndCheck(clonePath: string, snapshot: BackupRecord): Promise<void> {
  const histories = (await readdir(join(clonePath, 'pg_wal'))).filter((name) => /^[0-9A-F]{8}\.history$/.test(name)).sort()
  const newest = histories.at(-1)
  if (newest === undefined) fail('PgState', `the clone in '${clonePath}' has no timeline history after its promotion`, { hint: 'see the server log.' })
  const entries = timelineHistoryParse(await readFile(join(clonePath, 'pg_wal', newest), 'utf8'), Number.parseInt(newest.slice(0, 8), 16))
  const switched = entries.at(-1)?.switchLsn
  if (switched === undefined || switched > lsnParse(snapshot.lsnStop)) {
    fail('BackupMismatch', `the clone replayed past snapshot ${snapshot.label} (to ${switched === undefined ? 'an unknown point' : lsnFormat(switched)}, the snapshot is consistent at ${snapshot.lsnStop}): WAL after the snapshot was archived while the clone was made`, {
      hint: 'run clone-create again: with that WAL archived, recovery stops exactly at the snapshot.',
    })
  }
}

/** Stops a clone's server if one runs on its folder (pg_ctl stop -m fast) and checks it is gone. */
async function cloneStop(cfg: Config, path: string, major: number): Promise<void> {
  if (!(await pgRunning(path))) return
  await serverControl(cfg, 'stop', path, major)
  if (await pgRunning(path)) fail('PgRunning', `PostgreSQL still runs on '${path}' after pg_ctl stop`, { hint: 'stop it yourself, then run clone-destroy again.' })
}

/** The PostgreSQL major of a data folder, from PG_VERSION; `fallback` when it cannot be read (a half-made clone). */
async function folderMajor(path: string, fallback: number): Promise<number> {
  const text = await readFile(join(path, 'PG_VERSION'), 'utf8').catch(() => '')
  const major = Number.parseInt(text, 10)
  return Number.isFinite(major) ? major : fallback
}

/** Removes a clone's folder whole, or only its contents when it existed before clone-create (`keepFolder`). */
async function cloneFolderRemove(path: string, keepFolder: boolean): Promise<void> {
  if (!keepFolder) {
    await rm(path, { recursive: true, force: true })
    return
  }
  const entries = await readdir(path).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? [] : Promise.reject(error)))
  for (const entry of entries) await rm(join(path, entry), { recursive: true, force: true })
}

/** Removes a snapshot image no clone of the stanza uses any more (clone-image.ts). */
async function imageRemoveUnused(cfg: Config, stanza: string, imagePath: string): Promise<void> {
  if ((await cloneRecordList(cfg, stanza)).some((record) => record.imagePath === imagePath)) return
  await imageRemove(imagePath)
}

function targetText(record: CloneRecord): string {
  return record.type !== undefined && record.target !== undefined ? `${record.type} ${record.target}` : ''
}

export const cloneCreate: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const name = cloneName(cfg)
    const clonePath = resolve(cfg.requireString('clone-path'))
    pgCtlPathCheck(clonePath, 'clone-path')
    // Snapshot images (clone-image.ts) are built, renamed and removed under these names: a clone there would be one.
    if (isImagePath(clonePath)) {
      fail('OptionInvalidValue', `clone path '${clonePath}' is named as walden names its snapshot images`, { hint: "give a folder whose name does not start with '.walden-image-'." })
    }
    const port = cfg.number('clone-port')
    if (port === undefined) fail('OptionRequired', "clone-create command requires option 'clone-port'", { hint: 'give --clone-port=PORT, a port no server on this host uses.' })
    const settings = settingsParse(cfg.list('clone-setting'), 'clone-setting')
    const hooks = cfg.list('clone-hook-configure')
    const target = cloneTarget(cfg)
    const owner: PortOwner = { kind: 'clone', stanza, clone: name }

    return withStagingLock(cfg, stanza, () =>
      jobRun(
        cfg,
        'CLONE',
        stanza,
        async (job) => {
          // 1. Refusals.
          const others = await cloneRecordList(cfg, stanza)
          const existing = others.find((record) => record.name === name) ?? (await cloneRecordRead(cfg, stanza, name))
          if (existing !== undefined) {
            fail('OptionInvalidValue', `clone '${name}' already exists (in '${existing.path}')`, { hint: 'choose another --clone, or remove that one with clone-destroy.' })
          }
          await clonePathCheck(cfg, stanza, clonePath, others)
          await portCheck(cfg, port, 'clone-port', owner)
          const { storage } = await repoOpen(cfg)
          const info = await backupInfoLoad(storage, stanza)
          const snapshot = snapshotChoose(info.backups, stanza, cfg.string('set'), target)
          const manifest = await manifestLoad(storage, stanza, snapshot.label)
          if (target !== undefined) await cloneTargetReachCheck(storage, stanza, snapshot, manifest, target)
          const snapshotEnd = target === undefined ? await cloneSnapshotEnd(storage, stanza, snapshot, manifest) : undefined
          // Tablespaces recorded at the staging copy's locations go beside the clone instead, one folder per OID.
          const tablespaces = manifest.targets.filter((entry) => entry.name !== 'pg_data' && entry.tablespaceOid !== undefined)
          const tablespacePath = tablespaces.length > 0 ? `${clonePath}.tablespaces` : undefined
          if (tablespacePath !== undefined && !(await folderEmpty(tablespacePath))) {
            fail('PathNotEmpty', `'${tablespacePath}', where the clone's tablespaces go, is not empty`, { hint: 'give a clone-path whose .tablespaces folder is absent or empty.' })
          }
          const tablespaceMap = Object.fromEntries(tablespaces.map((entry) => [String(entry.tablespaceOid), join(tablespacePath!, String(entry.tablespaceOid))]))
          const imagePath = imagePathFor(clonePath, stanza, snapshot.label)
          log.info(`clone '${name}' from snapshot ${snapshot.label}${target !== undefined ? ` at ${target.type} '${target.target}'` : ''} into '${clonePath}' on port ${port}`)

          // 2. The port and the record, before the folder.
          await portReserve(cfg, port, 'clone-port', owner)
          const record: CloneRecord = {
            stanza,
            name,
            path: clonePath,
            port,
            snapshot: snapshot.label,
            ...(target !== undefined ? { type: target.type, target: target.target } : {}),
            settings: [...cfg.list('clone-setting')],
            created: new Date().toISOString(),
            ...(tablespacePath !== undefined ? { tablespacePath } : {}),
            // Recorded whether or not an image is made, before anything is: clone-destroy of the last clone naming it
            // removes it (and a half-built one), and a name that is not an image's is never removed.
            imagePath,
          }
          const folderExisted = await stat(clonePath).then(() => true, () => false)
          try {
            await cloneRecordWrite(cfg, record)
            // 3. Restore, settings, start.
            await mkdir(clonePath, { recursive: true, mode: 0o700 })
            const request = {
              clonePath,
              clonePort: port,
              label: snapshot.label,
              ...(target !== undefined ? { target } : {}),
              ...(snapshotEnd !== undefined ? { snapshotEnd } : {}),
              ...(tablespacePath !== undefined ? { tablespaceMap } : {}),
            }
            // With reflinks between the image's folder and the clone's, the clone is a copy of the snapshot's image
            // (clone-image.ts); without, a full restore as always.
            if (await reflinkProbe(dirname(imagePath), clonePath)) await cloneRestoreFromImage(cfg, request, imagePath)
            else await cloneRestore(cfg, request)
            await settingsApply(clonePath, cloneOwnSettings(port), settings)
            await cloneStart(cfg, clonePath, manifest.pg.version, { user: cfg.string('pg1-user') ?? 'postgres', database: cfg.string('pg1-database') ?? 'postgres' })
            if (snapshotEnd === 'end') await cloneEndCheck(clonePath, snapshot)
            // 4. The configure-clone hooks, on the started clone.
            await configureHooksRun(
              hooks,
              {
                stanza,
                snapshot: { label: snapshot.label, startLsn: snapshot.lsnStart, stopLsn: snapshot.lsnStop, timeline: snapshot.timeline },
                clone: { name, path: clonePath, port },
              },
              job,
            )
          } catch (error) {
            log.warn(`clone '${name}' failed; removing what was made of it`)
            await cloneStop(cfg, clonePath, manifest.pg.version).catch((stopError: unknown) => log.warn(`unable to stop the clone's server: ${(stopError as Error).message}`))
            if (!(await pgRunning(clonePath))) {
              await cloneFolderRemove(clonePath, folderExisted)
              if (tablespacePath !== undefined) await rm(tablespacePath, { recursive: true, force: true })
              await portRelease(cfg, owner)
              await cloneRecordRemove(cfg, stanza, name)
              await imageRemoveUnused(cfg, stanza, imagePath).catch((imageError: unknown) => log.warn(`unable to remove the snapshot image '${imagePath}': ${(imageError as Error).message}`))
            }
            throw error
          }
          // Only now is the clone what its record says; a clone-create killed before this leaves a record clone-list
          // shows as incomplete (clone-destroy removes it).
          await cloneRecordWrite(cfg, { ...record, ready: new Date().toISOString() })
          process.stdout.write(`clone '${name}' of stanza '${stanza}' is running on port ${port} in '${clonePath}' (snapshot ${snapshot.label}${target !== undefined ? `, ${target.type} ${target.target}` : ''})\n`)
          return 0
        },
        { clone: name },
      ),
    )
  },
}

export const cloneList: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const records = await cloneRecordList(cfg, stanza)
    const rows = await Promise.all(records.map(async (record) => ({ record, running: await pgRunning(record.path) })))
    const image = new Map<string, { path: string; bytes: number }>()
    for (const path of new Set(records.map((record) => record.imagePath).filter((path) => path !== undefined))) {
      const bytes = await imageBytes(path)
      if (bytes !== undefined) image.set(path, { path, bytes })
    }
    if (cfg.string('output') === 'json') {
      const json = rows.map(({ record, running }) => ({
        name: record.name,
        path: record.path,
        port: record.port,
        snapshot: record.snapshot ?? null,
        type: record.type ?? 'immediate',
        target: record.target ?? null,
        created: record.created,
        // False while clone-create runs, and for good if it was killed: clone-destroy removes what it made.
        ready: record.ready !== undefined,
        running,
        // The snapshot image this clone shares blocks with, and the bytes it holds on disk (shared with its clones).
        image: image.get(record.imagePath ?? '') ?? null,
      }))
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
      return 0
    }
    if (rows.length === 0) {
      process.stdout.write(`stanza '${stanza}' has no clones\n`)
      return 0
    }
    const header = ['name', 'port', 'running', 'snapshot', 'target', 'created', 'path']
    const table = rows.map(({ record, running }) => [record.name, String(record.port), record.ready === undefined ? 'incomplete' : running ? 'yes' : 'no', record.snapshot ?? '-', targetText(record) || '-', record.created, record.path])
    const widths = header.map((title, column) => Math.max(title.length, ...table.map((row) => row[column]!.length)))
    const line = (cells: readonly string[]): string => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')
    process.stdout.write(`${[line(header), ...table.map(line)].join('\n')}\n`)
    return 0
  },
}

export const cloneDestroy: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const name = cloneName(cfg)
    return withStagingLock(cfg, stanza, () =>
      jobRun(
        cfg,
        'CLONE_DESTROY',
        stanza,
        async () => {
          const record = await cloneRecordRead(cfg, stanza, name)
          if (record === undefined) fail('FileMissing', `clone '${name}' does not exist`, { hint: `\`walden --stanza=${stanza} clone-list\` shows the clones of the stanza.` })
          const given = cfg.string('clone-path')
          if (given !== undefined && resolve(given) !== record.path) {
            fail('OptionInvalidValue', `clone-path '${given}' is not the folder of clone '${name}' ('${record.path}')`, {
              hint: 'clone-destroy removes only the folder recorded for the clone; leave --clone-path out, or give that folder.',
            })
          }
          // The record names the folder to remove: refuse one that is the staging cluster's, whatever happened to it.
          const staging = await stagingRecordRead(cfg, stanza)
          if (record.path === '/' || (staging !== undefined && resolve(staging.path) === record.path)) {
            fail('FileInvalid', `the record of clone '${name}' names '${record.path}', which is not a clone's folder`, { hint: 'remove the record file under spool-path by hand after checking it.' })
          }
          const major = await folderMajor(record.path, 0)
          await cloneStop(cfg, record.path, major)
          await cloneFolderRemove(record.path, false)
          if (record.tablespacePath !== undefined) await rm(record.tablespacePath, { recursive: true, force: true })
          await portRelease(cfg, { kind: 'clone', stanza, clone: name })
          await cloneRecordRemove(cfg, stanza, name)
          // The clone is gone whatever happens here; an image left behind is said, and clone-list no longer shows it.
          const imagePath = record.imagePath
          if (imagePath !== undefined) {
            await imageRemoveUnused(cfg, stanza, imagePath).catch((imageError: unknown) =>
              log.warn(`unable to remove the snapshot image '${imagePath}': ${(imageError as Error).message}; remove that folder by hand`),
            )
          }
          process.stdout.write(`clone '${name}' of stanza '${stanza}' destroyed: server stopped, '${record.path}' removed\n`)
          return 0
        },
        { clone: name },
      ),
    )
  },
}
