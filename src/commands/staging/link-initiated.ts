// staging-link --staging-method=initiated (way 1), and the streaming set-up that ways 1 and 3 share.
//
// Way 1 needs nothing on the source host but PostgreSQL: walden opens a replication connection as the
// staging-source role, creates a physical replication slot that reserves WAL, then takes the base backup itself with
// BASE_BACKUP (WAL included) and extracts the tar streams into the staging folder as they arrive. link.ts then writes
// the settings (stagingStreamConfigure plus its own) and starts the staging cluster, which replays the WAL from the
// backup to consistency and then streams from the slot.
//
// Order, and why:
// 1. Connect (and so authenticate) before anything is created: a wrong password or a missing pg_hba.conf line leaves
//    no slot on the source and no file in the staging folder.
// 2. Slot before backup: the source keeps every WAL segment from before the backup's checkpoint until the staging
//    copy has streamed it, whatever wal_keep_size says, so the copy can never fall off the source's WAL.
// 3. WAL included in the backup: the staging copy reaches consistency from its own files, even if streaming is not
//    possible at its first start; the slot holds the WAL from the backup's end onwards.
// On failure after step 2, the slot walden created is dropped and the staging folder emptied again (it was empty).
//
// The password: only ever read from the password file (passfile= in staging-source, else $PGPASSFILE, else
// ~/.pgpass), held in memory for the authentication, and never written anywhere; primary_conninfo names the
// password file (passfile=...) for the staging server's own WAL receiver.

