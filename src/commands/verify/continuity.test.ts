import assert from 'node:assert/strict'
import { test } from 'node:test'
import { walSegmentNumberFromName } from '../../pg/wal.js'
import { walContinuity } from './continuity.js'
import type { ContinuityBackup, ContinuityInput } from './continuity.js'

const SEG = 16 * 1024 * 1024

/** Segment names to the per-timeline sets walContinuity takes. */
function segments(...names: string[]): Map<number, Set<bigint>> {
  const present = new Map<number, Set<bigint>>()
  for (const name of names) {
    const timeline = Number.parseInt(name.slice(0, 8), 16)
    const set = present.get(timeline) ?? new Set<bigint>()
    set.add(walSegmentNumberFromName(name, SEG))
    present.set(timeline, set)
  }
  return present
}

/** Segments tt/first..last, named. */
function run(timeline: number, first: number, last: number): string[] {
  const names: string[] = []
  for (let segment = first; segment <= last; segment++) {
    names.push(`${timeline.toString(16).toUpperCase().padStart(8, '0')}00000000${segment.toString(16).toUpperCase().padStart(8, '0')}`)
  }
  return names
}

function backup(label: string, timeline: number, start: number, stop: number): ContinuityBackup {
  const [walStart] = run(timeline, start, start)
  const [walStop] = run(timeline, stop, stop)
  // Consistent a little into its stop segment.
  return { label, timeline, walStart: walStart!, walStop: walStop!, lsnStop: `0/${(stop * SEG + 0x100).toString(16).toUpperCase()}` }
}

function input(present: string[], backups: ContinuityBackup[], switches: ContinuityInput['switches'] = []): ContinuityInput {
  return { segmentSize: SEG, present: segments(...present), switches, backups }
}

test('a continuous archive has no gaps', () => {
  const result = walContinuity(input(run(1, 2, 9), [backup('A', 1, 2, 3), backup('B', 1, 6, 6)]))
  assert.deepEqual(result, { gaps: [], unrestorable: [] })
})

test('segments missing in the middle are one gap, named by range, with the backups that need them', () => {
  const present = [...run(1, 2, 4), ...run(1, 8, 9)]
  const result = walContinuity(input(present, [backup('A', 1, 2, 3), backup('B', 1, 3, 4), backup('C', 1, 8, 8)]))
  assert.deepEqual(result.gaps, [{ timeline: 1, from: '000000010000000000000005', to: '000000010000000000000007', neededBy: ['A', 'B'] }])
  assert.deepEqual(result.unrestorable, [])
})

test('a gap is cut where the backups needing it change', () => {
  // A starts at 2, B at 6: 4..5 breaks A only, 6..7 breaks both, and B's own WAL (6) is gone.
  const present = [...run(1, 2, 3), ...run(1, 8, 9)]
  const result = walContinuity(input(present, [backup('A', 1, 2, 2), backup('B', 1, 6, 6)]))
  assert.deepEqual(result.gaps, [
    { timeline: 1, from: '000000010000000000000004', to: '000000010000000000000005', neededBy: ['A'] },
    { timeline: 1, from: '000000010000000000000006', to: '000000010000000000000007', neededBy: ['A', 'B'] },
  ])
  assert.deepEqual(result.unrestorable, [{ label: 'B', missing: [{ from: '000000010000000000000006', to: '000000010000000000000006' }] }])
})

test('a backup that carries its own WAL (backup-standby=only) needs the archive only from its stop segment on', () => {
  // The standby's backup holds segments 4..5 itself; the archive has nothing before 5 (the primary was away).
  const carried = { ...backup('S', 1, 4, 5), walInBackup: true }
  assert.deepEqual(walContinuity(input(run(1, 5, 7), [carried])), { gaps: [], unrestorable: [] })
  // The same backup without its WAL is unrestorable, and a later gap still counts against it.
  const plain = walContinuity(input(run(1, 5, 7), [backup('S', 1, 4, 5)]))
  assert.deepEqual(plain.unrestorable, [{ label: 'S', missing: [{ from: '000000010000000000000004', to: '000000010000000000000004' }] }])
  const gap = walContinuity(input([...run(1, 5, 5), ...run(1, 7, 8)], [carried]))
  assert.deepEqual(gap.gaps, [{ timeline: 1, from: '000000010000000000000006', to: '000000010000000000000006', neededBy: ['S'] }])
})

test('WAL before the oldest backup is not needed', () => {
  const result = walContinuity(input(run(1, 5, 7), [backup('A', 1, 5, 5)]))
  assert.deepEqual(result.gaps, [])
})

test('a damaged segment of a backup own WAL makes it unrestorable, but is no gap', () => {
  const data = input(run(1, 2, 5), [backup('A', 1, 2, 3)])
  const result = walContinuity({ ...data, damaged: segments('000000010000000000000003') })
  assert.deepEqual(result.gaps, [])
  assert.deepEqual(result.unrestorable, [{ label: 'A', missing: [{ from: '000000010000000000000003', to: '000000010000000000000003' }] }])
})

