// restore: rebuilds a cluster's data directory from a backup and sets up recovery.
//
// Safety first: never over a running cluster (--stop-old stops it first), never over a non-empty folder unless --delta
// or --force (--keep-old-data moves it aside instead), never a delta over another cluster's files. Every file is
// verified against its SHA-256 as it is written.
//
// Several repositories: the backup is read from the first repository holding one that suits the request (select.ts),
// and a file missing or damaged there is taken from another repository holding the same content (copy.ts, heal.ts).

import { lstat, mkdir, readdir, readFile, readlink, rm, symlink, chmod } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { formatBytes } from '../../common/progress.js'
import { WorkerPool } from '../../parallel/pool.js'
import { confValueCheck, settingName } from '../../pg/conf-syntax.js'
import { pgControlRead } from '../../pg/control.js'
import { manifestFileRepoPath } from '../../repo/manifest.js'
import type { Manifest, ManifestFile } from '../../repo/manifest.js'
import { PosixStorage, syncFilesystem, syncFilesystemAvailable, syncFolder } from '../../storage/posix.js'
import type { Config } from '../../config/config.js'
import { OPTIONS, optionEnvName } from '../../config/options.js'
import type { OptionDef, OptionName } from '../../config/options.js'
import type { Command } from '../command.js'
import { repoIndexes, repoLocation, repoSelected } from '../repo-storage.js'
import { pgRunning } from '../../pg/data-dir.js'
import { restoreCopy } from './copy.js'
import { waldenCommandLine } from '../walden-command.js'
import { autoConfRewrite, recoverySettings, signalFile } from './recovery.js'
import { standbyPrepare } from './standby.js'
import { keepOldData, oldDataAsideCheck, oldDataKeepAside, oldDataOptionsCheck, oldServerStop } from './old-data.js'
import { serverControl } from '../server-control.js'
import { configRestoreApply, configRestorePlan } from './config-files.js'
import { contentIndexBuild } from './heal.js'
import type { ContentIndex } from './heal.js'
import { restoreSourceSelect } from './select.js'
import { targetCheck } from './target.js'
import { checkTablespaceTargets, destinationOf, isEmptyFolder, restoreTargets } from './targets.js'
import type { RestoreTarget } from './targets.js'

const TARGET_TYPES = new Set(['time', 'xid', 'name', 'lsn'])
const PG_CONTROL = 'global/pg_control'
/** Where a data folder keeps its own recovery settings (PostgreSQL 12 and later), kept by --type=preserve. */
const PRESERVED_FILES = ['postgresql.auto.conf', 'standby.signal', 'recovery.signal']

/** Removes everything under `root` that the backup does not have: the delta's clean-up. */
async function removeUnknown(root: string, expectFiles: ReadonlySet<string>, expectFolders: ReadonlySet<string>, expectLinks: ReadonlySet<string>): Promise<number> {
  let removed = 0
  let entries: string[]
  try {
    entries = await readdir(root)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 0
    fail('FileOpen', `unable to list '${root}': ${(error as Error).message}`, { hint: 'run restore as the user that owns the data folder (usually postgres).' })
  }
  for (const entry of entries) {
    const path = join(root, entry)
    const stat = await lstat(path)
    if (stat.isDirectory() && expectFolders.has(path)) {
      removed += await removeUnknown(path, expectFiles, expectFolders, expectLinks)
    } else if ((stat.isFile() && expectFiles.has(path)) || (stat.isSymbolicLink() && expectLinks.has(path))) {
      continue
    } else {
      log.detail(`remove '${path}': not in the backup`)
      // A link is removed itself, never what it points to.
      await rm(path, { recursive: true, force: true }).catch((error: unknown) =>
        fail('FileWrite', `unable to remove '${path}': ${(error as Error).message}`, { hint: 'run restore as the user that owns the data folder (usually postgres).' }),
      )
      removed++
    }
  }
  return removed
}

export const restore: Command = {
  run: (cfg) => restoreRun(cfg, cfg.string('type') ?? 'default'),
}

/** standby-create: restore --type=standby under the name a DBA looks for. */
export const standbyCreate: Command = {
  run: (cfg) => restoreRun(cfg, 'standby'),
}

async function restoreRun(cfg: Config, type: string): Promise<number> {
  const early = poolWarmEarly(cfg)
  try {
    return await restoreRunWith(cfg, type, early)
  } finally {
    await early?.close()
  }
}