import { lstat, mkdir, readdir, rm, symlink, unlink, chmod, open } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { WaldenError, errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { type TarEntry, TarExtractor } from '../../io/tar-extract.js'
import { type Conninfo, conninfoFormat, conninfoParse, conninfoSessionOptions, conninfoWhere } from '../../pg/conninfo.js'
import { pgpassLookup, pgpassPath, pgpassRead } from '../../pg/pgpass.js'
import { ReplicationConnection } from '../../pg/replication/client.js'
import { slotNameCheck } from '../../pg/replication/commands.js'
import { syncFolder } from '../../storage/posix.js'
import { osUserName, replicationPgpassKey } from '../replication/primary-connection.js'
import type { StagingRecord } from './state.js'

/** What the initial load found out about the source, for the staging record. */
export interface InitiatedLoadResult {
  systemId: string
  /** Major version of the source (and so of the staging cluster). */
  pgVersion: number
  timeline: number
  startLsn: string
  endLsn: string
  /** Tablespace OID → the staging copy's folder for it. */
  tablespaces: Record<string, string>
}

/** The replication slot walden uses for a stanza's staging copy when the record names none. */
export function stagingSlotName(stanza: string): string {
  const name = `walden_staging_${stanza.toLowerCase().replaceAll(/[^a-z0-9_]/g, '_')}`
  return name.slice(0, 63)
}

/**
 * The staging copy's folder for a tablespace of the source: beside the data folder, never the source's own path
 * (the source may live on this host).
 */
export function stagingTablespacePath(dataDir: string, oid: number): string {
  return join(dirname(resolve(dataDir)), `${basename(dataDir)}.tablespaces`, String(oid))
}

/** staging-source parsed, with a password refused wherever it came from: it would land in primary_conninfo. */
export function stagingSourceParse(source: string): Conninfo {
  const info = conninfoParse(source, "option 'staging-source'")
  if (info.has('password')) {
    fail('OptionInvalidValue', "option 'staging-source' holds a password, which would be written into the staging cluster's configuration", {
      hint: 'remove password= and put the password in the password file (passfile= in staging-source, $PGPASSFILE or ~/.pgpass, mode 0600).',
    })
  }
  if (info.get('replication') !== undefined && !['true', 'on', 'yes', '1'].includes(info.get('replication')!)) {
    fail('OptionInvalidValue', `option 'staging-source' sets replication=${info.get('replication')}; the staging copy needs a physical replication connection`, {
      hint: 'remove replication= from staging-source.',
    })
  }
  info.delete('replication')
  return info
}

/** The password file a replication connection of staging-source reads, as an absolute path. */
export function stagingPassfile(info: Conninfo): string {
  return resolve(info.get('passfile') ?? pgpassPath())
}

/**
 * Opens a replication connection to the source. The password is looked up only if the server asks for one, so
 * trust or peer authentication needs no password file.
 */
export async function stagingSourceConnect(source: string): Promise<ReplicationConnection> {
  const info = stagingSourceParse(source)
  const passfile = stagingPassfile(info)
  const key = replicationPgpassKey(info)
  const { database: _database, password: _password, ...session } = conninfoSessionOptions(info, undefined, osUserName())
  return ReplicationConnection.open({
    ...session,
    applicationName: info.get('application_name') ?? 'walden',
    password: async () => {
      const password = pgpassLookup(await pgpassRead(passfile), key)
      if (password === undefined) {
        fail('DbConnect', `the source at ${conninfoWhere(info)} asks for a password, and the password file '${passfile}' has none for user '${key.user}'`, {
          hint: `add the line '${key.host}:${key.port}:replication:${key.user}:<password>' to '${passfile}' (mode 0600, owned by the OS user running walden).`,
        })
      }
      return password
    },
  })
}

/**
 * Way 1's initial load: the slot on the source, then a base backup of the source into `record.path` (which exists
 * and is empty), tablespaces into stagingTablespacePath(). The caller holds the staging lock and records the jobs.
 */
export async function initiatedLoad(_cfg: Config, record: StagingRecord): Promise<InitiatedLoadResult> {
  if (record.source === undefined) fail('OptionRequired', "staging-method=initiated needs option 'staging-source'", { hint: "give the source's libpq connection string, e.g. 'host=db1 user=replicator'." })
  const slot = slotNameCheck(record.slotName ?? stagingSlotName(record.stanza))
  const connection = await stagingSourceConnect(record.source)
  let slotCreated = false
  const tablespaceExtractors: TarExtractor[] = []
  try {
    const system = await connection.identifySystem()
    log.info(`source ${connection.where}: PostgreSQL ${connection.major}, system id ${system.systemId}, timeline ${system.timeline}`)
    slotCreated = await slotEnsure(connection, slot)
    await chmod(record.path, 0o700)
    const tablespaces: Record<string, string> = {}
    const started = Date.now()
    const result = await connection.baseBackup(
      { label: `walden staging ${record.stanza}`, fast: true, wal: true },
      {
        archive: (archive) => {
          if (archive.tablespaceOid === undefined) {
            return new TarExtractor(record.path, {
              allowMissingTrailer: true,
              // pg_tblspc/<oid> points at the source's folder; the staging copy's own folder replaces it below.
              onEntry: (entry) => (isTablespaceLink(entry) ? 'skip' : undefined),
            })
          }
          const folder = stagingTablespacePath(record.path, archive.tablespaceOid)
          tablespaces[String(archive.tablespaceOid)] = folder
          const extractor = new TarExtractor(folder, { allowMissingTrailer: true, createTarget: true })
          tablespaceExtractors.push(extractor)
          return extractor
        },
      },
    )
    for (const [oid, folder] of Object.entries(tablespaces)) {
      await mkdir(join(record.path, 'pg_tblspc'), { recursive: true, mode: 0o700 })
      await symlink(folder, join(record.path, 'pg_tblspc', oid))
    }
    if (Object.keys(tablespaces).length > 0) await syncFolder(join(record.path, 'pg_tblspc'))
    log.info(
      `base backup of ${connection.where} into '${record.path}' done in ${((Date.now() - started) / 1000).toFixed(1)}s: ` +
        `WAL ${result.startLsn} to ${result.endLsn} on timeline ${result.endTimeline}, slot '${slot}'`,
    )
    return {
      systemId: system.systemId,
      pgVersion: connection.major,
      timeline: result.endTimeline,
      startLsn: result.startLsn,
      endLsn: result.endLsn,
      tablespaces,
    }
  } catch (error) {
    await emptyFolder(record.path).catch(() => undefined)
    // Only folders this load made or found empty: a tablespace folder someone else filled is never touched.
    for (const extractor of tablespaceExtractors) {
      if (extractor.targetOwned) await rm(extractor.target, { recursive: true, force: true }).catch(() => undefined)
    }
    if (slotCreated) {
      await connection.dropSlot(slot).catch((dropError: unknown) => {
        log.warn(`unable to drop replication slot '${slot}' on ${connection.where} after the failed link: ${(dropError as Error).message}`)
      })
    }
    throw error
  } finally {
    await connection.close()
  }
}

function isTablespaceLink(entry: TarEntry): boolean {
  return entry.type === 'symlink' && /^pg_tblspc\/\d+$/.test(entry.name)
}

/** Creates the slot; returns false when it already exists (a resync, or a slot the DBA made for the copy). */
async function slotEnsure(connection: ReplicationConnection, slot: string): Promise<boolean> {
  try {
    await connection.createPhysicalSlot(slot)
    log.info(`replication slot '${slot}' created on ${connection.where}`)
    return true
  } catch (error) {
    if (/already exists/.test((error as Error).message)) {
      log.info(`replication slot '${slot}' already exists on ${connection.where}; the staging copy uses it`)
      return false
    }
    throw error
  }
}

/** Removes everything in a folder, keeping the folder. */
async function emptyFolder(path: string): Promise<void> {
  for (const name of await readdir(path)) await rm(join(path, name), { recursive: true, force: true })
}

/**
 * Creates the staging copy's slot on the source when it is missing (way 3, after core's initial load; and before a
 * resync). Returns whether it was created.
 */
export async function stagingSlotEnsure(record: Pick<StagingRecord, 'stanza' | 'source' | 'slotName'>): Promise<boolean> {
  if (record.source === undefined) fail('OptionRequired', "a streaming staging copy needs option 'staging-source'")
  const connection = await stagingSourceConnect(record.source)
  try {
    return await slotEnsure(connection, slotNameCheck(record.slotName ?? stagingSlotName(record.stanza)))
  } finally {
    await connection.close()
  }
}

/**
 * Drops the staging copy's slot on the source (staging-unlink; the staging cluster must be stopped, or the slot is
 * active and the source refuses). A slot already gone is fine. Without this the source would keep WAL forever.
 */
export async function stagingSlotDrop(record: Pick<StagingRecord, 'stanza' | 'source' | 'slotName'>): Promise<'dropped' | 'missing'> {
  if (record.source === undefined) return 'missing'
  const slot = slotNameCheck(record.slotName ?? stagingSlotName(record.stanza))
  const connection = await stagingSourceConnect(record.source)
  try {
    await connection.dropSlot(slot)
    log.info(`replication slot '${slot}' dropped on ${connection.where}`)
    return 'dropped'
  } catch (error) {
    if (/does not exist/.test((error as Error).message)) return 'missing'
    if (/is active/.test((error as Error).message)) {
      throw new WaldenError('DbQuery', `replication slot '${slot}' on ${connection.where} is still in use`, {
        hint: 'stop the staging cluster (staging-disable) before dropping its slot.',
        cause: error,
      })
    }
    throw error
  } finally {
    await connection.close()
  }
}

/**
 * The streaming set-up of a staging copy (ways 1 and 3): writes standby.signal (and removes recovery.signal) in the
 * data folder and returns the settings walden owns for streaming, for settingsApply together with the port:
 * primary_conninfo (no password; passfile= names the password file, application_name the copy), primary_slot_name
 * and hot_standby. The server must be stopped.
 */
export async function stagingStreamConfigure(
  dataDir: string,
  record: Pick<StagingRecord, 'stanza' | 'source' | 'slotName'>,
): Promise<Map<string, string>> {
  if (record.source === undefined) fail('OptionRequired', "a streaming staging copy needs option 'staging-source'")
  const settings = stagingStreamSettings(record.source, record.slotName ?? stagingSlotName(record.stanza))
  await signalWrite(dataDir)
  return settings
}

/** The settings of stagingStreamConfigure, without touching a file. */
export function stagingStreamSettings(source: string, slot: string): Map<string, string> {
  const info = stagingSourceParse(source)
  // Named explicitly: the staging server's environment (HOME, PGPASSFILE) need not be walden's.
  info.set('passfile', stagingPassfile(info))
  if (!info.has('application_name')) info.set('application_name', slotNameCheck(slot))
  return new Map([
    ['primary_conninfo', conninfoFormat(info)],
    ['primary_slot_name', slotNameCheck(slot)],
    ['hot_standby', 'on'],
  ])
}

/** standby.signal, durably; recovery.signal (a plain recovery) removed. */
async function signalWrite(dataDir: string): Promise<void> {
  const path = join(dataDir, 'standby.signal')
  const handle = await open(path, 'w', 0o600)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await lstat(join(dataDir, 'recovery.signal'))
    await unlink(join(dataDir, 'recovery.signal'))
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error
  }
  await syncFolder(dataDir)
}
