// Whether the archived WAL lets each backup recover: from its start segment to the end of the archive on its
// timeline, and on along every later timeline that branched off after the backup was consistent, as PostgreSQL's
// recovery would follow it (readTimeLineHistory, XLogFileReadAnyTLI). Pure: the caller lists the archive.
//
// At a switch from timeline N to N+1 at LSN X, recovery reads N's segments up to the one before the segment holding
// X and that segment and everything after it from N+1 (PostgreSQL starts N+1 with a copy of that segment), so N's
// segments from there on are not needed to follow the switch; if N went on (an old primary that kept archiving)
// they are still checked as the rest of timeline N.

import { lsnParse } from '../../pg/lsn.js'
import { walSegmentNameFromNumber, walSegmentNumber, walSegmentNumberFromName } from '../../pg/wal.js'

/** A timeline and where it branched off its parent: the last line of its history file. */
export interface TimelineSwitch {
  timeline: number
  parent: number
  switchLsn: bigint
}

export interface ContinuityBackup {
  label: string
  timeline: number
  /** First and last segment of the backup's own WAL (backup.info walStart and walStop). */
  walStart: string
  walStop: string
  /** Where the backup became consistent: a later timeline is followed only if it branched off at or after this. */
  lsnStop: string
  /**
   * False for a backup outside repo1-retention-archive's point-in-time window: expire keeps only its own WAL, so only
   * that is required of it. Default true.
   */
  pitr?: boolean
  /**
   * The backup carries its own start-to-stop WAL (backup-standby=only copies it from the standby's pg_wal): it is
   * restorable without the archive, and point-in-time recovery past it needs the archive from its stop segment on.
   */
  walInBackup?: boolean
}

export interface ContinuityInput {
  /** wal_segment_size in bytes. */
  segmentSize: number
  /** Segment numbers in the archive per timeline (a .partial counts for its segment). */
  present: ReadonlyMap<number, ReadonlySet<bigint>>
  /** Segments that are there but failed their check: present for continuity, unusable for a backup's own WAL. */
  damaged?: ReadonlyMap<number, ReadonlySet<bigint>>
  switches: readonly TimelineSwitch[]
  backups: readonly ContinuityBackup[]
}

/** A run of missing segments on one timeline, and the backups that need it. */
export interface WalGap {
  timeline: number
  /** First and last missing segment name, inclusive. */
  from: string
  to: string
  /** Labels of the backups whose recovery needs these segments, in label order. */
  neededBy: string[]
}

/** A backup whose own start-to-stop WAL is incomplete: it cannot be restored to a consistent state at all. */
export interface UnrestorableBackup {
  label: string
  /** The missing or damaged segments of its start..stop range, as ranges. */
  missing: Array<{ from: string; to: string }>
}

export interface ContinuityResult {
  gaps: WalGap[]
  unrestorable: UnrestorableBackup[]
}

interface Range {
  timeline: number
  low: bigint
  high: bigint
}

/** The last segment in the archive on a timeline, or -1 when it has none. */
function lastPresent(present: ReadonlyMap<number, ReadonlySet<bigint>>, timeline: number): bigint {
  let last = -1n
  for (const segment of present.get(timeline) ?? []) if (segment > last) last = segment
  return last
}

/**
 * The segment ranges one backup's recovery reads: on its timeline from its start segment, and on every descendant
 * timeline reachable from there, each to the end of the archive on that timeline (at least to the segment before the
 * switch to a followed child).
 */
export function requiredRanges(input: ContinuityInput, backup: ContinuityBackup): Range[] {
  const ranges: Range[] = []
  if (backup.pitr === false) return ranges
  const visit = (timeline: number, low: bigint, fromLsn: bigint): void => {
    let high = lastPresent(input.present, timeline)
    for (const child of input.switches) {
      if (child.parent !== timeline || child.switchLsn < fromLsn) continue
      const switchSegment = walSegmentNumber(child.switchLsn, input.segmentSize)
      if (switchSegment - 1n > high) high = switchSegment - 1n
      visit(child.timeline, switchSegment, child.switchLsn)
    }
    if (high >= low) ranges.push({ timeline, low, high })
  }
  visit(backup.timeline, walSegmentNumberFromName(backup.walInBackup === true ? backup.walStop : backup.walStart, input.segmentSize), lsnParse(backup.lsnStop))
  return ranges
}

