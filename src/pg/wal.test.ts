import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  WAL_LONG_HEADER_SIZE,
  isBackupHistoryName,
  isPartialName,
  isTimelineHistoryName,
  isWalSegmentName,
  isWalSegmentSizeValid,
  timelineHistoryName,
  timelineHistoryParse,
  walHeaderBuild,
  walHeaderParse,
  walMagicToVersion,
  walSegmentName,
  walSegmentNext,
  walSegmentParse,
  walSegmentRange,
  walSegmentStartLsn,
} from './wal.js'

const MIB = 1024 * 1024
const SEG16 = 16 * MIB

describe('walSegmentName', () => {
  test('16 MiB segments', () => {
    assert.equal(walSegmentName(1, 0x3000028n, SEG16), '000000010000000000000003')
    assert.equal(walSegmentName(1, 0x16b374d848n, SEG16), '0000000100000016000000B3')
    assert.equal(walSegmentName(0x1a, 0n, SEG16), '0000001A0000000000000000')
    assert.equal(walSegmentName(0xffffffff, 0xffffffffffffffffn, SEG16), 'FFFFFFFFFFFFFFFF000000FF')
  })

  test('other segment sizes split the position differently', () => {
    assert.equal(walSegmentName(1, 0x16b374d848n, MIB), '000000010000001600000B37')
    assert.equal(walSegmentName(1, 0x16b374d848n, 64 * MIB), '00000001000000160000002C')
    assert.equal(walSegmentName(1, 0x16b374d848n, 1024 * MIB), '000000010000001600000002')
  })

  test('rejects a bad segment size or timeline', () => {
    for (const size of [0, 3, 512 * 1024, 2048 * MIB, SEG16 + 1, 24 * MIB, 1.5]) {
      assert.throws(() => walSegmentName(1, 0n, size), {
        kind: 'Format',
        message: `invalid wal segment size '${size}'`,
        hint: 'the wal segment size is a power of two from 1 MiB to 1 GiB',
      })
    }
    for (const timeline of [0, -1, 1.5, 0x100000000]) {
      assert.throws(() => walSegmentName(timeline, 0n, SEG16), { kind: 'Format', message: `invalid timeline '${timeline}'` })
    }
  })

  test('isWalSegmentSizeValid', () => {
    assert.equal(isWalSegmentSizeValid(MIB), true)
    assert.equal(isWalSegmentSizeValid(1024 * MIB), true)
    assert.equal(isWalSegmentSizeValid(MIB / 2), false)
  })
})

describe('walSegmentParse', () => {
  test('splits the three fields', () => {
    assert.deepEqual(walSegmentParse('0000000100000016000000B3'), { timeline: 1, logId: 0x16, segId: 0xb3 })
    assert.deepEqual(walSegmentParse('FFFFFFFFFFFFFFFFFFFFFFFF'), { timeline: 0xffffffff, logId: 0xffffffff, segId: 0xffffffff })
  })

  test('rejects anything but 24 upper-case hex digits', () => {
    for (const bad of ['', '0000000100000016000000b3', '0000000100000016000000B', '0000000100000016000000B3.partial', '00000002.history']) {
      assert.throws(() => walSegmentParse(bad), { kind: 'Format', message: `invalid wal segment name '${bad}'` })
    }
  })
})

describe('walSegmentStartLsn', () => {
  test('position of the first byte', () => {
    assert.equal(walSegmentStartLsn('0000000100000016000000B3', SEG16), 0x16b3000000n)
    assert.equal(walSegmentStartLsn('000000010000000000000001', SEG16), 0x1000000n)
    assert.equal(walSegmentStartLsn('000000010000000000000001', 64 * MIB), 0x4000000n)
    assert.equal(walSegmentStartLsn('000000010000000000000100', MIB), 0x10000000n)
  })

  test('a seg part too large for the segment size', () => {
    assert.throws(() => walSegmentStartLsn('000000010000000000000100', SEG16), {
      kind: 'Format',
      message: "wal segment name '000000010000000000000100' is not valid for segment size '16777216'",
    })
    assert.throws(() => walSegmentStartLsn('000000010000000000000004', 1024 * MIB), {
      kind: 'Format',
      message: "wal segment name '000000010000000000000004' is not valid for segment size '1073741824'",
    })
  })
})

describe('walSegmentNext', () => {
  test('within and across log ids', () => {
    assert.equal(walSegmentNext('000000010000000000000001', SEG16), '000000010000000000000002')
    assert.equal(walSegmentNext('0000000100000000000000FF', SEG16), '000000010000000100000000')
    assert.equal(walSegmentNext('0000000100000000000000FF', MIB), '000000010000000000000100')
    assert.equal(walSegmentNext('000000010000000000000FFF', MIB), '000000010000000100000000')
    assert.equal(walSegmentNext('000000050000000000000003', 1024 * MIB), '000000050000000100000000')
  })

  test('past the end of the WAL address space', () => {
    assert.throws(() => walSegmentNext('00000001FFFFFFFF000000FF', SEG16), {
      kind: 'Format',
      message: "invalid wal segment number '1099511627776'",
    })
  })
})

