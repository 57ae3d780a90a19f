import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Xxh32, xxh32 } from './xxhash32.js'

test('xxh32 matches the reference vectors', () => {
  assert.equal(xxh32(Buffer.from('')), 0x02cc5d05)
  assert.equal(xxh32(Buffer.from('a')), 0x550d7456)
  assert.equal(xxh32(Buffer.from('abc')), 0x32d153ff)
  assert.equal(xxh32(Buffer.from('Nobody inspects the spammish repetition')), 0xe2293b2f)
})

test('xxh32 gives the same hash however the input is split', () => {
  const data = Buffer.alloc(100_003)
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24
  const whole = xxh32(data)
  for (const seed of [1, 2, 3, 4, 5]) {
    const hash = new Xxh32()
    let offset = 0
    let state = seed
    while (offset < data.length) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      const size = state % 40 // includes empty pieces and pieces shorter than a stripe
      hash.update(data.subarray(offset, offset + size))
      offset += size
    }
    assert.equal(hash.digest(), whole)
  }
  // Unaligned views of a larger buffer.
  assert.equal(xxh32(Buffer.concat([Buffer.from([1]), data]).subarray(1)), whole)
})
