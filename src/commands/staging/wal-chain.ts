// The WAL chain of a staging copy fed from a folder (staging-method=external-wal): which file the staging cluster needs
// next, and whether a request it cannot be given is normal waiting or a break in the chain. Pure functions over names,
// timeline histories and a listing of the folder; wal-feed.ts does the reading, checking and copying.
//
// What PostgreSQL asks restore_command for, as a standby fed only from an archive (xlogrecovery.c):
// - '0000000N.history' for timelines above its own, to find the newest (recovery_target_timeline=latest), at start and
//   each time the archive has nothing new. Most of these do not exist: not found is normal.
// - each segment in turn, trying the timelines it knows newest first (XLogFileReadAnyTLI): for segment S, the newest
//   timeline that began at or before S, then older ones. So a request for a segment of a timeline that has no such
//   file is normal too; only the request for the file that must exist says anything about the chain.
// - the same segment again every wal_retrieve_retry_interval while it is absent.
//
// So the judge looks only at the request for the expected file: the segment on the newest timeline, of those this
// cluster can follow, that began at or before it. Absent with nothing newer in the folder: the source has not
// archived it yet. Absent while later segments of the chain are there: a break, unless an older timeline's copy of the
// same segment is there, which PostgreSQL asks for next.

import type { TimelineHistoryEntry } from '../../pg/wal.js'
import {
  isPartialName,
  isTimelineHistoryName,
  isWalSegmentName,
  walSegmentNameFromNumber,
  walSegmentNumber,
  walSegmentNumberFromName,
  walSegmentParse,
  walSegmentStartLsn,
} from '../../pg/wal.js'

/** Compressed copies the folder may hold instead of the plain file; the plain name is looked for first. */
export const WAL_FOLDER_SUFFIXES = ['', '.gz', '.lz4', '.zst'] as const

/**
 * How long a file that fails its checks may still be in the middle of being written (archive_command = 'cp ...'
 * is not atomic: the file grows under its final name). A file that has not changed for this long is judged.
 */
export const WAL_SETTLE_MS = 10_000

/** A timeline and the segment it began in (the one holding its parent's switch point; 0 for the first). */
export interface ChainTimeline {
  timeline: number
  beginSegment: bigint
}

/**
 * The timelines the staging cluster will follow from `position` (an LSN it has not yet replayed past), newest first.
 * `current` is the timeline it is on; `histories` the parsed history files in the folder, by their timeline. The
 * newest timeline followed is the highest N whose history names `current` as a parent with a switch point at or
 * after `position` (PostgreSQL refuses a timeline that forked before the point it has replayed to), or `current`
 * itself. Its history, when in the folder, gives the older timelines and where each began.
 */
export function timelineChain(
  current: number,
  histories: ReadonlyMap<number, readonly TimelineHistoryEntry[]>,
  position: bigint,
  segmentSize: number,
): ChainTimeline[] {
  let newest = current
  for (const [timeline, entries] of histories) {
    if (timeline <= newest) continue
    const parent = entries.find((entry) => entry.timeline === current)
    if (parent !== undefined && parent.switchLsn >= position) newest = timeline
  }
  const entries = histories.get(newest) ?? []
  const chain: ChainTimeline[] = []
  let begin = 0n
  for (const entry of entries) {
    chain.push({ timeline: entry.timeline, beginSegment: begin })
    begin = walSegmentNumber(entry.switchLsn, segmentSize)
  }
  chain.push({ timeline: newest, beginSegment: begin })
  return chain.reverse()
}

/** Name of segment `segment` on the newest timeline of `chain` that began at or before it. */
export function chainSegmentName(chain: readonly ChainTimeline[], segment: bigint, segmentSize: number): string {
  const owner = chain.find((entry) => entry.beginSegment <= segment) ?? chain[chain.length - 1]!
  return walSegmentNameFromNumber(owner.timeline, segment, segmentSize)
}

/** What a WAL folder holds, as the judge needs it: segment names (without a compression suffix) and history files. */
export interface WalFolderView {
  /** Names of whole segments (plain or compressed: the suffix removed); '.partial' files are not segments here. */
  segments: ReadonlySet<string>
  /** Timelines whose history file is in the folder. */
  historyTimelines: ReadonlySet<number>
}

