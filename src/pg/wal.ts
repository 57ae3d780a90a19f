// WAL file naming, segment arithmetic, timeline history files and the long page header at the start of a segment.
// Names and math follow src/include/access/xlog_internal.h (XLogFileName, XLogFromFileName, XLByteToSeg ...): a
// segment name is TTTTTTTTLLLLLLLLSSSSSSSS in upper-case hex, timeline, then the segment number split into a 'log'
// part (which 4 GiB of WAL) and a 'seg' part (which segment within those 4 GiB). How many segments make up one log
// id depends on the segment size, so every conversion from a name to a position needs the segment size.
import { fail } from '../common/errors.js'
import { lsnFormat } from './lsn.js'
import { PG_MAJORS, PG_SUPPORTED_MAJORS, pgMajorInfo } from './version.js'

const FOUR_GIB = 0x100000000n
const WAL_SEGMENT_SIZE_MIN = 1024 * 1024
const WAL_SEGMENT_SIZE_MAX = 1024 * 1024 * 1024
const TIMELINE_MAX = 0xffffffff

const WAL_SEGMENT_NAME = /^[0-9A-F]{24}$/
const PARTIAL_NAME = /^[0-9A-F]{24}\.partial$/
const TIMELINE_HISTORY_NAME = /^[0-9A-F]{8}\.history$/
const BACKUP_HISTORY_NAME = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/

// Upper-case only, like IsXLogFileName: PostgreSQL never writes lower-case names, and accepting them would let two
// spellings of one segment into an archive.
/** A plain WAL segment name: 24 upper-case hex digits. */
export function isWalSegmentName(name: string): boolean {
  return WAL_SEGMENT_NAME.test(name)
}

/** A segment saved with '.partial' (end of a timeline, or pg_receivewal's segment in progress). */
export function isPartialName(name: string): boolean {
  return PARTIAL_NAME.test(name)
}

/** A timeline history file name: '00000002.history'. */
export function isTimelineHistoryName(name: string): boolean {
  return TIMELINE_HISTORY_NAME.test(name)
}

/**
 * A backup history file name: '000000010000000000000002.00000028.backup' (segment, then the backup start offset
 * within it). Stricter than IsBackupHistoryFileName, which only checks the prefix and suffix.
 */
export function isBackupHistoryName(name: string): boolean {
  return BACKUP_HISTORY_NAME.test(name)
}

/** True for a valid wal_segment_size: a power of two from 1 MiB to 1 GiB (IsValidWalSegSize). */
export function isWalSegmentSizeValid(segmentSize: number): boolean {
  return (
    Number.isInteger(segmentSize) &&
    segmentSize >= WAL_SEGMENT_SIZE_MIN &&
    segmentSize <= WAL_SEGMENT_SIZE_MAX &&
    (segmentSize & (segmentSize - 1)) === 0
  )
}

function checkSegmentSize(segmentSize: number): bigint {
  if (!isWalSegmentSizeValid(segmentSize)) {
    fail('Format', `invalid wal segment size '${segmentSize}'`, {
      hint: 'the wal segment size is a power of two from 1 MiB to 1 GiB',
    })
  }
  return BigInt(segmentSize)
}

function checkTimeline(timeline: number): void {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > TIMELINE_MAX) {
    fail('Format', `invalid timeline '${timeline}'`)
  }
}

function hex8(value: bigint | number): string {
  return value.toString(16).toUpperCase().padStart(8, '0')
}

/** Segment number (XLogSegNo) holding `lsn`. */
export function walSegmentNumber(lsn: bigint, segmentSize: number): bigint {
  return lsn / checkSegmentSize(segmentSize)
}

/** Name of segment number `segmentNo` on `timeline` (XLogFileName). */
export function walSegmentNameFromNumber(timeline: number, segmentNo: bigint, segmentSize: number): string {
  checkTimeline(timeline)
  const perLogId = FOUR_GIB / checkSegmentSize(segmentSize)
  const logId = segmentNo / perLogId
  if (segmentNo < 0n || logId > 0xffffffffn) fail('Format', `invalid wal segment number '${segmentNo}'`)
  return hex8(timeline) + hex8(logId) + hex8(segmentNo % perLogId)
}

