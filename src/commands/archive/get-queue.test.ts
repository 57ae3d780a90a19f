import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { QUEUE_LIST, queuePlan, queueWanted } from './get-queue.js'

const MIB = 1024 * 1024

describe('queueWanted', () => {
  test('the next segments on the same timeline', () => {
    assert.deepEqual(queueWanted('000000010000000000000003', 16 * MIB, 3), [
      '000000010000000000000004',
      '000000010000000000000005',
      '000000010000000000000006',
    ])
  })

  test('crosses into the next log id at the segment count of the segment size', () => {
    // 16 MiB: 256 segments per 4 GiB; 1 GiB: 4; 1 MiB: 4096.
    assert.deepEqual(queueWanted('0000000200000000000000FF', 16 * MIB, 2), ['000000020000000100000000', '000000020000000100000001'])
    assert.deepEqual(queueWanted('000000010000000500000003', 1024 * MIB, 2), ['000000010000000600000000', '000000010000000600000001'])
    assert.deepEqual(queueWanted('000000010000000000000FFF', MIB, 1), ['000000010000000100000000'])
    assert.deepEqual(queueWanted('0000000100000000000000FF', MIB, 1), ['000000010000000000000100'])
  })

  test('depth 0 wants nothing', () => {
    assert.deepEqual(queueWanted('000000010000000000000003', 16 * MIB, 0), [])
  })

  test('a name the segment size does not allow is an error, not a guess', () => {
    assert.throws(() => queueWanted('000000010000000000000100', 16 * MIB, 1), /not valid for segment size/)
  })
})

describe('queuePlan', () => {
  const wanted = queueWanted('000000010000000000000010', 16 * MIB, 4) // ...11 to ...14

  test('an empty queue is filled with everything wanted', () => {
    assert.deepEqual(queuePlan([], wanted), { remove: [], fetch: wanted })
  })

  test('a full queue is left alone', () => {
    assert.deepEqual(queuePlan([...wanted, QUEUE_LIST], wanted), { remove: [], fetch: [] })
  })

  test('refills once half the queue is missing, not for every segment', () => {
    assert.deepEqual(queuePlan(wanted.slice(0, 3), wanted).fetch, [])
    assert.deepEqual(queuePlan(wanted.slice(0, 2), wanted).fetch, wanted.slice(2))
  })

  test('refills when the next segment is missing, whatever else is there', () => {
    assert.deepEqual(queuePlan(wanted.slice(1), wanted).fetch, [wanted[0]])
  })

  test('removes older segments, another timeline and temporary files of a killed process', () => {
    const entries = [
      '000000010000000000000010', // just served, or older
      '00000001000000000000000F',
      '000000020000000000000011', // same position, other timeline
      `${wanted[0]}.tmp-123-abcdef01`,
      ...wanted,
    ]
    assert.deepEqual(queuePlan(entries, wanted), { remove: entries.slice(0, 4), fetch: [] })
  })

  test('a timeline switch empties the queue of the old timeline', () => {
    const oldTimeline = queueWanted('000000010000000000000010', 16 * MIB, 4)
    const newWanted = queueWanted('000000020000000000000011', 16 * MIB, 4)
    assert.deepEqual(queuePlan(oldTimeline, newWanted), { remove: oldTimeline, fetch: newWanted })
  })
})
