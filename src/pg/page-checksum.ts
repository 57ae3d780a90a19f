// PostgreSQL data page checksums (src/include/storage/checksum_impl.h) and the page validity rule PostgreSQL applies
// when it reads a page (PageIsVerified, src/backend/storage/page/bufpage.c). Backups check every page they copy, so
// this is the hot loop of a backup: it reads the page as 32-bit words through a cached typed-array view of the buffer
// it sits in, keeps the partial sums in local variables, and allocates nothing per page.
//
// PostgreSQL reads the page as native uint32 values. walden only supports little-endian clusters, so words are read
// little-endian: in place through a typed array on a little-endian host, else copied word by word with readInt32LE.
import { endianness } from 'node:os'
import { fail } from '../common/errors.js'
import { nativeAddonLoad } from '../io/native.js'

/** Number of partial checksums computed in parallel; fixed by the algorithm (changing it changes every result). */
const N_SUMS = 32
/** FNV-1a 32-bit prime. */
const FNV_PRIME = 16777619
/** 0xffff0000 as int32: keeps pd_flags, drops pd_checksum (an unsigned constant would be a double to V8). */
const MASK_CHECKSUM_OUT = 0xffff0000 | 0

// Initial value of each partial sum, checksumBaseOffsets in checksum_impl.h (random constants chosen by PostgreSQL).
const BASE_OFFSETS = Int32Array.from(
  [
    0x5b1f36e9, 0xb8525960, 0x02ab50aa, 0x1de66d2a, 0x79ff467a, 0x9bb9f8a3, 0x217e7cd2, 0x83e13d2c, 0xf8d4474f,
    0xe39eb970, 0x42c6ae16, 0x993216fa, 0x7b093b5d, 0x98daff3c, 0xf718902a, 0x0b1c9cdb, 0xe58f764b, 0x187636bc,
    0x5d7b3bb1, 0xe73de7de, 0x92bec979, 0xcca6c0b2, 0x304a0979, 0x85aa43d4, 0x783125bb, 0x6ca8eaa2, 0xe407eac6,
    0x4b5cfc3e, 0x9fbf8c76, 0x15ca20be, 0xf2ca9fd3, 0x959bd756,
  ],
  (value) => value | 0,
)

// Page header (PageHeaderData, src/include/storage/bufpage.h): pd_lsn 0 (two uint32: high, low), pd_checksum 8,
// pd_flags 10, pd_lower 12, pd_upper 14, pd_special 16, pd_pagesize_version 18, pd_prune_xid 20.
const PD_CHECKSUM = 8
const PD_FLAGS = 10
const PD_LOWER = 12
const PD_UPPER = 14
const PD_SPECIAL = 16
/** PD_HAS_FREE_LINES | PD_PAGE_FULL | PD_ALL_VISIBLE: any other pd_flags bit marks a damaged header. */
const PD_VALID_FLAG_BITS = 0x0007
/** MAXALIGN on 64-bit platforms. */
const MAXIMUM_ALIGNOF = 8
/** Bytes per relation segment file at the default build (RELSEG_SIZE * BLCKSZ = 1 GiB). */
const RELATION_SEGMENT_BYTES = 1024 * 1024 * 1024

const LITTLE_ENDIAN_HOST = endianness() === 'LE'

// Views over whole ArrayBuffers, so a page that is a subarray of a larger read buffer needs no new view: the same
// view serves every page read into that buffer. Weak, so buffers are still freed. Int32Array rather than
// Uint32Array: V8 keeps int32 elements as small integers, and the bit operations below work on int32 anyway.
const views = new WeakMap<ArrayBufferLike, Int32Array>()
// Where a page that cannot be viewed in place (odd offset, big-endian host) is copied word by word; grown once.
let scratch = new Int32Array(0)

