// The records of one WAL segment, read far enough to answer what recovery targets ask: where each record starts, its
// resource manager and info bits, its transaction id, and its main data. Used to check, before a clone is made, that
// the archive holds WAL reaching a recovery target (a commit after a target time, a restore point, a transaction).
//
// Layout (src/include/access/xlogrecord.h, xlog_internal.h; unchanged in what is read here from 13 to 18): a
// segment is pages of xlp_xlog_blcksz bytes, each starting with a header (the long one, 40 bytes, on the first page;
// 24 bytes on the others). Records follow each other across pages, each starting MAXALIGNed (8 bytes); a record may
// continue onto the next page, header included. Page headers being multiples of 8, the records read as one stream
// of the pages' contents, aligned the same way. A record's header is xl_tot_len, xl_xid, xl_prev, xl_info, xl_rmid,
// padding, xl_crc (24 bytes), then block headers, then the main data header (XLR_BLOCK_ID_DATA_SHORT/LONG), and the
// main data comes last in the record.
//
// Only what is certain is reported: a record continued from the previous segment, or into the next one, is skipped
// (its CRC cannot be checked here), and so is a record abandoned by a crash (XLP_FIRST_IS_OVERWRITE_CONTRECORD). A
// caller looking for "some commit after X" therefore may miss one at a segment boundary, never invent one.

import { crc32cUpdate, WAL_RECORD_CRC_OFFSET } from './crc32c.js'
import { walHeaderParse, WAL_LONG_HEADER_SIZE } from './wal.js'

const SHORT_HEADER_SIZE = 24
const RECORD_HEADER_SIZE = 24
const XLP_FIRST_IS_CONTRECORD = 0x0001
const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008

/** Resource managers and info values read here (rmgrlist.h, pg_control.h, xact.h). */
export const RM_XLOG_ID = 0
export const RM_XACT_ID = 1
const XLOG_SWITCH = 0x40
export const XLOG_RESTORE_POINT = 0x70
const XLOG_XACT_OPMASK = 0x70
const XLOG_XACT_COMMIT = 0x00
const XLOG_XACT_ABORT = 0x20
const XLOG_XACT_COMMIT_PREPARED = 0x30
const XLOG_XACT_ABORT_PREPARED = 0x40

const XLR_MAX_BLOCK_ID = 32
const XLR_BLOCK_ID_DATA_SHORT = 255
const XLR_BLOCK_ID_DATA_LONG = 254
const XLR_BLOCK_ID_ORIGIN = 253
const XLR_BLOCK_ID_TOPLEVEL_XID = 252
const BKPBLOCK_HAS_IMAGE = 0x10
const BKPBLOCK_SAME_REL = 0x80
const BKPIMAGE_HAS_HOLE = 0x01

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC). */
const PG_EPOCH_MICROS = 946_684_800_000_000n

export interface WalRecord {
  /** LSN of the record's start. */
  lsn: bigint
  rmid: number
  info: number
  xid: number
  /** The record's main data (a view into the segment's contents). */
  mainData: Buffer
}

/** Whether a block image is compressed, which adds a 2-byte hole length (BKPIMAGE_COMPRESSED in 15, IS_COMPRESSED before). */
function imageCompressed(bimgInfo: number, version: number): boolean {
  return version >= 15 ? (bimgInfo & (0x04 | 0x08 | 0x10)) !== 0 : (bimgInfo & 0x02) !== 0
}

/**
 * The main data of a record, or undefined when its headers do not parse. As DecodeXLogRecord does, headers are read
 * until what is left of the record is exactly the data they announced (block data and images, then main data).
 */
function mainDataOf(record: Buffer, version: number): Buffer | undefined {
  let at = RECORD_HEADER_SIZE
  let dataTotal = 0
  while (record.length - at > dataTotal) {
    const id = record[at]!
    if (id === XLR_BLOCK_ID_DATA_SHORT || id === XLR_BLOCK_ID_DATA_LONG) {
      const short = id === XLR_BLOCK_ID_DATA_SHORT
      if (at + (short ? 2 : 5) > record.length) return undefined
      const length = short ? record[at + 1]! : record.readUInt32LE(at + 1)
      at += short ? 2 : 5
      // The main data header is the last header.
      return record.length - at !== dataTotal + length ? undefined : record.subarray(record.length - length)
    }
    if (id === XLR_BLOCK_ID_ORIGIN) at += 3
    else if (id === XLR_BLOCK_ID_TOPLEVEL_XID) at += 5
    else if (id <= XLR_MAX_BLOCK_ID) {
      if (at + 4 > record.length) return undefined
      const forkFlags = record[at + 1]!
      dataTotal += record.readUInt16LE(at + 2)
      at += 4
      if ((forkFlags & BKPBLOCK_HAS_IMAGE) !== 0) {
        if (at + 5 > record.length) return undefined
        dataTotal += record.readUInt16LE(at)
        const bimgInfo = record[at + 4]!
        at += 5
        if ((bimgInfo & BKPIMAGE_HAS_HOLE) !== 0 && imageCompressed(bimgInfo, version)) at += 2
      }
      if ((forkFlags & BKPBLOCK_SAME_REL) === 0) at += 12
      at += 4
    } else return undefined
  }
  // No main data header: the record has no main data.
  return record.length - at === dataTotal ? Buffer.alloc(0) : undefined
}

