import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { nativeAddonPath } from '../io/native.js'
import { CRC_OP_RANGE, CRC_OP_RECORD, crc32c, crc32cNative, crc32cNativeHiddenForTest, crc32cRecords, crc32cRecordsBest, crc32cUpdate } from './crc32c.js'

const noNative = nativeAddonPath('page') === undefined ? 'native/page is not built' : false

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

  // walden's C CRC (native/page): the path chosen for this CPU (SSE 4.2's crc32 on most x86-64) and the portable
  // table, each against the definition, at every alignment and around every switch-over (8-, 4-, 1-byte steps).
  test('the C CRC agrees with the bit-wise definition at every alignment and length', { skip: noNative }, () => {
    const native = crc32cNative()
    assert.ok(native, 'native/page is built but has no crc32c: rebuild it')
    assert.match(native.crc32cImplementation(), /^(sse4\.2|table)$/)
    const data = Uint8Array.from({ length: 5000 }, (_, index) => (index * 2654435761) >>> 24)
    const lengths = [...Array.from({ length: 80 }, (_, length) => length), 255, 256, 257, 263, 1000, 4099]
    for (const start of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16]) {
      for (const length of lengths) {
        const expected = reference(data.subarray(start, start + length))
        assert.equal(native.crc32c(data, start, start + length, 0), expected, `C, start ${start}, length ${length}`)
        assert.equal(native.crc32cTable(data, start, start + length, 0), expected, `C table, start ${start}, length ${length}`)
      }
    }
    // Continuing a previous result, as crc32cUpdate does.
    const split = crc32cUpdate(0, data, 0, 13)
    assert.equal(native.crc32c(data, 13, 1013, split), reference(data.subarray(0, 1013)))
    assert.equal(native.crc32cTable(data, 13, 1013, split), reference(data.subarray(0, 1013)))
    assert.equal(native.crc32c(Buffer.from('123456789'), 0, 9, 0), 0xe3069283)
  })

  test('the C CRC refuses a range outside its data rather than reading past it', { skip: noNative }, () => {
    const native = crc32cNative()!
    const data = new Uint8Array(16)
    assert.throws(() => native.crc32c(data, 0, 17, 0), /crc32c: expected/)
    assert.throws(() => native.crc32c(data, 9, 8, 0), /crc32c: expected/)
    assert.throws(() => native.crc32c(data, -1, 8, 0), /crc32c: expected/)
    assert.throws(() => native.crc32c(new Uint16Array(8) as unknown as Uint8Array, 0, 8, 0), /crc32c: expected/)
    // walRecordsScan (wal-verify's fast path, tested there) likewise for a page end past its data.
    assert.throws(() => native.walRecordsScan(data, Uint32Array.of(0, 17, 0, 0, 0, 0, 0, 0)), /walRecordsScan: expected/)
    assert.throws(() => native.walRecordsScan(data, Uint32Array.of(9, 8, 0, 0, 0, 0, 0, 0)), /walRecordsScan: expected/)
    assert.throws(() => native.walRecordsScan(data, Uint32Array.of(0, 16)), /walRecordsScan: expected/)
  })
})

/** A buffer of WAL-like records (data, then a 24-byte header whose xl_crc is right unless `bad`) and their ops. */
function recordsLaidOut(count: number, seed: number, bad = new Set<number>()): { data: Buffer; ops: Uint32Array; opCount: number } {
  const lengths = Array.from({ length: count }, (_, index) => ((index * 7919 + seed) % 300) + (index % 5 === 0 ? 0 : 1))
  const data = Buffer.alloc(lengths.reduce((sum, length) => sum + length + 24 + 7, 0))
  for (let index = 0; index < data.length; index++) data[index] = ((index + seed) * 2654435761) >>> 24
  const ops: number[] = []
  let position = 3 // an odd start, as a record in a piece may have
  lengths.forEach((length, index) => {
    // Data split in two ranges, as a record running across a page boundary is.
    const cut = position + (length >> 1)
    if (cut > position) ops.push(CRC_OP_RANGE, position, cut)
    if (length > 0) ops.push(CRC_OP_RANGE, cut, position + length)
    const header = position + length
    const crc = crc32cUpdate(crc32cUpdate(0, data, position, position + length), data, header, header + 20)
    data.writeUInt32LE(bad.has(index) ? (crc ^ 0x100) >>> 0 : crc, header + 20)
    ops.push(CRC_OP_RECORD, header, index)
    position = header + 24 + (index % 8)
  })
  return { data, ops: Uint32Array.from(ops), opCount: ops.length / 3 }
}

