// walden's encrypted file format: a streaming, chunked AEAD (AES-256-GCM) over data that is already compressed.
//
//   header   'WALDENC' 0x01 (magic, version 1)
//            u8  log2 of the chunk size (plaintext bytes per chunk)
//            u8  wrap kind: 1 = data key wrapped by the repository key (passphrase mode),
//                           2 = data key wrapped to an X25519 public key (public-key mode)
//            7   random nonce prefix
//            32  ephemeral X25519 public key (wrap kind 2 only)
//            12  nonce, 32 wrapped data key, 16 tag: the file's random data key sealed with AES-256-GCM by the wrap key,
//                the header bytes before it as additional data
//   chunks   ciphertext of chunkSize plaintext bytes + 16-byte tag, each with its own AES-256-GCM call under the
//            data key; nonce = prefix (7) || chunk counter (u32 BE) || last flag (0 or 1); the whole header is the
//            additional data of every chunk. The last chunk holds fewer than chunkSize bytes (possibly none), every
//            other chunk exactly chunkSize, so a reader always knows where a chunk ends and which is the last.
//
// What this buys: a flipped byte anywhere fails a tag (header bytes are in every chunk's AAD and the wrapped key has
// its own tag); reordered or swapped chunks fail (counter in the nonce); a file cut at a chunk boundary lacks its
// last chunk, cut elsewhere fails the last chunk's tag (flag in the nonce); appended bytes fail it too; a chunk moved
// from another file fails (every file has its own random data key). Plaintext is released chunk by chunk only after
// its tag verified, so memory stays at one chunk. Node's crypto is OpenSSL, which uses AES-NI and PCLMUL.
//
// 64 KiB chunks: measured on this 2-core host, AES-GCM through node:crypto ran fastest at 64 KiB (1 MiB chunks were
// ~2x slower: node allocates a new output buffer per update, and large ones fault in fresh pages); the 16-byte tag per
// chunk is 0.02% of the data. Each file's header records its chunk size, so a reader takes any (2^10 to 2^24).
//
// The chunks themselves go through walden's native/cipher part where it is built (the same AES-256-GCM, from the
// OpenSSL inside Node.js, into buffers reused for the whole file): node:crypto wants a new Cipheriv object per chunk
// and returns each chunk's output in a new buffer, and in a backup that garbage, not the encryption, was the cost.
// Profiled on a pgbench scale 50 full backup (lz4, process-max 2): ~0.3 s of CPU per worker thread in sealing through
// node:crypto, for 90 MB of output; see native/cipher/walden_cipher.c. node:crypto remains the fallback.

import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import { WaldenError } from '../common/errors.js'
import { nativeAddonLoad } from './native.js'

export const CIPHER_MAGIC = Buffer.from('WALDENC\x01', 'latin1')
const FIXED = CIPHER_MAGIC.length + 2 + 7
const WRAP_NONCE = 12
const KEY = 32
const TAG = 16
const WRAPPED = WRAP_NONCE + KEY + TAG
export const CHUNK_LOG2_DEFAULT = 16
const X25519_INFO = Buffer.from('walden cipher x25519 wrap v1')

interface CipherAddon {
  /** AES-256-GCM of one chunk into `output` (see native/cipher); false when opening fails authentication. */
  gcm(encrypt: boolean, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, input: Uint8Array, output: Uint8Array): boolean
}

/** Test hook: `hidden` behaves as if native/cipher were not built, to prove both paths write and read one format. */
export const cipherNativeForTest = { hidden: false }

function gcmAddon(): CipherAddon | undefined {
  return cipherNativeForTest.hidden ? undefined : nativeAddonLoad<CipherAddon>('cipher', 'gcm')
}

export const WRAP_REPO_KEY = 1
export const WRAP_X25519 = 2

/** How a writer wraps each file's data key: by the repository key, or to an X25519 public key. */
export type SealKey =
  | { kind: typeof WRAP_REPO_KEY; repoKey: Buffer }
  | { kind: typeof WRAP_X25519; recipient: KeyObject }

/** What a reader may hold to unwrap data keys; a file says which it needs. */
export interface OpenKeys {
  repoKey?: Buffer
  privateKey?: KeyObject
  /** The repository the keys are of (repoN), to name its options in a message; 1 when not given. */
  repo?: number
}

/** X25519 public key from its raw 32 bytes (base64url, as a JWK's x). */
export function x25519PublicFromRaw(raw: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw }, format: 'jwk' })
}