/** Name of the segment on `timeline` that holds `lsn`: walSegmentName(1, 0x3000028n, 16 MiB) = '000000010000000000000003'. */
export function walSegmentName(timeline: number, lsn: bigint, segmentSize: number): string {
  return walSegmentNameFromNumber(timeline, walSegmentNumber(lsn, segmentSize), segmentSize)
}

export interface WalSegmentId {
  timeline: number
  /** High 32 bits of the segment's start position: which 4 GiB of WAL. */
  logId: number
  /** Segment within that 4 GiB; its valid range depends on the segment size. */
  segId: number
}

/** Splits a segment name into its three hex fields; 'Format' unless it is exactly 24 upper-case hex digits. */
export function walSegmentParse(name: string): WalSegmentId {
  if (!isWalSegmentName(name)) fail('Format', `invalid wal segment name '${name}'`)
  return {
    timeline: Number.parseInt(name.slice(0, 8), 16),
    logId: Number.parseInt(name.slice(8, 16), 16),
    segId: Number.parseInt(name.slice(16, 24), 16),
  }
}

/** Segment number of a segment name (XLogFromFileName), checking the seg part fits the segment size. */
export function walSegmentNumberFromName(name: string, segmentSize: number): bigint {
  const { logId, segId } = walSegmentParse(name)
  const perLogId = FOUR_GIB / checkSegmentSize(segmentSize)
  // With 16 MiB segments a log id holds 256 segments, so '...000000000100' cannot exist; PostgreSQL would silently
  // compute a position in the next log id, which hides a wrong segment size.
  if (BigInt(segId) >= perLogId) {
    fail('Format', `wal segment name '${name}' is not valid for segment size '${segmentSize}'`)
  }
  return BigInt(logId) * perLogId + BigInt(segId)
}

/** LSN of the first byte of the named segment. */
export function walSegmentStartLsn(name: string, segmentSize: number): bigint {
  return walSegmentNumberFromName(name, segmentSize) * BigInt(segmentSize)
}

/** Name of the segment after `name` on the same timeline (crossing into the next log id when needed). */
export function walSegmentNext(name: string, segmentSize: number): string {
  const { timeline } = walSegmentParse(name)
  return walSegmentNameFromNumber(timeline, walSegmentNumberFromName(name, segmentSize) + 1n, segmentSize)
}

/**
 * Every segment name on `timeline` from the one holding `startLsn` to the one holding `stopLsn`, inclusive. A stop
 * LSN exactly on a segment boundary counts as being in the segment that starts there (XLByteToSeg, not
 * XLByteToPrevSeg): callers that mean "the last byte written" pass stopLsn - 1.
 */
export function walSegmentRange(timeline: number, startLsn: bigint, stopLsn: bigint, segmentSize: number): string[] {
  if (stopLsn < startLsn) {
    fail('ParamInvalid', `wal stop lsn '${lsnFormat(stopLsn)}' is before start lsn '${lsnFormat(startLsn)}'`)
  }
  const first = walSegmentNumber(startLsn, segmentSize)
  const last = walSegmentNumber(stopLsn, segmentSize)
  const names: string[] = []
  for (let segmentNo = first; segmentNo <= last; segmentNo++) {
    names.push(walSegmentNameFromNumber(timeline, segmentNo, segmentSize))
  }
  return names
}

/** Name of the history file that starts `timeline`: '00000002.history'. */
export function timelineHistoryName(timeline: number): string {
  checkTimeline(timeline)
  return `${hex8(timeline)}.history`
}

export interface TimelineHistoryEntry {
  /** A parent timeline. */
  timeline: number
  /** LSN at which the parent timeline ended and the next one began. */
  switchLsn: bigint
  /** Free text PostgreSQL wrote about why ('no recovery target specified', 'at restore point ...'). */
  reason: string
}

