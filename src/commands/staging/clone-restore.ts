// The restore that makes a clone, and its start. A clone is an ordinary walden restore of one snapshot (a backup in
// the stanza's repository) into clone-path, run in this process through the restore command itself, with the
// options a clone needs in place of the ones a DBA would give: the snapshot chosen by clone-create (--set), recovery
// to the snapshot's end (immediate) or to the target, ending in promotion, along the snapshot's own timeline, on the
// clone's port, with archiving off. Then walden's clone settings go into postgresql.auto.conf, after the restore's
// own lines (settings.ts), and the server starts; the clone is usable once it has promoted and accepts writes.
//
// Archiving off is the one setting a clone must never lose: it has the source's system identifier, so WAL it
// archived would land in the stanza's own archive as if the staging copy had written it.

import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fail } from '../../common/errors.js'
import { Config, sizeParse } from '../../config/config.js'
import type { OptionSource } from '../../config/config.js'
import { OPTIONS, optionDefault } from '../../config/options.js'
import type { OptionDef, OptionName, OptionValue } from '../../config/options.js'
import { pgRunning } from '../../pg/data-dir.js'
import { pgConnect } from '../../pg/session.js'
import type { PgConnectOptions } from '../../pg/session.js'
import { restore, restoreRecoveryWrite } from '../restore/index.js'
import { serverControl } from '../server-control.js'
import type { CloneTarget } from './clone-reach.js'
import { cloneFromImage, imageBuild, imageExists } from './clone-image.js'
import { log } from '../../common/log.js'

/** Settings walden writes for every clone, after the restore's; clone-setting may not change them. */
export function cloneOwnSettings(port: number): Map<string, string> {
  return new Map([
    ['port', String(port)],
    // Never into the stanza's archive (see above); archive_command and archive_library are then never run.
    ['archive_mode', 'off'],
    // A clone is no standby: nothing to stream from, no slot on the source to hold.
    ['primary_conninfo', ''],
    ['primary_slot_name', ''],
  ])
}

/** The value of an option in a Config, by its type (Config has no untyped getter on purpose). */
function optionValue(cfg: Config, name: OptionName): OptionValue | undefined {
  if (!cfg.has(name)) return undefined
  const def: OptionDef = OPTIONS[name]
  switch (def.type) {
    case 'boolean':
      return cfg.boolean(name)
    case 'integer':
    case 'seconds':
    case 'size':
      return cfg.number(name)
    case 'hash':
      return cfg.hash(name)
    default:
      return cfg.string(name)
  }
}

export interface CloneRestoreRequest {
  clonePath: string
  clonePort: number
  /** The snapshot (backup label) to restore. */
  label: string
  /** The point in time after the snapshot; undefined for the snapshot itself. */
  target?: CloneTarget
  /** For the snapshot itself: stop at its consistent point, or at the end of the archive, which is the same (clone-reach.ts). */
  snapshotEnd?: 'immediate' | 'end'
  /** Tablespace OID -> the clone's own folder for it: never the location the snapshot recorded (the staging copy's). */
  tablespaceMap?: Readonly<Record<string, string>>
  /** A snapshot image (clone-image.ts): restored with no recovery settings (--type=none), each clone writes its own. */
  image?: boolean
}

/**
 * The Config `restore` runs with for a clone: every restore option clone-create's own Config has (repositories,
 * their keys, process-max, log-path, ...) from where it came, and the clone's choices given as on the command line.
 * The port then goes into postgresql.auto.conf as for `restore --pg1-port`.
 */
export function cloneRestoreConfig(cfg: Config, request: CloneRestoreRequest): Config {
  const values = new Map<string, OptionValue>()
  const sources = new Map<string, OptionSource>()
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    if (!OPTIONS[name].commands.includes('restore')) continue
    const value = optionValue(cfg, name)
    if (value !== undefined) {
      values.set(name, value)
      sources.set(name, cfg.source(name) ?? 'default')
      continue
    }
    // Restore's own defaults for what clone-create does not take (direct-io, ...), as configLoad would set them.
    const fallback = optionDefault(name, 'restore')
    if (fallback === undefined) continue
    values.set(name, OPTIONS[name].type === 'size' && typeof fallback === 'string' ? sizeParse(fallback)! : fallback)
    sources.set(name, 'default')
  }
  const given: Partial<Record<OptionName, OptionValue>> = {
    'pg1-path': request.clonePath,
    'pg1-port': request.clonePort,
    set: request.label,
    type: request.image === true ? 'none' : (request.target?.type ?? (request.snapshotEnd === 'end' ? 'default' : 'immediate')),
    // Ignored without a target: recovery to the end of the archive promotes by itself.
    ...(request.image !== true && (request.target !== undefined || request.snapshotEnd !== 'end') ? { 'target-action': 'promote' } : {}),
    // The reach check followed the snapshot's timeline; recovery must follow the same.
    'target-timeline': 'current',
    // Each clone's own recovery writes it; an image's postgresql.auto.conf stays as the snapshot had it.
    'archive-mode': request.image === true ? 'preserve' : 'off',
    delta: false,
    force: false,
    start: false,
    'stop-old': false,
    'keep-old-data': false,
    ...(request.target !== undefined && request.image !== true ? { target: request.target.target } : {}),
    ...(request.tablespaceMap !== undefined ? { 'tablespace-map': request.tablespaceMap } : {}),
    // Only where PostgreSQL has recovery_target_inclusive (time, xid, lsn): restore refuses it for a name.
    ...(request.target?.exclusive === true && request.image !== true ? { 'target-exclusive': true } : {}),
  }
  for (const [name, value] of Object.entries(given) as Array<[OptionName, OptionValue]>) {
    values.set(name, value)
    sources.set(name, 'command line')
  }
  for (const name of ['target', 'target-exclusive', 'keep-old-data-path', 'config-restore', 'recovery-option', 'tablespace-map'] as const) {
    if (!(name in given)) {
      values.delete(name)
      sources.delete(name)
    }
  }
  return new Config('restore', [], values, sources, [], 'main')
}