/** The page as little-endian 32-bit words: a view and the index of the page's first word in it. */
function pageWords(page: Uint8Array): { words: Int32Array; start: number } {
  if (LITTLE_ENDIAN_HOST && (page.byteOffset & 3) === 0) {
    let view = views.get(page.buffer)
    if (view === undefined) {
      view = new Int32Array(page.buffer, 0, page.buffer.byteLength >>> 2)
      views.set(page.buffer, view)
    }
    wordsResult.words = view
    wordsResult.start = page.byteOffset >>> 2
    return wordsResult
  }
  const count = page.length >>> 2
  if (scratch.length < count) scratch = new Int32Array(count)
  const buffer = Buffer.from(page.buffer, page.byteOffset, page.length)
  for (let index = 0; index < count; index++) scratch[index] = buffer.readInt32LE(index * 4)
  wordsResult.words = scratch
  wordsResult.start = 0
  return wordsResult
}
// Reused result object: pageWords runs for every page and must not allocate.
const wordsResult: { words: Int32Array; start: number } = { words: scratch, start: 0 }

function checkPageSize(page: Uint8Array): void {
  const size = page.length
  // BLCKSZ is a power of two from 1 KiB to 32 KiB (configure --with-blocksize).
  if (size < 1024 || size > 32768 || (size & (size - 1)) !== 0) {
    fail('FileInvalid', `invalid page size '${size}'`, { hint: 'a PostgreSQL page is a power of two from 1 KiB to 32 KiB' })
  }
}

/**
 * pg_checksum_block over the page with pd_checksum taken as zero, without touching the page: the word holding
 * pd_checksum (bytes 8..11, pd_checksum in its low half on little-endian) is masked instead of the field being
 * cleared and restored as PostgreSQL does.
 *
 * PostgreSQL walks the page row by row (32 words a row), feeding word j of each row into partial sum j. The sums are
 * independent, so this walks column by column instead, four columns at a time in local variables: the same
 * result, but no array of sums to load and store, and four multiply chains in flight. That measured about twice
 * as fast as the row-by-row order in V8.
 */
function checksumBlock(page: Uint8Array): number {
  const { words, start } = pageWords(page)
  const rows = page.length / (4 * N_SUMS)
  let result = 0
  for (let column = 0; column < N_SUMS; column += 4) {
    let s0 = BASE_OFFSETS[column]!
    let s1 = BASE_OFFSETS[column + 1]!
    let s2 = BASE_OFFSETS[column + 2]!
    let s3 = BASE_OFFSETS[column + 3]!
    let index = start + column
    for (let row = 0; row < rows; row++, index += N_SUMS) {
      let w2 = words[index + 2]!
      // Column 2 of row 0 is bytes 8..11: pd_checksum (low half) and pd_flags.
      if (row === 0 && column === 0) w2 &= MASK_CHECKSUM_OUT
      const t0 = s0 ^ words[index]!
      const t1 = s1 ^ words[index + 1]!
      const t2 = s2 ^ w2
      const t3 = s3 ^ words[index + 3]!
      s0 = Math.imul(t0, FNV_PRIME) ^ (t0 >>> 17)
      s1 = Math.imul(t1, FNV_PRIME) ^ (t1 >>> 17)
      s2 = Math.imul(t2, FNV_PRIME) ^ (t2 >>> 17)
      s3 = Math.imul(t3, FNV_PRIME) ^ (t3 >>> 17)
    }
    // Two rounds of zeroes so the last words' bits are mixed through.
    for (let round = 0; round < 2; round++) {
      s0 = Math.imul(s0, FNV_PRIME) ^ (s0 >>> 17)
      s1 = Math.imul(s1, FNV_PRIME) ^ (s1 >>> 17)
      s2 = Math.imul(s2, FNV_PRIME) ^ (s2 >>> 17)
      s3 = Math.imul(s3, FNV_PRIME) ^ (s3 >>> 17)
    }
    // Fold the partial sums together.
    result ^= s0 ^ s1 ^ s2 ^ s3
  }
  return result >>> 0
}

/**
 * PostgreSQL's checksum of a data page (pg_checksum_page): 1..65535, with `blockNumber` (the block's number within
 * its relation fork, see relationBlockNumber) mixed in so a page written to the wrong place does not verify.
 * The page is not modified.
 */
export function pageChecksum(page: Uint8Array, blockNumber: number): number {
  checkPageSize(page)
  const block = nativeChecksumBlock() ?? checksumBlock
  return (((block(page) ^ blockNumber) >>> 0) % 65535) + 1
}

