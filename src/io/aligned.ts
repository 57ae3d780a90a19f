// Buffers that start on a block boundary, for writes with O_DIRECT (src/storage/direct-write.ts). Linux refuses an
// O_DIRECT write from memory that is not aligned to the device's logical block size; 4096 covers every device in
// use (512-byte and 4 KiB sectors). JavaScript cannot see an address, so walden's native/io part tells it.

import { nativeAddonLoad } from './native.js'

/** The alignment of memory, file offsets and lengths for O_DIRECT writes. */
export const DIRECT_ALIGNMENT = 4096

interface IoAddon {
  addressModulo(bytes: Uint8Array, modulus: number): number
}

/**
 * Test hooks: `hidden` behaves as if native/io were not built (no buffer is known to be aligned); `claimAligned`
 * calls every buffer aligned, so a test can make the kernel refuse an O_DIRECT write.
 */
export const alignmentForTest = { hidden: false, claimAligned: false }

function addon(): IoAddon | undefined {
  return alignmentForTest.hidden ? undefined : nativeAddonLoad<IoAddon>('io', 'addressModulo')
}

/** Whether this process can allocate aligned buffers and check alignment (native/io is built). */
export function alignmentKnown(): boolean {
  return addon() !== undefined
}

/**
 * `size` bytes, uninitialised, starting on a DIRECT_ALIGNMENT boundary where native/io is built (a plain buffer
 * otherwise). An ArrayBuffer's memory never moves, so the slice stays aligned for its whole life.
 */
export function alignedAllocUnsafe(size: number): Buffer {
  const io = addon()
  if (!io) return Buffer.allocUnsafe(size)
  const backing = Buffer.allocUnsafeSlow(size + DIRECT_ALIGNMENT)
  const skip = (DIRECT_ALIGNMENT - io.addressModulo(backing, DIRECT_ALIGNMENT)) % DIRECT_ALIGNMENT
  return backing.subarray(skip, skip + size)
}

/** Whether `bytes` starts on a DIRECT_ALIGNMENT boundary; false when that cannot be known. */
export function isAligned(bytes: Uint8Array): boolean {
  const io = addon()
  return io !== undefined && (alignmentForTest.claimAligned || io.addressModulo(bytes, DIRECT_ALIGNMENT) === 0)
}