/** Raw 32 bytes (base64url) of an X25519 public key, or of the public half of a private key. */
export function x25519Raw(key: KeyObject): string {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' })
  if (jwk.crv !== 'X25519' || typeof jwk.x !== 'string') throw new TypeError('not an X25519 key')
  return jwk.x
}

/** The private key from its PKCS#8 DER (base64), the form in which keys cross to worker threads. */
export function x25519PrivateFromDer(der: string): KeyObject {
  return createPrivateKey({ key: Buffer.from(der, 'base64'), format: 'der', type: 'pkcs8' })
}

// One ephemeral key pair per recipient per thread: the ECDH and HKDF then run once per process, not per file, and
// each file still gets its own random data key wrapped by the derived key.
const ephemeral = new Map<string, { header: Buffer; wrapKey: Buffer }>()
// Chunk buffers of finished Sealers, for the next file on this thread. A backup seals thousands of small files, and
// per file a fresh 64 KiB buffer plus three draws from OpenSSL's generator cost about 0.4 ms of CPU: measured on
// 1000 files of 8 KiB, 0.5-0.9 s more than unencrypted, and the same as unencrypted (within noise) with buffers
// reused and one draw. Sealers of one thread may be alive at once (jobs interleave at their awaits), so each takes its
// own buffer and gives it back at end().
// With native/cipher, the output buffer each Sealer and Opener seals or opens into comes from here too.
const spareChunks: Buffer[] = []
const SPARE_CHUNKS_MAX = 8

function chunkTake(size: number): Buffer {
  const index = spareChunks.findIndex((buffer) => buffer.length === size)
  return index < 0 ? Buffer.allocUnsafe(size) : spareChunks.splice(index, 1)[0]!
}

function chunkGive(buffer: Buffer | undefined): void {
  if (buffer && spareChunks.length < SPARE_CHUNKS_MAX) spareChunks.push(buffer)
}

// Readers' derived wrap keys, by ephemeral public key: a backup's files share one.
const unwrapCache = new Map<string, Buffer>()

function x25519WrapKey(shared: Buffer, ephemeralRaw: Buffer, recipientRaw: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeralRaw, recipientRaw]), X25519_INFO, KEY))
}

function writerWrap(seal: SealKey): { extra: Buffer; wrapKey: Buffer } {
  if (seal.kind === WRAP_REPO_KEY) return { extra: Buffer.alloc(0), wrapKey: seal.repoKey }
  const recipientRaw = x25519Raw(seal.recipient)
  let entry = ephemeral.get(recipientRaw)
  if (!entry) {
    const pair = generateKeyPairSync('x25519')
    const ephemeralRaw = Buffer.from(x25519Raw(pair.publicKey), 'base64url')
    const shared = diffieHellman({ privateKey: pair.privateKey, publicKey: seal.recipient })
    entry = { header: ephemeralRaw, wrapKey: x25519WrapKey(shared, ephemeralRaw, Buffer.from(recipientRaw, 'base64url')) }
    ephemeral.set(recipientRaw, entry)
  }
  return { extra: entry.header, wrapKey: entry.wrapKey }
}

/** Seals `data` under `key` with a random nonce: nonce || ciphertext || tag. For small keys (wrapping). */
export function wrap(key: Buffer, data: Buffer, aad: Buffer, nonce: Buffer = randomBytes(WRAP_NONCE)): Buffer {
  // Through native/cipher where built: a backup wraps one data key per file, thousands of small files.
  const addon = gcmAddon()
  if (addon) {
    const out = Buffer.allocUnsafe(WRAP_NONCE + data.length + TAG)
    nonce.copy(out, 0, 0, WRAP_NONCE)
    addon.gcm(true, key, nonce.subarray(0, WRAP_NONCE), aad, data, out.subarray(WRAP_NONCE))
    return out
  }
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(aad)
  return Buffer.concat([nonce, cipher.update(data), cipher.final(), cipher.getAuthTag()])
}

/** Opens what wrap() sealed; undefined when it fails authentication (wrong key, or damaged). */
export function unwrap(key: Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length < WRAP_NONCE + TAG) return undefined
  const addon = gcmAddon()
  if (addon) {
    const out = Buffer.allocUnsafe(sealed.length - WRAP_NONCE - TAG)
    return addon.gcm(false, key, sealed.subarray(0, WRAP_NONCE), aad, sealed.subarray(WRAP_NONCE), out) ? out : undefined
  }
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, WRAP_NONCE))
  decipher.setAAD(aad)
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG))
  try {
    return Buffer.concat([decipher.update(sealed.subarray(WRAP_NONCE, sealed.length - TAG)), decipher.final()])
  } catch {
    return undefined
  }
}