/** Restores the snapshot into clone-path, through the restore command itself. */
export async function cloneRestore(cfg: Config, request: CloneRestoreRequest): Promise<void> {
  const code = await restore.run(cloneRestoreConfig(cfg, request))
  if (code !== 0) fail('Unhandled', `restore into '${request.clonePath}' ended with exit code ${code}`)
}

/**
 * Makes the clone from the snapshot's image (clone-image.ts), building the image first if there is none: the same
 * folder a restore would make, with the recovery settings the same restore would write.
 */
export async function cloneRestoreFromImage(cfg: Config, request: CloneRestoreRequest, imagePath: string): Promise<void> {
  if (!(await imageExists(imagePath))) {
    log.info(`snapshot image of ${request.label}: restoring it once into '${imagePath}', then a reflink copy for each clone`)
    await imageBuild(imagePath, async (dataPath, tablespaceRoot) => {
      const tablespaceMap = request.tablespaceMap === undefined ? undefined : Object.fromEntries(Object.keys(request.tablespaceMap).map((oid) => [oid, join(tablespaceRoot, oid)]))
      const { tablespaceMap: _clones, ...rest } = request
      await cloneRestore(cfg, { ...rest, clonePath: dataPath, image: true, ...(tablespaceMap !== undefined ? { tablespaceMap } : {}) })
    })
  }
  const tablespacePath = request.tablespaceMap === undefined ? undefined : dirname(Object.values(request.tablespaceMap)[0]!)
  await cloneFromImage(imagePath, request.clonePath, tablespacePath, () => restoreRecoveryWrite(cloneRestoreConfig(cfg, request), request.clonePath))
  log.info(`clone made from snapshot image '${imagePath}' (reflinks: blocks shared until written)`)
}

/**
 * Where the clone's server listens, from its postmaster.pid (port on line 4, first socket folder on line 5, first listen
 * address on line 6): the settings that decide it come from the snapshot's config files and clone-setting, and the
 * server's own account of them is the one to trust.
 */
async function postmasterAddress(clonePath: string): Promise<Pick<PgConnectOptions, 'port' | 'socketPath' | 'host'>> {
  const lines = (await readFile(join(clonePath, 'postmaster.pid'), 'utf8')).split('\n')
  const port = Number.parseInt(lines[3] ?? '', 10)
  if (!Number.isFinite(port)) fail('PgState', `postmaster.pid of '${clonePath}' does not name a port yet`)
  const socketPath = lines[4]?.trim()
  if (socketPath !== undefined && socketPath !== '') return { port, socketPath }
  const listen = lines[5]?.trim().split(',')[0]?.trim()
  return { port, host: listen === undefined || listen === '' || listen === '*' || listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '::1' : listen }
}

/**
 * Starts the clone's server and waits until recovery has ended in promotion and it accepts writes. With hot_standby
 * on, pg_ctl start -w returns as soon as a consistent standby accepts reads, so that alone does not mean the clone
 * is usable. A server that stops on the way (recovery failed) is reported with its log's place.
 */
export async function cloneStart(cfg: Config, clonePath: string, major: number, login: { user: string; database: string }, timeoutMs = 600_000): Promise<void> {
  await serverControl(cfg, 'start', clonePath, major)
  const deadline = Date.now() + timeoutMs
  let lastProblem = ''
  while (Date.now() < deadline) {
    if (!(await pgRunning(clonePath))) {
      // serverControl's log: LOG-PATH/STANZA-postgresql-NAME.log. Its last FATAL line is the reason.
      const serverLog = join(cfg.string('log-path') ?? '/var/log/walden', `${cfg.stanza()}-postgresql-${basename(clonePath)}.log`)
      const fatal = (await readFile(serverLog, 'utf8').catch(() => ''))
        .split('\n')
        .filter((line) => /\b(FATAL|PANIC):/.test(line))
        .at(-1)
        ?.replace(/^.*?\b(FATAL|PANIC):\s*/, '')
      fail('PgState', `the clone's server on '${clonePath}' stopped before recovery ended${fatal !== undefined ? `: ${fatal}` : ''}`, {
        hint: `see the server log '${serverLog}'.`,
      })
    }
    try {
      const session = await pgConnect({ ...(await postmasterAddress(clonePath)), ...login, connectTimeoutMs: 5000 })
      try {
        const [row] = await session.query<{ recovery: string }>('select pg_is_in_recovery()::text as recovery')
        if (row?.recovery === 'false') return
        lastProblem = 'still in recovery'
      } finally {
        await session.close()
      }
    } catch (error) {
      lastProblem = (error as Error).message
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  fail('PgState', `the clone's server on '${clonePath}' did not finish recovery within ${Math.round(timeoutMs / 1000)}s (${lastProblem})`, {
    hint: 'see the server log; the clone is left running for inspection, remove it with clone-destroy.',
  })
}