describe('crc32cRecords', () => {
  for (const implementation of ['JavaScript', 'C'] as const) {
    describe(`in ${implementation}`, { skip: implementation === 'C' ? noNative : false }, () => {
      const run = implementation === 'C' ? crc32cNative()?.crc32cRecords : crc32cRecords

      test('checks every record of a run of them', () => {
        const { data, ops, opCount } = recordsLaidOut(500, 1)
        const state = Uint32Array.of(0)
        assert.equal(run!(data, ops, opCount, state), -1)
        assert.equal(state[0], 0)
      })

      test('stops at the first record whose CRC does not match, and gives its CRC', () => {
        const { data, ops, opCount } = recordsLaidOut(300, 2, new Set([117, 200]))
        const state = Uint32Array.of(0)
        const failed = run!(data, ops, opCount, state)
        assert.equal(ops[failed * 3], CRC_OP_RECORD)
        assert.equal(ops[failed * 3 + 2], 117)
        const header = ops[failed * 3 + 1]!
        assert.equal(state[0], (data.readUInt32LE(header + 20) ^ 0x100) >>> 0)
      })

      test('continues a record begun in an earlier call, and hands back one left open', () => {
        const { data, ops, opCount } = recordsLaidOut(50, 3)
        // Split the operations after a range: the CRC so far carries over in state[0].
        const splitAt = [...Array(opCount).keys()].find((index) => index > 20 && ops[index * 3] === CRC_OP_RANGE && ops[index * 3 + 3] === CRC_OP_RANGE)!
        const state = Uint32Array.of(0)
        assert.equal(run!(data, ops, splitAt + 1, state), -1)
        assert.notEqual(state[0], 0)
        assert.equal(run!(data, ops.subarray((splitAt + 1) * 3), opCount - splitAt - 1, state), -1)
        assert.equal(state[0], 0)
      })

      test('refuses an operation outside the data', () => {
        const data = Buffer.alloc(64)
        assert.throws(() => run!(data, Uint32Array.of(CRC_OP_RANGE, 0, 65), 1, Uint32Array.of(0)), /outside the data/)
        assert.throws(() => run!(data, Uint32Array.of(CRC_OP_RANGE, 10, 9), 1, Uint32Array.of(0)), /outside the data/)
        assert.throws(() => run!(data, Uint32Array.of(CRC_OP_RECORD, 41, 0), 1, Uint32Array.of(0)), /outside the data/)
        assert.throws(() => run!(data, Uint32Array.of(7, 0, 0), 1, Uint32Array.of(0)), /invalid|outside the data/)
      })
    })
  }

  test('the C and JavaScript versions agree on random records, damaged or not', { skip: noNative }, () => {
    const native = crc32cNative()!
    for (let seed = 0; seed < 40; seed++) {
      const { data, ops, opCount } = recordsLaidOut(60, seed, new Set(seed % 2 === 0 ? [] : [seed % 60]))
      const count = opCount - (seed % 4) // sometimes ending inside a record
      const [javascript, c] = [Uint32Array.of(seed * 1000003), Uint32Array.of(seed * 1000003)]
      assert.equal(native.crc32cRecords(data, ops, count, c), crc32cRecords(data, ops, count, javascript), `seed ${seed}`)
      assert.equal(c[0], javascript[0], `seed ${seed}`)
    }
  })

  test('the C version is the one used where it is built, unless hidden', { skip: noNative }, () => {
    assert.equal(crc32cRecordsBest(), crc32cNative()!.crc32cRecords)
    crc32cNativeHiddenForTest.hidden = true
    try {
      assert.equal(crc32cRecordsBest(), crc32cRecords)
    } finally {
      crc32cNativeHiddenForTest.hidden = false
    }
  })
})