/**
 * From a backup host over SSH, each worker copies through an SSH session of its own, and starting one (ssh's
 * handshake, then Node.js starting `walden remote` there) takes a few tenths of a second. Opened when the workers
 * get their first file, the sessions wait for everything before: the main session's start, the manifest, the
 * checks. So with one repository, remote, and several workers, the pool starts at once and each worker opens its
 * session while the main thread does the rest. With several repositories the one restored from is not known yet.
 */
function poolWarmEarly(cfg: Config): WorkerPool | undefined {
  const workers = cfg.number('process-max') ?? 1
  const indexes = cfg.has('repo') ? repoSelected(cfg) : repoIndexes(cfg)
  if (workers <= 1 || indexes.length !== 1) return undefined
  const location = repoLocation(cfg, indexes[0])
  if (location.type !== 'remote') return undefined
  const pool = new WorkerPool(workers)
  // A session that fails to start here fails again, worded, when the main thread or a worker needs it.
  void pool.runEach('storage.open', location)
  return pool
}

async function restoreRunWith(cfg: Config, type: string, early: WorkerPool | undefined): Promise<number> {
  const stanza = cfg.stanza()
  const pgPath = resolve(cfg.requireString('pg1-path'))
  const target = cfg.string('target')
  const delta = cfg.boolean('delta')
  const force = cfg.boolean('force')

  recoveryOptionsCheck(cfg, type, target)
  oldDataOptionsCheck(cfg)
  const keepOld = keepOldData(cfg)
  if (keepOld && type === 'preserve') {
    fail('OptionInvalid', "option 'keep-old-data' cannot be combined with --type=preserve", {
      hint: 'preserve keeps the recovery settings of the folder restored over; with the old folder kept aside there are none.',
    })
  }
  environmentSecretsWarn(cfg, type)

  const source = await restoreSourceSelect(cfg, stanza, type, target)
  const { backup: chosen, manifest } = source
  const repo = { index: source.index, location: source.location, cipher: source.cipher }
  log.info(`restore backup set ${chosen.label}${repoIndexes(cfg).length > 1 ? ` from repo${source.index}` : ''}`)
  const control = manifest.files.find((file) => file.name === `pg_data/${PG_CONTROL}`)
  if (!control) fail('FileMissing', `backup ${chosen.label} has no global/pg_control`, { hint: 'the repository is damaged; choose another backup with --set.' })

  // Where the old folder goes is checked before the old server is stopped: a refusal then leaves it running.
  const aside = keepOld ? await oldDataAsideCheck(cfg, pgPath, new Date()) : undefined
  await oldServerStop(cfg, pgPath, manifest.pg.version)
  // With --keep-old-data the folder is moved aside below, after the last check: its contents do not matter.
  let emptyOrMissing = await destinationCheck(pgPath, manifest.pg.systemId, chosen.label, delta, force || keepOld)
  const preserved = type === 'preserve' ? await recoveryFilesPresent(pgPath) : []

  const targets = restoreTargets(manifest, pgPath, cfg.hash('tablespace-map'))
  await checkTablespaceTargets(targets, pgPath, delta || force)
  const configItems = await configRestorePlan(cfg, manifest)
  // Last of the checks, as it may create a replication slot on the primary.
  const standbySettings = await standbyPrepare(cfg, type, manifest.pg.version)
  // Rendered once now, before anything is written, so a value the config file cannot hold stops the restore here.
  const recovery = recoverySettingsFor(cfg, type, target, standbySettings)
  autoConfRewrite('', recovery)
  if (aside !== undefined) {
    await oldDataKeepAside(pgPath, aside)
    emptyOrMissing = true
  }

  // A cluster restored part-way must never start: without global/pg_control PostgreSQL refuses to, so the old one
  // goes first and the backup's is written last, after everything else is durable.
  await rm(join(pgPath, PG_CONTROL), { force: true })
  // Durable before anything else is written: after a power loss the old pg_control must not reappear over
  // half-restored files.
  await syncFolder(join(pgPath, 'global'), { missingOk: true })

  const { removed, expectFolders } = await layoutPrepare(manifest, pgPath, targets, !emptyOrMissing || delta || force, preserved.map((name) => join(pgPath, name)))

  // Self-healing from the other repositories, where there are any; their manifests are read only if a file fails.
  let alternatives: Promise<ContentIndex> | undefined
  const healing = repoIndexes(cfg).length > 1 ? { alternatives: () => (alternatives ??= contentIndexBuild(cfg, stanza, source.index)) } : {}
  const repoPathOf = (file: ManifestFile, extension: string, part?: number): string => manifestFileRepoPath(stanza, chosen.label, file, extension, part)

  // Files, largest first, verified against their checksums.
  const files = manifest.files
    .filter((file) => file.name !== `pg_data/${PG_CONTROL}` && !preserved.some((name) => file.name === `pg_data/${name}`))
    .sort((a, b) => b.size - a.size)
  const pool = early ?? new WorkerPool(cfg.number('process-max') ?? 1)
  // One flush per target file system at the end instead of an fsync per file, where the host has it.
  const syncEach = !syncFilesystemAvailable()
  let fetched: number
  let fetchedBytes: number
  try {
    ;({ fetchedFiles: fetched, fetchedBytes } = await restoreCopy({
      pool,
      files,
      repo,
      delta: delta || force,
      syncEach,
      directIo: cfg.boolean('direct-io'),
      destinationOf: (file) => destinationOf(file.name, targets),
      repoPathOf,
      ...healing,
    }))
  } finally {
    await pool.close()
  }

  // Everything durable before backup_label and pg_control make the folder a cluster that starts.
  if (!syncEach) for (const target of targets) syncFilesystem(target.location)
  else for (const folder of expectFolders) await syncFolder(folder)
  // backup_label tells PostgreSQL where replay must start; without it the restored files are not consistent.
  const data = new PosixStorage(pgPath)
  await data.write('backup_label', manifest.backupLabel, { mode: 0o600 })
  await writeRecovery(data, pgPath, type, recovery, preserved)
  // Last: pg_control, atomically (and healed like any other file). From here on the folder is a cluster that starts
  // into recovery.
  const inline = new WorkerPool(1)
  const controlCopy = await restoreCopy({
    pool: inline,
    files: [control],
    repo,
    delta: false,
    syncEach: true,
    directIo: false,
    atomic: true,
    destinationOf: (file) => destinationOf(file.name, targets),
    repoPathOf,
    ...healing,
  })
  fetched += controlCopy.fetchedFiles
  fetchedBytes += controlCopy.fetchedBytes

  log.info(
    `restore of backup ${chosen.label} complete: ${manifest.files.length} files, ${fetched} fetched (${formatBytes(fetchedBytes)})` +
      (delta || force ? `, ${manifest.files.length - fetched} kept, ${removed} removed` : ''),
  )
  const configFile = await configRestoreApply(configItems, new Date())
  if (cfg.boolean('start')) {
    // A postgresql.conf kept outside the data folder is the one the server must read. Its data_directory names the
    // backed-up cluster's folder, and a setting in the file would win over pg_ctl -D: given on the command line, the
    // restored folder wins, so a copy restored elsewhere never starts on the original's files.
    const serverArgs = configFile !== undefined ? ['-c', `config_file=${configFile}`, '-c', `data_directory=${pgPath}`] : []
    await serverControl(cfg, 'start', pgPath, manifest.pg.version, serverArgs)
    log.info(`PostgreSQL started on '${pgPath}'`)
  }
  return 0
}