describe('walSegmentRange', () => {
  test('start and stop in one segment', () => {
    assert.deepEqual(walSegmentRange(1, 0x3000028n, 0x3000100n, SEG16), ['000000010000000000000003'])
  })

  test('inclusive of both ends, across a log id', () => {
    assert.deepEqual(walSegmentRange(2, 0xfe000028n, 0x101000000n, SEG16), [
      '0000000200000000000000FE',
      '0000000200000000000000FF',
      '000000020000000100000000',
      '000000020000000100000001',
    ])
  })

  test('a stop lsn on a boundary is in the segment starting there', () => {
    assert.deepEqual(walSegmentRange(1, 0x2ffffffn, 0x3000000n, SEG16), ['000000010000000000000002', '000000010000000000000003'])
  })

  test('segment size changes the names', () => {
    assert.deepEqual(walSegmentRange(1, 0n, 0x8000000n, 64 * MIB), [
      '000000010000000000000000',
      '000000010000000000000001',
      '000000010000000000000002',
    ])
  })

  test('stop before start', () => {
    assert.throws(() => walSegmentRange(1, 2n, 1n, SEG16), {
      kind: 'ParamInvalid',
      message: "wal stop lsn '0/1' is before start lsn '0/2'",
    })
  })
})

describe('file name predicates', () => {
  test('segments', () => {
    assert.equal(isWalSegmentName('000000010000000000000002'), true)
    assert.equal(isWalSegmentName('00000001000000000000000a'), false)
    assert.equal(isWalSegmentName('00000001000000000000002'), false)
    assert.equal(isWalSegmentName('000000010000000000000002.partial'), false)
  })

  test('partial segments', () => {
    assert.equal(isPartialName('000000010000000000000002.partial'), true)
    assert.equal(isPartialName('000000010000000000000002'), false)
    assert.equal(isPartialName('000000010000000000000002.partialx'), false)
  })

  test('timeline history', () => {
    assert.equal(isTimelineHistoryName('00000002.history'), true)
    assert.equal(isTimelineHistoryName('0000000A.history'), true)
    assert.equal(isTimelineHistoryName('0000000a.history'), false)
    assert.equal(isTimelineHistoryName('2.history'), false)
    assert.equal(timelineHistoryName(10), '0000000A.history')
  })

  test('backup history', () => {
    assert.equal(isBackupHistoryName('000000010000000000000002.00000028.backup'), true)
    assert.equal(isBackupHistoryName('000000010000000000000002.backup'), false)
    assert.equal(isBackupHistoryName('000000010000000000000002.0000002.backup'), false)
    assert.equal(isBackupHistoryName('000000010000000000000002.00000028.backupx'), false)
  })
})

describe('timelineHistoryParse', () => {
  test('entries as PostgreSQL writes them', () => {
    const text = [
      '1\t0/3000000\tno recovery target specified',
      '',
      '2\t16/B374D848\tat restore point "before upgrade"',
      '',
    ].join('\n')
    assert.deepEqual(timelineHistoryParse(text, 3), [
      { timeline: 1, switchLsn: 0x3000000n, reason: 'no recovery target specified' },
      { timeline: 2, switchLsn: 0x16b374d848n, reason: 'at restore point "before upgrade"' },
    ])
  })

  test('comments, blank lines, other whitespace, CRLF and a missing reason', () => {
    const text = '# history\r\n\r\n   \n  1 0/3000000\r\n\t# indented comment\n3\t0/5000000   before 2024-01-01 00:00:00+00  \n'
    assert.deepEqual(timelineHistoryParse(text), [
      { timeline: 1, switchLsn: 0x3000000n, reason: '' },
      { timeline: 3, switchLsn: 0x5000000n, reason: 'before 2024-01-01 00:00:00+00' },
    ])
  })

  test('empty file', () => {
    assert.deepEqual(timelineHistoryParse(''), [])
  })

  test('errors name the line', () => {
    assert.throws(() => timelineHistoryParse('1\t0/3000000\tok\nabc\t0/1'), {
      kind: 'Format',
      message: "invalid timeline history line 2 'abc\t0/1'",
      hint: 'expected a numeric timeline id',
    })
    assert.throws(() => timelineHistoryParse('1'), {
      kind: 'Format',
      message: "invalid timeline history line 1 '1'",
      hint: 'expected a wal switchpoint location',
    })
    assert.throws(() => timelineHistoryParse('1\t0/ZZ\treason'), {
      kind: 'Format',
      message: "invalid timeline history line 1 '1\t0/ZZ\treason'",
      hint: 'expected a wal switchpoint location',
    })
    assert.throws(() => timelineHistoryParse('0\t0/1'), {
      kind: 'Format',
      message: "invalid timeline history line 1 '0\t0/1'",
      hint: 'expected a numeric timeline id',
    })
    assert.throws(() => timelineHistoryParse('2\t0/1\n2\t0/2'), {
      kind: 'Format',
      message: "invalid timeline history line 2 '2\t0/2'",
      hint: 'timeline ids must be in increasing sequence',
    })
    assert.throws(() => timelineHistoryParse('1\t0/1\n2\t0/2', 2), {
      kind: 'Format',
      message: "invalid timeline history line 2 '2\t0/2'",
      hint: "timeline ids must be less than the file's timeline '2'",
    })
  })
})

