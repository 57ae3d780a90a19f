// CRC-32C (Castagnoli), the checksum PostgreSQL uses for pg_control and WAL records (src/include/port/pg_crc32c.h).
// Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF. A byte-wise table is fast enough here:
// the inputs are a few hundred bytes of pg_control, not bulk data.

const TABLE = buildTable()

function buildTable(): Uint32Array {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    table[n] = c >>> 0
  }
  return table
}

/**
 * Continues a CRC-32C over more bytes. `crc` is a previous result (0 to start), so
 * `crc32cUpdate(crc32c(a), b) === crc32c(concat(a, b))`.
 */
export function crc32cUpdate(crc: number, data: Uint8Array): number {
  let c = ~crc >>> 0
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8)
  return ~c >>> 0
}

/** CRC-32C of `data` as an unsigned 32-bit number. */
export function crc32c(data: Uint8Array): number {
  return crc32cUpdate(0, data)
}
