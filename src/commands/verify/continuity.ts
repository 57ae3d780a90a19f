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
  visit(backup.timeline, walSegmentNumberFromName(backup.walStart, input.segmentSize), lsnParse(backup.lsnStop))
  return ranges
}

/** Maximal runs of numbers in [low, high] for which `missing` holds. */
function missingRuns(low: bigint, high: bigint, missing: (segment: bigint) => boolean): Array<[bigint, bigint]> {
  const runs: Array<[bigint, bigint]> = []
  let start: bigint | undefined
  for (let segment = low; segment <= high; segment++) {
    if (missing(segment)) start ??= segment
    else if (start !== undefined) {
      runs.push([start, segment - 1n])
      start = undefined
    }
  }
  if (start !== undefined) runs.push([start, high])
  return runs
}

export function walContinuity(input: ContinuityInput): ContinuityResult {
  const name = (timeline: number, segment: bigint): string => walSegmentNameFromNumber(timeline, segment, input.segmentSize)
  const isPresent = (timeline: number, segment: bigint): boolean => input.present.get(timeline)?.has(segment) ?? false
  const backups = [...input.backups].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0))

  // Each missing segment with the backups that need it; runs are then cut where that set changes, so every gap
  // reported names exactly the backups it breaks.
  const needed = new Map<number, Map<bigint, string[]>>()
  for (const backup of backups) {
    for (const range of requiredRanges(input, backup)) {
      for (const [from, to] of missingRuns(range.low, range.high, (segment) => !isPresent(range.timeline, segment))) {
        const onTimeline = needed.get(range.timeline) ?? new Map<bigint, string[]>()
        needed.set(range.timeline, onTimeline)
        for (let segment = from; segment <= to; segment++) {
          const labels = onTimeline.get(segment) ?? []
          if (!labels.includes(backup.label)) labels.push(backup.label)
          onTimeline.set(segment, labels)
        }
      }
    }
  }
  const gaps: WalGap[] = []
  for (const timeline of [...needed.keys()].sort((a, b) => a - b)) {
    const segments = needed.get(timeline)!
    let current: { from: bigint; to: bigint; key: string; labels: string[] } | undefined
    const flush = (): void => {
      if (current) gaps.push({ timeline, from: name(timeline, current.from), to: name(timeline, current.to), neededBy: current.labels })
    }
    for (const segment of [...segments.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const labels = segments.get(segment)!
      const key = labels.join(',')
      if (current && current.key === key && current.to + 1n === segment) current.to = segment
      else {
        flush()
        current = { from: segment, to: segment, key, labels }
      }
    }
    flush()
  }

  const unrestorable: UnrestorableBackup[] = []
  for (const backup of backups) {
    const low = walSegmentNumberFromName(backup.walStart, input.segmentSize)
    const high = walSegmentNumberFromName(backup.walStop, input.segmentSize)
    const unusable = (segment: bigint): boolean =>
      !isPresent(backup.timeline, segment) || (input.damaged?.get(backup.timeline)?.has(segment) ?? false)
    const runs = missingRuns(low, high, unusable)
    if (runs.length > 0) {
      unrestorable.push({ label: backup.label, missing: runs.map(([from, to]) => ({ from: name(backup.timeline, from), to: name(backup.timeline, to) })) })
    }
  }
  return { gaps, unrestorable }
}
