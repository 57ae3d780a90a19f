// Whether the stanza's archive holds the WAL a clone's recovery needs to reach its target, checked before anything is
// restored. Recovery replays WAL forward from the snapshot and stops at the target, which it only knows it has reached
// when it reads the record that passes it: for a time target, the first commit or abort after that time; for an LSN,
// a record at or after it; for an xid, that transaction's commit or abort; for a name, that restore point. When the
// archived WAL ends first, PostgreSQL 13 and later stop recovery with "recovery ended before configured recovery
// target was reached" and the server shuts down: no clone, after a whole restore. So "past the available WAL" means
// exactly: no such record in the unbroken run of archived segments that starts at the snapshot.
//
// Only the snapshot's timeline is followed (the clone recovers with recovery_target_timeline = current).

import { fail } from '../../common/errors.js'
import { lsnFormat, lsnParse } from '../../pg/lsn.js'
import { walSegmentName, walSegmentNext, walSegmentStartLsn } from '../../pg/wal.js'
import { walRecordEndsXact, walRecordRestorePoint, walRecordXactTime, walSegmentRecords } from '../../pg/wal-records.js'
import type { WalRecord } from '../../pg/wal-records.js'
import { archivedNameParse } from '../../repo/archive.js'
import type { ArchivedFile } from '../../repo/archive.js'
import { layout } from '../../repo/layout.js'
import type { Manifest } from '../../repo/manifest.js'
import type { BackupRecord } from '../../repo/stanza-info.js'
import { archiveIdOf, archiveInfoLoad } from '../../repo/stanza-info.js'
import { storedFileRead } from '../../repo/stored-file.js'
import type { Storage } from '../../storage/storage.js'
import { targetTimeParse } from '../restore/target.js'

export interface CloneTarget {
  type: 'time' | 'lsn' | 'xid' | 'name'
  target: string
  /** recovery_target_inclusive = false: stop just before the target. */
  exclusive: boolean
}

/**
 * The segments on the snapshot's timeline recovery can read, in order, from the one its WAL starts in to the first
 * gap: those in the archive, and those the snapshot carries in its own pg_wal (a backup of a standby copies the WAL
 * from its start to its stop, since that may not be archived yet), which map to undefined.
 */
async function archivedRun(repo: Storage, stanza: string, snapshot: BackupRecord, segmentSize: number, carried: ReadonlySet<string>): Promise<Map<string, ArchivedFile | undefined>> {
  const info = await archiveInfoLoad(repo, stanza)
  const archiveId = archiveIdOf(info.db)
  const timeline = snapshot.walStart.slice(0, 8)
  const root = layout.archiveId(stanza, archiveId)
  const folders = (await repo.list(root)).filter((entry) => /^[0-9A-F]{16}$/.test(entry) && entry.startsWith(timeline) && entry >= snapshot.walStart.slice(0, 16)).sort()
  const stored = new Map<string, ArchivedFile>()
  for (const folder of folders) {
    for (const entry of await repo.list(`${root}/${folder}`)) {
      const parsed = archivedNameParse(entry)
      if (parsed === undefined || parsed.walName.length !== 24) continue
      stored.set(parsed.walName, { path: `${root}/${folder}/${entry}`, sha256: parsed.sha256, extension: parsed.extension, archiveId })
    }
  }
  const run = new Map<string, ArchivedFile | undefined>()
  for (let name = snapshot.walStart; stored.has(name) || carried.has(name); name = walSegmentNext(name, segmentSize)) run.set(name, stored.get(name))
  return run
}

/** The WAL segments a snapshot carries itself, from its manifest (pg_data/pg_wal/<segment>). */
export function carriedSegments(manifest: Manifest): Set<string> {
  return new Set(manifest.files.map((file) => /^pg_data\/pg_wal\/([0-9A-F]{24})$/.exec(file.name)?.[1]).filter((name): name is string => name !== undefined))
}

/**
 * The records of an archived segment. One the snapshot only carries (not archived) is not read: for what is looked
 * for after the snapshot's consistent point, it holds at most the records up to it, so the check errs on refusing.
 */
async function segmentRecords(repo: Storage, name: string, file: ArchivedFile | undefined): Promise<WalRecord[]> {
  if (file === undefined) return []
  const data = await storedFileRead(repo, file.path, file.sha256, `archived WAL segment '${name}'`)
  return [...walSegmentRecords(data, name)]
}

/**
 * How a clone of the snapshot itself recovers. recovery_target = 'immediate' stops before the first record after the
 * consistent point, so it needs one: a snapshot of a standby is consistent exactly where the standby's replay stood,
 * often the end of a segment, and while the source is idle nothing after that point is archived; PostgreSQL would
 * then end recovery with "recovery ended before configured recovery target was reached". In that case the archive
 * ends exactly at the consistent point, and recovery to the end of the archive ('end') reaches the same state.
 * Fails when the snapshot's own WAL is not all archived.
 */