function chunkNonce(prefix: Buffer, counter: number, last: boolean, nonce: Buffer = Buffer.allocUnsafe(12)): Buffer {
  prefix.copy(nonce, 0, 0, 7)
  nonce.writeUInt32BE(counter, 7)
  nonce[11] = last ? 1 : 0
  return nonce
}

export function authFailure(what: string, detail: string): WaldenError {
  return new WaldenError('Crypto', `${what} failed authentication: damaged or encrypted with another key (${detail})`, {
    hint: 'the repository file is damaged or the key is not the one it was written with; use another backup, or repair the repository from a copy.',
  })
}

/**
 * Encrypts a stream of bytes handed over in pieces of any size; `emit` receives the output and must be done with
 * each piece when it returns (the copy loops write or copy it at once): with native/cipher every chunk's ciphertext
 * is a view of one buffer, overwritten by the next chunk and given back to a pool at end(). Synchronous, for the copy
 * loops' fast paths.
 */
export class Sealer {
  readonly #key: Buffer
  readonly #prefix: Buffer
  readonly #header: Buffer
  readonly #chunkSize: number
  #chunk: Buffer | undefined
  #fill = 0
  #counter = 0
  #started = false
  readonly #gcm = gcmAddon()
  readonly #nonce = Buffer.allocUnsafe(12)
  /** native/cipher's output: one chunk's ciphertext and tag, reused for every chunk. */
  #out: Buffer | undefined
  /** Bytes emitted so far: the stored size. */
  written = 0