/**
 * The records that start and end within `segment` (a whole WAL segment file), in order. Stops at the end of valid WAL:
 * a zero length (unused space, or the padding after a WAL switch), a record that does not fit, or a CRC mismatch.
 */
export function* walSegmentRecords(segment: Buffer, fileName?: string): Generator<WalRecord> {
  const header = walHeaderParse(segment, fileName)
  const pageSize = header.blockSize
  // The pages' contents as one stream, with where each page's content starts in it (for LSNs) and where an
  // abandoned record's continuation was overwritten.
  const pieces: Buffer[] = []
  const pageStarts: Array<{ stream: number; lsn: bigint }> = []
  const restarts = new Set<number>()
  let streamLength = 0
  let skip = 0
  for (let page = 0; page * pageSize < segment.length; page++) {
    const offset = page * pageSize
    const headerSize = page === 0 ? WAL_LONG_HEADER_SIZE : SHORT_HEADER_SIZE
    if (offset + headerSize > segment.length) break
    const info = segment.readUInt16LE(offset + 2)
    const pageAddress = segment.readBigUInt64LE(offset + 8)
    // A page that is not this segment's (a recycled file's stale page, or zeroes past a switch) ends valid WAL.
    if (pageAddress !== header.pageAddress + BigInt(offset)) break
    if (page === 0 && (info & XLP_FIRST_IS_CONTRECORD) !== 0) skip = segment.readUInt32LE(offset + 16)
    if ((info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0) restarts.add(streamLength)
    pageStarts.push({ stream: streamLength, lsn: pageAddress + BigInt(headerSize) })
    const content = segment.subarray(offset + headerSize, Math.min(offset + pageSize, segment.length))
    pieces.push(content)
    streamLength += content.length
  }
  const stream = Buffer.concat(pieces, streamLength)
  const lsnAt = (position: number): bigint => {
    let low = 0
    let high = pageStarts.length - 1
    while (low < high) {
      const middle = (low + high + 1) >> 1
      if (pageStarts[middle]!.stream <= position) low = middle
      else high = middle - 1
    }
    return pageStarts[low]!.lsn + BigInt(position - pageStarts[low]!.stream)
  }
  const align = (position: number): number => (position + 7) & ~7

  let position = align(skip)
  while (position + RECORD_HEADER_SIZE <= streamLength) {
    const totalLength = stream.readUInt32LE(position)
    if (totalLength < RECORD_HEADER_SIZE || position + totalLength > streamLength) return
    const end = position + totalLength
    // A record running over a page whose writer overwrote it: abandoned, the next record starts on that page.
    const overwritten = [...restarts].find((restart) => restart > position && restart < end)
    if (overwritten !== undefined) {
      position = overwritten
      continue
    }
    const record = stream.subarray(position, end)
    // The CRC covers the data, then the header up to xl_crc.
    const crc = crc32cUpdate(crc32cUpdate(0, record, RECORD_HEADER_SIZE, record.length), record, 0, WAL_RECORD_CRC_OFFSET)
    if (crc !== record.readUInt32LE(WAL_RECORD_CRC_OFFSET)) return
    const rmid = record[17]!
    const info = record[16]!
    const mainData = mainDataOf(record, header.version)
    if (mainData !== undefined) yield { lsn: lsnAt(position), rmid, info, xid: record.readUInt32LE(4), mainData }
    if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH) return
    position = align(end)
  }
}

/**
 * The time of a commit or abort record, in Unix epoch milliseconds (rounded down): what PostgreSQL compares with
 * recovery_target_time (getRecordTimestamp in xlogrecovery.c). Undefined for any other record.
 */
export function walRecordXactTime(record: WalRecord): number | undefined {
  if (record.rmid !== RM_XACT_ID || record.mainData.length < 8) return undefined
  const op = record.info & XLOG_XACT_OPMASK
  if (op !== XLOG_XACT_COMMIT && op !== XLOG_XACT_ABORT && op !== XLOG_XACT_COMMIT_PREPARED && op !== XLOG_XACT_ABORT_PREPARED) return undefined
  return Number((record.mainData.readBigInt64LE(0) + PG_EPOCH_MICROS) / 1000n)
}

/** Whether a record ends a transaction (commit or abort, prepared or not): what recovery_target_xid stops at. */
export function walRecordEndsXact(record: WalRecord): boolean {
  return walRecordXactTime(record) !== undefined
}

/** The name of a restore point record (pg_create_restore_point), or undefined for any other record. */
export function walRecordRestorePoint(record: WalRecord): string | undefined {
  if (record.rmid !== RM_XLOG_ID || (record.info & 0xf0) !== XLOG_RESTORE_POINT || record.mainData.length < 9) return undefined
  const name = record.mainData.subarray(8)
  const end = name.indexOf(0)
  return name.subarray(0, end < 0 ? name.length : end).toString('utf8')
}
