// restore: rebuilds a cluster's data directory from a backup and sets up recovery.
//
// Safety first: never over a running cluster, never over a non-empty folder unless --delta or --force, never a
// delta over another cluster's files. Every file is verified against its SHA-256 as it is written.

import { lstat, mkdir, readdir, readFile, readlink, rm, symlink, chmod } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { formatBytes } from '../../common/progress.js'
import { codecFor } from '../../io/compress.js'
import { WorkerPool } from '../../parallel/pool.js'
import { pgControlRead } from '../../pg/control.js'
import { manifestFileRepoPath, manifestLoad } from '../../repo/manifest.js'
import type { Manifest, ManifestTarget } from '../../repo/manifest.js'
import { backupInfoLoad } from '../../repo/stanza-info.js'
import { PosixStorage, syncFolder } from '../../storage/posix.js'
import type { Command } from '../command.js'
import { repoStorage } from '../common.js'
import { pgRunning } from '../stanza.js'
import { restoreFile } from './file.js'
import { restoreCopy } from './copy.js'
import { autoConfRewrite, recoverySettings, shellQuote, signalFile } from './recovery.js'
import { backupSelect } from './target.js'

const TARGET_TYPES = new Set(['time', 'xid', 'name', 'lsn'])
const PG_CONTROL = 'global/pg_control'

/** Where each manifest target goes on this host: pg1-path for pg_data, the tablespace path or its remap. */
function targetPaths(manifest: Manifest, pgPath: string, remap: Readonly<Record<string, string>>): Map<string, string> {
  // A key that names no tablespace of the backup is a mistake, typically a misspelt name: ignoring it would put the
  // tablespace back in its old location instead of where the user asked.
  const tablespaces = manifest.targets.filter((target) => target.name !== 'pg_data')
  for (const key of Object.keys(remap)) {
    if (!tablespaces.some((target) => target.tablespaceName === key || String(target.tablespaceOid) === key)) {
      fail('OptionInvalidValue', `option 'tablespace-map' names tablespace '${key}', but backup ${manifest.label} has no tablespace with that name or OID`, {
        hint:
          tablespaces.length === 0
            ? 'the backup has no tablespaces.'
            : `the backup's tablespaces are ${tablespaces.map((target) => `'${tablespaceDisplayName(target)}' (OID ${target.tablespaceOid})`).join(', ')}.`,
      })
    }
  }
  const paths = new Map<string, string>()
  for (const target of manifest.targets) {
    if (target.name === 'pg_data') {
      paths.set(target.name, pgPath)
      continue
    }
    const byName = target.tablespaceName === undefined ? undefined : remap[target.tablespaceName]
    const byOid = remap[String(target.tablespaceOid)]
    paths.set(target.name, resolve(byName ?? byOid ?? target.path))
  }
  return paths
}

/** The name a user knows a tablespace by (and gives to --tablespace-map): its name, or its OID if unknown. */
function tablespaceDisplayName(target: ManifestTarget): string {
  return target.tablespaceName ?? String(target.tablespaceOid)
}

/** Absolute destination of a manifest entry name such as 'pg_data/base/5/1259' or 'pg_tblspc/16400/PG_.../x'. */
function destinationOf(name: string, targets: Map<string, string>): string {
  const tablespace = /^(pg_tblspc\/\d+)(\/.*)?$/.exec(name)
  if (tablespace) return `${targets.get(tablespace[1]!)!}${tablespace[2] ?? ''}`
  return `${targets.get('pg_data')!}${name.slice('pg_data'.length)}`
}

/** True for an empty or missing folder. Anything unreadable is an error: taking it for empty would write into it. */
async function isEmptyFolder(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length === 0
  } catch (error) {
    const code = errnoCode(error)
    if (code === 'ENOENT') return true
    if (code === 'ENOTDIR') fail('PathMissing', `unable to restore to '${path}' because it is not a folder`)
    fail('FileOpen', `unable to list '${path}': ${code === 'EACCES' ? 'permission denied' : (error as Error).message}`, {
      hint: 'run restore as the user that owns the data folder (usually postgres).',
    })
  }
}

