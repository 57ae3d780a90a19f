import assert from 'node:assert/strict'
import { test } from 'node:test'
import { partsAtOnce } from './copy.js'

test('partsAtOnce counts parts whose runs overlap on different threads, not those of one thread', () => {
  assert.equal(partsAtOnce([]), 0)
  // One thread, parts one after another (or interleaved on that thread): one at a time.
  assert.equal(partsAtOnce([{ thread: 1, startUs: 0, endUs: 10 }, { thread: 1, startUs: 5, endUs: 20 }]), 1)
  // Two threads, one after the other: one at a time.
  assert.equal(partsAtOnce([{ thread: 1, startUs: 0, endUs: 10 }, { thread: 2, startUs: 10, endUs: 20 }]), 1)
  // Two threads overlapping.
  assert.equal(
    partsAtOnce([
      { thread: 1, startUs: 0, endUs: 10 },
      { thread: 2, startUs: 5, endUs: 20 },
      { thread: 1, startUs: 10, endUs: 30 },
    ]),
    2,
  )
})
