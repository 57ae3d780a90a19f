import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { nativeAddonPath } from '../io/native.js'
import { pageChecksum, pageChecksumNativeHiddenForTest, pageChecksumStored, pageIsNew, pageLsn, pageVerify, relationBlockNumber } from './page-checksum.js'

// Straight transcription of pg_checksum_page (checksum_impl.h): row by row, sums in an array, on a copy with
// pd_checksum zeroed. The module computes the same thing in another order; this is what it is checked against.
const BASE = [
  0x5b1f36e9, 0xb8525960, 0x02ab50aa, 0x1de66d2a, 0x79ff467a, 0x9bb9f8a3, 0x217e7cd2, 0x83e13d2c, 0xf8d4474f, 0xe39eb970,
  0x42c6ae16, 0x993216fa, 0x7b093b5d, 0x98daff3c, 0xf718902a, 0x0b1c9cdb, 0xe58f764b, 0x187636bc, 0x5d7b3bb1, 0xe73de7de,
  0x92bec979, 0xcca6c0b2, 0x304a0979, 0x85aa43d4, 0x783125bb, 0x6ca8eaa2, 0xe407eac6, 0x4b5cfc3e, 0x9fbf8c76, 0x15ca20be,
  0xf2ca9fd3, 0x959bd756,
]
function referenceChecksum(page: Buffer, blockNumber: number): number {
  const copy = Buffer.from(page)
  copy.writeUInt16LE(0, 8)
  const sums = [...BASE]
  const step = (sum: number, value: number): number => {
    const tmp = (sum ^ value) >>> 0
    return (Math.imul(tmp, 16777619) ^ (tmp >>> 17)) >>> 0
  }
  for (let row = 0; row < copy.length / 128; row++) {
    for (let column = 0; column < 32; column++) sums[column] = step(sums[column]!, copy.readUInt32LE(row * 128 + column * 4))
  }
  let result = 0
  for (let column = 0; column < 32; column++) result ^= step(step(sums[column]!, 0), 0)
  return ((((result >>> 0) ^ blockNumber) >>> 0) % 65535) + 1
}

/** A heap-like page: a sane header, line pointers, and pseudo-random tuple bytes, with its checksum set. */
function buildPage(blockNumber: number, size = 8192, seed = 1): Buffer {
  const page = Buffer.alloc(size)
  let state = seed
  const next = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0)
  page.writeUInt32LE(0x16, 0) // pd_lsn high
  page.writeUInt32LE(0xb374d848, 4) // pd_lsn low
  page.writeUInt16LE(0x0004, 10) // pd_flags: PD_ALL_VISIBLE
  page.writeUInt16LE(24 + 4 * 10, 12) // pd_lower: ten line pointers
  page.writeUInt16LE(size - 800, 14) // pd_upper
  page.writeUInt16LE(size, 16) // pd_special: no special space
  page.writeUInt16LE(size | 4, 18) // pd_pagesize_version
  for (let offset = 24; offset < 64; offset++) page[offset] = next() & 0xff
  for (let offset = size - 800; offset < size; offset++) page[offset] = next() & 0xff
  page.writeUInt16LE(pageChecksum(page, blockNumber), 8)
  return page
}

