// Whether a file is a whole, undamaged WAL segment, before it is archived or handed to recovery.
//
// PostgreSQL reads a short or damaged segment as the end of WAL: recovery stops there without an error and promotes at
// the wrong point. So archive-push checks what it stores, and archive-get what it serves, against what PostgreSQL
// itself writes (src/include/access/xlog_internal.h, xlogrecord.h; the reader's checks in xlogreader.c,
// XLogReaderValidatePageHeader, ValidXLogRecordHeader and ValidXLogRecord):
//
// - A segment file is exactly xlp_seg_size bytes (the long header of its first page). archive_command is only given
//   complete segments, and a '.partial' one (end of a timeline) is the whole segment file renamed.
// - Every page starts with a header: XLOG_PAGE_MAGIC, known info flags, the long header on the first page only, a
//   timeline that never goes down (the first segment of a new timeline starts with pages copied from the old one, so
//   the timeline may rise within a segment) and is never above the one in the file's name, and xlp_pageaddr equal to
//   the segment's start plus the page's offset.
// - Records follow each other from the first page to the end of the segment, each MAXALIGNed (8 bytes), a record's
//   header possibly split across pages; a page that a record continues onto says so (XLP_FIRST_IS_CONTRECORD and
//   xlp_rem_len, the bytes of the record still to come). Each record's CRC-32C covers its data, then its header up to
//   xl_crc. The only way valid WAL ends before the segment does is an XLOG_SWITCH record (pg_switch_wal,
//   archive_timeout): the rest of the segment is then padding, whose pages PostgreSQL 11 and later zero, headers
//   included (CopyXLogRecordToWAL), so nothing after a switch record is checked.
// - A record whose continuation never made it to disk before a crash is abandoned: the page where it should have
//   continued carries XLP_FIRST_IS_OVERWRITE_CONTRECORD instead (13.5 and later), and new records start there.
// - A record continued from the previous segment, or continuing into the next, cannot be checked here: its CRC needs
//   the other segment. A record larger than the segment leaves nothing to check but the page headers.
//
// A '.partial' segment holds valid WAL up to where its timeline ended and anything after (zeroes, pages of an older
// segment whose file PostgreSQL recycled, WAL a standby received past the switch point): only its size and its first
// header are checked.

import { fail } from '../common/errors.js'
import { CRC_OP_RANGE, CRC_OP_RECORD, CRC_OP_WORDS, crc32cNative, crc32cRecordsBest, crc32cUpdate, WAL_RECORD_CRC_OFFSET } from './crc32c.js'
import { lsnFormat } from './lsn.js'
import { isPartialName, walHeaderBuild, walHeaderParse, walSegmentParse, walSegmentStartLsn, WAL_LONG_HEADER_SIZE } from './wal.js'
import type { WalHeader, WalHeaderFields } from './wal.js'

/** SizeOfXLogShortPHD: the short page header, MAXALIGNed. */
export const WAL_SHORT_HEADER_SIZE = 24
/** SizeOfXLogRecord: xl_tot_len, xl_xid, xl_prev, xl_info, xl_rmid, 2 bytes of padding, xl_crc. */
export const WAL_RECORD_HEADER_SIZE = 24
/** offsetof(XLogRecord, xl_crc): the part of the record header the CRC covers. */
const RECORD_CRC_OFFSET = WAL_RECORD_CRC_OFFSET
/**
 * CRC operations gathered before they are run (see `crcFlush`): a 1 MiB piece of the smallest records needs about
 * 90,000, so such a piece takes a few calls, each a few thousand records long. A record header split across pages
 * runs them early too. Tests make it small.
 */
export const walVerifyCrcBatch = { operations: 8192 }

export const XLP_FIRST_IS_CONTRECORD = 0x0001
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008
const XLP_LONG_HEADER = 0x0002
const XLP_ALL_FLAGS = 0x000f
/** RM_XLOG_ID and XLOG_SWITCH (src/include/catalog/pg_control.h); the low four info bits are not the record type. */
const RM_XLOG_ID = 0
const XLOG_SWITCH = 0x40