test('a timeline switch is followed: the old timeline is needed up to the switch segment, the new one from it', () => {
  // Timeline 2 branched from 1 in segment 6 (a PITR + promote); timeline 1 stopped at 6, kept as .partial only.
  const switches = [{ timeline: 2, parent: 1, switchLsn: BigInt(6 * SEG + 0x2000) }]
  const present = [...run(1, 2, 6), ...run(2, 6, 9)]
  const backups = [backup('A', 1, 2, 3), backup('B', 2, 8, 8)]
  assert.deepEqual(walContinuity(input(present, backups, switches)), { gaps: [], unrestorable: [] })

  // Timeline 1 ending before the switch segment is a gap for A; a hole on timeline 2 is a gap for both.
  const holes = [...run(1, 2, 4), ...run(2, 6, 6), ...run(2, 8, 9)]
  const result = walContinuity(input(holes, backups, switches))
  assert.deepEqual(result.gaps, [
    { timeline: 1, from: '000000010000000000000005', to: '000000010000000000000005', neededBy: ['A'] },
    { timeline: 2, from: '000000020000000000000007', to: '000000020000000000000007', neededBy: ['A'] },
  ])
})

test('segments of the old timeline after the switch are not required; a later timeline is not followed by a backup it left behind', () => {
  const switches = [{ timeline: 2, parent: 1, switchLsn: BigInt(4 * SEG + 0x2000) }]
  // Timeline 1 has 2..4 and then 7..8 (an old primary archiving on after the split, with a hole): that hole breaks
  // the backup taken on timeline 1 after the split (B), which timeline 2 cannot serve, and A too, as the rest of 1.
  const present = [...run(1, 2, 4), ...run(1, 7, 8), ...run(2, 4, 6)]
  const result = walContinuity(input(present, [backup('A', 1, 2, 2), backup('B', 1, 5, 5)], switches))
  assert.deepEqual(result.gaps, [{ timeline: 1, from: '000000010000000000000005', to: '000000010000000000000006', neededBy: ['A', 'B'] }])
  assert.deepEqual(result.unrestorable, [{ label: 'B', missing: [{ from: '000000010000000000000005', to: '000000010000000000000005' }] }])

  // A hole on timeline 2 breaks A, which follows the switch, but not B, which was consistent only after it.
  const onTwo = walContinuity(input([...run(1, 2, 8), ...run(2, 4, 4), ...run(2, 6, 6)], [backup('A', 1, 2, 2), backup('B', 1, 5, 5)], switches))
  assert.deepEqual(onTwo.gaps, [{ timeline: 2, from: '000000020000000000000005', to: '000000020000000000000005', neededBy: ['A'] }])

  // Without the old primary's later segments, nothing on timeline 1 after the switch is required of A.
  const clean = walContinuity(input([...run(1, 2, 4), ...run(2, 4, 6)], [backup('A', 1, 2, 2)], switches))
  assert.deepEqual(clean, { gaps: [], unrestorable: [] })
})

test('timelines chain: 1 -> 2 -> 3, each followed from its switch segment', () => {
  const switches = [
    { timeline: 2, parent: 1, switchLsn: BigInt(4 * SEG + 0x10) },
    { timeline: 3, parent: 2, switchLsn: BigInt(6 * SEG + 0x10) },
  ]
  const present = [...run(1, 2, 4), ...run(2, 4, 6), ...run(3, 6, 6), ...run(3, 8, 8)]
  const result = walContinuity(input(present, [backup('A', 1, 2, 2)], switches))
  assert.deepEqual(result.gaps, [{ timeline: 3, from: '000000030000000000000007', to: '000000030000000000000007', neededBy: ['A'] }])
})

test('a backup outside the point-in-time window needs only its own WAL', () => {
  // Expire with repo1-retention-archive kept only A's own segments (2..3), then everything from B on.
  const present = [...run(1, 2, 3), ...run(1, 7, 9)]
  const backups = [{ ...backup('A', 1, 2, 3), pitr: false }, backup('B', 1, 7, 7)]
  assert.deepEqual(walContinuity(input(present, backups)), { gaps: [], unrestorable: [] })
  // Its own WAL is still required.
  const result = walContinuity(input(run(1, 7, 9), backups))
  assert.deepEqual(result.unrestorable, [{ label: 'A', missing: [{ from: '000000010000000000000002', to: '000000010000000000000003' }] }])
})

test('a stray segment far ahead is one large gap, found without walking every segment in between', () => {
  const started = Date.now()
  const result = walContinuity(input([...run(1, 2, 4), '00000001FFFFFFFF000000FF'], [backup('A', 1, 2, 2), backup('B', 1, 4, 4)]))
  assert.deepEqual(result.gaps, [{ timeline: 1, from: '000000010000000000000005', to: '00000001FFFFFFFF000000FE', neededBy: ['A', 'B'] }])
  assert.ok(Date.now() - started < 1000)
})