/** Test hook: use the JavaScript checksum even where walden's C one (native/page) is built. */
export const pageChecksumNativeHiddenForTest = { hidden: false }

/** checksumBlock from walden's C binding (native/page/walden_page.c), where it is built and the host little-endian. */
function nativeChecksumBlock(): ((page: Uint8Array) => number) | undefined {
  if (pageChecksumNativeHiddenForTest.hidden || !LITTLE_ENDIAN_HOST) return undefined
  return nativeAddonLoad<{ checksumBlock: (page: Uint8Array) => number }>('page', 'checksumBlock')?.checksumBlock
}

function readUInt16(page: Uint8Array, offset: number): number {
  return page[offset]! | (page[offset + 1]! << 8)
}

/** The checksum stored in the page header (pd_checksum). */
export function pageChecksumStored(page: Uint8Array): number {
  return readUInt16(page, PD_CHECKSUM)
}

/** PageIsNew: pd_upper is zero, i.e. the page was never initialized (usually all zeroes). */
export function pageIsNew(page: Uint8Array): boolean {
  return readUInt16(page, PD_UPPER) === 0
}

/** pd_lsn: the LSN of the last WAL record that changed the page. */
export function pageLsn(page: Uint8Array): bigint {
  const buffer = Buffer.from(page.buffer, page.byteOffset, 8)
  return (BigInt(buffer.readUInt32LE(0)) << 32n) | BigInt(buffer.readUInt32LE(4))
}

function isAllZero(page: Uint8Array): boolean {
  const { words, start } = pageWords(page)
  const end = start + (page.length >>> 2)
  for (let index = start; index < end; index++) if (words[index] !== 0) return false
  return true
}

/**
 * Whether PostgreSQL would accept this page as read from disk with data checksums on (PageIsVerified):
 * - an initialized page (pd_upper != 0) must carry the right checksum and a sane header (known flag bits only,
 *   pd_lower <= pd_upper <= pd_special <= page size, pd_special MAXALIGNed);
 * - an uninitialized page is valid only if every byte is zero (a relation extended just before a crash).
 * So a page with pd_upper == 0 but other bytes set is invalid, as in PostgreSQL, although pg_checksums skips
 * such pages. Callers must still allow for pages changed while they were read (see pageLsn).
 */
export function pageVerify(page: Uint8Array, blockNumber: number): boolean {
  checkPageSize(page)
  const upper = readUInt16(page, PD_UPPER)
  if (upper !== 0) {
    const flags = readUInt16(page, PD_FLAGS)
    const lower = readUInt16(page, PD_LOWER)
    const special = readUInt16(page, PD_SPECIAL)
    const headerSane =
      (flags & ~PD_VALID_FLAG_BITS) === 0 &&
      lower <= upper &&
      upper <= special &&
      special <= page.length &&
      special % MAXIMUM_ALIGNOF === 0
    // pd_upper != 0 rules out an all-zero page, so there is nothing else to accept.
    return headerSane && pageChecksum(page, blockNumber) === readUInt16(page, PD_CHECKSUM)
  }
  return isAllZero(page)
}

/**
 * Block number of page `pageIndex` of segment file `segmentNo` of a relation fork ('16384.2' is segment 2): what
 * pageChecksum needs. Segment files hold RELSEG_SIZE blocks, 1 GiB worth at the default build (131072 blocks of
 * 8 KiB); pass `relSegmentSize` (pg_control's relseg_size) for a cluster built otherwise.
 */
export function relationBlockNumber(
  segmentNo: number,
  pageIndex: number,
  blockSize: number,
  relSegmentSize = RELATION_SEGMENT_BYTES / blockSize,
): number {
  const blockNumber = segmentNo * relSegmentSize + pageIndex
  // BlockNumber is a uint32 and 0xFFFFFFFF is InvalidBlockNumber.
  if (
    !Number.isSafeInteger(blockNumber) ||
    segmentNo < 0 ||
    pageIndex < 0 ||
    pageIndex >= relSegmentSize ||
    blockNumber >= 0xffffffff
  ) {
    fail('Format', `invalid block '${pageIndex}' of relation segment '${segmentNo}'`)
  }
  return blockNumber
}