// One history line: parentTLI, switchpoint, reason, separated by tabs when PostgreSQL writes them
// (writeTimeLineHistory: "%u\t%X/%X\t%s"); readTimeLineHistory parses with sscanf, which takes any whitespace.
const HISTORY_LINE = /^(\d+)(?:\s+([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8}))?(?:\s+(.*))?$/

/**
 * Parses a timeline history file (src/backend/access/transam/timeline.c, readTimeLineHistory). Blank lines and lines
 * starting with '#' are skipped; timelines must increase. When `timeline` (the file's own timeline) is given, every
 * parent must be below it. Entries are returned in file order, oldest first.
 */
export function timelineHistoryParse(text: string, timeline?: number): TimelineHistoryEntry[] {
  const entries: TimelineHistoryEntry[] = []
  const lines = text.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const where = `timeline history line ${index + 1} '${line}'`
    const match = HISTORY_LINE.exec(line)
    if (match === null) fail('Format', `invalid ${where}`, { hint: 'expected a numeric timeline id' })
    if (match[2] === undefined || match[3] === undefined) {
      fail('Format', `invalid ${where}`, { hint: 'expected a wal switchpoint location' })
    }
    const parent = Number(match[1])
    if (parent < 1 || parent > TIMELINE_MAX) fail('Format', `invalid ${where}`, { hint: 'expected a numeric timeline id' })
    const previous = entries[entries.length - 1]
    if (previous !== undefined && parent <= previous.timeline) {
      fail('Format', `invalid ${where}`, { hint: 'timeline ids must be in increasing sequence' })
    }
    if (timeline !== undefined && parent >= timeline) {
      fail('Format', `invalid ${where}`, { hint: `timeline ids must be less than the file's timeline '${timeline}'` })
    }
    entries.push({
      timeline: parent,
      switchLsn: (BigInt(`0x${match[2]}`) << 32n) | BigInt(`0x${match[3]}`),
      reason: match[4] ?? '',
    })
  }
  return entries
}

// XLogPageHeaderData / XLogLongPageHeaderData (xlog_internal.h), unchanged from 13 to 18:
//   0 uint16 xlp_magic   2 uint16 xlp_info   4 uint32 xlp_tli   8 uint64 xlp_pageaddr   16 uint32 xlp_rem_len
//   (4 bytes padding: the short header is MAXALIGNed to 24)
//   24 uint64 xlp_sysid   32 uint32 xlp_seg_size   36 uint32 xlp_xlog_blcksz   -> SizeOfXLogLongPHD = 40
/** Size of the long page header at the start of every segment. */
export const WAL_LONG_HEADER_SIZE = 40
/** xlp_info flag: this page has the long header. */
export const XLP_LONG_HEADER = 0x0002
// Every flag bit defined in 13..18 (XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER, XLP_BKP_REMOVABLE,
// XLP_FIRST_IS_OVERWRITE_CONTRECORD); others mean the header is not a WAL header.
const XLP_ALL_FLAGS = 0x000f

export interface WalHeader {
  magic: number
  /** Major version the magic belongs to. */
  version: number
  info: number
  timeline: number
  pageAddress: bigint
  /** Bytes of a record continued from the previous segment (xlp_rem_len). */
  remainingLength: number
  systemId: bigint
  segmentSize: number
  blockSize: number
}

/** Major version whose XLOG_PAGE_MAGIC is `magic`; 'VersionNotSupported' naming the magic in hex otherwise. */
export function walMagicToVersion(magic: number): number {
  const info = PG_MAJORS.find((row) => row.walMagic === magic)
  if (info === undefined) {
    fail('VersionNotSupported', `wal page magic '0x${magic.toString(16).toUpperCase().padStart(4, '0')}' is not supported`, {
      hint: `walden reads wal of PostgreSQL ${PG_SUPPORTED_MAJORS.join(', ')}`,
    })
  }
  return info.major
}