// Every test of the checksum and of page verification runs twice: with walden's C checksum (native/page) where it is
// built, and with the JavaScript one it falls back to.
for (const implementation of ['C', 'JavaScript'] as const) {
describe(`with the ${implementation} checksum`, { skip: implementation === 'C' && nativeAddonPath('page') === undefined ? 'native/page is not built' : false }, () => {
  before(() => {
    pageChecksumNativeHiddenForTest.hidden = implementation === 'JavaScript'
  })
  after(() => {
    pageChecksumNativeHiddenForTest.hidden = false
  })

describe('pageChecksum', () => {
  test('matches the reference transcription', () => {
    for (const size of [1024, 8192, 32768]) {
      for (const blockNumber of [0, 1, 131071, 131072, 0xfffffffe]) {
        for (const seed of [1, 2, 3]) {
          const page = buildPage(0, size, seed)
          assert.equal(pageChecksum(page, blockNumber), referenceChecksum(page, blockNumber), `size ${size} block ${blockNumber}`)
        }
      }
    }
  })

  test('random pages, any content', () => {
    let state = 99
    for (let round = 0; round < 20; round++) {
      const page = Buffer.alloc(8192)
      for (let offset = 0; offset < page.length; offset += 4) page.writeUInt32LE((state = (Math.imul(state, 69069) + 1) >>> 0), offset)
      assert.equal(pageChecksum(page, round * 7919), referenceChecksum(page, round * 7919))
    }
  })

  test('pinned values', () => {
    // Computed once and kept, so a change to the implementation that still agrees with the reference is caught
    // only if both drift; the real-cluster test checks pages PostgreSQL itself wrote.
    assert.equal(pageChecksum(buildPage(0), 0), 14401)
    assert.equal(pageChecksum(buildPage(0), 5), 14404)
    assert.equal(pageChecksum(Buffer.alloc(8192), 0), 50858)
  })

  test('ignores the stored checksum and leaves the page alone', () => {
    const page = buildPage(3)
    const before = Buffer.from(page)
    const checksum = pageChecksum(page, 3)
    page.writeUInt16LE(0xbeef, 8)
    assert.equal(pageChecksum(page, 3), checksum)
    page.writeUInt16LE(before.readUInt16LE(8), 8)
    assert.deepEqual(page, before)
  })

  test('the same at any offset in a larger buffer', () => {
    const page = buildPage(9)
    const expected = pageChecksum(page, 9)
    for (const offset of [1, 2, 3, 4, 8, 8192]) {
      const holder = Buffer.alloc(offset + 8192 + 5)
      page.copy(holder, offset)
      assert.equal(pageChecksum(holder.subarray(offset, offset + 8192), 9), expected, `offset ${offset}`)
    }
  })

  test('depends on the block number', () => {
    const page = buildPage(0)
    assert.notEqual(pageChecksum(page, 0), pageChecksum(page, 1))
  })

  test('rejects a page that is not a block', () => {
    assert.throws(() => pageChecksum(Buffer.alloc(100), 0), {
      kind: 'FileInvalid',
      message: "invalid page size '100'",
      hint: 'a PostgreSQL page is a power of two from 1 KiB to 32 KiB',
    })
    assert.throws(() => pageVerify(Buffer.alloc(65536), 0), { kind: 'FileInvalid', message: "invalid page size '65536'" })
  })
})

describe('pageVerify', () => {
  test('a page with its checksum', () => {
    for (const blockNumber of [0, 17, 262149]) assert.equal(pageVerify(buildPage(blockNumber), blockNumber), true)
  })

  test('another block number', () => {
    assert.equal(pageVerify(buildPage(17), 18), false)
  })

  test('any changed byte', () => {
    const page = buildPage(4)
    for (const offset of [0, 8, 9, 20, 100, 4000, 8191]) {
      const damaged = Buffer.from(page)
      damaged[offset] ^= 0x01
      assert.equal(pageVerify(damaged, 4), false, `offset ${offset}`)
    }
  })

  test('an all-zero page is valid (PageIsNew, extended before a crash)', () => {
    assert.equal(pageVerify(Buffer.alloc(8192), 0), true)
    assert.equal(pageVerify(Buffer.alloc(8192 + 4).subarray(1, 8193), 12), true)
  })

  test('pd_upper zero with anything else set is not, as in PageIsVerified', () => {
    const page = Buffer.alloc(8192)
    page[5000] = 1
    assert.equal(pageIsNew(page), true)
    assert.equal(pageVerify(page, 0), false)
  })

  test('a right checksum on an insane header', () => {
    const cases: Array<[string, (page: Buffer) => void]> = [
      ['unknown flag', (page) => page.writeUInt16LE(0x0008, 10)],
      ['pd_lower above pd_upper', (page) => page.writeUInt16LE(8000, 12)],
      ['pd_upper above pd_special', (page) => page.writeUInt16LE(7000, 16)],
      ['pd_special past the page', (page) => page.writeUInt16LE(8200, 16)],
      ['pd_special not maxaligned', (page) => page.writeUInt16LE(8188, 16)],
    ]
    for (const [name, damage] of cases) {
      const page = buildPage(2)
      damage(page)
      page.writeUInt16LE(pageChecksum(page, 2), 8)
      assert.equal(pageVerify(page, 2), false, name)
    }
  })
})
})
}

describe('page header helpers', () => {
  test('pageLsn, pageChecksumStored, pageIsNew', () => {
    const page = buildPage(0)
    assert.equal(pageLsn(page), 0x16b374d848n)
    assert.equal(pageChecksumStored(page), pageChecksum(page, 0))
    assert.equal(pageIsNew(page), false)
    assert.equal(pageIsNew(Buffer.alloc(8192)), true)
  })
})

describe('relationBlockNumber', () => {
  test('segment files hold 1 GiB of blocks', () => {
    assert.equal(relationBlockNumber(0, 0, 8192), 0)
    assert.equal(relationBlockNumber(0, 131071, 8192), 131071)
    assert.equal(relationBlockNumber(1, 0, 8192), 131072)
    assert.equal(relationBlockNumber(2, 5, 8192), 262149)
    assert.equal(relationBlockNumber(1, 0, 32768), 32768)
    assert.equal(relationBlockNumber(3, 1, 8192, 1000), 3001)
  })

  test('out of range', () => {
    assert.throws(() => relationBlockNumber(0, 131072, 8192), { kind: 'Format', message: "invalid block '131072' of relation segment '0'" })
    assert.throws(() => relationBlockNumber(-1, 0, 8192), { kind: 'Format', message: "invalid block '0' of relation segment '-1'" })
    assert.throws(() => relationBlockNumber(32768, 0, 8192), { kind: 'Format', message: "invalid block '0' of relation segment '32768'" })
    assert.equal(relationBlockNumber(32767, 131070, 8192), 0xfffffffe)
    assert.throws(() => relationBlockNumber(32767, 131071, 8192), {
      kind: 'Format',
      message: "invalid block '131071' of relation segment '32767'",
    })
  })
})

test('the C and JavaScript checksums agree on random pages of every page size', { skip: nativeAddonPath('page') === undefined ? 'native/page is not built' : false }, () => {
  for (const size of [1024, 2048, 4096, 8192, 16384, 32768]) {
    const page = Buffer.alloc(size)
    for (let trial = 0; trial < 40; trial++) {
      for (let i = 0; i < page.length; i++) page[i] = (Math.random() * 256) | 0
      const block = (Math.random() * 1e6) | 0
      pageChecksumNativeHiddenForTest.hidden = true
      const javascript = pageChecksum(page, block)
      pageChecksumNativeHiddenForTest.hidden = false
      assert.equal(pageChecksum(page, block), javascript, `${size}-byte page, block ${block}`)
    }
  }
})
