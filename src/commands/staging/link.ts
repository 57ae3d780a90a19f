// staging-link: checks everything it was given, then links the staging copy in two jobs.
//
//   DB_LINK  validation (one clear error each, before anything is created), the port assigned on this host, the
//            record written (SPOOL-PATH/staging/copy/<stanza>.json).
//   DB_SYNC  the initial load: the user's pg_basebackup copied in (external ways, backup-load.ts) or a base backup
//            taken over the replication protocol (initiated, link-initiated.ts); the slot on the source (streaming
//            ways); the hot-standby settings (standby.ts); the server started and answering; the stanza created
//            against it when absent.
//
// A DB_SYNC that fails undoes the link: it stops the staging cluster, removes what it loaded (the folder was empty),
// drops a slot it created, releases the port and forgets the record, so the same staging-link can simply be run
// again. The user's backup is only read.

import { spawn } from 'node:child_process'
import { readdir, rm, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { pgBinFor } from '../../pg/binaries.js'
import { pgControlRead } from '../../pg/control.js'
import { pgVersionSupported } from '../../pg/version.js'
import type { Command } from '../command.js'
import { pgCtlPathCheck } from '../server-control.js'
import { baseBackupInspect, baseBackupLoad, tablespaceRoot } from './backup-load.js'
import type { BaseBackupSource } from './backup-load.js'
import { jobRun } from './jobs.js'
import { portCheck, portReserve } from './ports.js'
import { settingsParse } from './settings.js'
import { slotDrop, slotEnsure, stagingSocketDir, stagingSourceParse, stagingStart, stagingStop, stagingSlotName, standbyConfigure, stagingStreams } from './standby.js'
import { folderEmpty, portRelease, stagingRecordRead, stagingRecordRemove, stagingRecordWrite, withStagingLock } from './state.js'
import type { StagingMethod, StagingRecord } from './state.js'

/** The fields each way needs, by option name. */
const MANDATORY: Readonly<Record<StagingMethod, readonly string[]>> = {
  initiated: ['staging-path', 'staging-port', 'staging-source'],
  'external-wal': ['staging-path', 'staging-port', 'staging-backup-path', 'staging-wal-path'],
  'external-streaming': ['staging-path', 'staging-port', 'staging-backup-path', 'staging-source'],
}

interface LinkPlan {
  record: StagingRecord
  backup?: BaseBackupSource
}

/** The one backup path staging-backup-path may hold; more than one is refused. */
export function backupPathOf(cfg: Config): string | undefined {
  const paths = cfg.list('staging-backup-path')
  if (paths.length > 1) {
    fail('OptionInvalid', `option 'staging-backup-path' is given ${paths.length} times (${paths.map((path) => `'${path}'`).join(', ')}): a staging copy loads exactly one base backup`, {
      hint: 'give staging-backup-path once, naming the folder of one pg_basebackup.',
    })
  }
  const path = paths[0]
  if (path !== undefined && !path.startsWith('/')) {
    fail('OptionInvalidValue', `option 'staging-backup-path' must be an absolute path, not '${path}'`)
  }
  return path === undefined ? undefined : resolve(path)
}

/** Refuses a data folder (or tablespace folder) that holds anything: walden never loads over someone's files. */
export async function emptyFolderCheck(path: string, what: string): Promise<void> {
  if (!(await folderEmpty(path))) {
    fail('PathNotEmpty', `${what} '${path}' is not empty`, {
      hint: 'give an empty or absent folder: walden loads the staging copy into it and never overwrites files.',
    })
  }
}

/** Everything staging-link was given, checked; nothing is created here. */
async function linkValidate(cfg: Config, stanza: string): Promise<LinkPlan> {
  const method = cfg.string('staging-method') as StagingMethod | undefined
  if (method === undefined) {
    fail('OptionRequired', "staging-link command requires option 'staging-method'", {
      hint: 'give --staging-method=initiated, external-wal or external-streaming (see `walden help staging-link`).',
    })
  }
  const backupPath = backupPathOf(cfg)
  const given: Record<string, unknown> = {
    'staging-path': cfg.string('staging-path'),
    'staging-port': cfg.number('staging-port'),
    'staging-backup-path': backupPath,
    'staging-wal-path': cfg.string('staging-wal-path'),
    'staging-source': cfg.string('staging-source'),
  }
  const missing = MANDATORY[method].filter((name) => given[name] === undefined)
  if (missing.length > 0) {
    const named = missing.map((name) => `'${name}'`)
    const list = named.length === 1 ? `option ${named[0]}` : `options ${named.slice(0, -1).join(', ')} and ${named.at(-1)}`
    fail('OptionRequired', `staging-link --staging-method=${method} requires ${list}`, {
      hint: `give ${missing.map((name) => `--${name}`).join(', ')}, or set ${missing.length > 1 ? 'them' : 'it'} in the stanza's section of the config file.`,
    })
  }
  // Options the way does not use are said to be ignored, not silently dropped.
  if (method === 'external-streaming' && given['staging-wal-path'] !== undefined) {
    log.warn("both a WAL folder and streaming are given: streaming wins, staging-wal-path is ignored")
  }
  if (method === 'external-wal' && given['staging-source'] !== undefined) {
    log.warn('staging-source is ignored by staging-method=external-wal, which replays the WAL folder (use external-streaming to stream)')
  }
  if (method === 'initiated' && backupPath !== undefined) {
    log.warn('staging-backup-path is ignored by staging-method=initiated, which takes its own base backup of the source')
  }
  const path = cfg.string('staging-path')!
  pgCtlPathCheck(path, 'staging-path')
  const port = cfg.number('staging-port')!
  const source = method === 'external-wal' ? undefined : cfg.string('staging-source')!
  if (source !== undefined) stagingSourceParse(source)
  const settings = [...cfg.list('staging-setting')]
  settingsParse(settings, 'staging-setting')

  // The stanza's pg1-path and pg1-port are the staging cluster's: snapshots are backups of it.
  const pg1Path = cfg.string('pg1-path')
  if (pg1Path !== undefined && resolve(pg1Path) !== resolve(path)) {
    fail('OptionInvalidValue', `the stanza's pg1-path '${pg1Path}' is not staging-path '${path}'`, {
      hint: "a stanza with a staging copy backs that copy up: set pg1-path to staging-path (or leave it out).",
    })
  }
  if (cfg.source('pg1-port') !== undefined && cfg.source('pg1-port') !== 'default' && cfg.number('pg1-port') !== port) {
    fail('OptionInvalidValue', `the stanza's pg1-port ${cfg.number('pg1-port')} is not staging-port ${port}`, {
      hint: 'a stanza with a staging copy backs that copy up: set pg1-port to staging-port (or leave it out).',
    })
  }

  const existing = await stagingRecordRead(cfg, stanza)
  if (existing !== undefined) {
    fail('OptionInvalid', `stanza '${stanza}' already has a staging copy on this host ('${existing.path}', port ${existing.port}, linked ${existing.linkedAt})`, {
      hint: 'resync it with staging-resync, or unlink it first with staging-unlink.',
    })
  }
  await portCheck(cfg, port, 'staging-port', { kind: 'staging', stanza })
  await emptyFolderCheck(path, 'staging-path')
  if (method === 'initiated') {
    // Last, as the only check that reaches the source: a wrong password or pg_hba.conf line is refused here, before
    // the record and the port are written.
    const { initiatedSourceCheck } = await import('./link-initiated.js')
    await initiatedSourceCheck(source!)
  }

  let backup: BaseBackupSource | undefined
  if (method !== 'initiated') {
    backup = await baseBackupInspect(backupPath!)
    if (backup.format === 'plain') {
      if (!pgVersionSupported(backup.major)) {
        fail('VersionNotSupported', `the base backup in '${backupPath}' is of PostgreSQL ${backup.major}, which walden does not support`)
      }
      // The server that will run it must be here before anything is copied (fails naming the majors there are).
      await pgBinFor(backup.major)
    }
    if (backup.tablespaces.length > 0) await emptyFolderCheck(tablespaceRoot(path), 'the staging tablespace folder')
  }
  if (method === 'external-wal') await walFolderCheck(cfg.string('staging-wal-path')!)

  return {
    record: {
      stanza,
      method,
      path,
      port,
      ...(backupPath !== undefined && method !== 'initiated' ? { backupPath } : {}),
      ...(method === 'external-wal' ? { walPath: cfg.string('staging-wal-path')! } : {}),
      ...(source !== undefined ? { source, slotName: stagingSlotName(stanza) } : {}),
      settings,
      enabled: true,
      linkedAt: new Date().toISOString(),
    },
    ...(backup !== undefined ? { backup } : {}),
  }
}

async function walFolderCheck(path: string): Promise<void> {
  try {
    if (!(await stat(path)).isDirectory()) fail('PathMissing', `staging-wal-path '${path}' is not a folder`)
    await readdir(path)
  } catch (error) {
    if (errnoCode(error) === undefined) throw error
    fail('PathMissing', `staging-wal-path '${path}' cannot be read: ${(error as Error).message}`, {
      hint: "create it, readable by the user running walden; the source's archive_command copies WAL files into it.",
    })
  }
}

/** How far an initial load got, for undoing it: whether it created the slot on the source. */
export interface LoadProgress {
  slotCreated: boolean
}

/**
 * The initial load of a staging copy into its (empty) folder, the way it is linked, then configured as a hot standby,
 * started and checked. Used by staging-link and staging-resync; `progress` says what to undo when it fails.
 */
export async function initialLoad(cfg: Config, record: StagingRecord, backup: BaseBackupSource | undefined, progress: LoadProgress): Promise<void> {
  if (record.method === 'initiated') {
    const { initiatedLoad } = await import('./link-initiated.js')
    // The slot is made before the base backup (so that it holds the WAL from there on): undo must drop it too.
    progress.slotCreated = (await initiatedLoad(cfg, record)).slotCreated
  } else {
    await baseBackupLoad(backup!, record.path)
  }
  const control = await pgControlRead(record.path)
  // A resync must load the same cluster: the stanza's snapshots and the WAL folder belong to it.
  if (record.systemId !== undefined && record.systemId !== control.systemId.toString()) {
    fail('DbMismatch', `the base backup loaded is of another cluster: system identifier ${control.systemId}, the staging copy's is ${record.systemId}`, {
      hint: 'give a pg_basebackup of the source this copy was linked to; for another source, unlink and link under another stanza.',
    })
  }
  record.systemId = control.systemId.toString()
  record.pgVersion = control.version
  if (stagingStreams(record) && record.method !== 'initiated') progress.slotCreated = await slotEnsure(record)
  await standbyConfigure(cfg, record)
  await stagingStart(cfg, record)
  record.syncedAt = new Date().toISOString()
}

/**
 * Creates the stanza against the staging cluster, when absent: `walden stanza-create` with pg1-path and pg1-port
 * (and the socket folder, unless pg1-socket-path is set) of the staging cluster. Run as its own process, as a user
 * would, so that it reads the same config file and takes its own lock.
 */
export async function stanzaEnsure(cfg: Config, record: StagingRecord): Promise<void> {
  const socketDir = await stagingSocketDir(cfg, record)
  const forwarded = cfg
    .explicitArguments('stanza-create')
    .filter((arg) => !/^--(pg1-path|pg1-port|pg1-socket-path|log-level-console)=/.test(arg))
  const args = [
    ...process.execArgv,
    resolve(process.argv[1] ?? 'walden'),
    ...forwarded,
    `--pg1-path=${record.path}`,
    `--pg1-port=${record.port}`,
    ...(cfg.string('pg1-socket-path') === undefined && socketDir !== undefined ? [`--pg1-socket-path=${socketDir}`] : []),
    '--log-level-console=error',
    'stanza-create',
  ]
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolveExit, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let text = ''
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()))
    child.on('error', reject)
    child.on('close', (status) => resolveExit({ code: status ?? 1, stderr: text.trim() }))
  })
  if (code !== 0) {
    const first = stderr.split('\n').find((line) => line.includes('ERROR')) ?? stderr.split('\n')[0] ?? ''
    fail('RepoInvalid', `stanza-create for the staging copy failed (exit ${code}): ${first.replace(/^.*ERROR: /, '')}`, {
      hint: 'the staging cluster is the stanza\'s cluster: a stanza made for another cluster cannot take its snapshots.',
    })
  }
  log.info(`stanza '${record.stanza}' is ready in the repository for the staging copy's snapshots`)
}

