// CRC-32C (Castagnoli), the checksum PostgreSQL uses for pg_control and WAL records (src/include/port/pg_crc32c.h).
// Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF. Slicing-by-8 (eight tables, eight bytes
// a step): archive-push checks the CRC of every record of every segment it stores, 16 MiB at a time, and this runs
// several times faster than a byte-wise table there.

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