/** Removes everything under `root` that the backup does not have: the delta's clean-up. */
async function removeUnknown(root: string, expectFiles: Set<string>, expectFolders: Set<string>, expectLinks: Set<string>): Promise<number> {
  let removed = 0
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    const path = join(root, entry)
    const stat = await lstat(path)
    if (stat.isDirectory() && expectFolders.has(path)) {
      removed += await removeUnknown(path, expectFiles, expectFolders, expectLinks)
    } else if ((stat.isFile() && expectFiles.has(path)) || (stat.isSymbolicLink() && expectLinks.has(path))) {
      continue
    } else {
      log.detail(`remove '${path}': not in the backup`)
      await rm(path, { recursive: true, force: true })
      removed++
    }
  }
  return removed
}

export const restore: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const repo = repoStorage(cfg)
    const info = await backupInfoLoad(repo, stanza)
    const pgPath = resolve(cfg.requireString('pg1-path'))
    const type = cfg.string('type') ?? 'default'
    const target = cfg.string('target')
    const delta = cfg.boolean('delta')
    const force = cfg.boolean('force')

    if (TARGET_TYPES.has(type) && target === undefined) {
      fail('OptionRequired', `restore --type=${type} requires option 'target'`, { hint: `give --target=... for the ${type} to recover to.` })
    }
    if (!TARGET_TYPES.has(type) && target !== undefined) {
      fail('OptionInvalid', `option 'target' is only valid with --type=time, xid, name or lsn, not --type=${type}`)
    }
    // Target settings mean nothing without a target: PostgreSQL would ignore them, and the DBA would think the
    // server is going to pause or promote when it will not.
    for (const name of ['target-action', 'target-exclusive'] as const) {
      if (cfg.source(name) !== 'default' && !TARGET_TYPES.has(type) && type !== 'immediate') {
        fail('OptionInvalid', `option '${name}' is only valid with --type=immediate, time, xid, name or lsn, not --type=${type}`, {
          hint: 'without a target, recovery replays all archived WAL and the server opens for writes at its end.',
        })
      }
    }

    const chosen = backupSelect(info.backups, type, target, cfg.string('set'))
    const manifest = await manifestLoad(repo, stanza, chosen.label)
    log.info(`restore backup set ${chosen.label}`)

    // The cluster must not be running, and the folder must be empty unless the user asked to overwrite it.
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
      if (control.systemId.toString() !== manifest.pg.systemId) {
        fail('DbMismatch', `'${pgPath}' holds the cluster with system identifier ${control.systemId}, not ${manifest.pg.systemId} of backup ${chosen.label}`, {
          hint: 'a delta restore over another cluster would mix them; empty the folder, or give --force.',
        })
      }
    }

    const targets = targetPaths(manifest, pgPath, cfg.hash('tablespace-map'))
    for (const tablespace of manifest.targets) {
      if (tablespace.name === 'pg_data') continue
      const path = targets.get(tablespace.name)!
      if (!(await isEmptyFolder(path)) && !delta && !force) {
        // Named as the user knows it, so the hint's --tablespace-map line works as printed.
        const name = tablespaceDisplayName(tablespace)
        fail('PathNotEmpty', `unable to restore tablespace '${name}' to '${path}' because it contains files`, {
          hint: `empty it, move it with --tablespace-map=${name}=PATH, or give --delta.`,
        })
      }
    }

    // A cluster restored part-way must never start: without global/pg_control PostgreSQL refuses to, so the old one
    // goes first and the backup's is written last, after everything else is durable.
    await rm(join(pgPath, PG_CONTROL), { force: true })

    // Folders, links and clean-up before any file is written.
    const linkDestinations = new Map(manifest.links.map((link) => [destinationOf(link.name, targets), link.destination]))
    for (const [name, path] of targets) {
      if (name !== 'pg_data') linkDestinations.set(join(pgPath, name), path)
    }
    const expectFiles = new Set(manifest.files.map((file) => destinationOf(file.name, targets)))
    const expectFolders = new Set(manifest.paths.map((path) => destinationOf(path.name, targets)))
    let removed = 0
    if (!emptyOrMissing || delta || force) {
      for (const [, path] of targets) removed += await removeUnknown(path, expectFiles, expectFolders, new Set(linkDestinations.keys()))
    }
    for (const folder of manifest.paths) {
      const path = destinationOf(folder.name, targets)
      await mkdir(path, { recursive: true, mode: folder.mode })
      await chmod(path, folder.mode)
    }
    for (const [path, destination] of linkDestinations) {
      const existing = await readlink(path).catch(() => undefined)
      if (existing === destination) continue
      await rm(path, { recursive: true, force: true })
      await mkdir(destination, { recursive: true, mode: 0o700 })
      await symlink(destination, path)
    }

    // Files, largest first, verified against their checksums.
    const repoRoot = repo.describe('')
    const files = manifest.files.filter((file) => file.name !== `pg_data/${PG_CONTROL}`).sort((a, b) => b.size - a.size)
    const control = manifest.files.find((file) => file.name === `pg_data/${PG_CONTROL}`)
    if (!control) fail('FileMissing', `backup ${chosen.label} has no global/pg_control`, { hint: 'the repository is damaged; choose another backup with --set.' })
    const pool = new WorkerPool(cfg.number('process-max') ?? 1)
    let fetched: number
    let fetchedBytes: number
    try {
      ;({ fetchedFiles: fetched, fetchedBytes } = await restoreCopy({
        pool,
        files,
        repoRoot,
        partSize: manifest.partSize,
        delta: delta || force,
        destinationOf: (file) => destinationOf(file.name, targets),
        repoPathOf: (file, extension, part) => manifestFileRepoPath(stanza, chosen.label, file, extension, part),
      }))
    } finally {
      await pool.close()
    }

    // Files were written in place with their own fsync; make the folder entries durable too.
    for (const folder of expectFolders) await syncFolder(folder).catch(() => undefined)
    // backup_label tells PostgreSQL where replay must start; without it the restored files are not consistent.
    const data = new PosixStorage(pgPath)
    await data.write('backup_label', manifest.backupLabel, { mode: 0o600 })
    await writeRecovery(cfg, data, pgPath, type, target)
    // Last: pg_control, atomically. From here on the folder is a cluster that starts into recovery.
    await restoreFile({
      destination: destinationOf(control.name, targets),
      repoRoot,
      repoPath: manifestFileRepoPath(stanza, chosen.label, control, codecFor(control.compressType).extension),
      size: control.size,
      sha256: control.sha256,
      mode: control.mode,
      mtimeMs: control.mtimeMs,
      delta: false,
      atomic: true,
    })
    fetched++
    fetchedBytes += control.size

    log.info(
      `restore of backup ${chosen.label} complete: ${manifest.files.length} files, ${fetched} fetched (${formatBytes(fetchedBytes)})` +
        (delta || force ? `, ${manifest.files.length - fetched} kept, ${removed} removed` : ''),
    )
    return 0
  },
}

