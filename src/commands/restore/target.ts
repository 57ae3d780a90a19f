// Choosing the backup to restore for a recovery target, and checking a chosen one can reach it. Recovery only
// plays WAL forward, so a backup that ended after the target cannot recover to it: PostgreSQL would silently stop
// at the end of the backup instead (or refuse to start), and the DBA would get the wrong data.

import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { lsnParse } from '../../pg/lsn.js'
import type { BackupRecord } from '../../repo/stanza-info.js'

const TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i

/**
 * Parses a recovery target time to epoch milliseconds. Without a time zone the time is taken as local time on
 * this host, which is what PostgreSQL does when its TimeZone setting matches the host's.
 */
export function targetTimeParse(text: string): number {
  const match = TIME.exec(text.trim())
  const fields = match?.slice(1, 7).map((item) => (item === undefined ? 0 : Number(item)))
  if (!match || !fields) {
    fail('OptionInvalidValue', `target time '${text}' is not a valid time`, {
      hint: "give it as 'YYYY-MM-DD HH:MM:SS' with a time zone, e.g. '2026-11-22 10:15:00+00'.",
    })
  }
  const [year, month, day, hour, minute, second] = fields as [number, number, number, number, number, number]
  const fraction = match[7] ? Number(match[7]) * 1000 : 0
  const zone = match[8]
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    fail('OptionInvalidValue', `target time '${text}' is not a valid time`, { hint: 'check the date and time fields.' })
  }
  if (zone === undefined) return new Date(year, month - 1, day, hour, minute, second).getTime() + fraction
  let offsetMinutes = 0
  if (!/^(z|utc)$/i.test(zone)) {
    const sign = zone.startsWith('-') ? -1 : 1
    const digits = zone.slice(1).replace(':', '')
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0'))
  }
  return Date.UTC(year, month - 1, day, hour, minute, second) + fraction - offsetMinutes * 60000
}

/**
 * Checks a target's form for its type before anything is written, so a typo is a clear error here rather than a
 * server that refuses to start. Time without a zone is only a warning: it is valid, but means this host's zone.
 */
export function targetCheck(type: string, target: string): void {
  if (type === 'time') {
    targetTimeParse(target)
    if (!TIME.exec(target.trim())?.[8]) log.warn(`target time '${target}' has no time zone; it is read as this host's local time`)
  } else if (type === 'xid' && !/^\d+$/.test(target)) {
    fail('OptionInvalidValue', `target xid '${target}' is not a transaction id`, { hint: 'give the number txid_current() returned, e.g. --target=12345.' })
  } else if (type === 'lsn' && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(target)) {
    fail('OptionInvalidValue', `target lsn '${target}' is not an LSN`, { hint: "give it as PostgreSQL prints one, e.g. --target=0/3000028." })
  }
}

/** Whether a backup ended at or before the target, so recovery from it can reach the target. */
function endsBefore(backup: BackupRecord, type: string, target: string): boolean {
  if (type === 'time') return backup.timestampStop * 1000 <= targetTimeParse(target)
  if (type === 'lsn') return lsnParse(backup.lsnStop) <= lsnParse(target)
  return true
}

/**
 * Picks the backup to restore: --set if given (checked against the target), else the newest that can reach it.
 * `onTimeline`, when given, says which backups can recover along the requested timeline (see timeline.ts).
 */
export function backupSelect(
  backups: readonly BackupRecord[],
  type: string,
  target: string | undefined,
  set: string | undefined,
  onTimeline?: { timeline: number; reaches(backup: BackupRecord): boolean },
): BackupRecord {
  if (backups.length === 0) {
    fail('BackupMismatch', 'the stanza has no backups to restore', { hint: 'run `walden backup` first.' })
  }
  if (set !== undefined && onTimeline !== undefined) {
    const chosen = backups.find((backup) => backup.label === set)
    if (chosen !== undefined && !onTimeline.reaches(chosen)) {
      fail('BackupMismatch', `backup set '${set}' (timeline ${chosen.timeline}) cannot recover along timeline ${onTimeline.timeline}`, {
        hint: 'it was taken on a line of history that timeline does not include; choose another --set, or give --target-timeline.',
      })
    }
  }
  const candidates = onTimeline === undefined ? backups : backups.filter((backup) => onTimeline.reaches(backup))
  if (candidates.length === 0) {
    fail('BackupMismatch', `no backup can recover along timeline ${onTimeline!.timeline}`, {
      hint: 'take a backup of the cluster on that timeline, or give --target-timeline=current.',
    })
  }
  const usable = target === undefined ? [...candidates] : candidates.filter((backup) => endsBefore(backup, type, target))
  if (set !== undefined) {
    const chosen = backups.find((backup) => backup.label === set)
    if (!chosen) {
      fail('BackupMismatch', `backup set '${set}' does not exist`, {
        hint: `the backups are: ${backups.map((backup) => backup.label).join(', ')}.`,
      })
    }
    if (target !== undefined && !endsBefore(chosen, type, target)) {
      fail('BackupMismatch', `backup set '${set}' ended after the recovery target '${target}', so recovery from it cannot stop there`, {
        hint:
          usable.length > 0
            ? `backups that ended before the target: ${usable.map((backup) => backup.label).join(', ')}.`
            : 'no backup ended before the target.',
      })
    }
    return chosen
  }
  const chosen = usable.at(-1)
  if (!chosen) {
    fail('BackupMismatch', `no backup ended before the recovery target '${target}'`, {
      hint: `the oldest backup, ${backups[0]!.label}, ended at ${new Date(backups[0]!.timestampStop * 1000).toISOString()} (LSN ${backups[0]!.lsnStop}).`,
    })
  }
  return chosen
}