  constructor(seal: SealKey, chunkLog2 = CHUNK_LOG2_DEFAULT) {
    this.#chunkSize = 2 ** chunkLog2
    // One draw for the data key, the nonce prefix and the wrap nonce: each call into OpenSSL's generator costs.
    const random = randomBytes(KEY + 7 + WRAP_NONCE)
    this.#key = random.subarray(0, KEY)
    this.#prefix = random.subarray(KEY, KEY + 7)
    const { extra, wrapKey } = writerWrap(seal)
    const fixed = Buffer.concat([CIPHER_MAGIC, Buffer.from([chunkLog2, seal.kind]), this.#prefix, extra])
    this.#header = Buffer.concat([fixed, wrap(wrapKey, this.#key, fixed, random.subarray(KEY + 7))])
  }

  #emit(data: Buffer, emit: (data: Buffer) => void): void {
    this.written += data.length
    emit(data)
  }

  #start(emit: (data: Buffer) => void): void {
    if (this.#started) return
    this.#started = true
    this.#emit(this.#header, emit)
  }

  #seal(plain: Buffer, last: boolean, emit: (data: Buffer) => void): void {
    const nonce = chunkNonce(this.#prefix, this.#counter++, last, this.#nonce)
    if (this.#gcm) {
      const out = (this.#out ??= chunkTake(this.#chunkSize + TAG))
      this.#gcm.gcm(true, this.#key, nonce, this.#header, plain, out)
      this.#emit(out.subarray(0, plain.length + TAG), emit)
      return
    }
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce)
    cipher.setAAD(this.#header)
    const body = cipher.update(plain)
    cipher.final()
    this.#emit(body, emit)
    this.#emit(cipher.getAuthTag(), emit)
  }

  write(data: Buffer, emit: (data: Buffer) => void): void {
    this.#start(emit)
    let offset = 0
    // Whole chunks straight from the input, without a copy, when nothing is buffered.
    while (this.#fill === 0 && data.length - offset >= this.#chunkSize) {
      this.#seal(data.subarray(offset, offset + this.#chunkSize), false, emit)
      offset += this.#chunkSize
    }
    while (offset < data.length) {
      const chunk = (this.#chunk ??= chunkTake(this.#chunkSize))
      const take = Math.min(this.#chunkSize - this.#fill, data.length - offset)
      data.copy(chunk, this.#fill, offset, offset + take)
      this.#fill += take
      offset += take
      if (this.#fill === this.#chunkSize) {
        this.#seal(chunk, false, emit)
        this.#fill = 0
      }
    }
  }

  /** The last chunk: fewer than chunkSize bytes, possibly none. */
  end(emit: (data: Buffer) => void): void {
    this.#start(emit)
    this.#seal((this.#chunk ?? Buffer.alloc(0)).subarray(0, this.#fill), true, emit)
    this.#fill = 0
    chunkGive(this.#chunk)
    chunkGive(this.#out)
    this.#chunk = undefined
    this.#out = undefined
  }
}

/**
 * Decrypts what a Sealer wrote, handed over in pieces of any size; `emit` receives only plaintext whose chunk tag
 * verified, and must be done with each piece when it returns (with native/cipher the pieces share one buffer). `what`
 * names the file in errors. end() fails when the last chunk is missing (a truncated file).
 */
export class Opener {
  readonly #keys: OpenKeys
  readonly #what: string
  #header: Buffer | undefined
  #key: Buffer | undefined
  #prefix: Buffer | undefined
  #record = 0
  #buffer: Buffer | undefined
  #fill = 0
  #counter = 0
  #headerBytes: Buffer[] = []
  readonly #gcm = gcmAddon()
  readonly #nonce = Buffer.allocUnsafe(12)
  /** native/cipher's output: one chunk's plaintext, reused for every chunk. */
  #out: Buffer | undefined

  constructor(keys: OpenKeys, what: string) {
    this.#keys = keys
    this.#what = what
  }

  /** Header length once its fixed part is known. */
  #headerLength(fixed: Buffer): number {
    if (!fixed.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC)) {
      throw authFailure(this.#what, 'not a walden encrypted file')
    }
    const kind = fixed[CIPHER_MAGIC.length + 1]
    if (kind === WRAP_REPO_KEY) return FIXED + WRAPPED
    if (kind === WRAP_X25519) return FIXED + KEY + WRAPPED
    throw authFailure(this.#what, `unknown key wrapping ${String(kind)}`)
  }

  #openHeader(header: Buffer): void {
    const chunkLog2 = header[CIPHER_MAGIC.length]!
    if (chunkLog2 < 10 || chunkLog2 > 24) throw authFailure(this.#what, 'header damaged')
    const kind = header[CIPHER_MAGIC.length + 1]
    const wrappedAt = header.length - WRAPPED
    const fixed = header.subarray(0, wrappedAt)
    let wrapKey: Buffer
    if (kind === WRAP_REPO_KEY) {
      if (!this.#keys.repoKey) {
        throw new WaldenError('Crypto', `${this.#what} is encrypted with the repository passphrase, which is not set`, { hint: `set repo${this.#keys.repo ?? 1}-cipher-pass.` })
      }
      wrapKey = this.#keys.repoKey
    } else {
      if (!this.#keys.privateKey) {
        throw new WaldenError('Crypto', `${this.#what} is encrypted to the repository's public key; reading it needs the private key`, {
          hint: `set repo${this.#keys.repo ?? 1}-cipher-private-key to the X25519 private key file (only restore and archive-get need it).`,
        })
      }
      const ephemeralRaw = header.subarray(FIXED, FIXED + KEY)
      const recipientRaw = Buffer.from(x25519Raw(this.#keys.privateKey), 'base64url')
      const cacheKey = ephemeralRaw.toString('hex') + recipientRaw.toString('hex')
      let cached = unwrapCache.get(cacheKey)
      if (!cached) {
        const shared = diffieHellman({ privateKey: this.#keys.privateKey, publicKey: x25519PublicFromRaw(ephemeralRaw.toString('base64url')) })
        cached = x25519WrapKey(shared, ephemeralRaw, recipientRaw)
        unwrapCache.set(cacheKey, cached)
      }
      wrapKey = cached
    }
    const key = unwrap(wrapKey, header.subarray(wrappedAt), fixed)
    if (!key) throw authFailure(this.#what, 'file key')
    this.#key = key
    this.#prefix = header.subarray(CIPHER_MAGIC.length + 2, FIXED)
    this.#record = 2 ** chunkLog2 + TAG
    this.#header = header
  }

  #open(record: Buffer, last: boolean, emit: (data: Buffer) => void): void {
    const nonce = chunkNonce(this.#prefix!, this.#counter, last, this.#nonce)
    if (this.#gcm) {
      const out = (this.#out ??= chunkTake(this.#record - TAG))
      // What a failed open wrote into `out` is never emitted.
      if (!this.#gcm.gcm(false, this.#key!, nonce, this.#header!, record, out)) throw authFailure(this.#what, `chunk ${this.#counter}`)
      this.#counter++
      if (record.length > TAG) emit(out.subarray(0, record.length - TAG))
      return
    }
    const decipher = createDecipheriv('aes-256-gcm', this.#key!, nonce)
    decipher.setAAD(this.#header!)
    decipher.setAuthTag(record.subarray(record.length - TAG))
    const plain = decipher.update(record.subarray(0, record.length - TAG))
    try {
      decipher.final()
    } catch {
      throw authFailure(this.#what, `chunk ${this.#counter}`)
    }
    this.#counter++
    if (plain.length > 0) emit(plain)
  }

  write(data: Buffer, emit: (data: Buffer) => void): void {
    let offset = 0
    // Gather the header, whose length depends on its fixed part; it is small, so concatenating is cheap.
    while (!this.#header) {
      const have = Buffer.concat(this.#headerBytes)
      const need = have.length < FIXED ? FIXED : this.#headerLength(have)
      if (have.length === need && need > FIXED) {
        this.#openHeader(have)
        this.#headerBytes = []
        break
      }
      if (offset === data.length) return
      const take = Math.min(need - have.length, data.length - offset)
      this.#headerBytes.push(Buffer.from(data.subarray(offset, offset + take)))
      offset += take
    }
    const record = this.#record
    // A record is only known not to be the last when a byte follows it; hold the final full record back until then.
    while (this.#fill === 0 && data.length - offset > record) {
      this.#open(data.subarray(offset, offset + record), false, emit)
      offset += record
    }
    while (offset < data.length) {
      const buffer = (this.#buffer ??= Buffer.allocUnsafe(record))
      if (this.#fill === record) {
        this.#open(buffer, false, emit)
        this.#fill = 0
      }
      const take = Math.min(record - this.#fill, data.length - offset)
      data.copy(buffer, this.#fill, offset, offset + take)
      this.#fill += take
      offset += take
    }
  }

  end(emit: (data: Buffer) => void): void {
    if (!this.#header) throw authFailure(this.#what, 'truncated header')

    const buffer = this.#buffer ?? Buffer.alloc(0)
    // A full record is never the last (a Sealer ends with a shorter one), so one left here means a cut file.
    if (this.#fill < TAG || this.#fill === this.#record) throw authFailure(this.#what, 'truncated')
    this.#open(buffer.subarray(0, this.#fill), true, emit)
    this.#fill = 0
    chunkGive(this.#out)
    this.#out = undefined
  }
}

export function isSealed(data: Buffer): boolean {
  return data.length >= CIPHER_MAGIC.length && data.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC)
}

/** What a Sealer or Opener emits, gathered into one Buffer (each piece is copied: their output buffers are reused). */
function gathered(run: (keep: (piece: Buffer) => void) => void): Buffer {
  const out: Buffer[] = []
  run((piece) => out.push(Buffer.from(piece)))
  return Buffer.concat(out)
}

export function sealBuffer(seal: SealKey, data: Buffer, chunkLog2?: number): Buffer {
  const sealer = new Sealer(seal, chunkLog2)
  return gathered((keep) => {
    sealer.write(data, keep)
    sealer.end(keep)
  })
}

export function openBuffer(keys: OpenKeys, data: Buffer, what: string): Buffer {
  const opener = new Opener(keys, what)
  return gathered((keep) => {
    opener.write(data, keep)
    opener.end(keep)
  })
}

/** Sealer as a stream stage, after compression. */
export class SealStream extends Transform {
  readonly #sealer: Sealer
  constructor(seal: SealKey) {
    super()
    this.#sealer = new Sealer(seal)
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // Copied: the Sealer reuses its output buffer for the next chunk (native/cipher), and a stream keeps what it is pushed.
    this.#sealer.write(chunk, (piece) => this.push(Buffer.from(piece)))
    callback()
  }
  override _flush(callback: TransformCallback): void {
    this.#sealer.end((piece) => this.push(Buffer.from(piece)))
    callback()
  }
}

/** Opener as a stream stage, before decompression. */
export class OpenStream extends Transform {
  readonly #opener: Opener
  constructor(keys: OpenKeys, what: string) {
    super()
    this.#opener = new Opener(keys, what)
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#opener.write(chunk, (piece) => this.push(Buffer.from(piece)))
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }
  override _flush(callback: TransformCallback): void {
    try {
      this.#opener.end((piece) => this.push(Buffer.from(piece)))
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }
}
