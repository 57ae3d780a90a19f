// Which backups can recover along the timeline a restore asks for. After a failover the archive holds two lines of
// history: a backup the old primary took after the split cannot follow the new timeline (PostgreSQL refuses at
// startup that the timeline "is not a child of this server's history"), so it must not be chosen for one.

import { fail } from '../../common/errors.js'
import { lsnParse } from '../../pg/lsn.js'
import { isTimelineHistoryName, timelineHistoryName, timelineHistoryParse } from '../../pg/wal.js'
import type { TimelineHistoryEntry } from '../../pg/wal.js'
import { archiveFileFind, archiveFolderFiles } from '../../repo/archive.js'
import { layout } from '../../repo/layout.js'
import type { BackupRecord } from '../../repo/stanza-info.js'
import { archiveIdOf, archiveInfoLoad } from '../../repo/stanza-info.js'
import { storedFileRead } from '../../repo/stored-file.js'
import type { Storage } from '../../storage/storage.js'

export interface TimelineReach {
  /** The timeline recovery will end on. */
  timeline: number
  reaches(backup: BackupRecord): boolean
}

/**
 * `requested` is restore's --target-timeline: 'current' (any backup, each recovers along its own timeline), a
 * number, or 'latest' (PostgreSQL's default, also when unset): the newest timeline with a history file in the archive.
 * Returns undefined when every backup qualifies.
 */
export async function timelineReach(repo: Storage, stanza: string, requested: string | undefined): Promise<TimelineReach | undefined> {
  if (requested === 'current') return undefined
  if (requested !== undefined && requested !== 'latest' && !/^[1-9]\d{0,9}$/.test(requested)) {
    fail('OptionInvalidValue', `target timeline '${requested}' is not 'current', 'latest' or a timeline number`, { hint: 'e.g. --target-timeline=2.' })
  }
  const info = await archiveInfoLoad(repo, stanza)
  let timeline: number
  if (requested === undefined || requested === 'latest') {
    const folder = layout.walFolder(stanza, archiveIdOf(info.db), timelineHistoryName(1))
    const entries = await repo.list(folder)
    // pgBackRest stores history files under their own name with no checksum record (repo/pgbackrest/info.ts
    // pgbrHistoryFind); walden records one beside each (repo/archive.ts).
    const timelines = (info.foreign === 'pgbackrest' ? entries : archiveFolderFiles(entries).map((file) => file.walName))
      .filter((name) => isTimelineHistoryName(name))
      .map((name) => parseInt(name.slice(0, 8), 16))
    if (timelines.length === 0) return undefined // never a timeline switch: every backup is on timeline 1
    timeline = Math.max(...timelines)
  } else {
    timeline = Number(requested)
  }
  if (timeline === 1) return timelineReaches(1, [])

  const historyName = timelineHistoryName(timeline)
  const found = await archiveFileFind(repo, info, historyName)
  if (found === undefined) {
    fail('BackupMismatch', `timeline ${timeline} has no history file (${historyName}) in the archive`, {
      hint: 'recovery could not follow it; check --target-timeline against the timelines `walden info` shows.',
    })
  }
  const what = `archived timeline history '${repo.describe(found.path)}'`
  const history = timelineHistoryParse((await storedFileRead(repo, found.path, found.sha256, what)).toString('utf8'), timeline)
  return timelineReaches(timeline, history)
}

/** The rule itself: on the timeline, or on an ancestor and consistent (its stop LSN) before that ancestor ended. */
export function timelineReaches(timeline: number, history: readonly TimelineHistoryEntry[]): TimelineReach {
  return {
    timeline,
    reaches: (backup) =>
      backup.timeline === timeline || history.some((entry) => entry.timeline === backup.timeline && lsnParse(backup.lsnStop) <= entry.switchLsn),
  }
}