/**
 * Reads the long page header at the start of a WAL segment (at least 40 bytes of it). Checks, as PostgreSQL's
 * XLogReaderValidatePageHeader does, the magic first, then the flags; plus the sizes, since a valid header has them.
 * `fileName` only names the file in error messages.
 */
export function walHeaderParse(buffer: Uint8Array, fileName?: string): WalHeader {
  const where = fileName === undefined ? 'wal segment' : `wal segment '${fileName}'`
  if (buffer.length < WAL_LONG_HEADER_SIZE) {
    fail('FileInvalid', `${where} is too short: '${buffer.length}' bytes, expected at least '${WAL_LONG_HEADER_SIZE}'`)
  }
  const view = Buffer.from(buffer.buffer, buffer.byteOffset, WAL_LONG_HEADER_SIZE)
  const magic = view.readUInt16LE(0)
  const version = walMagicToVersion(magic)
  const info = view.readUInt16LE(2)
  const flags = `0x${info.toString(16).toUpperCase().padStart(4, '0')}`
  if ((info & ~XLP_ALL_FLAGS) !== 0) fail('FileInvalid', `${where} has invalid page info flags '${flags}'`)
  if ((info & XLP_LONG_HEADER) === 0) {
    fail('FileInvalid', `${where} does not start with a long page header (info flags '${flags}')`, {
      hint: 'only the first page of a wal segment has the long header; is this the start of a segment?',
    })
  }
  const header: WalHeader = {
    magic,
    version,
    info,
    timeline: view.readUInt32LE(4),
    pageAddress: view.readBigUInt64LE(8),
    remainingLength: view.readUInt32LE(16),
    systemId: view.readBigUInt64LE(24),
    segmentSize: view.readUInt32LE(32),
    blockSize: view.readUInt32LE(36),
  }
  if (!isWalSegmentSizeValid(header.segmentSize)) {
    fail('FileInvalid', `${where} has invalid segment size '${header.segmentSize}'`)
  }
  if (header.blockSize < 1024 || header.blockSize > 65536 || (header.blockSize & (header.blockSize - 1)) !== 0) {
    fail('FileInvalid', `${where} has invalid block size '${header.blockSize}'`)
  }
  if (header.pageAddress % BigInt(header.segmentSize) !== 0n) {
    fail('FileInvalid', `${where} has page address '${lsnFormat(header.pageAddress)}' that is not a segment start`)
  }
  if (header.timeline === 0) fail('FileInvalid', `${where} has invalid timeline '0'`)
  return header
}

export interface WalHeaderFields {
  version: number
  timeline?: number
  pageAddress?: bigint
  systemId?: bigint
  segmentSize?: number
  blockSize?: number
  info?: number
  remainingLength?: number
}

/**
 * A WAL page of `blockSize` bytes with a long header and nothing else, for tests (here and elsewhere in walden).
 * Defaults: timeline 1, page address 0x1000000 (segment 1 of 16 MiB), 16 MiB segments, 8 KiB pages.
 */
export function walHeaderBuild(fields: WalHeaderFields): Buffer {
  const info = pgMajorInfo(fields.version)
  const blockSize = fields.blockSize ?? 8192
  const page = Buffer.alloc(Math.max(blockSize, WAL_LONG_HEADER_SIZE))
  page.writeUInt16LE(info.walMagic, 0)
  page.writeUInt16LE(fields.info ?? XLP_LONG_HEADER, 2)
  page.writeUInt32LE(fields.timeline ?? 1, 4)
  page.writeBigUInt64LE(fields.pageAddress ?? 0x1000000n, 8)
  page.writeUInt32LE(fields.remainingLength ?? 0, 16)
  page.writeBigUInt64LE(fields.systemId ?? 7000000000000000001n, 24)
  page.writeUInt32LE(fields.segmentSize ?? 16 * 1024 * 1024, 32)
  page.writeUInt32LE(blockSize, 36)
  return page
}
