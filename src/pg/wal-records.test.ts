import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { crc32cUpdate } from './crc32c.js'
import { walHeaderBuild, XLP_LONG_HEADER } from './wal.js'
import { walRecordEndsXact, walRecordRestorePoint, walRecordXactTime, walSegmentRecords } from './wal-records.js'

const MIB = 1024 * 1024
const BLOCK = 8192
const START = 0x100000n // segment 1 of 1 MiB
const PG_EPOCH_MS = 946_684_800_000

/** A record as PostgreSQL writes it: header, a short main data header, the main data; CRC over data then header. */
function record(rmid: number, info: number, xid: number, mainData: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([255, mainData.length]), mainData])
  const out = Buffer.alloc(24 + body.length)
  out.writeUInt32LE(out.length, 0)
  out.writeUInt32LE(xid, 4)
  out[16] = info
  out[17] = rmid
  body.copy(out, 24)
  out.writeUInt32LE(crc32cUpdate(crc32cUpdate(0, out, 24, out.length), out, 0, 20), 20)
  return out
}

function commit(xid: number, timeMs: number): Buffer {
  const data = Buffer.alloc(8)
  data.writeBigInt64LE(BigInt(timeMs - PG_EPOCH_MS) * 1000n)
  return record(1, 0x00, xid, data)
}

function restorePoint(name: string): Buffer {
  const data = Buffer.alloc(8 + 64)
  data.write(name, 8)
  return record(0, 0x70, 0, data)
}

/**
 * A 1 MiB segment of PostgreSQL `version` holding `records` in order from the first page, page headers inserted where
 * the stream crosses a page (so records, and record headers, split across pages), optionally starting with `continued`
 * bytes of a record from the previous segment.
 */
function segment(records: readonly Buffer[], continued = 0, version = 15): { data: Buffer; lsns: bigint[] } {
  const data = Buffer.alloc(MIB)
  walHeaderBuild({ version, pageAddress: START, segmentSize: MIB, info: XLP_LONG_HEADER | (continued > 0 ? 1 : 0), remainingLength: continued }).copy(data, 0, 0, 40)
  const lsns: bigint[] = []
  let offset = 40 + ((continued + 7) & ~7)
  /** At a page start, its short header: a record (or a record's rest) follows it. */
  const pageHeader = (continues: boolean): void => {
    if (offset % BLOCK !== 0) return
    walHeaderBuild({ version, pageAddress: START + BigInt(offset), segmentSize: MIB, info: continues ? 1 : 0, remainingLength: 0 }).copy(data, offset, 0, 24)
    offset += 24
  }
  for (const item of records) {
    pageHeader(false)
    lsns.push(START + BigInt(offset))
    for (const byte of item) {
      pageHeader(true)
      data[offset++] = byte
    }
    offset = (offset + 7) & ~7
  }
  // Headers for the rest of the pages, as a segment PostgreSQL has written to the end would have.
  for (let page = Math.ceil(offset / BLOCK) * BLOCK; page < MIB; page += BLOCK) {
    walHeaderBuild({ version, pageAddress: START + BigInt(page), segmentSize: MIB, info: 0, remainingLength: 0 }).copy(data, page, 0, 24)
  }
  return { data, lsns }
}

describe('walSegmentRecords()', () => {
  test('commits and a restore point across page boundaries, with their LSNs, times and xids', () => {
    const base = Date.UTC(2026, 11, 3, 12, 0, 0)
    // 1000 commits of 34 bytes (40 aligned) run over several pages, splitting records and record headers.
    const records = [...Array.from({ length: 1000 }, (_, index) => commit(1000 + index, base + index)), restorePoint('between'), commit(5000, base + 10_000)]
    const { data, lsns } = segment(records)
    const read = [...walSegmentRecords(data)]
    assert.equal(read.length, records.length)
    assert.deepEqual(read.map((item) => item.lsn), lsns)
    assert.equal(walRecordXactTime(read[0]!), base)
    assert.ok(lsns.some((lsn) => Number(lsn % BigInt(BLOCK)) > BLOCK - 24), 'a record header is split across pages')
    assert.equal(walRecordXactTime(read[999]!), base + 999)
    assert.equal(read[999]!.xid, 1999)
    assert.equal(walRecordRestorePoint(read[1000]!), 'between')
    assert.equal(walRecordXactTime(read[1000]!), undefined)
    assert.equal(walRecordEndsXact(read[1001]!), true)
    assert.equal(walRecordXactTime(read[1001]!), base + 10_000)
  })

  test('a record continued from the previous segment is skipped; reading stops at a damaged record', () => {
    const base = Date.UTC(2026, 11, 3, 12, 0, 0)
    const { data, lsns } = segment([commit(10, base), commit(11, base + 1), commit(12, base + 2)], 100)
    assert.deepEqual([...walSegmentRecords(data)].map((item) => item.lsn), lsns)
    // Flip a byte of the second record's time: its CRC fails, and nothing after it is trusted.
    data[Number(lsns[1]! - START) + 30]! ^= 0xff
    assert.deepEqual([...walSegmentRecords(data)].map((item) => item.xid), [10])
  })

  test('PostgreSQL 13 segments read the same way', () => {
    const { data } = segment([commit(7, Date.UTC(2026, 0, 1))], 0, 13)
    assert.deepEqual([...walSegmentRecords(data)].map((item) => [item.xid, walRecordXactTime(item)]), [[7, Date.UTC(2026, 0, 1)]])
  })
})