/**
 * Maximal runs of numbers in [low, high] not in `present` (sorted ascending). Walks the present segments, not every
 * number in the range: a stray name far ahead must not make this loop for billions of segments.
 */
function missingRuns(low: bigint, high: bigint, present: readonly bigint[]): Array<[bigint, bigint]> {
  const runs: Array<[bigint, bigint]> = []
  let next = low
  for (const segment of present) {
    if (segment < next) continue
    if (segment > high) break
    if (segment > next) runs.push([next, segment - 1n])
    next = segment + 1n
  }
  if (next <= high) runs.push([next, high])
  return runs
}

const ascending = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0)

export function walContinuity(input: ContinuityInput): ContinuityResult {
  const name = (timeline: number, segment: bigint): string => walSegmentNameFromNumber(timeline, segment, input.segmentSize)
  const sorted = new Map<number, bigint[]>()
  const presentOn = (timeline: number): bigint[] => {
    let list = sorted.get(timeline)
    if (!list) sorted.set(timeline, (list = [...(input.present.get(timeline) ?? [])].sort(ascending)))
    return list
  }
  const backups = [...input.backups].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0))

  // The missing runs each backup needs, per timeline; then cut where the set of backups needing them changes, so
  // every gap reported names exactly the backups it breaks.
  const needed = new Map<number, Array<{ from: bigint; to: bigint; label: string }>>()
  for (const backup of backups) {
    for (const range of requiredRanges(input, backup)) {
      for (const [from, to] of missingRuns(range.low, range.high, presentOn(range.timeline))) {
        const list = needed.get(range.timeline) ?? []
        list.push({ from, to, label: backup.label })
        needed.set(range.timeline, list)
      }
    }
  }
  const gaps: WalGap[] = []
  for (const timeline of [...needed.keys()].sort((a, b) => a - b)) {
    const runs = needed.get(timeline)!
    const cuts = [...new Set(runs.flatMap((run) => [run.from, run.to + 1n]))].sort(ascending)
    let current: WalGap & { low: bigint; high: bigint } | undefined
    for (let index = 0; index + 1 < cuts.length; index++) {
      const low = cuts[index]!
      const high = cuts[index + 1]! - 1n
      const labels = [...new Set(runs.filter((run) => run.from <= low && run.to >= high).map((run) => run.label))]
      if (labels.length === 0) {
        current = undefined
        continue
      }
      if (current && current.high + 1n === low && current.neededBy.join() === labels.join()) {
        current.high = high
        current.to = name(timeline, high)
      } else {
        current = { timeline, from: name(timeline, low), to: name(timeline, high), neededBy: labels, low, high }
        gaps.push(current)
      }
    }
  }

  const unrestorable: UnrestorableBackup[] = []
  for (const backup of backups) {
    if (backup.walInBackup === true) continue
    const low = walSegmentNumberFromName(backup.walStart, input.segmentSize)
    const high = walSegmentNumberFromName(backup.walStop, input.segmentSize)
    const damaged = input.damaged?.get(backup.timeline)
    const usable = damaged ? presentOn(backup.timeline).filter((segment) => !damaged.has(segment)) : presentOn(backup.timeline)
    const runs = missingRuns(low, high, usable)
    if (runs.length > 0) {
      unrestorable.push({ label: backup.label, missing: runs.map(([from, to]) => ({ from: name(backup.timeline, from), to: name(backup.timeline, to) })) })
    }
  }
  return { gaps: gaps.map(({ timeline, from, to, neededBy }) => ({ timeline, from, to, neededBy })), unrestorable }
}