function align8(offset: number): number {
  return (offset + 7) & ~7
}

function hex(value: number, width: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(width, '0')}`
}

/** The file name a user recognises in messages; the segment name the checks use. */
export interface WalVerifyTarget {
  /** The file's name as archived: a segment name, or a segment name with '.partial'. */
  walName: string
  /** Names the file in messages (its path). */
  what: string
}

/** The error for a file whose size is not its segment size; `expected` undefined when not even a header is there. */
export function walSizeFail(what: string, size: number, expected: number | undefined, hint?: string): never {
  const expectation = expected === undefined ? 'expected a whole WAL segment' : `expected ${expected}`
  const message = size === 0 ? `${what} is empty (0 bytes), ${expectation}` : `${what} is ${size} bytes, ${expectation}`
  fail('FileInvalid', message, {
    hint: hint ?? 'the file is truncated or damaged; PostgreSQL only archives whole segments. Do not archive it: find the complete segment.',
  })
}

/**
 * Checks a WAL segment fed to it in order, in pieces of whole pages (1 MiB reads of a 16 MiB segment, say), so a
 * segment is checked in one pass without holding it in memory. The constructor reads the long header from the first
 * piece (which `update` must then be given too), `update` checks each piece, `finish` the file's size. A problem is a
 * WaldenError naming the file (and the position): 'FileInvalid', or from the long header 'ArchiveMismatch' (another
 * segment's position) or 'VersionNotSupported' (an unknown magic).
 */
export class WalSegmentVerifier {
  readonly header: WalHeader
  private readonly what: string
  private readonly segmentStart: bigint
  private readonly nameTimeline: number
  private readonly blockSize: number
  /** Bytes of the segment seen so far: the offset of the next page. */
  private offset = 0
  private lastTimeline: number
  /** Valid WAL has ended (a switch record) or, for a '.partial' file, checking has stopped: nothing more is checked. */
  private done = false
  // The record being read: its start offset, its header's bytes seen so far and the bytes of its data still to
  // come. A header is read where it lies when it is whole on its page (`headerAt`, its position in the current
  // piece), else gathered into `recordHeader` (split across pages, or left open at the end of a piece); `recordInfo`
  // holds its xl_info and xl_rmid (xl_rmid << 8 | xl_info) either way.
  private readonly recordHeader = Buffer.alloc(WAL_RECORD_HEADER_SIZE)
  private headerHave = 0
  private headerAt = -1
  private recordInfo = 0
  private recordStart = -1
  private dataLeft = 0
  // The records this walk reads (those running across pages where native/page is built, else all) do not have their
  // CRCs computed one by one: the ranges each covers and the record ends are written down as crc32cRecords
  // operations (src/pg/crc32c.ts) and run over the piece a few thousand at a time, in C where it is built. A call into
  // C costs about 0.1 µs, three times the CRC of a 100-byte record there, and a segment of small records has a
  // quarter of a million. `crc` is the CRC where the operations written down start: 0, or the open record's CRC so
  // far when a piece ended inside it.
  private piece: Buffer = Buffer.alloc(0)
  private readonly crcOpsMax = walVerifyCrcBatch.operations
  private readonly crcOps = new Uint32Array(this.crcOpsMax * CRC_OP_WORDS)
  private crcOpCount = 0
  private readonly crcState = new Uint32Array(1)
  private readonly crcRecords = crc32cRecordsBest()
  private crc = 0
  // Where native/page is built, the records that lie whole on a page and pass are checked there, a page's worth in
  // one call (walRecordsScan in native/page/walden_page.c); this walk takes over at the first record it stops at,
  // and reports any problem. archive-push checks one segment per process, so most of this walk would run before V8
  // has compiled it: a segment of small records took 50 ms warm and 100-250 ms cold in JavaScript, 5-10 ms in C.
  private readonly scan = crc32cNative()?.walRecordsScan
  private readonly scanState = new Uint32Array(8)
  /** Bytes of a record that cannot be checked (continued from the previous segment) still to skip. */
  private skipLeft = 0
  /** Offset of the next record's start, when no record is open; -1 while one is. */
  private nextRecord = -1
  /** Offset of the last complete record, for the next one's xl_prev; -1 when unknown. */
  private previousRecord = -1
  // The segment's start LSN in 32-bit halves: xl_prev is compared per record without a BigInt (a segment never
  // crosses a 4 GiB boundary, so the low half plus an offset within it does not overflow).
  private startLow = 0
  private startHigh = 0
  /** Records whose CRC was checked, for tests and logs. */
  recordsChecked = 0
  /** Of those, the ones checked by walRecordsScan. */
  recordsCheckedNative = 0

  constructor(firstPiece: Uint8Array, target: WalVerifyTarget) {
    this.what = target.what
    const segmentName = target.walName.slice(0, 24)
    if (firstPiece.length < WAL_LONG_HEADER_SIZE) walSizeFail(this.what, firstPiece.length, undefined)
    // Zeroes where the magic belongs say nothing about versions: the file was never written, or was wiped.
    if (firstPiece[0] === 0 && firstPiece[1] === 0) {
      fail('FileInvalid', `${this.what} does not start with a WAL page header: its first bytes are zero`, {
        hint: 'the file is damaged or was never written; do not archive it. Find the complete segment.',
      })
    }
    this.header = walHeaderParse(firstPiece, this.what)
    this.blockSize = this.header.blockSize
    if (this.header.segmentSize % this.blockSize !== 0) {
      fail('FileInvalid', `${this.what} has segment size ${this.header.segmentSize}, not a multiple of its page size ${this.blockSize}`)
    }
    this.segmentStart = walSegmentStartLsn(segmentName, this.header.segmentSize)
    // A segment copied under another segment's name would be replayed in the wrong place.
    if (this.header.pageAddress !== this.segmentStart) {
      fail('ArchiveMismatch', `${this.what} holds WAL from ${lsnFormat(this.header.pageAddress)}, but its name says ${lsnFormat(this.segmentStart)}`, {
        hint: 'the file was renamed or damaged; do not archive it.',
      })
    }
    this.startLow = Number(this.segmentStart & 0xffffffffn)
    this.startHigh = Number(this.segmentStart >> 32n)
    this.nameTimeline = walSegmentParse(segmentName).timeline
    this.lastTimeline = 0
    // Only its size and first header are checked (see the top of this file).
    this.done = isPartialName(target.walName)
  }

  /** Checks the next piece of the segment: a whole number of pages, except the file's last piece if it is short. */
  update(data: Uint8Array): void {
    const piece = Buffer.from(data.buffer, data.byteOffset, data.length)
    this.piece = piece
    const pages = Math.floor(piece.length / this.blockSize)
    for (let page = 0; page < pages; page++) {
      if (this.offset >= this.header.segmentSize) break // past the end: finish() reports the size
      this.page(piece.subarray(page * this.blockSize, (page + 1) * this.blockSize), page * this.blockSize)
      this.offset += this.blockSize
    }
    // The caller may reuse the piece's memory for the next one: what the CRC needs from it is taken now, and the
    // header of a record left open is kept.
    this.crcFlush()
    if (this.recordStart >= 0 && this.headerAt >= 0) piece.copy(this.recordHeader, 0, this.headerAt, this.headerAt + WAL_RECORD_HEADER_SIZE)
    this.piece = Buffer.alloc(0)
    this.headerAt = -1
    // A piece that ends inside a page can only be the end of a short file, which finish() refuses by its size.
    if (piece.length % this.blockSize !== 0) this.offset += piece.length % this.blockSize
  }

  /** Called once the whole file has been fed: its size must be the segment size. */
  finish(size: number): void {
    if (size !== this.header.segmentSize) walSizeFail(this.what, size, this.header.segmentSize)
  }

  private fail(message: string): never {
    // A record before this point whose CRC is still to be checked may be the first problem: reported first if so.
    this.crcFlush()
    fail('FileInvalid', `${this.what} is damaged: ${message}`, {
      hint: 'PostgreSQL would stop reading WAL here; do not archive this file. Find an undamaged copy of the segment.',
    })
  }

  private where(offset: number): string {
    return `${lsnFormat(this.segmentStart + BigInt(offset))} (offset ${offset})`
  }

  /** One page, at `base` in the current piece: its header, then the records on it. */
  private page(page: Buffer, base: number): void {
    if (this.done) return
    const first = this.offset === 0
    const headerSize = first ? WAL_LONG_HEADER_SIZE : WAL_SHORT_HEADER_SIZE
    const magic = page.readUInt16LE(0)
    const info = page.readUInt16LE(2)
    const timeline = page.readUInt32LE(4)
    const pageAddress = page.readBigUInt64LE(8)
    const remaining = page.readUInt32LE(16)
    const expectedAddress = this.segmentStart + BigInt(this.offset)
    const problem =
      magic !== this.header.magic
        ? `page at ${this.where(this.offset)} has magic ${hex(magic, 4)}, expected ${hex(this.header.magic, 4)}`
        : (info & ~XLP_ALL_FLAGS) !== 0 || (!first && (info & XLP_LONG_HEADER) !== 0)
          ? `page at ${this.where(this.offset)} has invalid info flags ${hex(info, 4)}`
          : pageAddress !== expectedAddress
            ? `page at ${this.where(this.offset)} has page address ${lsnFormat(pageAddress)}`
            : timeline > this.nameTimeline
              ? `page at ${this.where(this.offset)} has timeline ${timeline}, above the timeline of the segment's name, ${this.nameTimeline}`
              : timeline < this.lastTimeline
                ? `page at ${this.where(this.offset)} has timeline ${timeline}, below timeline ${this.lastTimeline} of the page before`
                : undefined
    if (problem !== undefined) this.fail(problem)
    this.lastTimeline = timeline
    this.continuation(info, remaining)
    if (this.done) return
    this.records(page, base, headerSize)
  }

  /** A page's contrecord flag and xlp_rem_len must match the record (if any) that runs onto it. */
  private continuation(info: number, remaining: number): void {
    const contrecord = (info & XLP_FIRST_IS_CONTRECORD) !== 0
    if (this.offset === 0) {
      // Continued from the previous segment: unverifiable here, skipped.
      if (contrecord) this.skipLeft = remaining
      this.nextRecord = contrecord ? -1 : WAL_LONG_HEADER_SIZE
      if (contrecord && remaining === 0) this.nextRecord = WAL_LONG_HEADER_SIZE
      return
    }
    const open = this.skipLeft > 0 || this.recordStart >= 0
    if (!open) {
      if (contrecord) {
        this.fail(`page at ${this.where(this.offset)} says a record continues onto it, but none does`)
      }
      return
    }
    // The bytes of the open record still to come; a split record header has at least xl_tot_len on the last page.
    const left =
      this.skipLeft > 0
        ? this.skipLeft
        : this.headerHave < WAL_RECORD_HEADER_SIZE
          ? this.recordHeader.readUInt32LE(0) - this.headerHave
          : this.dataLeft
    if (contrecord && remaining === left) return
    if (!contrecord && (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0) {
      // The open record was abandoned in a crash (see the top of this file): new records start on this page. Those
      // before it are checked, and its CRC so far dropped.
      this.crcFlush()
      this.crc = 0
      this.skipLeft = 0
      this.recordStart = -1
      this.headerHave = 0
      this.dataLeft = 0
      this.previousRecord = -1
      this.nextRecord = this.offset + WAL_SHORT_HEADER_SIZE
      return
    }
    this.fail(
      contrecord
        ? `page at ${this.where(this.offset)} says ${remaining} bytes of a record continue onto it, expected ${left}`
        : `the record at ${this.where(this.recordStart >= 0 ? this.recordStart : 0)} continues onto the page at ${this.where(this.offset)}, which does not say so`,
    )
  }

  /** The records on one page (at `base` in the current piece), from the end of its header. */
  private records(page: Buffer, base: number, headerSize: number): void {
    const pageStart = this.offset
    let position = headerSize // within the page
    if (this.nextRecord >= 0) {
      if (this.nextRecord < pageStart + headerSize) this.nextRecord = pageStart + headerSize
      position = this.nextRecord - pageStart
    }
    while (position < page.length && !this.done) {
      if (this.scan !== undefined && this.recordStart < 0 && this.skipLeft === 0) {
        position = this.scanRecords(page, base, position)
        if (position >= page.length || this.done) break
      }
      if (this.skipLeft > 0) {
        const take = Math.min(this.skipLeft, page.length - position)
        this.skipLeft -= take
        position += take
        if (this.skipLeft === 0) position = align8(position)
        continue
      }
      if (this.recordStart < 0) {
        // A new record starts here, unless valid WAL ended before the segment does.
        const totalLength = page.readUInt32LE(position)
        if (totalLength === 0) {
          this.fail(`WAL ends at ${this.where(pageStart + position)}, before the end of the segment, without a switch record`)
        }
        this.recordStart = pageStart + position
        this.headerHave = 0
        this.nextRecord = -1
      }
      if (this.headerHave === 0 && page.length - position >= WAL_RECORD_HEADER_SIZE) {
        // The usual case: a whole header, read where it is.
        this.headerAt = base + position
        this.headerHave = WAL_RECORD_HEADER_SIZE
        this.recordHeaderCheck(page, position)
        position += WAL_RECORD_HEADER_SIZE
      } else if (this.headerHave < WAL_RECORD_HEADER_SIZE) {
        const take = Math.min(WAL_RECORD_HEADER_SIZE - this.headerHave, page.length - position)
        this.headerAt = -1
        page.copy(this.recordHeader, this.headerHave, position, position + take)
        this.headerHave += take
        position += take
        if (this.headerHave < WAL_RECORD_HEADER_SIZE) break // split across pages
        this.recordHeaderCheck(this.recordHeader, 0)
      }
      const take = Math.min(this.dataLeft, page.length - position)
      if (take > 0) this.crcOp(CRC_OP_RANGE, base + position, base + position + take)
      this.dataLeft -= take
      position += take
      if (this.dataLeft === 0) {
        this.recordEnd()
        position = align8(position)
      }
    }
    // The next record starts on the next page, after its header.
    if (!this.done && this.recordStart < 0 && this.skipLeft === 0) this.nextRecord = pageStart + page.length
  }

  /** The open record's header, at `at` in `bytes`. */
  private recordHeaderCheck(bytes: Buffer, at: number): void {
    const totalLength = bytes.readUInt32LE(at)
    if (totalLength < WAL_RECORD_HEADER_SIZE) {
      this.fail(`record at ${this.where(this.recordStart)} has invalid length ${totalLength}`)
    }
    if (this.previousRecord >= 0 && (bytes.readUInt32LE(at + 8) !== this.startLow + this.previousRecord || bytes.readUInt32LE(at + 12) !== this.startHigh)) {
      const previous = bytes.readBigUInt64LE(at + 8)
      this.fail(`record at ${this.where(this.recordStart)} points back to ${lsnFormat(previous)}, expected ${lsnFormat(this.segmentStart + BigInt(this.previousRecord))}`)
    }
    this.dataLeft = totalLength - WAL_RECORD_HEADER_SIZE
    this.recordInfo = bytes.readUInt16LE(at + 16)
  }

  private recordEnd(): void {
    if (this.headerAt >= 0) {
      this.crcOp(CRC_OP_RECORD, this.headerAt, this.recordStart)
    } else {
      // The header was split across pages, so it is not in the piece in one run: its part of the CRC is added here,
      // to the CRC of the record's data once that has been computed.
      this.crcFlush()
      const crc = crc32cUpdate(this.crc, this.recordHeader, 0, RECORD_CRC_OFFSET)
      this.crcCompare(this.recordStart, crc, this.recordHeader.readUInt32LE(RECORD_CRC_OFFSET))
      this.crc = 0
    }
    this.recordsChecked++
    this.previousRecord = this.recordStart
    const rmid = this.recordInfo >>> 8
    const info = this.recordInfo & 0xff
    this.recordStart = -1
    this.headerHave = 0
    // The rest of the segment is padding (see the top of this file).
    if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH) this.done = true
  }

  /** Runs walRecordsScan from `position` on the page at `base`; returns the position where it stopped. */
  private scanRecords(page: Buffer, base: number, position: number): number {
    const state = this.scanState
    state[0] = base + position
    state[1] = base + page.length
    state[2] = this.offset - base
    state[3] = this.startLow
    state[4] = this.startHigh
    state[5] = this.previousRecord // -1 becomes 0xFFFFFFFF, its "unknown"
    this.scan!(this.piece, state)
    const passed = state[6]!
    if (passed === 0) return position
    this.recordsChecked += passed
    this.recordsCheckedNative += passed
    this.previousRecord = state[5]!
    if (state[7] === 1) this.done = true
    return state[0]! - base
  }

  /** Writes down a CRC operation on the current piece, running those before it when there is no more room. */
  private crcOp(kind: number, from: number, to: number): void {
    if (this.crcOpCount === this.crcOpsMax) this.crcFlush()
    const at = this.crcOpCount++ * CRC_OP_WORDS
    this.crcOps[at] = kind
    this.crcOps[at + 1] = from
    this.crcOps[at + 2] = to
  }

  /** Runs the CRC operations written down, failing at the first record whose CRC does not match. */
  private crcFlush(): void {
    if (this.crcOpCount === 0) return
    const count = this.crcOpCount
    this.crcOpCount = 0 // before anything can fail, as fail() comes back here
    this.crcState[0] = this.crc
    const failed = this.crcRecords(this.piece, this.crcOps, count, this.crcState)
    this.crc = this.crcState[0]!
    if (failed >= 0) {
      const at = failed * CRC_OP_WORDS
      const header = this.crcOps[at + 1]!
      this.crcCompare(this.crcOps[at + 2]!, this.crc, this.piece.readUInt32LE(header + RECORD_CRC_OFFSET))
    }
  }

  private crcCompare(recordStart: number, crc: number, stored: number): void {
    if (crc !== stored) {
      this.fail(`record at ${this.where(recordStart)} has CRC ${hex(crc, 8)}, expected ${hex(stored, 8)}`)
    }
  }
}

