import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { timelineHistoryParse } from '../../pg/wal.js'
import type { TimelineHistoryEntry } from '../../pg/wal.js'
import { chainSegmentName, expectedAfter, judgeMissingSegment, requestPosition, timelineChain, walFolderView } from './wal-chain.js'

const SEG = 16 * 1024 * 1024

// Timeline 2 forked off timeline 1 at 0/5000100 (inside segment 5), timeline 3 off 2 at 0/8000000 (segment 8's start).
const HISTORY_2 = '1\t0/5000100\tno recovery target specified\n'
const HISTORY_3 = '1\t0/5000100\tno recovery target specified\n2\t0/8000000\tno recovery target specified\n'

function histories(...files: Array<[number, string]>): Map<number, TimelineHistoryEntry[]> {
  return new Map(files.map(([timeline, text]) => [timeline, timelineHistoryParse(text, timeline)]))
}

function chainFor(current: number, request: string, files: Map<number, TimelineHistoryEntry[]>) {
  return timelineChain(current, files, requestPosition(request, SEG), SEG)
}

describe('timelineChain() and the expected file', () => {
  test('one timeline, no history: the next segment of timeline 1', () => {
    const chain = chainFor(1, '000000010000000000000003', new Map())
    assert.deepEqual(chain, [{ timeline: 1, beginSegment: 0n }])
    assert.equal(expectedAfter('000000010000000000000003', chain, SEG), '000000010000000000000004')
    // Across a log id: segment FF of 16 MiB is the last of 0/..., the next is 1/00.
    assert.equal(expectedAfter('0000000100000000000000FF', chain, SEG), '000000010000000100000000')
  })

  test('a history that forks after the position: the switch segment and later are on the new timeline', () => {
    const files = histories([2, HISTORY_2])
    const chain = chainFor(1, '000000010000000000000004', files)
    assert.deepEqual(chain, [
      { timeline: 2, beginSegment: 5n },
      { timeline: 1, beginSegment: 0n },
    ])
    assert.equal(expectedAfter('000000010000000000000004', chain, SEG), '000000020000000000000005')
    assert.equal(chainSegmentName(chain, 4n, SEG), '000000010000000000000004')
    assert.equal(expectedAfter('000000020000000000000005', chain, SEG), '000000020000000000000006')
  })

  test('two switches: timeline 3 through 2 from timeline 1', () => {
    const chain = chainFor(1, '000000010000000000000002', histories([2, HISTORY_2], [3, HISTORY_3]))
    assert.deepEqual(chain.map((entry) => entry.timeline), [3, 2, 1])
    assert.equal(chainSegmentName(chain, 4n, SEG), '000000010000000000000004')
    assert.equal(chainSegmentName(chain, 7n, SEG), '000000020000000000000007')
    assert.equal(chainSegmentName(chain, 8n, SEG), '000000030000000000000008')
  })

  test('a history that forked before the position is not followed: PostgreSQL refuses it', () => {
    // Replay already stands at segment 6 of timeline 1, past timeline 2's fork at 0/5000100.
    const chain = chainFor(1, '000000010000000000000006', histories([2, HISTORY_2]))
    assert.deepEqual(chain, [{ timeline: 1, beginSegment: 0n }])
    assert.equal(expectedAfter('000000010000000000000006', chain, SEG), '000000010000000000000007')
  })

  test('a history of an unrelated branch is not followed', () => {
    const chain = chainFor(2, '000000020000000000000006', histories([3, '1\t0/9000000\tother branch\n']))
    assert.deepEqual(chain, [{ timeline: 2, beginSegment: 0n }])
  })
})

describe('judgeMissingSegment(): waiting or a break', () => {
  const single = [{ timeline: 1, beginSegment: 0n }]

  test('nothing newer in the folder: wait, expecting the requested file', () => {
    const folder = walFolderView(['000000010000000000000001', '000000010000000000000002', 'archive_status'])
    assert.deepEqual(judgeMissingSegment('000000010000000000000003', single, folder, SEG), { kind: 'wait', expected: '000000010000000000000003' })
  })

  test('a later segment present while the expected one is missing: a break naming the expected file', () => {
    const folder = walFolderView(['000000010000000000000002', '000000010000000000000005', '000000010000000000000004.gz'])
    assert.deepEqual(judgeMissingSegment('000000010000000000000003', single, folder, SEG), {
      kind: 'break',
      expected: '000000010000000000000003',
      message: "WAL file '000000010000000000000003' is missing from the WAL folder, but later WAL file '000000010000000000000004' is there",
    })
  })

  test('a .partial file or a backup history file is not a later segment', () => {
    const folder = walFolderView(['000000010000000000000004.partial', '000000010000000000000004.00000028.backup'])
    assert.equal(judgeMissingSegment('000000010000000000000003', single, folder, SEG).kind, 'wait')
  })

  test('a probe of a newer timeline is never a break', () => {
    const chain = chainFor(1, '000000010000000000000004', histories([2, HISTORY_2]))
    const folder = walFolderView(['000000010000000000000009'])
    // Segment 4 belongs to timeline 1; PostgreSQL may still try timeline 2 first.
    assert.deepEqual(judgeMissingSegment('000000020000000000000004', chain, folder, SEG), { kind: 'wait' })
  })

  test('the switch segment: the new timeline expected, the old timeline\'s copy there is fine', () => {
    const chain = chainFor(1, '000000020000000000000005', histories([2, HISTORY_2]))
    const withOld = walFolderView(['000000010000000000000005', '000000020000000000000006', '00000002.history'])
    assert.deepEqual(judgeMissingSegment('000000020000000000000005', chain, withOld, SEG), { kind: 'wait', expected: '000000020000000000000005' })
    const without = walFolderView(['000000020000000000000006', '00000002.history'])
    const verdict = judgeMissingSegment('000000020000000000000005', chain, without, SEG)
    assert.equal(verdict.kind, 'break')
    assert.equal(verdict.kind === 'break' && verdict.expected, '000000020000000000000005')
  })

  test('after a switch, a gap on the new timeline is a break; an earlier segment of another timeline is no reason', () => {
    const chain = chainFor(2, '000000020000000000000007', histories([2, HISTORY_2]))
    assert.equal(judgeMissingSegment('000000020000000000000007', chain, walFolderView(['000000020000000000000008']), SEG).kind, 'break')
    assert.equal(judgeMissingSegment('000000020000000000000007', chain, walFolderView(['000000030000000000000001']), SEG).kind, 'wait')
  })

  test("an older timeline's segments past its end (a branch not followed) are no later segment of the chain", () => {
    const chain = chainFor(2, '000000020000000000000007', histories([2, HISTORY_2]))
    const folder = walFolderView(['000000010000000000000009', '000000020000000000000006'])
    assert.deepEqual(judgeMissingSegment('000000020000000000000007', chain, folder, SEG), { kind: 'wait', expected: '000000020000000000000007' })
  })

  test('later WAL of a timeline whose history file is missing: a break that says so', () => {
    const folder = walFolderView(['000000020000000000000006'])
    const verdict = judgeMissingSegment('000000010000000000000005', single, folder, SEG)
    assert.deepEqual(verdict, {
      kind: 'break',
      expected: '000000010000000000000005',
      message:
        "WAL file '000000010000000000000005' is missing from the WAL folder, and WAL of timeline 2 ('000000020000000000000006') is there but its history file '00000002.history' is not there",
    })
  })
})