describe('walMagicToVersion', () => {
  test('each supported major', () => {
    const magics: Array<[number, number]> = [
      [0xd106, 13],
      [0xd10d, 14],
      [0xd110, 15],
      [0xd113, 16],
      [0xd116, 17],
      [0xd118, 18],
    ]
    for (const [magic, version] of magics) assert.equal(walMagicToVersion(magic), version)
  })

  test('unknown magic, in hex', () => {
    assert.throws(() => walMagicToVersion(0xd101), {
      kind: 'VersionNotSupported',
      message: "wal page magic '0xD101' is not supported",
      hint: 'walden reads wal of PostgreSQL 13, 14, 15, 16, 17, 18',
    })
    assert.throws(() => walMagicToVersion(0x12), { kind: 'VersionNotSupported', message: "wal page magic '0x0012' is not supported" })
  })
})

describe('walHeaderParse', () => {
  test('round trip for every major', () => {
    for (const version of [13, 14, 15, 16, 17, 18]) {
      const page = walHeaderBuild({
        version,
        timeline: 3,
        pageAddress: 0x16b4000000n,
        systemId: 7312345678901234567n,
        segmentSize: 64 * MIB,
        blockSize: 16384,
        remainingLength: 77,
      })
      assert.equal(page.length, 16384)
      assert.deepEqual(walHeaderParse(page), {
        magic: page.readUInt16LE(0),
        version,
        info: 0x0002,
        timeline: 3,
        pageAddress: 0x16b4000000n,
        remainingLength: 77,
        systemId: 7312345678901234567n,
        segmentSize: 64 * MIB,
        blockSize: 16384,
      })
    }
  })

  test('other flags may be set with the long header', () => {
    assert.equal(walHeaderParse(walHeaderBuild({ version: 16, info: 0x0007 })).info, 0x0007)
  })

  test('only the first 40 bytes are needed', () => {
    const page = walHeaderBuild({ version: 17 }).subarray(0, WAL_LONG_HEADER_SIZE)
    assert.equal(walHeaderParse(page).version, 17)
  })

  test('a header at an odd offset of a larger buffer', () => {
    const buffer = Buffer.concat([Buffer.alloc(3), walHeaderBuild({ version: 15 })])
    assert.equal(walHeaderParse(buffer.subarray(3)).systemId, 7000000000000000001n)
  })

  test('unknown magic', () => {
    const page = walHeaderBuild({ version: 18 })
    page.writeUInt16LE(0xd119, 0)
    assert.throws(() => walHeaderParse(page), { kind: 'VersionNotSupported', message: "wal page magic '0xD119' is not supported" })
  })

  test('no long header flag', () => {
    assert.throws(() => walHeaderParse(walHeaderBuild({ version: 16, info: 0x0001 }), 'pg_wal/000000010000000000000001'), {
      kind: 'FileInvalid',
      message: "wal segment 'pg_wal/000000010000000000000001' does not start with a long page header (info flags '0x0001')",
      hint: 'only the first page of a wal segment has the long header; is this the start of a segment?',
    })
  })

  test('undefined flag bits', () => {
    assert.throws(() => walHeaderParse(walHeaderBuild({ version: 16, info: 0x0012 })), {
      kind: 'FileInvalid',
      message: "wal segment has invalid page info flags '0x0012'",
    })
  })

  test('too short', () => {
    assert.throws(() => walHeaderParse(Buffer.alloc(39)), {
      kind: 'FileInvalid',
      message: "wal segment is too short: '39' bytes, expected at least '40'",
    })
  })

  test('impossible sizes, address or timeline', () => {
    assert.throws(() => walHeaderParse(walHeaderBuild({ version: 16, segmentSize: 3 * MIB })), {
      kind: 'FileInvalid',
      message: "wal segment has invalid segment size '3145728'",
    })
    const page = walHeaderBuild({ version: 16 })
    page.writeUInt32LE(1000, 36)
    assert.throws(() => walHeaderParse(page), { kind: 'FileInvalid', message: "wal segment has invalid block size '1000'" })
    assert.throws(() => walHeaderParse(walHeaderBuild({ version: 16, pageAddress: 0x1002000n })), {
      kind: 'FileInvalid',
      message: "wal segment has page address '0/1002000' that is not a segment start",
    })
    assert.throws(() => walHeaderParse(walHeaderBuild({ version: 16, timeline: 0 })), {
      kind: 'FileInvalid',
      message: "wal segment has invalid timeline '0'",
    })
  })
})
