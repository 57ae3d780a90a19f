// pgBackRest's encryption (repo1-cipher-type=aes-256-cbc), read side only: OpenSSL's `enc` format, "Salted__", an
// 8-byte salt, then AES-256-CBC with PKCS#7 padding under a key and IV derived by EVP_BytesToKey with SHA-1 and one
// round (what `openssl enc -aes-256-cbc -md sha1` does). The repository passphrase opens backup.info and archive.info;
// each holds a random sub-passphrase (`cipher-pass`): backup.info's opens the manifests, a manifest's opens its
// backup's files (a diff or incr inherits it from its full), archive.info's opens the archived WAL.
//
// CBC carries no authentication: a damaged file mostly fails on its padding, and otherwise decrypts to garbage that
// fails decompression or the file's SHA-1 (stored-file.ts), so nothing damaged reaches a restored cluster.

import { createDecipheriv, createHash } from 'node:crypto'
import type { Decipher } from 'node:crypto'
import { Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import { WaldenError } from '../../common/errors.js'

const MAGIC = Buffer.from('Salted__', 'latin1')
const HEADER = MAGIC.length + 8

function keyAndIv(passphrase: string, salt: Buffer): { key: Buffer; iv: Buffer } {
  const pass = Buffer.from(passphrase, 'utf8')
  const blocks: Buffer[] = []
  let previous = Buffer.alloc(0)
  while (Buffer.concat(blocks).length < 48) {
    previous = createHash('sha1').update(Buffer.concat([previous, pass, salt])).digest()
    blocks.push(previous)
  }
  const material = Buffer.concat(blocks)
  return { key: material.subarray(0, 32), iv: material.subarray(32, 48) }
}

function decryptFail(what: string, reason: string): WaldenError {
  return new WaldenError('Crypto', `unable to decrypt ${what}: ${reason}`, {
    hint: 'check repo1-cipher-pass (the passphrase pgBackRest was given); if it is right, the file is damaged.',
  })
}

function decipherFor(passphrase: string, header: Buffer, what: string): Decipher {
  if (!header.subarray(0, MAGIC.length).equals(MAGIC)) throw decryptFail(what, 'it is not encrypted (no Salted__ header)')
  const { key, iv } = keyAndIv(passphrase, header.subarray(MAGIC.length, HEADER))
  return createDecipheriv('aes-256-cbc', key, iv)
}

/** A whole encrypted file's plaintext. */
export function pgbrDecrypt(passphrase: string, data: Buffer, what: string): Buffer {
  if (data.length < HEADER) throw decryptFail(what, 'it is shorter than its header')
  const decipher = decipherFor(passphrase, data, what)
  try {
    return Buffer.concat([decipher.update(data.subarray(HEADER)), decipher.final()])
  } catch {
    throw decryptFail(what, 'wrong passphrase or damaged file (bad padding)')
  }
}

/** The same as a stream, for files too large to hold. */
export class PgbrDecryptStream extends Transform {
  readonly #passphrase: string
  readonly #what: string
  #header = Buffer.alloc(0)
  #decipher: Decipher | undefined

  constructor(passphrase: string, what: string) {
    super()
    this.#passphrase = passphrase
    this.#what = what
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (!this.#decipher) {
        this.#header = Buffer.concat([this.#header, chunk])
        if (this.#header.length < HEADER) return callback()
        this.#decipher = decipherFor(this.#passphrase, this.#header, this.#what)
        chunk = this.#header.subarray(HEADER)
      }
      callback(null, this.#decipher.update(chunk))
    } catch (error) {
      callback(error as Error)
    }
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#decipher) return callback(decryptFail(this.#what, 'it is shorter than its header'))
    try {
      callback(null, this.#decipher.final())
    } catch {
      callback(decryptFail(this.#what, 'wrong passphrase or damaged file (bad padding)'))
    }
  }
}