export async function cloneSnapshotEnd(repo: Storage, stanza: string, snapshot: BackupRecord, manifest: Manifest): Promise<'immediate' | 'end'> {
  const segmentSize = manifest.pg.walSegmentSize
  const run = await archivedRun(repo, stanza, snapshot, segmentSize, carriedSegments(manifest))
  const consistent = lsnParse(snapshot.lsnStop)
  const needed = walSegmentName(snapshot.timeline, consistent - 1n, segmentSize)
  for (let name = snapshot.walStart; ; name = walSegmentNext(name, segmentSize)) {
    if (!run.has(name)) {
      fail('BackupMismatch', `the WAL of snapshot ${snapshot.label} is not all archived: segment ${name} is missing`, {
        hint: 'the staging copy archives what it replays; wait for the segment to reach the repository, or choose another snapshot with --set.',
      })
    }
    if (name === needed) break
  }
  // Archived segments are whole: the one holding the consistent point then has a record after it. A carried one may
  // end right there (the standby's replay had got no further).
  return run.get(walSegmentName(snapshot.timeline, consistent, segmentSize)) !== undefined ? 'immediate' : 'end'
}

const PAST_HINT =
  'PostgreSQL 13 and later stop recovery with "recovery ended before configured recovery target was reached" when the ' +
  'archived WAL ends before the target; give an earlier target, or wait until the WAL written after it is archived.'

/**
 * Fails, naming what the archive does reach, unless recovery from `snapshot` can reach `target` along the archived
 * WAL. The target is already known to lie after the snapshot (backupSelect).
 */
export async function cloneTargetReachCheck(repo: Storage, stanza: string, snapshot: BackupRecord, manifest: Manifest, target: CloneTarget): Promise<void> {
  const segmentSize = manifest.pg.walSegmentSize
  const run = await archivedRun(repo, stanza, snapshot, segmentSize, carriedSegments(manifest))
  const names = [...run.keys()]
  const last = names.at(-1)
  const consistent = lsnParse(snapshot.lsnStop)
  const ending = last === undefined ? `no WAL of snapshot ${snapshot.label} is archived` : `up to segment ${last}`
  // Only records past the snapshot's consistent point count: a stop before it is refused by PostgreSQL too.
  const after = (records: WalRecord[]): WalRecord[] => records.filter((record) => record.lsn >= consistent)

  if (target.type === 'time') {
    const time = targetTimeParse(target.target)
    // Newest segment first: the first one with a transaction end settles it.
    for (const name of [...names].reverse()) {
      if (walSegmentStartLsn(name, segmentSize) + BigInt(segmentSize) <= consistent) break
      const times = after(await segmentRecords(repo, name, run.get(name)))
        .map(walRecordXactTime)
        .filter((value): value is number => value !== undefined)
      if (times.length === 0) continue
      const newest = Math.max(...times)
      if (target.exclusive ? newest >= time : newest > time) return
      fail('BackupMismatch', `target time '${target.target}' is past the available WAL: the last transaction archived after snapshot ${snapshot.label} ended at ${new Date(newest).toISOString()} (segment ${name})`, { hint: PAST_HINT })
    }
    fail('BackupMismatch', `target time '${target.target}' is past the available WAL: no transaction ended after snapshot ${snapshot.label} in the archived WAL (${ending})`, { hint: PAST_HINT })
  }

  if (target.type === 'lsn') {
    const lsn = lsnParse(target.target)
    const holding = walSegmentName(snapshot.timeline, lsn, segmentSize)
    if (run.has(holding)) {
      const next = walSegmentNext(holding, segmentSize)
      if (run.has(next) || (await segmentRecords(repo, holding, run.get(holding))).some((record) => record.lsn >= lsn)) return
    }
    const end = last === undefined ? `no WAL of snapshot ${snapshot.label} is archived` : `the archived WAL after snapshot ${snapshot.label} ends at ${lsnFormat(walSegmentStartLsn(last, segmentSize) + BigInt(segmentSize))} (segment ${last})`
    fail('BackupMismatch', `target lsn '${target.target}' is past the available WAL: ${end}`, { hint: PAST_HINT })
  }

  // xid and name: the first matching record after the snapshot, oldest segment first, as recovery meets them.
  const xid = target.type === 'xid' ? Number(BigInt(target.target) & 0xffffffffn) : undefined
  for (const name of names) {
    if (walSegmentStartLsn(name, segmentSize) + BigInt(segmentSize) <= consistent) continue
    const records = after(await segmentRecords(repo, name, run.get(name)))
    const found = records.some((record) => (xid !== undefined ? walRecordEndsXact(record) && record.xid === xid : walRecordRestorePoint(record) === target.target))
    if (found) return
  }
  const what = target.type === 'xid' ? `transaction ${target.target} did not end` : `restore point '${target.target}' was not created`
  fail('BackupMismatch', `target ${target.type} '${target.target}' is past the available WAL: ${what} after snapshot ${snapshot.label} in the archived WAL (${ending})`, { hint: PAST_HINT })
}