/** Checks a whole segment held in memory (tests, and small segments). */
export function walSegmentVerify(data: Uint8Array, target: WalVerifyTarget): WalSegmentVerifier {
  const verifier = new WalSegmentVerifier(data, target)
  verifier.update(data)
  verifier.finish(data.length)
  return verifier
}

/**
 * A whole segment that passes WalSegmentVerifier, for tests (here and elsewhere in walden): the long header of
 * walHeaderBuild, then a switch record, as pg_switch_wal() writes at the very start of a segment, then padding
 * (zero, or `fill`, which makes segments of one name with different content; padding is not checked).
 */
export function walSegmentBuild(fields: WalHeaderFields & { fill?: number }): Buffer {
  const segmentSize = fields.segmentSize ?? 16 * 1024 * 1024
  const segment = Buffer.alloc(segmentSize, fields.fill ?? 0)
  walHeaderBuild(fields).copy(segment, 0, 0, WAL_LONG_HEADER_SIZE)
  const record = segment.subarray(WAL_LONG_HEADER_SIZE, WAL_LONG_HEADER_SIZE + WAL_RECORD_HEADER_SIZE)
  record.fill(0)
  record.writeUInt32LE(WAL_RECORD_HEADER_SIZE, 0)
  record[16] = XLOG_SWITCH
  record[17] = RM_XLOG_ID
  record.writeUInt32LE(crc32cUpdate(0, record, 0, RECORD_CRC_OFFSET), RECORD_CRC_OFFSET)
  return segment
}