/**
 * --type=preserve (pgBackRest's meaning): the recovery settings already in the folder stay as they are, so a standby
 * repaired by a delta restore comes back as the same standby. They are left untouched rather than read and written
 * back: a restore interrupted half-way must not lose them either. Returns the names of those present.
 */
async function recoveryFilesPresent(pgPath: string): Promise<string[]> {
  const present: string[] = []
  for (const name of PRESERVED_FILES) {
    if ((await lstat(join(pgPath, name)).catch(() => undefined))?.isFile()) present.push(name)
  }
  if (present.length === 0) {
    log.warn(`--type=preserve, but '${pgPath}' has no recovery settings to keep (${PRESERVED_FILES.join(', ')}); the backup's postgresql.auto.conf is restored and no signal file written`)
  }
  return present
}

/**
 * Writes into a restored folder the recovery settings (postgresql.auto.conf, signal file) that a restore with this
 * Config would write. For a copy of a folder restored with --type=none: staging's snapshot images
 * (staging/clone-image.ts), which are restored once and copied for each clone with the clone's own recovery. Standby
 * and preserve are not recoveries of that kind: a standby prepares its primary, preserve has nothing to write.
 */
export async function restoreRecoveryWrite(cfg: Config, pgPath: string): Promise<void> {
  const type = cfg.string('type') ?? 'default'
  if (type === 'standby' || type === 'preserve') fail('Assert', `restoreRecoveryWrite is not for --type=${type}`)
  const target = cfg.string('target')
  recoveryOptionsCheck(cfg, type, target)
  const recovery = recoverySettingsFor(cfg, type, target, {})
  await writeRecovery(new PosixStorage(pgPath), pgPath, type, recovery, [])
}

