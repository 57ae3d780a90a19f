// Log sequence numbers. PostgreSQL stores an LSN as a uint64 byte position in the WAL stream and prints it as two
// 32-bit halves in upper-case hex, 'HI/LO' (pg_lsn_out: "%X/%X"). bigint keeps all 64 bits exact, which a JS number
// cannot above 2^53.
import { fail } from '../common/errors.js'

/** Largest valid LSN (2^64 - 1). */
export const LSN_MAX = 0xffffffffffffffffn

/** The invalid LSN, InvalidXLogRecPtr in PostgreSQL. */
export const LSN_INVALID = 0n

// Same acceptance as PostgreSQL's pg_lsn_in: 1 to 8 hex digits each side, either case, nothing else.
const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/** Parses 'HI/LO' hex ('16/B374D848') into a bigint; fails with 'Format' naming the value otherwise. */
export function lsnParse(text: string): bigint {
  const match = LSN_PATTERN.exec(text)
  if (match === null) {
    fail('Format', `invalid lsn '${text}'`, { hint: "an lsn is two hex numbers of up to 8 digits, as in '16/B374D848'" })
  }
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`)
}

/** Formats an LSN the way PostgreSQL prints it: upper-case hex halves without padding ('0/3000028'). */
export function lsnFormat(lsn: bigint): string {
  if (lsn < 0n || lsn > LSN_MAX) fail('Format', `lsn '${lsn}' is out of range`)
  const hi = lsn >> 32n
  const lo = lsn & 0xffffffffn
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`
}
