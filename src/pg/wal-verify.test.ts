import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { nativeAddonPath } from '../io/native.js'
import { crc32cNativeHiddenForTest, crc32cRecords, crc32cRecordsBest, crc32cUpdate } from './crc32c.js'
import { walHeaderBuild, XLP_LONG_HEADER } from './wal.js'
import { walSegmentBuild, walSegmentVerify, WalSegmentVerifier, walVerifyCrcBatch, XLP_FIRST_IS_CONTRECORD, XLP_FIRST_IS_OVERWRITE_CONTRECORD } from './wal-verify.js'

const MIB = 1024 * 1024
const SEGMENT = MIB // small segments keep the tests fast; the layout is the same at 16 MiB
const BLOCK = 8192
const NAME = '000000010000000000000001'
const START = 0x100000n // segment 1 of 1 MiB

interface BuildOptions {
  version?: number
  timeline?: number
  /** Timeline written into the header of page `page` (the first new-timeline segment starts with old pages). */
  pageTimeline?: (page: number) => number
  /** Bytes of a record continued from the previous segment at the start. */
  continued?: number
  /** Record lengths, laid out in order; the segment is then filled with records of `fill` bytes to its end. */
  records?: number[]
  fill?: number
  /** Ends valid WAL with a switch record after the records (the rest zero), instead of filling. */
  switchAfter?: boolean
  /** Leaves the rest zero after the records without a switch record. */
  stopAfter?: boolean
}

/**
 * A segment laid out the way PostgreSQL's CopyXLogRecordToWAL writes one: records MAXALIGNed one after another, page
 * headers where pages start (with XLP_FIRST_IS_CONTRECORD and the bytes still to come when a record runs on), each
 * record's CRC-32C over its data then its header up to xl_crc, and xl_prev pointing at the record before.
 */
function buildSegment(options: BuildOptions = {}): { segment: Buffer; records: number[] } {
  const version = options.version ?? 16
  const segment = Buffer.alloc(SEGMENT)
  walHeaderBuild({ version, segmentSize: SEGMENT, pageAddress: START, timeline: options.pageTimeline?.(0) ?? options.timeline ?? 1 }).copy(segment, 0, 0, 40)
  const magic = segment.readUInt16LE(0)
  const pageHeader = (offset: number, remaining: number): void => {
    const page = offset / BLOCK
    segment.writeUInt16LE(magic, offset)
    segment.writeUInt16LE(remaining > 0 ? XLP_FIRST_IS_CONTRECORD : 0, offset + 2)
    segment.writeUInt32LE(options.pageTimeline?.(page) ?? options.timeline ?? 1, offset + 4)
    segment.writeBigUInt64LE(START + BigInt(offset), offset + 8)
    segment.writeUInt32LE(remaining, offset + 16)
  }
  // Writes `bytes` at `position`, crossing pages as PostgreSQL does; returns the end, or -1 at the segment's end.
  const write = (position: number, bytes: Buffer, total: number, before: number): number => {
    let written = 0
    while (written < bytes.length) {
      if (position % BLOCK === 0) {
        if (position >= SEGMENT) return -1
        pageHeader(position, total - before - written)
        position += 24
      }
      const take = Math.min(bytes.length - written, BLOCK - (position % BLOCK))
      bytes.copy(segment, position, written, written + take)
      written += take
      position += take
    }
    return position
  }
  let position = 40
  if (options.continued) {
    segment.writeUInt16LE(XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD, 2)
    segment.writeUInt32LE(options.continued, 16)
    position = write(position, Buffer.alloc(options.continued, 0x5a), options.continued, 0)
    position = (position + 7) & ~7
  }
  const starts: number[] = []
  let previous = 0x0ff0028n
  const record = (length: number, isSwitch = false): boolean => {
    if (position % BLOCK === 0) {
      if (position >= SEGMENT) return false
      pageHeader(position, 0)
      position += 24
    }
    const start = position
    const data = Buffer.alloc(length - 24)
    for (let index = 0; index < data.length; index++) data[index] = (index * 31 + length) & 0xff
    const header = Buffer.alloc(24)
    header.writeUInt32LE(length, 0)
    header.writeUInt32LE(1234, 4)
    header.writeBigUInt64LE(previous, 8)
    header[16] = isSwitch ? 0x40 : 0x10
    header[17] = isSwitch ? 0 : 10
    header.writeUInt32LE(crc32cUpdate(crc32cUpdate(0, data), header, 0, 20), 20)
    const afterHeader = write(position, header, length, 0)
    if (afterHeader < 0) return false
    const end = write(afterHeader, data, length, 24)
    if (end < 0) return false
    starts.push(start)
    previous = START + BigInt(start)
    position = (end + 7) & ~7
    return true
  }
  for (const length of options.records ?? []) if (!record(length)) break
  if (options.switchAfter) record(24, true)
  else if (!options.stopAfter) while (record(options.fill ?? 200));
  return { segment, records: starts }
}

