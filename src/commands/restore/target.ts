// Choosing the backup to restore for a recovery target, and checking a chosen one can reach it. Recovery only
// plays WAL forward, so a backup that ended after the target cannot recover to it: PostgreSQL would silently stop
// at the end of the backup instead (or refuse to start), and the DBA would get the wrong data.

import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { lsnParse } from '../../pg/lsn.js'
import type { BackupRecord } from '../../repo/stanza-info.js'

// The ISO form of a timestamp PostgreSQL's recovery_target_time accepts: date, time, optional fraction and zone (a
// numeric offset or a zone name). PostgreSQL reads more forms (month names); walden asks for one it can check exactly.
const TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*([+-]\d{2}(?::?\d{2}(?::?\d{2})?)?|[A-Za-z][\w+\-/]*)?$/

/** Offsets PostgreSQL accepts for a time zone: up to 15 hours either way (its MAX_TZDISP_HOUR). */
const MAX_OFFSET_HOURS = 15

const TIME_HINT = "give it as 'YYYY-MM-DD HH:MM:SS' with a time zone, e.g. '2026-11-22 10:15:00+00'."

/** Days in a month of the Gregorian calendar PostgreSQL uses, leap years included. */
export function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28
  return [4, 6, 9, 11].includes(month) ? 30 : 31
}

/** Epoch milliseconds of a wall-clock time read as UTC; years 0-99 stay themselves (Date.UTC makes them 19xx). */
function wallAsUtc(year: number, month: number, day: number, hour: number, minute: number, second: number): number {
  // Computed 400 years on (the Gregorian calendar repeats every 400 years) and taken back, which keeps the
  // roll-over of 24:00:00 and :60 into the next day.
  const date = new Date(Date.UTC(year + 400, month - 1, day, hour, minute, second))
  date.setUTCFullYear(date.getUTCFullYear() - 400)
  return date.getTime()
}

/** How far a named zone's clocks are ahead of UTC at an instant, in milliseconds; undefined for an unknown zone. */
function zoneOffsetAt(zone: string, instant: number): number | undefined {
  let parts: Intl.DateTimeFormatPart[]
  try {
    const format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', era: 'short', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    })
    parts = format.formatToParts(new Date(instant))
  } catch {
    return undefined
  }
  const part = (type: string): number => Number(parts.find((item) => item.type === type)?.value)
  const year = parts.find((item) => item.type === 'era')?.value === 'BC' ? 1 - part('year') : part('year')
  return wallAsUtc(year, part('month'), part('day'), part('hour'), part('minute'), part('second')) - Math.floor(instant / 1000) * 1000
}

/**
 * Parses a recovery target time to epoch milliseconds, refusing what PostgreSQL would refuse at start (2027-02-29,
 * 25:00, a zone abbreviation) and what JavaScript would silently move (Feb 30 becoming Mar 2). As in PostgreSQL,
 * 24:00:00 is the next day's midnight and a leap second :60 rolls over. Without a time zone the time is taken as
 * local time on this host, which is what PostgreSQL does when its TimeZone setting matches the host's.
 */
