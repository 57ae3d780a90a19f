// Verifies PostgreSQL data page checksums of a relation file as it streams past, without copying the data.

import { Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import { pageLsn, pageVerify } from '../pg/page-checksum.js'

/**
 * Block numbers of the pages in `data` that fail their checksum. Pages written after `startLsn` are left out: they
 * may be torn by a concurrent write, and WAL replay rewrites them from a full-page image. A partial page at the end
 * is a relation being extended while it was read, with nothing to verify yet.
 */
export function pagesVerify(data: Buffer, blockSize: number, firstBlock: number, startLsn: bigint): number[] {
  const bad: number[] = []
  for (let offset = 0, block = firstBlock; offset + blockSize <= data.length; offset += blockSize, block++) {
    const page = data.subarray(offset, offset + blockSize)
    if (!pageVerify(page, block) && pageLsn(page) < startLsn) bad.push(block)
  }
  return bad
}

export class PageVerifyStream extends Transform {
  readonly #blockSize: number
  readonly #firstBlock: number
  readonly #startLsn: bigint
  /** Bytes of a page split across two chunks. */
  #carry: Buffer | undefined
  #pageIndex = 0
  readonly badPages: number[] = []

  /**
   * @param firstBlock block number of the file's first page (segment number × blocks per segment)
   * @param startLsn the backup's start LSN: a page written after it may be torn by a concurrent write, and WAL
   *   replay rewrites it from a full-page image, so it is not reported
   */
  constructor(blockSize: number, firstBlock: number, startLsn: bigint) {
    super()
    this.#blockSize = blockSize
    this.#firstBlock = firstBlock
    this.#startLsn = startLsn
  }

  #check(page: Buffer): void {
    const bad = pagesVerify(page, this.#blockSize, this.#firstBlock + this.#pageIndex++, this.#startLsn)
    if (bad.length > 0) this.badPages.push(...bad)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let offset = 0
    const size = this.#blockSize
    if (this.#carry) {
      const need = size - this.#carry.length
      if (chunk.length < need) {
        this.#carry = Buffer.concat([this.#carry, chunk])
        callback(null, chunk)
        return
      }
      this.#check(Buffer.concat([this.#carry, chunk.subarray(0, need)]))
      this.#carry = undefined
      offset = need
    }
    for (; offset + size <= chunk.length; offset += size) this.#check(chunk.subarray(offset, offset + size))
    if (offset < chunk.length) this.#carry = Buffer.from(chunk.subarray(offset))
    callback(null, chunk)
  }

  // A partial page at the end is a relation being extended while it was read: nothing to verify yet.
}