/** Sorts a folder listing into a WalFolderView; other files (backup history, temporary names) are left out. */
export function walFolderView(names: Iterable<string>): WalFolderView {
  const segments = new Set<string>()
  const historyTimelines = new Set<number>()
  for (const name of names) {
    if (isTimelineHistoryName(name)) {
      historyTimelines.add(Number.parseInt(name.slice(0, 8), 16))
      continue
    }
    const suffix = WAL_FOLDER_SUFFIXES.find((candidate) => candidate !== '' && name.endsWith(candidate)) ?? ''
    const plain = name.slice(0, name.length - suffix.length)
    if (isWalSegmentName(plain) && !isPartialName(plain)) segments.add(plain)
  }
  return { segments, historyTimelines }
}

/** The answer to a request for a segment that is not in the folder. */
export type MissingVerdict =
  /** Not archived yet, or PostgreSQL will find it elsewhere: exit 1 quietly. `expected` is what it needs next. */
  | { kind: 'wait'; expected?: string }
  /** The chain is broken at `expected`; `message` says why. */
  | { kind: 'break'; expected: string; message: string }

/**
 * Judges a request for segment `request` that the folder does not hold. `chain` as timelineChain gives it for the
 * request's position. Only the expected name can be a break; a request for another timeline's copy is PostgreSQL
 * trying the timelines it knows.
 */
export function judgeMissingSegment(
  request: string,
  chain: readonly ChainTimeline[],
  folder: WalFolderView,
  segmentSize: number,
): MissingVerdict {
  const segment = walSegmentNumberFromName(request, segmentSize)
  const expected = chainSegmentName(chain, segment, segmentSize)
  if (request !== expected) return { kind: 'wait' }

  // An older timeline's copy of this segment: PostgreSQL asks for it next.
  const expectedTimeline = walSegmentParse(expected).timeline
  for (const entry of chain) {
    if (entry.timeline >= expectedTimeline || entry.beginSegment > segment) continue
    if (folder.segments.has(walSegmentNameFromNumber(entry.timeline, segment, segmentSize))) return { kind: 'wait', expected }
  }

  // A timeline of the chain holds segments from where it began to where its child began (that segment is on both):
  // an older timeline's segments past that point are WAL the source wrote on a branch this cluster does not follow.
  const lastSegment = new Map<number, bigint>()
  chain.forEach((entry, index) => lastSegment.set(entry.timeline, index === 0 ? -1n : chain[index - 1]!.beginSegment))
  const newestTimeline = chain[0]!.timeline
  let newerInChain: string | undefined
  let newerBeyond: string | undefined
  for (const name of folder.segments) {
    const { timeline } = walSegmentParse(name)
    const number = walSegmentNumberFromName(name, segmentSize)
    if (number <= segment) continue
    const last = lastSegment.get(timeline)
    if (last !== undefined) {
      if (last >= 0n && number > last) continue
      if (newerInChain === undefined || name < newerInChain) newerInChain = name
    } else if (timeline > newestTimeline) {
      if (newerBeyond === undefined || name < newerBeyond) newerBeyond = name
    }
  }
  if (newerInChain !== undefined) {
    return {
      kind: 'break',
      expected,
      message: `WAL file '${expected}' is missing from the WAL folder, but later WAL file '${newerInChain}' is there`,
    }
  }
  if (newerBeyond !== undefined) {
    const timeline = walSegmentParse(newerBeyond).timeline
    const history = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`
    const why = folder.historyTimelines.has(timeline)
      ? `its history file '${history}' does not branch from timeline ${newestTimeline} at or after this position`
      : `its history file '${history}' is not there`
    return {
      kind: 'break',
      expected,
      message: `WAL file '${expected}' is missing from the WAL folder, and WAL of timeline ${timeline} ('${newerBeyond}') is there but ${why}`,
    }
  }
  return { kind: 'wait', expected }
}

/** The file the staging cluster needs after it has been given segment `served`. */
export function expectedAfter(served: string, chain: readonly ChainTimeline[], segmentSize: number): string {
  return chainSegmentName(chain, walSegmentNumberFromName(served, segmentSize) + 1n, segmentSize)
}

/** Start LSN of a segment name: where a request for it says replay stands. */
export function requestPosition(request: string, segmentSize: number): bigint {
  return walSegmentStartLsn(request, segmentSize)
}
