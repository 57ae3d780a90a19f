// The prefetch queue of asynchronous archive-get, as pure decisions: which segments recovery will ask for next, and
// what to remove from and add to the queue. Kept apart from the file system so the rules can be tested alone.

import { isWalSegmentName, walSegmentNext } from '../../pg/wal.js'

/** The queue file naming what the running background process was asked to fetch. */
export const QUEUE_LIST = 'queue.list'

/**
 * The `depth` segments recovery asks for after `walName`, on the same timeline. A timeline switch shows up as a
 * request for a segment not in this list, which then empties the queue of the old timeline's segments.
 */
export function queueWanted(walName: string, segmentSize: number, depth: number): string[] {
  const names: string[] = []
  let name = walName
  for (let index = 0; index < depth; index++) {
    name = walSegmentNext(name, segmentSize)
    names.push(name)
  }
  return names
}

export interface QueuePlan {
  /** Queue entries recovery will not ask for next: older segments, another timeline's, leftovers of a killed process. */
  remove: string[]
  /** Segments for a new background process to fetch, in order; empty when the queue is full enough. */
  fetch: string[]
}

/**
 * What to do with the queue once recovery has `wanted` ahead of it. The queue is refilled in batches, when the next
 * segment is missing or half of the queue is, so a background process starts once per several segments rather than
 * once per segment.
 */
export function queuePlan(entries: readonly string[], wanted: readonly string[]): QueuePlan {
  const wantedSet = new Set(wanted)
  const present = new Set<string>()
  const remove: string[] = []
  for (const entry of entries) {
    if (entry === QUEUE_LIST) continue
    if (isWalSegmentName(entry) && wantedSet.has(entry)) present.add(entry)
    else remove.push(entry)
  }
  const missing = wanted.filter((name) => !present.has(name))
  const refill = missing.length > 0 && (!present.has(wanted[0]!) || missing.length >= Math.ceil(wanted.length / 2))
  return { remove, fetch: refill ? missing : [] }
}