const target = { walName: NAME, what: `WAL file 'pg_wal/${NAME}'` }

function verify(segment: Buffer, walName = NAME): WalSegmentVerifier {
  return walSegmentVerify(segment, { walName, what: `WAL file 'pg_wal/${walName}'` })
}

function damaged(segment: Buffer, message: string): void {
  assert.throws(() => verify(segment), (error: Error & { kind?: string }) => {
    assert.equal(error.kind, 'FileInvalid')
    assert.equal(error.message, `WAL file 'pg_wal/${NAME}' is damaged: ${message}`)
    return true
  })
}

/** The message of a record's failed CRC, for the record at `offset` in the segment. */
function crcMessage(offset: number): RegExp {
  const at = `0/${(0x100000 + offset).toString(16).toUpperCase()} \\(offset ${offset}\\)`
  return new RegExp(`^WAL file 'pg_wal/${NAME}' is damaged: record at ${at} has CRC 0x[0-9A-F]{8}, expected 0x[0-9A-F]{8}$`)
}

// Every test runs twice: with the record CRCs computed by walden's C part (native/page) where it is built, and by
// the JavaScript it falls back to.
for (const implementation of ['C', 'JavaScript'] as const) {
describe(`with the ${implementation} CRC`, { skip: implementation === 'C' && nativeAddonPath('page') === undefined ? 'native/page is not built' : false }, () => {
  before(() => {
    crc32cNativeHiddenForTest.hidden = implementation === 'JavaScript'
    assert.equal(crc32cRecordsBest() === crc32cRecords, implementation === 'JavaScript')
  })
  after(() => {
    crc32cNativeHiddenForTest.hidden = false
  })

describe('walSegmentVerify: what PostgreSQL writes passes', () => {
  test('records of every size, split headers, records across pages', () => {
    // 8200-byte records straddle every page; 16 bytes before a page end leave a record header split in two.
    const { segment, records } = buildSegment({ records: [100, 8200, 8200, 40000, 64, BLOCK - 40 - 24 - 64 - 16], fill: 333 })
    const verifier = verify(segment)
    assert.equal(verifier.recordsChecked, records.length)
    assert.ok(records.length > 2500, String(records.length))
  })

  test(`records whole on a page are checked ${implementation === 'C' ? 'in C' : 'in JavaScript'}`, () => {
    const { segment, records } = buildSegment({ records: [100, 8200, 40000], fill: 120 })
    const verifier = verify(segment)
    assert.equal(verifier.recordsChecked, records.length)
    if (implementation === 'C') assert.ok(verifier.recordsCheckedNative > records.length * 0.9, `${verifier.recordsCheckedNative} of ${records.length}`)
    else assert.equal(verifier.recordsCheckedNative, 0)
  })

  for (const version of [13, 14, 15, 16, 17, 18]) {
    test(`PostgreSQL ${version}'s magic`, () => {
      assert.equal(verify(buildSegment({ version }).segment).header.version, version)
    })
  }

  test('a record continued from the previous segment, and one running into the next', () => {
    const { segment, records } = buildSegment({ continued: 3 * BLOCK + 100, records: [100], fill: 5000 })
    // The last record runs past the end: checked neither here nor (its start) in the next segment.
    assert.equal(verify(segment).recordsChecked, records.length)
  })

  test('a segment that is all one record from the previous segment', () => {
    const { segment } = buildSegment({ continued: 5 * MIB, stopAfter: true })
    assert.equal(verify(segment).recordsChecked, 0)
  })

  test('a switch record: the rest is zeroes and not read', () => {
    const { segment, records } = buildSegment({ records: [100, 5000], switchAfter: true })
    assert.equal(verify(segment).recordsChecked, records.length)
    assert.equal(segment.subarray(BLOCK).every((byte) => byte === 0), true)
  })

  test('the timeline may rise within a segment (the first segment of a new timeline)', () => {
    const { segment } = buildSegment({ pageTimeline: (page) => (page < 10 ? 1 : 2) })
    verify(segment, '000000020000000000000001')
  })

  test('a record abandoned in a crash, overwritten from the page where it should have continued', () => {
    const { segment, records } = buildSegment({ records: [100, 8192 * 2] })
    // Page 1 should continue the second record: make it the first page of new WAL instead.
    const page = BLOCK
    segment.writeUInt16LE(XLP_FIRST_IS_OVERWRITE_CONTRECORD, page + 2)
    segment.writeUInt32LE(0, page + 16)
    // A record right after the page header, with a CRC of its own.
    const length = 64
    const data = Buffer.alloc(length - 24, 7)
    const header = Buffer.alloc(24)
    header.writeUInt32LE(length, 0)
    header.writeBigUInt64LE(START + BigInt(records[1]!), 8)
    header.writeUInt32LE(crc32cUpdate(crc32cUpdate(0, data), header, 0, 20), 20)
    header.copy(segment, page + 24)
    data.copy(segment, page + 48)
    // Then a switch record ends it.
    const switchRecord = Buffer.alloc(24)
    switchRecord.writeUInt32LE(24, 0)
    switchRecord.writeBigUInt64LE(START + BigInt(page + 24), 8)
    switchRecord[16] = 0x40
    switchRecord.writeUInt32LE(crc32cUpdate(0, switchRecord, 0, 20), 20)
    switchRecord.copy(segment, page + 24 + 64)
    segment.fill(0, page + 24 + 64 + 24, 2 * BLOCK)
    segment.fill(0, 2 * BLOCK)
    assert.equal(verify(segment).recordsChecked, 3)
  })

  test('walSegmentBuild, for other tests, builds a segment that passes', () => {
    for (const fill of [0, 0xab]) {
      const segment = walSegmentBuild({ version: 17, segmentSize: SEGMENT, pageAddress: START, fill })
      assert.equal(verify(segment).recordsChecked, 1)
    }
  })

  test('fed in pieces as on disk, the result is the same', () => {
    const { segment, records } = buildSegment({ records: [100, 40000], fill: 777 })
    const verifier = new WalSegmentVerifier(segment.subarray(0, 64 * 1024), target)
    for (let offset = 0; offset < SEGMENT; offset += 64 * 1024) verifier.update(segment.subarray(offset, offset + 64 * 1024))
    verifier.finish(SEGMENT)
    assert.equal(verifier.recordsChecked, records.length)
  })

  test('the smallest records, tens of thousands in one piece', () => {
    // 24-byte records (a header, no data) and 32-byte ones: more record ends than the verifier gathers before it
    // has them checked, so it checks several batches within one piece.
    for (const fill of [24, 32]) {
      const { segment, records } = buildSegment({ records: [100], fill })
      assert.ok(records.length > 25000, String(records.length))
      assert.equal(verify(segment).recordsChecked, records.length)
      // Damage found in a late batch names its record.
      const at = records[records.length - 1000]!
      segment[at + 4] ^= 0x01
      assert.throws(() => verify(segment), { kind: 'FileInvalid', message: crcMessage(at) })
    }
  })

  test('CRCs checked in small batches give the same result', () => {
    const batch = walVerifyCrcBatch.operations
    try {
      for (const operations of [1, 2, 3, 7, 100]) {
        walVerifyCrcBatch.operations = operations
        const { segment, records } = buildSegment({ records: [100, 8200, 40000, 64], fill: 88 })
        assert.equal(verify(segment).recordsChecked, records.length)
        assert.equal(pieced(segment, 64 * 1024).recordsChecked, records.length)
        const at = records[records.length - 2000]!
        segment[at + 30] ^= 0x01
        assert.throws(() => verify(segment), { kind: 'FileInvalid', message: crcMessage(at) }, `batches of ${operations}`)
      }
    } finally {
      walVerifyCrcBatch.operations = batch
    }
  })

  test('fed in pieces through one reused buffer, as archive-push reads, the result is the same', () => {
    const { segment, records } = buildSegment({ records: [100, 40000], fill: 777 })
    assert.equal(pieced(segment, 64 * 1024).recordsChecked, records.length)
  })

  test('a .partial segment: only its size and first header count', () => {
    const { segment } = buildSegment({ records: [100, 200], stopAfter: true })
    segment.fill(0x33, 4 * BLOCK) // stale bytes of a recycled file after the end of its timeline
    verify(segment, `${NAME}.partial`)
    assert.throws(() => verify(segment.subarray(0, SEGMENT / 2), `${NAME}.partial`), {
      kind: 'FileInvalid',
      message: `WAL file 'pg_wal/${NAME}.partial' is ${SEGMENT / 2} bytes, expected ${SEGMENT}`,
    })
  })
})

describe('walSegmentVerify: short and damaged files are refused', () => {
  test('a truncated segment names its size and the expected one', () => {
    const { segment } = buildSegment()
    assert.throws(() => verify(segment.subarray(0, SEGMENT / 2)), {
      kind: 'FileInvalid',
      message: `WAL file 'pg_wal/${NAME}' is ${SEGMENT / 2} bytes, expected ${SEGMENT}`,
    })
    // Cut inside a page too, and one byte too many.
    assert.throws(() => verify(segment.subarray(0, SEGMENT - 100)), { message: `WAL file 'pg_wal/${NAME}' is ${SEGMENT - 100} bytes, expected ${SEGMENT}` })
    assert.throws(() => verify(Buffer.concat([segment, Buffer.alloc(1)])), { message: `WAL file 'pg_wal/${NAME}' is ${SEGMENT + 1} bytes, expected ${SEGMENT}` })
  })

  test('an empty file says so', () => {
    assert.throws(() => verify(Buffer.alloc(0)), {
      kind: 'FileInvalid',
      message: `WAL file 'pg_wal/${NAME}' is empty (0 bytes), expected a whole WAL segment`,
    })
  })

  test('a file of zeroes is not called a version walden does not support', () => {
    assert.throws(() => verify(Buffer.alloc(SEGMENT)), {
      kind: 'FileInvalid',
      message: `WAL file 'pg_wal/${NAME}' does not start with a WAL page header: its first bytes are zero`,
    })
  })

  test('a segment under another segment\'s name', () => {
    const { segment } = buildSegment()
    assert.throws(() => verify(segment, '000000010000000000000002'), {
      kind: 'ArchiveMismatch',
      message: "WAL file 'pg_wal/000000010000000000000002' holds WAL from 0/100000, but its name says 0/200000",
    })
  })

  test('a changed byte in a record fails its CRC', () => {
    const { segment, records } = buildSegment({ records: [100, 300, 20000] })
    segment[records[2]! + 24 + 15000 + 24 * 2] ^= 0x01
    assert.throws(() => verify(segment), { kind: 'FileInvalid', message: /record at 0\/100[0-9A-F]+ \(offset \d+\) has CRC 0x[0-9A-F]{8}, expected 0x[0-9A-F]{8}$/ })
  })

  test('a changed byte in a record header fails too', () => {
    const { segment, records } = buildSegment({ records: [100, 300] })
    segment[records[1]! + 4] ^= 0x80 // xl_xid
    const at = `0/${(0x100000 + records[1]!).toString(16).toUpperCase()} (offset ${records[1]})`
    assert.throws(() => verify(segment), { kind: 'FileInvalid', message: new RegExp(`record at ${at.replace(/[()]/g, '\\$&')} has CRC 0x[0-9A-F]{8}, expected 0x[0-9A-F]{8}$`) })
  })

  test('records running from one piece into the next: damage on either side is found', () => {
    const { segment, records } = buildSegment({ records: [100, 40000], fill: 777 })
    const piece = 64 * 1024
    // Records whose header (all 24 bytes of it) is in one piece and whose data ends in the next.
    const crossing = records.filter((at, index) => {
      const end = records[index + 1] ?? SEGMENT
      return Math.floor(at / piece) === Math.floor((at + 23) / piece) && Math.floor(at / piece) !== Math.floor((end - 1) / piece)
    })
    assert.ok(crossing.length > 5, String(crossing.length))
    for (const at of crossing.slice(1, 4)) {
      for (const damage of [at + 4, at + 770]) {
        const copy = Buffer.from(segment)
        copy[damage] ^= 0x40
        assert.throws(() => pieced(copy, piece), { kind: 'FileInvalid', message: crcMessage(at) }, `record at ${at}, byte ${damage}`)
      }
    }
  })

  test('a damaged record is reported before a later problem in the same piece', () => {
    const { segment, records } = buildSegment({ records: [100, 300], fill: 200 })
    segment[records[1]! + 100] ^= 0x01
    segment.fill(0, 2 * BLOCK, 3 * BLOCK) // a page of zeroes further on
    assert.throws(() => verify(segment), { kind: 'FileInvalid', message: crcMessage(records[1]!) })
    // And the last record of a piece, with the problem in the next piece.
    const piece = 64 * 1024
    const index = records.findIndex((at, index) => at > 40 * BLOCK && records[index + 1]! > (Math.floor(at / piece) + 1) * piece) - 1
    const last = records[index]!
    const copy = buildSegment({ records: [100, 300], fill: 200 }).segment
    copy[last + 4] ^= 0x01
    copy.fill(0, (Math.floor(last / piece) + 1) * piece, SEGMENT)
    assert.throws(() => pieced(copy, piece), { kind: 'FileInvalid', message: crcMessage(last) })
  })

  test('a record running onto the next page is checked without the page header in between', () => {
    // Its CRC rewritten over the bytes as they lie, page header included: right for a reader that ignores the page
    // boundary, wrong for PostgreSQL.
    const { segment, records } = buildSegment({ records: [100, 3 * BLOCK] })
    const at = records[1]!
    const crc = crc32cUpdate(crc32cUpdate(0, segment, at + 24, at + 3 * BLOCK), segment, at, at + 20)
    segment.writeUInt32LE(crc, at + 20)
    assert.throws(() => verify(segment), { kind: 'FileInvalid', message: crcMessage(at) })
  })

  test('a page of zeroes in the middle', () => {
    const { segment } = buildSegment()
    segment.fill(0, 40 * BLOCK, 41 * BLOCK)
    damaged(segment, `page at 0/150000 (offset ${40 * BLOCK}) has magic 0x0000, expected 0x${segment.readUInt16LE(0).toString(16).toUpperCase()}`)
  })

  test('a page of another segment in the middle (a recycled file, or a bad copy)', () => {
    const { segment } = buildSegment()
    segment.writeBigUInt64LE(0x50000n + 3n * BigInt(BLOCK), 3 * BLOCK + 8)
    damaged(segment, `page at 0/106000 (offset ${3 * BLOCK}) has page address 0/56000`)
  })

  test('WAL that ends early without a switch record (a truncated file padded with zeroes)', () => {
    const { segment, records } = buildSegment({ records: [100, 200, 300], stopAfter: true })
    const end = (records[2]! + 300 + 7) & ~7
    // Page headers left in place, as if only the records were lost.
    damaged(fillHeaders(segment), `WAL ends at 0/${(0x100000 + end).toString(16).toUpperCase()} (offset ${end}), before the end of the segment, without a switch record`)
  })

  test('a timeline that goes down, or above the name', () => {
    const name = '000000020000000000000001'
    assert.throws(() => verify(buildSegment({ pageTimeline: (page) => (page < 10 ? 2 : 1) }).segment, name), {
      kind: 'FileInvalid',
      message: `WAL file 'pg_wal/${name}' is damaged: page at 0/114000 (offset ${10 * BLOCK}) has timeline 1, below timeline 2 of the page before`,
    })
    damaged(buildSegment({ pageTimeline: (page) => (page < 10 ? 1 : 2) }).segment, `page at 0/114000 (offset ${10 * BLOCK}) has timeline 2, above the timeline of the segment's name, 1`)
  })

  test('a page that does not say a record continues onto it, or gives the wrong length', () => {
    const { segment } = buildSegment({ records: [100, 3 * BLOCK] })
    const flags = segment.readUInt16LE(BLOCK + 2)
    assert.equal(flags, XLP_FIRST_IS_CONTRECORD)
    const remaining = segment.readUInt32LE(BLOCK + 16)
    segment.writeUInt32LE(remaining + 8, BLOCK + 16)
    damaged(segment, `page at 0/102000 (offset ${BLOCK}) says ${remaining + 8} bytes of a record continue onto it, expected ${remaining}`)
    segment.writeUInt32LE(remaining, BLOCK + 16)
    segment.writeUInt16LE(0, BLOCK + 2)
    damaged(segment, `the record at 0/10${(0x28 + 104).toString(16).toUpperCase().padStart(4, '0')} (offset ${40 + 104}) continues onto the page at 0/102000 (offset ${BLOCK}), which does not say so`)
  })

  test('a page that says a record continues onto it when none does', () => {
    const { segment } = buildSegment({ records: [BLOCK - 40] })
    // That record ends exactly at the page end: page 1 starts a new one.
    assert.equal(segment.readUInt16LE(BLOCK + 2), 0)
    segment.writeUInt16LE(XLP_FIRST_IS_CONTRECORD, BLOCK + 2)
    damaged(segment, `page at 0/102000 (offset ${BLOCK}) says a record continues onto it, but none does`)
  })

  test('a record whose xl_prev does not point at the record before', () => {
    const { segment, records } = buildSegment({ records: [100, 200] })
    // Rewrite the second record's xl_prev and CRC, so only the chain is wrong.
    const at = records[1]!
    segment.writeBigUInt64LE(0x100028n + 8n, at + 8)
    const crc = crc32cUpdate(crc32cUpdate(0, segment, at + 24, at + 200), segment, at, at + 20)
    segment.writeUInt32LE(crc, at + 20)
    damaged(segment, `record at 0/${(0x100000 + at).toString(16).toUpperCase()} (offset ${at}) points back to 0/100030, expected 0/100028`)
  })
})

})
}

/** Checks a segment read `size` bytes at a time into one buffer, as archive-push reads it. */
function pieced(segment: Buffer, size: number): WalSegmentVerifier {
  const buffer = Buffer.alloc(size)
  segment.copy(buffer, 0, 0, size)
  const verifier = new WalSegmentVerifier(buffer, target)
  for (let offset = 0; offset < segment.length; offset += size) {
    buffer.fill(0xee) // what a read that fell short would leave behind
    const read = segment.copy(buffer, 0, offset, offset + size)
    verifier.update(buffer.subarray(0, read))
  }
  verifier.finish(segment.length)
  return verifier
}

/** Writes valid page headers over the zeroed pages after `stopAfter`, so only the missing records are wrong. */
function fillHeaders(segment: Buffer): Buffer {
  for (let offset = BLOCK; offset < SEGMENT; offset += BLOCK) {
    if (segment.readUInt16LE(offset) !== 0) continue
    segment.writeUInt16LE(segment.readUInt16LE(0), offset)
    segment.writeUInt32LE(1, offset + 4)
    segment.writeBigUInt64LE(START + BigInt(offset), offset + 8)
  }
  return segment
}
