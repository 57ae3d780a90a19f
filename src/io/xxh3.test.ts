import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { xxh3Create } from './xxh3.js'

const built = xxh3Create() !== undefined

test('XXH3-128 gives the reference value, the same streamed in any pieces, and another for one changed byte', { skip: built ? false : 'native/xxh3 is not built' }, () => {
  // xxHash's own test vector for empty input, seed 0.
  assert.equal(xxh3Create()!.digest(), '99aa06d3014798d86001c324468d497f')
  const data = randomBytes(3 * 1024 * 1024 + 17)
  const whole = xxh3Create()!.update(data).digest()
  assert.match(whole, /^[0-9a-f]{32}$/)
  const pieces = xxh3Create()!
  for (let offset = 0; offset < data.length; ) {
    const size = 1 + Math.floor(Math.random() * 300_000)
    pieces.update(data.subarray(offset, offset + size))
    offset += size
  }
  assert.equal(pieces.digest(), whole)
  data[1_234_567] = data[1_234_567]! ^ 1
  assert.notEqual(xxh3Create()!.update(data).digest(), whole)
})

test('the binding rejects what is not bytes, naming the method', { skip: built ? false : 'native/xxh3 is not built' }, () => {
  assert.throws(() => xxh3Create()!.update('text' as unknown as Uint8Array), /Xxh3\.update: expected a Buffer/)
})