/** The recovery options must make sense together before anything is read or written. */
function recoveryOptionsCheck(cfg: Config, type: string, target: string | undefined): void {
  if (TARGET_TYPES.has(type) && target === undefined) {
    fail('OptionRequired', `restore --type=${type} requires option 'target'`, { hint: `give --target=... for the ${type} to recover to.` })
  }
  if (target !== undefined) targetCheck(type, target)
  // Checked before anything else, as standby preparation may already create a slot on the primary.
  if (target !== undefined) confValueCheck('the recovery target', target, "option 'target'")
  for (const [key, value] of Object.entries(cfg.hash('recovery-option'))) {
    confValueCheck(settingName(key, "option 'recovery-option' name"), value, `option 'recovery-option'`)
  }
  if (!TARGET_TYPES.has(type) && target !== undefined) {
    fail('OptionInvalid', `option 'target' is only valid with --type=time, xid, name or lsn, not --type=${type}`)
  }
  // Target settings mean nothing without a target: PostgreSQL would ignore them, and the DBA would think the
  // server is going to pause or promote when it will not.
  if ((cfg.source('target-action') ?? 'default') !== 'default' && !TARGET_TYPES.has(type) && type !== 'immediate') {
    fail('OptionInvalid', `option 'target-action' is only valid with --type=immediate, time, xid, name or lsn, not --type=${type}`, {
      hint: 'without a target, recovery replays all archived WAL and the server opens for writes at its end.',
    })
  }
  // PostgreSQL applies recovery_target_inclusive to time, xid and lsn targets only.
  if ((cfg.source('target-exclusive') ?? 'default') !== 'default' && !['time', 'xid', 'lsn'].includes(type)) {
    fail('OptionInvalid', `option 'target-exclusive' is only valid with --type=time, xid or lsn, not --type=${type}`, {
      hint: 'a restore point or the end of the backup is a single point: there is nothing to stop before.',
    })
  }
}

/**
 * The cluster must not be running, and the folder must be empty unless the user asked to overwrite it; a delta
 * never goes over another cluster's files. Returns whether the folder is empty (or missing).
 */
async function destinationCheck(pgPath: string, systemId: string, label: string, delta: boolean, force: boolean): Promise<boolean> {
  if (await pgRunning(pgPath)) {
    fail('PgRunning', `PostgreSQL is running on '${pgPath}'`, { hint: 'stop it before restoring over it.' })
  }
  const emptyOrMissing = await isEmptyFolder(pgPath)
  if (!emptyOrMissing && !delta && !force) {
    fail('PathNotEmpty', `unable to restore to '${pgPath}' because it contains files`, {
      hint: 'restore into an empty folder, or give --delta to repair this one by checksum (--force to overwrite anything).',
    })
  }
  if (!emptyOrMissing && !force) {
    // A delta keeps files whose checksum matches; over another cluster's files that would mix two clusters.
    const control = await pgControlRead(pgPath).catch(() => undefined)
    if (control === undefined) {
      fail('PathNotEmpty', `'${pgPath}' is not empty and has no readable global/pg_control, so a delta restore cannot tell whose files it holds`, {
        hint: 'empty the folder, or give --force to overwrite it.',
      })
    }
    if (control.systemId.toString() !== systemId) {
      fail('DbMismatch', `'${pgPath}' holds the cluster with system identifier ${control.systemId}, not ${systemId} of backup ${label}`, {
        hint: 'a delta restore over another cluster would mix them; empty the folder, or give --force.',
      })
    }
  }
  return emptyOrMissing
}

/**
 * Folders, tablespace links and clean-up, before any file is written; `clean` removes what the backup does not have.
 * Returns how many entries were removed and the folders the restore fills.
 */
