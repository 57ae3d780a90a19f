import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { crc32c, crc32cUpdate } from './crc32c.js'

describe('crc32c', () => {
  test('check value of the Castagnoli polynomial', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
  })

  test('empty input', () => {
    assert.equal(crc32c(new Uint8Array(0)), 0)
  })

  // RFC 3720 (iSCSI) appendix B.4 test vectors; the RFC lists the CRC bytes as stored, least significant first.
  test('RFC 3720 vectors', () => {
    assert.equal(crc32c(Buffer.alloc(32, 0x00)), 0x8a9136aa)
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, index) => index)), 0x46dd794e)
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, index) => 31 - index)), 0x113fdb5c)
  })

  test('update continues a previous result', () => {
    const data = Buffer.from('the quick brown fox jumps over the lazy dog')
    for (const split of [0, 1, 10, data.length]) {
      assert.equal(crc32cUpdate(crc32c(data.subarray(0, split)), data.subarray(split)), crc32c(data))
    }
  })

  test('works on a subarray', () => {
    const data = Buffer.from('xx123456789yy')
    assert.equal(crc32c(data.subarray(2, 11)), 0xe3069283)
  })

  // The plain bit-at-a-time definition, against which the table-driven paths (byte-wise, 8 bytes at a time from
  // bytes, 8 bytes at a time from 32-bit words) are checked at every alignment and length around their switch-overs.
  function reference(data: Uint8Array): number {
    let c = 0xffffffff
    for (const byte of data) {
      c ^= byte
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    }
    return ~c >>> 0
  }

  test('every alignment and length agrees with the bit-wise definition', () => {
    const data = Uint8Array.from({ length: 1200 }, (_, index) => (index * 2654435761) >>> 24)
    for (const start of [0, 1, 2, 3, 4, 5, 7, 8]) {
      for (const length of [0, 1, 7, 8, 9, 63, 255, 256, 257, 263, 1000]) {
        const piece = data.subarray(start, start + length)
        assert.equal(crc32c(piece), reference(piece), `start ${start}, length ${length}`)
        assert.equal(crc32cUpdate(0, data, start, start + length), reference(piece), `range ${start}, length ${length}`)
      }
    }
  })
})
