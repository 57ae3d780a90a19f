// staging-link --staging-method=initiated (way 1): the initial load.
//
// Way 1 needs nothing on the source host but PostgreSQL: walden opens a replication connection as the
// staging-source role (source-replication.ts), creates a physical replication slot that reserves WAL, then takes the
// base backup itself with BASE_BACKUP (WAL included) and extracts the tar streams into the staging folder as they
// arrive. link.ts then writes the hot-standby settings (standby.ts) and starts the staging cluster, which replays the
// WAL from the backup to consistency and then streams from the slot.
//
// Order, and why:
// 1. Connect (and so authenticate) before anything is created: a wrong password or a missing pg_hba.conf line leaves
//    no slot on the source and no file in the staging folder.
// 2. Slot before backup: the source keeps every WAL segment from before the backup's checkpoint until the staging
//    copy has streamed it, whatever wal_keep_size says, so the copy can never fall off the source's WAL.
// 3. WAL included in the backup: the staging copy reaches consistency from its own files, even if streaming is not
//    possible at its first start; the slot holds the WAL from the backup's end onwards.
// On failure after step 2, the slot this load created is dropped and the staging folder emptied again (it was
// empty); link.ts undoes the rest.

import { chmod, mkdir, readdir, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { type TarEntry, TarExtractor } from '../../io/tar-extract.js'
import { slotNameCheck } from '../../pg/replication/commands.js'
import { syncFolder } from '../../storage/posix.js'
import { tablespaceRoot } from './backup-load.js'
import { slotCreateOn, sourceConnect } from './source-replication.js'
import type { StagingRecord } from './state.js'

/** What the initial load found out about the source, for the staging record. */
export interface InitiatedLoadResult {
  systemId: string
  /** Major version of the source (and so of the staging cluster). */
  pgVersion: number
  timeline: number
  /** Whether the slot was created by this load (a failed link drops it again). */
  slotCreated: boolean
  startLsn: string
  endLsn: string
  /** Tablespace OID → the staging copy's folder for it. */
  tablespaces: Record<string, string>
}

/** The staging copy's folder for a tablespace of the source (as backup-load.ts places them for ways 2 and 3). */
export function stagingTablespacePath(dataDir: string, oid: number): string {
  return join(tablespaceRoot(dataDir), String(oid))
}

/**
 * Way 1's initial load: the slot on the source, then a base backup of the source into `record.path` (which exists
 * and is empty), tablespaces into stagingTablespacePath(). The caller holds the staging lock and records the jobs.
 */
export async function initiatedLoad(_cfg: Config, record: StagingRecord): Promise<InitiatedLoadResult> {
  if (record.source === undefined) fail('OptionRequired', "staging-method=initiated needs option 'staging-source'", { hint: "give the source's libpq connection string, e.g. 'host=db1 user=replicator'." })
  if (record.slotName === undefined) fail('Assert', 'a streaming staging record without a slot name')
  const slot = slotNameCheck(record.slotName)
  const connection = await sourceConnect(record.source)
  let slotCreated = false
  const tablespaceExtractors: TarExtractor[] = []
  try {
    const system = await connection.identifySystem()
    log.info(`source ${connection.where}: PostgreSQL ${connection.major}, system id ${system.systemId}, timeline ${system.timeline}`)
    slotCreated = await slotCreateOn(connection, slot)
    // staging-path may be absent (link.ts checked it is empty if present); PostgreSQL wants 0700 (or 0750).
    await mkdir(record.path, { recursive: true, mode: 0o700 })
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
      slotCreated,
      startLsn: result.startLsn,
      endLsn: result.endLsn,
      tablespaces,
    }
  } catch (error) {
    await emptyFolder(record.path).catch(() => undefined) // it was empty or absent; link.ts removes it when it made it
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

/** Removes everything in a folder, keeping the folder. */
async function emptyFolder(path: string): Promise<void> {
  for (const name of await readdir(path)) await rm(join(path, name), { recursive: true, force: true })
}