async function writeRecovery(cfg: Parameters<Command['run']>[0], data: PosixStorage, pgPath: string, type: string, target: string | undefined): Promise<void> {
  // By default this very walden, by absolute paths of Node and the script: PostgreSQL may run restore_command with a
  // PATH that finds neither (a systemd unit's minimal environment).
  const command = cfg.string('cmd') ?? [process.execPath, resolve(process.argv[1] ?? 'walden')].map(shellQuote).join(' ')
  // Options given for this restore reach archive-get too, except the console level: PostgreSQL's log is no console.
  const forwarded = cfg
    .explicitArguments('archive-get')
    .filter((arg) => !arg.startsWith('--stanza=') && !arg.startsWith('--log-level-console='))
  const restoreCommand = [command, ...[...forwarded, `--stanza=${cfg.stanza()}`].map(shellQuote)].join(' ')
  const timeline = cfg.string('target-timeline')
  const settings = recoverySettings({
    type,
    ...(target !== undefined ? { target } : {}),
    targetAction: cfg.string('target-action') ?? 'pause',
    targetExclusive: cfg.boolean('target-exclusive'),
    ...(timeline !== undefined ? { targetTimeline: timeline } : {}),
    restoreCommand: `${restoreCommand} archive-get %f "%p"`,
    options: cfg.hash('recovery-option'),
  })
  const autoConf = join(pgPath, 'postgresql.auto.conf')
  const existing = await readFile(autoConf, 'utf8').catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return ''
    throw error
  })
  if (settings.size > 0) await data.write('postgresql.auto.conf', autoConfRewrite(existing, settings), { mode: 0o600 })
  const signal = signalFile(type)
  if (signal !== undefined) await data.write(signal, '', { mode: 0o600 })
  log.info(signal ? `recovery settings written: ${[...settings.keys()].join(', ')}; ${signal} created` : 'no recovery settings written')
}