/** Undoes a link whose DB_SYNC failed: see the top of this file. Each step is tried even when one before failed. */
async function linkUndo(cfg: Config, record: StagingRecord, slotCreated: boolean, folderExisted: boolean): Promise<void> {
  const steps: Array<[string, () => Promise<void>]> = [
    ['stop the staging cluster', async () => (record.pgVersion !== undefined ? stagingStop(cfg, record) : undefined)],
    ['drop the replication slot', async () => (slotCreated ? slotDrop(record, { warnOnly: true }) : undefined)],
    [
      'remove what was loaded',
      async () => {
        if (folderExisted) {
          for (const entry of await readdir(record.path).catch(() => [] as string[])) await rm(`${record.path}/${entry}`, { recursive: true, force: true })
        } else {
          await rm(record.path, { recursive: true, force: true })
        }
        await rm(tablespaceRoot(record.path), { recursive: true, force: true })
      },
    ],
    ['release the port', async () => portRelease(cfg, { kind: 'staging', stanza: record.stanza })],
    ['forget the record', async () => stagingRecordRemove(cfg, record.stanza)],
  ]
  for (const [what, step] of steps) {
    await step().catch((error: unknown) => log.warn(`after the failed link, unable to ${what}: ${(error as Error).message}`))
  }
}

export const stagingLink: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    return withStagingLock(cfg, stanza, async () => {
      const plan = await jobRun(cfg, 'DB_LINK', stanza, async () => {
        const validated = await linkValidate(cfg, stanza)
        // Checked again inside the host-wide port lock, so two links at once cannot both take the port.
        await portReserve(cfg, validated.record.port, 'staging-port', { kind: 'staging', stanza })
        await stagingRecordWrite(cfg, validated.record)
        return validated
      })
      const { record } = plan
      const folderExisted = await stat(record.path).then(() => true, () => false)
      const progress: LoadProgress = { slotCreated: false }
      await jobRun(cfg, 'DB_SYNC', stanza, async () => {
        try {
          await initialLoad(cfg, record, plan.backup, progress)
          await stanzaEnsure(cfg, record)
          await stagingRecordWrite(cfg, record)
        } catch (error) {
          log.warn('the initial load failed: undoing the link, so that staging-link can simply be run again')
          await linkUndo(cfg, record, progress.slotCreated, folderExisted)
          throw error
        }
      })
      process.stdout.write(
        `staging copy of stanza '${stanza}' linked (${record.method}): PostgreSQL ${record.pgVersion} on '${record.path}', port ${record.port}\n`,
      )
      return 0
    })
  },
}
