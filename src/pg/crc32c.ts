// CRC-32C (Castagnoli), the checksum PostgreSQL uses for pg_control and WAL records (src/include/port/pg_crc32c.h).
// Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF. Slicing-by-8 (eight tables, eight bytes
// a step): archive-push checks the CRC of every record of every segment it stores, 16 MiB at a time, and this runs
// several times faster than a byte-wise table there. Where walden's C part native/page is built, WAL checking runs
// in C instead (native/page/walden_page.c: crc32cRecords, and walRecordsScan for records whole on a page, with the
// CPU's crc32 instruction where it has one); this file stays the reference and the fallback.

import { endianness } from 'node:os'
import { nativeAddonLoad } from '../io/native.js'

const TABLES = buildTables()

function buildTables(): Uint32Array[] {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256))
  const first = tables[0]!
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    first[n] = c >>> 0
  }
  // Table k gives the CRC contribution of a byte followed by k zero bytes.
  for (let k = 1; k < 8; k++) {
    const previous = tables[k - 1]!
    const table = tables[k]!
    for (let n = 0; n < 256; n++) table[n] = (first[previous[n]! & 0xff]! ^ (previous[n]! >>> 8)) >>> 0
  }
  return tables
}

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array]

/** Below this many bytes a 32-bit view costs more to create than it saves. */
const WORDS_FROM = 256

/**
 * Continues a CRC-32C over more bytes, `data[start..end)` (all of it by default). `crc` is a previous result (0 to
 * start), so `crc32cUpdate(crc32c(a), b) === crc32c(concat(a, b))`. The range saves WAL checking a subarray per
 * record: most records are a hundred bytes or so.
 */
export function crc32cUpdate(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = ~crc >>> 0
  let i = start
  if (end - i >= WORDS_FROM) {
    // Byte-wise up to a 4-byte boundary, then whole 32-bit words (little-endian, as walden requires).
    while ((data.byteOffset + i) % 4 !== 0) c = T0[(c ^ data[i++]!) & 0xff]! ^ (c >>> 8)
    const words = (end - i) >>> 3
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words * 2)
    for (let w = 0; w < view.length; w += 2) {
      const low = c ^ view[w]!
      const high = view[w + 1]!
      c =
        T7[low & 0xff]! ^
        T6[(low >>> 8) & 0xff]! ^
        T5[(low >>> 16) & 0xff]! ^
        T4[low >>> 24]! ^
        T3[high & 0xff]! ^
        T2[(high >>> 8) & 0xff]! ^
        T1[(high >>> 16) & 0xff]! ^
        T0[high >>> 24]!
    }
    i += words * 8
  }
  for (; i + 8 <= end; i += 8) {
    const low = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))
    c =
      T7[low & 0xff]! ^
      T6[(low >>> 8) & 0xff]! ^
      T5[(low >>> 16) & 0xff]! ^
      T4[low >>> 24]! ^
      T3[data[i + 4]!]! ^
      T2[data[i + 5]!]! ^
      T1[data[i + 6]!]! ^
      T0[data[i + 7]!]!
  }
  for (; i < end; i++) c = T0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** CRC-32C of `data` as an unsigned 32-bit number. */
export function crc32c(data: Uint8Array): number {
  return crc32cUpdate(0, data)
}

// crc32cRecords' operations, three 32-bit words each: [CRC_OP_RANGE, start, end] continues the CRC over
// data[start..end); [CRC_OP_RECORD, header, offset] ends a WAL record whose 24-byte header is data[header..header+24):
// the CRC continues over the header up to xl_crc (its first 20 bytes) and must equal xl_crc (the 4 bytes after), then
// starts again from 0 for the next record. `offset` is the record's position for the caller's messages, unused here.
export const CRC_OP_RANGE = 0
export const CRC_OP_RECORD = 1
/** Words per operation. */
export const CRC_OP_WORDS = 3
/** offsetof(XLogRecord, xl_crc): the part of a WAL record header its CRC covers. */
export const WAL_RECORD_CRC_OFFSET = 20

/**
 * Runs the first `count` operations of `ops` over `data`: a WAL record's CRC covers its data, then its header up to
 * xl_crc (PostgreSQL's INIT_CRC32C, COMP_CRC32C over both, FIN_CRC32C), which a caller walking the WAL describes as
 * ranges and record ends and has checked in one go. `state[0]` is the CRC to continue from (0, or a record's CRC so
 * far from the previous piece of the segment) and becomes the CRC after the last operation (0 when that was a record
 * end). Returns the index of the first record end whose CRC does not match, with `state[0]` then that record's CRC,
 * or -1 when all match.
 */
export function crc32cRecords(data: Uint8Array, ops: Uint32Array, count: number, state: Uint32Array): number {
  let crc = state[0]!
  for (let index = 0; index < count; index++) {
    const at = index * CRC_OP_WORDS
    const kind = ops[at]!
    const from = ops[at + 1]!
    if (kind === CRC_OP_RANGE) {
      const to = ops[at + 2]!
      if (from > to || to > data.length) throw new Error(`crc32cRecords: operation ${index} is outside the data`)
      crc = crc32cUpdate(crc, data, from, to)
      continue
    }
    if (kind !== CRC_OP_RECORD || from + WAL_RECORD_CRC_OFFSET + 4 > data.length) throw new Error(`crc32cRecords: operation ${index} is invalid or outside the data`)
    crc = crc32cUpdate(crc, data, from, from + WAL_RECORD_CRC_OFFSET)
    const stored = (data[from + 20]! | (data[from + 21]! << 8) | (data[from + 22]! << 16) | (data[from + 23]! << 24)) >>> 0
    if (crc !== stored) {
      state[0] = crc
      return index
    }
    crc = 0
  }
  state[0] = crc
  return -1
}

/** Test hook: use the JavaScript CRC even where walden's C one (native/page) is built. */
export const crc32cNativeHiddenForTest = { hidden: false }

/** What native/page exports for CRC-32C (native/page/walden_page.c). */
export interface Crc32cAddon {
  crc32c(data: Uint8Array, start: number, end: number, crc: number): number
  /** The portable table path of the C code, whatever the CPU. */
  crc32cTable(data: Uint8Array, start: number, end: number, crc: number): number
  /** 'sse4.2' or 'table': the path the C code took on this CPU. */
  crc32cImplementation(): string
  crc32cRecords: typeof crc32cRecords
  /** The fast path of WalSegmentVerifier's record walk (src/pg/wal-verify.ts), in C. */
  walRecordsScan(data: Uint8Array, state: Uint32Array): void
}

const LITTLE_ENDIAN_HOST = endianness() === 'LE'

/** walden's C CRC-32C, where native/page is built (and recent enough to have it) and the host little-endian. */
export function crc32cNative(): Crc32cAddon | undefined {
  if (crc32cNativeHiddenForTest.hidden || !LITTLE_ENDIAN_HOST) return undefined
  const addon = nativeAddonLoad<Crc32cAddon>('page', 'crc32cRecords')
  return typeof addon?.walRecordsScan === 'function' ? addon : undefined
}

/** crc32cRecords in C where it is built, else in JavaScript. */
export function crc32cRecordsBest(): typeof crc32cRecords {
  return crc32cNative()?.crc32cRecords ?? crc32cRecords
}
