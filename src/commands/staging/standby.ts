// The staging cluster as a hot standby: the settings walden owns on it, its start and stop, and the streaming
// set-up of the streaming ways (primary_conninfo without a password, the replication slot on the source).
//
// Settings walden writes (postgresql.auto.conf, settings.ts): port, hot_standby = on, and
//   external-wal: restore_command = walden staging-wal-get %f "%p" (wal-feed.ts serves the WAL folder);
//   initiated, external-streaming: primary_conninfo and primary_slot_name;
// archiving: archive_mode = off unless snapshot.ts exports snapshotArchiveSettings(cfg, record), whose settings
// (archive_mode = always and an archive_command into the stanza's repository) are then written instead. Without
// this the source's archive_command, copied with its postgresql.conf, would run on clones made from the copy.

import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { pgBinFor, pgDefaultSocketDir } from '../../pg/binaries.js'
import { conninfoFormat, conninfoParse } from '../../pg/conninfo.js'
import type { Conninfo } from '../../pg/conninfo.js'
import { pgRunning } from '../../pg/data-dir.js'
import { pgpassLookup, pgpassPath, pgpassRead } from '../../pg/pgpass.js'
import { pgConnect } from '../../pg/session.js'
import { replicationPgpassKey } from '../replication/primary-connection.js'
import { serverControl } from '../server-control.js'
import { waldenCommandLine } from '../walden-command.js'
import { settingsApply, settingsParse } from './settings.js'
import { sourceSlotDrop, sourceSlotEnsure } from './source-replication.js'
import type { SettingChange } from './settings.js'
import type { StagingRecord } from './state.js'

/** The replication slot of a stanza's staging copy on the source: walden_staging_<stanza>, as a slot name allows. */
export function stagingSlotName(stanza: string): string {
  return `walden_staging_${stanza.toLowerCase().replaceAll(/[^a-z0-9_]/g, '_')}`.slice(0, 63)
}

/**
 * staging-source parsed. A password is refused wherever the string comes from: it would end up in the staging
 * cluster's primary_conninfo, in a file anyone with the data folder reads.
 */
export function stagingSourceParse(text: string): Conninfo {
  const info = conninfoParse(text, "option 'staging-source'")
  if (info.has('password')) {
    fail('OptionInvalidValue', "option 'staging-source' holds a password: it would be written into the staging cluster's primary_conninfo", {
      hint: 'remove password= and put the password in the password file (~/.pgpass, $PGPASSFILE, or the file passfile= names; mode 0600).',
    })
  }
  return info
}

/** Whether the record's way streams from the source. */
export function stagingStreams(record: StagingRecord): boolean {
  return record.method === 'initiated' || record.method === 'external-streaming'
}

/**
 * primary_conninfo of a streaming staging copy: staging-source with passfile= added when the password file has the
 * entry (so the WAL receiver finds it whatever the server's HOME) and application_name set to the slot's name (so
 * the source's pg_stat_replication names the copy).
 */
export async function streamingConninfo(record: StagingRecord): Promise<Conninfo> {
  const info = stagingSourceParse(record.source!)
  const defaultSocketDir = await pgBinFor(record.pgVersion!).then(pgDefaultSocketDir, () => undefined)
  const passfile = info.get('passfile') ?? pgpassPath()
  const key = replicationPgpassKey(info, defaultSocketDir)
  if (!info.has('passfile') && pgpassLookup(await pgpassRead(passfile), key) !== undefined) info.set('passfile', passfile)
  if (!info.has('application_name')) info.set('application_name', record.slotName!)
  return info
}

/**
 * Makes sure the copy's physical slot exists on the source, created reserving WAL from now on when missing. A slot of
 * that name already there (a resync; pg_basebackup -C -S NAME made it, holding WAL since the backup) is used as it
 * is. Over the replication protocol (source-replication.ts): the source needs only the "replication" line in
 * pg_hba.conf that streaming needs anyway. Returns whether it was created now (a failed link drops it again).
 */
export async function slotEnsure(record: StagingRecord): Promise<boolean> {
  return sourceSlotEnsure(record)
}

/**
 * Drops the copy's slot on the source, so the source stops keeping WAL for it. The staging cluster must be stopped.
 * Best effort when `warnOnly`: a source that cannot be reached gets a warning naming the slot to drop by hand.
 */
export async function slotDrop(record: StagingRecord, options: { warnOnly?: boolean } = {}): Promise<void> {
  try {
    await sourceSlotDrop(record)
  } catch (error) {
    if (!options.warnOnly) throw error
    log.warn(
      `unable to drop replication slot '${record.slotName}' on the source (${(error as Error).message.split('\n')[0]}): ` +
        `drop it there with SELECT pg_drop_replication_slot('${record.slotName}'), or the source keeps its WAL`,
    )
  }
}