async function layoutPrepare(
  manifest: Manifest,
  pgPath: string,
  targets: RestoreTarget[],
  clean: boolean,
  keep: readonly string[],
): Promise<{ removed: number; expectFolders: Set<string> }> {
  // Folders, tablespace links and clean-up before any file is written. Other links of the backed-up cluster come
  // back as plain folders and files (see scan.ts).
  const tablespaceLinks = new Map(targets.filter((target) => target.tablespace).map((target) => [join(pgPath, target.name), target.location]))
  const expectFiles = new Set([...manifest.files.map((file) => destinationOf(file.name, targets)), ...keep])
  const expectFolders = new Set(manifest.paths.map((path) => destinationOf(path.name, targets)))
  let removed = 0
  if (clean) {
    for (const target of targets) removed += await removeUnknown(target.ownRoot, expectFiles, expectFolders, new Set(tablespaceLinks.keys()))
  }
  for (const folder of manifest.paths) {
    const path = destinationOf(folder.name, targets)
    await mkdir(path, { recursive: true, mode: folder.mode })
    await chmod(path, folder.mode)
  }
  for (const [path, destination] of tablespaceLinks) {
    if ((await readlink(path).catch(() => undefined)) === destination) continue
    await rm(path, { recursive: true, force: true })
    await symlink(destination, path)
  }
  if (manifest.links.length > 0) {
    log.info(`restored as plain folders and files: ${manifest.links.map((link) => `'${link.name.slice('pg_data/'.length)}' (was a link to '${link.destination}')`).join(', ')}`)
  }
  return { removed, expectFolders }
}

/** The settings restore writes into postgresql.auto.conf for this recovery type (see recovery.ts). */
/**
 * Secrets (an S3 secret, a passphrase) are never written into restore_command, so an archive-get that PostgreSQL runs
 * later sees only the config file: one given to this restore in the environment is missing then (or the config file's
 * value is used instead), and recovery stops at the first segment it cannot fetch. Said now, while the user is watching, not in the server
 * log hours later.
 */
function environmentSecretsWarn(cfg: Config, type: string): void {
  if (type === 'preserve' || type === 'none') return
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const def: OptionDef = OPTIONS[name]
    if (def.notOnCommandLine !== true || !def.commands.includes('archive-get') || cfg.source(name) !== 'environment') continue
    log.warn(
      `${name} comes from the environment (${optionEnvName(name)}), which restore_command will not have when PostgreSQL runs it: ` +
        'recovery can fetch WAL only if the config file has it too (mode 0600)',
    )
  }
}

function recoverySettingsFor(
  cfg: Config,
  type: string,
  target: string | undefined,
  standbySettings: Readonly<Record<string, string>>,
): Map<string, string> {
  const timeline = cfg.string('target-timeline')
  return recoverySettings({
    type,
    ...(target !== undefined ? { target } : {}),
    targetAction: cfg.string('target-action') ?? 'pause',
    targetExclusive: cfg.boolean('target-exclusive'),
    ...(timeline !== undefined ? { targetTimeline: timeline } : {}),
    restoreCommand: waldenCommandLine(cfg, 'archive-get', '%f "%p"'),
    // A port given for this restore (a copy beside its source on one host) is the restored cluster's port.
    options: {
      ...(['command line', 'environment'].includes(cfg.source('pg1-port') ?? 'default') ? { port: String(cfg.number('pg1-port')) } : {}),
      ...standbySettings,
      // A primary_conninfo given this way was cleaned of its password by standbyPrepare: that version wins.
      ...Object.fromEntries(Object.entries(cfg.hash('recovery-option')).filter(([key]) => !(key.toLowerCase() === 'primary_conninfo' && 'primary_conninfo' in standbySettings))),
    },
    archiveOff: cfg.string('archive-mode') === 'off',
  })
}

async function writeRecovery(data: PosixStorage, pgPath: string, type: string, settings: ReadonlyMap<string, string>, preserved: readonly string[]): Promise<void> {
  const autoConf = join(pgPath, 'postgresql.auto.conf')
  const existing = await readFile(autoConf, 'utf8').catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return ''
    throw error
  })
  if (settings.size > 0) {
    const rewritten = autoConfRewrite(existing, settings)
    await data.write('postgresql.auto.conf', rewritten.text, { mode: 0o600 })
    if (rewritten.commentedOut.length > 0) {
      log.warn(
        `commented out ${[...new Set(rewritten.commentedOut)].join(', ')} in '${autoConf}': set outside walden's block of recovery settings ` +
          '(by the backed-up cluster, by hand, or by an earlier restore) they would steer this recovery unasked; give a setting to restore as --recovery-option to keep it',
      )
    }
  }
  const signal = signalFile(type)
  if (signal !== undefined) await data.write(signal, '', { mode: 0o600 })
  if (type === 'preserve') {
    log.info(preserved.length > 0 ? `recovery settings preserved: ${preserved.join(', ')} kept as they were` : 'no recovery settings written')
    return
  }
  log.info(signal ? `recovery settings written: ${[...settings.keys()].join(', ')}; ${signal} created` : 'no recovery settings written')
}
