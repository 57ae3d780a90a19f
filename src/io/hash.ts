// A pass-through stream that hashes (SHA-256) and counts the bytes flowing through it. With `expect`, it fails the
// stream at its end when the digest differs, before the writer downstream commits: a damaged repository file never
// reaches its destination.

import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import { WaldenError } from '../common/errors.js'
import { xxh3Create } from './xxh3.js'

/**
 * The hash a recorded checksum was made with, told by its length: walden records SHA-256 (64 hex digits); a
 * repository pgBackRest wrote records SHA-1 (40), which its files are checked against when walden reads them
 * (repo/pgbackrest/). Any other length is no checksum walden knows, and matches nothing.
 */
export function digestAlgorithmOf(hex: string): 'sha256' | 'sha1' {
  return hex.length === 40 ? 'sha1' : 'sha256'
}

export class HashStream extends Transform {
  readonly #hash: Hash
  readonly #expect: { sha256: string; what: string } | undefined
  size = 0
  #digest: string | undefined

  /** With `expect`, hashes with the algorithm its checksum was made with (digestAlgorithmOf); else `algorithm`. */
  constructor(expect?: { sha256: string; what: string }, algorithm: 'sha256' | 'sha1' = 'sha256') {
    super()
    this.#expect = expect
    this.#hash = createHash(expect ? digestAlgorithmOf(expect.sha256) : algorithm)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk)
    this.size += chunk.length
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('hex')
    if (this.#expect && this.#expect.sha256 !== this.#digest) {
      callback(
        new WaldenError('Checksum', `${this.#expect.what} has checksum ${this.#digest}, expected ${this.#expect.sha256}`, {
          hint: 'the repository file is damaged; use another backup, or repair the repository from a copy.',
        }),
      )
      return
    }
    callback()
  }

  /** The hex SHA-256 of everything that passed; only valid after the stream ended. */
  digest(): string {
    if (this.#digest === undefined) throw new WaldenError('Assert', 'digest read before the stream ended')
    return this.#digest
  }
}

/** XXH3-128 of what passes (see xxh3.ts); digest() is undefined where the binding is not built. */
export class Xxh3Stream extends Transform {
  readonly #hash = xxh3Create()
  #digest: string | undefined

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash?.update(chunk)
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash?.digest()
    callback()
  }

  digest(): string | undefined {
    return this.#digest
  }
}

/** Counts bytes without touching them (repository sizes after compression). */
export class CountStream extends Transform {
  size = 0
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length
    callback(null, chunk)
  }
}

export const SHA256_EMPTY = createHash('sha256').digest('hex')

/** SHA-256 of a file, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}