/** Archiving settings of the staging cluster: the snapshot part's when it provides them, else archiving off. */
async function archiveSettings(cfg: Config, record: StagingRecord): Promise<Map<string, string>> {
  const snapshot: {
    stagingSnapshot: unknown
    snapshotArchiveSettings?: (cfg: Config, record: StagingRecord) => Promise<Map<string, string>>
  } = await import('./snapshot.js')
  if (snapshot.snapshotArchiveSettings !== undefined) return snapshot.snapshotArchiveSettings(cfg, record)
  return new Map([['archive_mode', 'off']])
}

/** Every setting walden owns on the staging cluster, for the way it is linked. */
export async function ownedSettings(cfg: Config, record: StagingRecord): Promise<Map<string, string>> {
  const owned = new Map<string, string>([
    ['port', String(record.port)],
    ['hot_standby', 'on'],
  ])
  if (record.method === 'external-wal') {
    owned.set('restore_command', waldenCommandLine(cfg, 'staging-wal-get', '%f "%p"'))
  } else {
    owned.set('primary_conninfo', conninfoFormat(await streamingConninfo(record)))
    owned.set('primary_slot_name', record.slotName!)
  }
  for (const [name, value] of await archiveSettings(cfg, record)) owned.set(name, value)
  return owned
}

/**
 * Makes the (stopped) staging cluster a hot standby of the way it is linked: standby.signal, walden's settings and
 * the user's (`previous`: the settings applied last time, whose lines go first).
 */
export async function standbyConfigure(cfg: Config, record: StagingRecord, previous: readonly string[] = []): Promise<void> {
  const changes: SettingChange[] = settingsParse(record.settings, 'staging-setting')
  const before = settingsParse(previous, 'staging-setting')
  await settingsApply(record.path, await ownedSettings(cfg, record), changes, before)
  // A recovery.signal would make it recover to the end and promote: a staging copy stays a standby.
  await rm(join(record.path, 'recovery.signal'), { force: true })
  await writeFile(join(record.path, 'standby.signal'), '', { mode: 0o600 })
}

/** The socket folder of the running staging cluster: pg1-socket-path, else the first its postmaster.pid names. */
export async function stagingSocketDir(cfg: Config, record: StagingRecord): Promise<string | undefined> {
  const configured = cfg.string('pg1-socket-path')
  if (configured !== undefined) return configured
  const lines = (await readFile(join(record.path, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')
  return lines[4] !== undefined && lines[4].trim() !== '' ? lines[4].trim() : undefined
}

/**
 * The TCP address of the running staging cluster when it has no socket folder: pg1-tcp-host, else the first address
 * its postmaster.pid says it listens on ('*' is reached through the loopback address).
 */
async function stagingTcpHost(cfg: Config, record: StagingRecord): Promise<string | undefined> {
  const configured = cfg.string('pg1-tcp-host')
  if (configured !== undefined) return configured
  const lines = (await readFile(join(record.path, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')
  const first = lines[5]?.split(',')[0]?.trim()
  if (first === undefined || first === '') return undefined
  return first === '*' || first === '0.0.0.0' ? '127.0.0.1' : first === '::' ? '::1' : first
}

/**
 * Starts the staging cluster and waits until it accepts connections as a standby (pg_ctl -w), then checks so with
 * SQL: it must answer and be in recovery.
 */
export async function stagingStart(cfg: Config, record: StagingRecord): Promise<void> {
  await serverControl(cfg, 'start', record.path, record.pgVersion!)
  const socketPath = await stagingSocketDir(cfg, record)
  const host = socketPath === undefined ? await stagingTcpHost(cfg, record) : undefined
  const session = await pgConnect({
    ...(socketPath !== undefined ? { socketPath } : host !== undefined ? { host } : {}),
    port: record.port,
    user: cfg.string('pg1-user') ?? 'postgres',
    database: cfg.string('pg1-database') ?? 'postgres',
    connectTimeoutMs: 30_000,
  })
  try {
    const [row] = await session.query<{ recovery: string }>('select pg_is_in_recovery()::text as recovery')
    if (row?.recovery !== 'true') {
      fail('PgState', `the staging cluster on '${record.path}' is not in recovery: it is no longer a standby`, {
        hint: 'something promoted it; resync the staging copy (staging-resync).',
      })
    }
  } finally {
    await session.close()
  }
  log.info(`staging cluster on '${record.path}' accepts connections on port ${record.port}`)
}

/** Stops the staging cluster if it runs (fast shutdown: a standby has nothing to lose). */
export async function stagingStop(cfg: Config, record: StagingRecord): Promise<void> {
  if (!(await pgRunning(record.path))) return
  await serverControl(cfg, 'stop', record.path, record.pgVersion!)
}