export function targetTimeParse(text: string): number {
  const match = TIME.exec(text.trim())
  const invalid = (why: string | undefined, hint = TIME_HINT): never =>
    fail('OptionInvalidValue', `target time '${text}' is not a valid time${why === undefined ? '' : `: ${why}`}`, { hint })
  if (!match) return invalid(undefined)
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((item) => (item === undefined ? 0 : Number(item))) as [number, number, number, number, number, number]
  const fraction = match[7] ? Number(match[7]) : 0
  if (year < 1) invalid('there is no year 0')
  if (month < 1 || month > 12) invalid(`there is no month ${month}`)
  if (day < 1 || day > daysInMonth(year, month)) invalid(`${year}-${String(month).padStart(2, '0')} has ${daysInMonth(year, month)} days`)
  if (minute > 59 || second > 60 || hour > 24 || (hour === 24 && (minute > 0 || second > 0 || fraction > 0))) {
    invalid('the time of day is out of range', 'hours 00-23 (or 24:00:00), minutes and seconds 00-59.')
  }
  const zone = match[8]
  const ms = Math.round(fraction * 1000)
  if (zone === undefined) return new Date(year, month - 1, day, hour, minute, second).getTime() + ms
  const wall = wallAsUtc(year, month, day, hour, minute, second) + ms
  if (/^[+-]/.test(zone)) {
    const sign = zone.startsWith('-') ? -1 : 1
    const [hours, minutes, seconds] = (zone.slice(1).match(/\d{2}/g) ?? []).map(Number) as [number, number?, number?]
    if (hours > MAX_OFFSET_HOURS || (minutes ?? 0) > 59 || (seconds ?? 0) > 59) {
      invalid(`the time zone offset ${zone} is out of range`, 'an offset is at most 15:59:59 either way, e.g. +01:00.')
    }
    return wall - sign * (hours * 3600 + (minutes ?? 0) * 60 + (seconds ?? 0)) * 1000
  }
  // A zone name (UTC, Europe/Paris). PostgreSQL reads recovery_target_time before it loads its zone abbreviations,
  // so Z or PST make the server refuse to start: only names of the zone database work, which are Area/Location
  // besides UTC and GMT (the JavaScript zone database also knows some abbreviations, such as PST).
  const named = /^(utc|gmt)$/i.test(zone) || /^[A-Za-z]+(\/[\w+-]+)+$/.test(zone)
  const offsetGuess = named ? zoneOffsetAt(zone, wall) : undefined
  if (offsetGuess === undefined) {
    return invalid(`'${zone}' is not a time zone name PostgreSQL reads here`, "PostgreSQL does not read zone abbreviations in recovery_target_time; give an offset such as +00 or +01:00, or a zone name such as UTC or Europe/Paris.")
  }
  // The offset in force at the instant itself, which differs from the guess's across a change of daylight saving.
  return wall - (zoneOffsetAt(zone, wall - offsetGuess) ?? offsetGuess)
}

/** The largest value PostgreSQL reads for recovery_target_xid (an unsigned 64-bit number, epoch and xid). */
const XID_MAX = (1n << 64n) - 1n
/** Transaction ids below this are PostgreSQL's special ones (invalid, bootstrap, frozen), never a commit to stop at. */
const FIRST_NORMAL_XID = 3n
/** PostgreSQL's limit on a restore point name (MAXFNAMELEN, including the terminating NUL). */
const NAME_MAX_BYTES = 63

/**
 * Checks a target's form for its type before anything is written, so a typo is a clear error here rather than a
 * server that refuses to start or stops at the wrong place. Time without a zone is only a warning: it is valid,
 * but means this host's zone.
 */
export function targetCheck(type: string, target: string): void {
  if (type === 'time') {
    targetTimeParse(target)
    if (TIME.exec(target.trim())?.[8] === undefined) log.warn(`target time '${target}' has no time zone; it is read as this host's local time`)
  } else if (type === 'xid') {
    // Decimal only: PostgreSQL reads a leading 0 as octal and 0x as hex, so 010 would silently mean xid 8.
    const xidHint = 'give the decimal number txid_current() or pg_current_xact_id() returned, e.g. --target=12345.'
    if (!/^(0|[1-9]\d*)$/.test(target)) fail('OptionInvalidValue', `target xid '${target}' is not a transaction id: expected a decimal number without leading zeros`, { hint: xidHint })
    const xid = BigInt(target)
    if (xid > XID_MAX) fail('OptionInvalidValue', `target xid '${target}' is out of range: a transaction id is at most ${XID_MAX} (64 bits)`, { hint: xidHint })
    // PostgreSQL keeps the low 32 bits (a 64-bit value from pg_current_xact_id() carries the epoch above them).
    if ((xid & 0xffffffffn) < FIRST_NORMAL_XID) fail('OptionInvalidValue', `target xid '${target}' is not the id of a transaction that can commit`, { hint: xidHint })
  } else if (type === 'lsn' && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(target)) {
    fail('OptionInvalidValue', `target lsn '${target}' is not an LSN`, {
      hint: 'give it as PostgreSQL prints one, e.g. --target=0/3000028.',
    })
  } else if (type === 'name') {
    const bytes = Buffer.byteLength(target, 'utf8')
    if (bytes === 0 || bytes > NAME_MAX_BYTES) {
      fail('OptionInvalidValue', `target name '${target}' is ${bytes} bytes long; a restore point name is 1 to ${NAME_MAX_BYTES} bytes`, {
        hint: 'give the name exactly as passed to pg_create_restore_point().',
      })
    }
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
