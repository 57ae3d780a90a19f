import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { test } from 'node:test'
import { CIPHER_MAGIC, cipherNativeForTest, Opener, OpenStream, Sealer, SealStream, openBuffer, sealBuffer, WRAP_REPO_KEY, WRAP_X25519 } from './cipher.js'
import { nativeAddonPath } from './native.js'
import type { OpenKeys, SealKey } from './cipher.js'

const repoKey = randomBytes(32)
const passSeal: SealKey = { kind: WRAP_REPO_KEY, repoKey }
const passOpen: OpenKeys = { repoKey }
const pair = generateKeyPairSync('x25519')
const pubSeal: SealKey = { kind: WRAP_X25519, recipient: pair.publicKey }
const pubOpen: OpenKeys = { privateKey: pair.privateKey }
// Small chunks (1 KiB) so chunk boundaries are cheap to reach.
const LOG2 = 10
const CHUNK = 1024
const what = "'test file'"
const AUTH = /'test file' failed authentication: damaged or encrypted with another key/

/** Seals in random pieces and opens in other random pieces, as the copy loops and streams do. */
function roundTrip(seal: SealKey, open: OpenKeys, data: Buffer): { sealed: Buffer; opened: Buffer } {
  const out: Buffer[] = []
  const sealer = new Sealer(seal, LOG2)
  for (let offset = 0; offset < data.length; ) {
    const size = 1 + Math.floor(Math.random() * 3000)
    sealer.write(data.subarray(offset, offset + size), (piece) => out.push(Buffer.from(piece)))
    offset += size
  }
  sealer.end((piece) => out.push(Buffer.from(piece)))
  const sealed = Buffer.concat(out)
  const plain: Buffer[] = []
  const opener = new Opener(open, what)
  for (let offset = 0; offset < sealed.length; ) {
    const size = 1 + Math.floor(Math.random() * 2500)
    opener.write(sealed.subarray(offset, offset + size), (piece) => plain.push(Buffer.from(piece)))
    offset += size
  }
  opener.end((piece) => plain.push(Buffer.from(piece)))
  return { sealed, opened: Buffer.concat(plain) }
}

const SIZES = [0, 1, 15, 16, 17, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 5 * CHUNK + 333, 64 * CHUNK]

for (const [name, seal, open] of [['passphrase', passSeal, passOpen], ['public-key', pubSeal, pubOpen]] as const) {
  test(`${name}: round trip at many sizes, including 0 and chunk boundaries, in any pieces`, () => {
    for (const size of SIZES) {
      const data = randomBytes(size)
      const { sealed, opened } = roundTrip(seal, open, data)
      assert.ok(opened.equals(data), `size ${size}`)
      assert.ok(sealed.subarray(0, 8).equals(CIPHER_MAGIC))
      // Header, a tag per chunk, and the last (short, possibly empty) chunk.
      const chunks = Math.floor(size / CHUNK) + 1
      const header = name === 'passphrase' ? 17 + 60 : 17 + 32 + 60
      assert.equal(sealed.length, header + size + 16 * chunks, `size ${size}`)
    }
  })

  test(`${name}: a flipped bit anywhere (header, wrapped key, any chunk, any tag) fails authentication`, () => {
    const data = randomBytes(3 * CHUNK + 100)
    const sealed = sealBuffer(seal, data, LOG2)
    for (let index = 0; index < sealed.length; index += index < 200 ? 1 : 37) {
      const damaged = Buffer.from(sealed)
      damaged[index] = damaged[index]! ^ 0x10
      assert.throws(() => openBuffer(open, damaged, what), (error: Error & { kind?: string }) => {
        assert.equal(error.kind, 'Crypto', `byte ${index}`)
        assert.match(error.message, /'test file'/)
        return true
      }, `byte ${index}`)
    }
  })
}

test('the same plaintext seals differently every time (random data key and nonce)', () => {
  const data = Buffer.alloc(5000, 7)
  assert.ok(!sealBuffer(passSeal, data, LOG2).equals(sealBuffer(passSeal, data, LOG2)))
})

test('truncation at a chunk boundary, inside a chunk, inside the header, and appended bytes all fail', () => {
  const data = randomBytes(3 * CHUNK + 100)
  const sealed = sealBuffer(passSeal, data, LOG2)
  const header = 17 + 60
  const record = CHUNK + 16
  for (const cut of [header + record, header + 2 * record, header + 3 * record, sealed.length - 1, header + 5, 10, 0]) {
    assert.throws(() => openBuffer(passOpen, sealed.subarray(0, cut), what), AUTH, `cut at ${cut}`)
  }
  assert.throws(() => openBuffer(passOpen, Buffer.concat([sealed, Buffer.from([0])]), what), AUTH)
  // An empty file sealed is header + an empty last chunk; without that chunk it is truncated.
  const empty = sealBuffer(passSeal, Buffer.alloc(0), LOG2)
  assert.equal(openBuffer(passOpen, empty, what).length, 0)
  assert.throws(() => openBuffer(passOpen, empty.subarray(0, header), what), AUTH)
})

test('swapped chunks, and a chunk taken from another file with the same key, fail', () => {
  const data = randomBytes(3 * CHUNK + 100)
  const sealed = sealBuffer(passSeal, data, LOG2)
  const header = 17 + 60
  const record = CHUNK + 16
  const swapped = Buffer.concat([
    sealed.subarray(0, header),
    sealed.subarray(header + record, header + 2 * record),
    sealed.subarray(header, header + record),
    sealed.subarray(header + 2 * record),
  ])
  assert.throws(() => openBuffer(passOpen, swapped, what), AUTH)
  const other = sealBuffer(passSeal, randomBytes(3 * CHUNK + 100), LOG2)
  const spliced = Buffer.concat([sealed.subarray(0, header + record), other.subarray(header + record, header + 2 * record), sealed.subarray(header + 2 * record)])
  assert.throws(() => openBuffer(passOpen, spliced, what), AUTH)
})

test('a wrong key fails on the file key, before any data is released; a missing key says which one is needed', () => {
  const sealed = sealBuffer(passSeal, randomBytes(5000), LOG2)
  const released: Buffer[] = []
  assert.throws(() => new Opener({ repoKey: randomBytes(32) }, what).write(sealed, (piece) => released.push(piece)), /failed authentication.*file key/)
  assert.equal(released.length, 0)
  const other = generateKeyPairSync('x25519')
  assert.throws(() => openBuffer({ privateKey: other.privateKey }, sealBuffer(pubSeal, Buffer.from('x'), LOG2), what), /failed authentication.*file key/)
  assert.throws(() => openBuffer({ privateKey: pair.privateKey }, sealed, what), /encrypted with the repository passphrase, which is not set/)
  assert.throws(() => openBuffer({ repoKey }, sealBuffer(pubSeal, Buffer.from('x'), LOG2), what), /needs the private key/)
  assert.throws(() => openBuffer(passOpen, Buffer.from('plain text, not sealed at all, long enough for a header'), what), /not a walden encrypted file/)
})

test('the stream stages round-trip and report damage as a stream error', async () => {
  const data = randomBytes(300_000)
  const sealedParts: Buffer[] = []
  await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), new SealStream(pubSeal), async function* (source) {
    for await (const piece of source) sealedParts.push(piece as Buffer)
  })
  const sealed = Buffer.concat(sealedParts)
  const opened: Buffer[] = []
  await pipeline(Readable.from([sealed]), new OpenStream(pubOpen, what), async function* (source) {
    for await (const piece of source) opened.push(piece as Buffer)
  })
  assert.ok(Buffer.concat(opened).equals(data))
  sealed[sealed.length - 5] = sealed[sealed.length - 5]! ^ 1
  await assert.rejects(pipeline(Readable.from([sealed]), new OpenStream(pubOpen, what), async function* (source) {
    for await (const _ of source) void _
  }), AUTH)
})

// --- native/cipher and node:crypto: one format -------------------------------------------------------------------

const nativeBuilt = nativeAddonPath('cipher') !== undefined
const needsNative = { skip: nativeBuilt ? false : 'native/cipher is not built' }

/** Runs `body` with native/cipher hidden or not, restoring the default after. */
function withPath<T>(hidden: boolean, body: () => T): T {
  cipherNativeForTest.hidden = hidden
  try {
    return body()
  } finally {
    cipherNativeForTest.hidden = false
  }
}

// Written by walden before native/cipher existed (node:crypto, commit eb722fb), under this key: the files already in
// repositories must read the same. The first at the default 64 KiB chunks, the second at 1 KiB chunks (three chunks).
const OLD_KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex')
const OLD_64K = Buffer.from('V0FMREVOQwEQAS49bZmJ5JmM7SOyG6S3IHDFTPN98MLUbK29/YBGqIjICpvgbLBLbMZrHePj2Ur0FyI+o+6g8AqVM3J3lWg8Zh5KRPLvZBqXt9pCgDTb4ccZr2i1JIov/tDZ+Pyw/GCSGN/t6Gxx/sMgAtuEUPJEA7KvEarixT/6j48hzhuhReIXBYmJL7TpUUKPjX/ag8r6O+tzEsbPkmTgPDBXzmaqOZZIptvnBkMUIqrS85II5lNViaONZgVDaQ==', 'base64')
const OLD_1K = Buffer.from(
  [
    'V0FMREVOQwEKATUq2gS64a6WpZuvrF+1ufvhnxr5cONmw3ADx5pjLeUe8LrX0gz2Uf6gujup5rl+57bZ6wtIkNs1qssg3Xqisnuv65HfI+J/kgYx',
    'iZyYLbIgiAAegstYiFjK2uUBxLRRK8JUFJ/GQUNlNrer065s8Wrol5yXv4+g0VJdMRPL5kT7mzyrUHT8tBKjIl3ENhJ7asWENNax7Mc7wWV7uV17',
    '6rIi+HWQwWsrHi5kDkCyo7obNC6vgwmx9H0wEEmD0jwG04ifeBfzbVUkgnsb0L8o8LU6eq+sBteBuxRN2R01OpxGumtTyTwVAqRR9uclrkxmBp0Q',
    'AOlUfbrbGHgQoF9t8PCSp4ZbssUfAHiQR74maxeevsFC9GzHqW72SKpe8PeNzmBdtLELSckfCnhL5m/ev6uONunIh9Nx5rN6B7vTfFE8o0K0jb0w',
    'zCzzv8UGt8YuC9l2aBfZRXldYPO3RaBTr47UNM+kNWNIgGRHv3pj1ivTHnakLMJZ6uEeNGqjVDYAm+Y+5o6kp5Eo1GDTI4AD8TLQKedRWHp2OOXl',
    'MCAt4BRLUHaGZpkUtkGLBZjm4Knjb/Em++iOqorwi+0DG8eovnSK3unRgyAX5fKYfW2vSVIwBBrsZBpjxI3ig6ZO2ExCHVGsXzK/lpBR13rjqbFQ',
    '6h56Ip8uYv4pAT1QYZJ3HkOyRaHtDJYnP7bJpFGOCiiM3IlO0N1hgpw/Sib8hhYWVzZxM9pJboG4xxLhpjTKgrFfo77ZTpmZ7uquhT2lVwLFosPE',
    'GDNHuGmNH2EZsQ49xZC1Rq4PbG6+0P0BKO4BR6e82Xi701AMRiAaqIpV32fEBsqlib0Td8ifNiuRQEtULER/VXjr98Hcp09ubgQBL7deBn5gRE3V',
    'sXaXOss6cj+T5GlyOs7IRQUAqZfjqDMIUJZ164v1DeJWAjoae6W2KaTvlt8YPRWOuYo62jvX6787D++817srJz6I9U0/T7iLlMuasuvNghDdLCEI',
    'BuAwoDODTSSpu2ov3QNXHiE1XckBJo92PQrYvkuvLekRsaVFkkv4csrP7KCVjCGY1VB8EMlE/TCQ5l8GJo2X2qVhuO/t8rQ3VSe2jLa4lKv/NRHK',
    'B0iAYSATIhqHM4ANCXUVnxIQxXbRCnai0+WsC39BNY2y9kmlv+5Mb6xlyUl8fiHLX/yCVT2tuTObp9wuega/np5Oz1A6Rd/n99/FBWKdsOXAkr6S',
    'k5jI+j5CWRBDx7Lz7Tv+esFenKKA+/R+XDFZsyoyBMfLy8TsaTEYLJR/ghzT6wnEjUGVD0cki2RKoyHqF/ITsBrhfXeZ7dRJuy/pd3datuj+C+sE',
    '++bmqWEhzozjqeGkHTcv7sKBiv0dl47orXHNK62bSFZ6Y+29fnq3vwvF0X0QEo57e//1I7lZnIuRHTaMC07QaAp3fEhFv2UXOdOOC9mMgGdOmxzf',
    'zJhCM7TZ9Dn4pRltsrR2rUsQiw2I+/du0TOQgw2U2BGofyqizzU3ALh5HkNqTDOev+Zs6EmggK94KgHqZcCkTCVbvFTlebAGOj9o1haabpV409Vh',
    'mP8u8QTNCIvs9Xd2wOwMWkYAngIOTJogqPgrmcukvQW7yQv2BhBj5p1gFfEUHXad8SJQ1JTYDV7WLvf2AASri779m7HcxIB2ZP63gRl+llHLOLGl',
    'Rtk8sWGXhntYJAOLzT8gxpf28zKjKLqUhcoWToMHNcq3PWinpbSeeufr0nSty0qgV3sUAZmUBNQFmL5Ubnm2JnvXJr+iCvcH6VABtfqCfQNdJZj0',
    'g+xAo0e1YmlPqcw6QR4n/URyFgE3zAmlDGCHiqQH91dpvdgl2EWthXW+Sn6yer0Qn8+PijPmXBErNl1+ydHOPAhzXpCByutvbJEbLfKPG7CWEVeM',
    '/derHc+ZH+OJkl7+69+tEX9mkk4uY+YhEDsDwKGmvGNePnV1lljSKSllfO1HCP8kAHtZPu5+rtO7a5Kr99DzL7wwzPXQN+mAjOrEK9VK7VMY5ul8',
    'z+t6t7QDdhcQvH3O+0lKHvvBkRDYNSxUTgoGIDR/IFboBqQax3Yjrwn8sR9WhqA+ZwFwbg5UvNhxKYBv99i7/Q3ROJ7PuTeYIqKTQk9np3dcP1Kb',
    '95ON3CtkoatRy0NmfgiY3nSumidpO7bcf7ZvS41crgp/Xljq45tm5JhtrN2XrpeOMUnguDagbhxZhYttvt301z9GnHXGDoM12Vjo1vMpmrWCVLqc',
    'nZnCdKSQlzhzjbkGt+MmNiTQjLQ/icOmQZ4e8wJ2cV3r5MMvAReb+Zpw6tWrvPvWKFXjdfcCaU1o9ZYaA/EqRh+dqXoMZqzdveC0re0hV4Cbm3n1',
    'kOK/CCLBAPhLNADZhsOLgbIgKLvW2x/J0wIgFXif9F3uV/Ekc5rKmqsXqq6K2O/k0rtEOpOV9SU6Tlsfe78saaLKXmftkxSFfke5VeJNyQ2ODkiK',
    'VcZ3yYHZF/foKkbWrqgRQ73GlR2oi1b9zsAtvqyl9xmrsS6vIE7dH/HW932+Pq7dvrhNsMxnYy17D/G7svXm152pbSGO0rnxCT3zcn2L4pZ1xqoi',
    'uZ7I42PAHIkSMHKYoSXG52+GaGcQDj6iepiKMj2YFmqWWV0jIqCjitUlVjuHpwEJTAlWOwyTSlfRBeNPVl2Ax2xcwpLRyuCOFBt9QiHwqUCRnDe+',
    '8hPy+SmUkVezFrSpJOFKsZ30SCBmPFu27QE6fiVKoMKJubcYL1vgBaUGnGXBooCZh+Im+nsul9KBrHqKOZLGl63en0tDiw+H74rNZiPapJYG9vw1',
    'kNkvhAETyC4wAZ3WbtdJnNh5+ep/R+qEWWF9OY/LVkysB1j7tAI1gXd34rVq1V547qU5h6zBhESHNd1qVktc/mX9WYQiVSJFgYReu4poHSafDeVP',
    'gT4pPbwIorvSJhKBB+Z9UNb+7c5Toul1fcNjr3QFPUvTJsFn0Bsd25DaETj42b5wddCrQNSR51CqFNLNsUhuoQl7dLLTuHO5tGFU9D0YAHb0EhMS',
    'SI3gxjWi3Omn0KaR6F8vzdCM9wJw4hkPSKBb8crSR8kGb8Z/rdnEZRLIRnj/QjIQM3GvuJVZNtPJGcRjvkBZyezOYiTI35ktMDvyFsw4JIk+eO+t',
    'Gj65N9/nkQ5RKJ1T6CyyX32Hq8R7G4yOAI3Vv3Kog6S1UTmos/EWYPNHOyBYsKSNMA5BIJy7TONpKPQsViX5axR1C5WzPG+PNSpeaBZ+nnZsM+IG',
    '+jYmJBZ20DTOa0rZcZ20MZUgYUiXKEcIIY3zB33B73NYWHavkLPPizV8TedtMb1UmhyyA/0gyPVQMEsAfgsh4TXV0cJ+zSC9RhAdM3KCzM7I8d5m',
    'p9pYBiaOhQYZCT5TSJ6Anvv8dwRYXL15Lc70UtS61GG0x5fg7TDMr/aH7OAYUtcxbu8Ttjb+aL8L7oO+k0NGEUT06Q6FGcmc2pF34b9Z3mtU1wBL',
    'Di6DLmQulGoSOZUsvm0oSezyqFFl',
  ].join(''),
  'base64',
)
const oldPlain = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + 3) % 251))

for (const hidden of [false, true]) {
  const path = hidden ? 'node:crypto' : 'native/cipher'
  test(`${path}: files written before native/cipher (64 KiB and 1 KiB chunks) read back, and fail when damaged`, hidden ? {} : needsNative, () => {
    withPath(hidden, () => {
      assert.equal(OLD_64K[CIPHER_MAGIC.length], 16, 'chunk size recorded in the header: 2^16')
      assert.equal(OLD_1K[CIPHER_MAGIC.length], 10)
      assert.ok(openBuffer({ repoKey: OLD_KEY }, OLD_64K, what).equals(oldPlain(100)))
      assert.ok(openBuffer({ repoKey: OLD_KEY }, OLD_1K, what).equals(oldPlain(2500)))
      for (const at of [OLD_1K.length - 1, OLD_1K.length - 20, 77 + 1040 + 3]) {
        const damaged = Buffer.from(OLD_1K)
        damaged[at]! ^= 0x01
        assert.throws(() => openBuffer({ repoKey: OLD_KEY }, damaged, what), AUTH, `byte ${at}`)
      }
      assert.throws(() => openBuffer({ repoKey: randomBytes(32) }, OLD_64K, what), AUTH)
    })
  })

  test(`${path}: reads what the other path wrote, at every size, chunk size and wrapping`, hidden ? {} : needsNative, () => {
    for (const [seal, open] of [[passSeal, passOpen], [pubSeal, pubOpen]] as const) {
      for (const log2 of [10, 16, 20]) {
        for (const size of [0, 1, 1023, 1024, 1025, 3 * 1024 + 5, 70_000, (1 << 20) + 17]) {
          const data = randomBytes(size)
          const sealed = withPath(!hidden, () => sealBuffer(seal, data, log2))
          assert.ok(withPath(hidden, () => openBuffer(open, sealed, what)).equals(data), `log2 ${log2} size ${size}`)
          const again = withPath(hidden, () => sealBuffer(seal, data, log2))
          assert.ok(withPath(!hidden, () => openBuffer(open, again, what)).equals(data), `log2 ${log2} size ${size}`)
        }
      }
    }
  })

  test(`${path}: chunks swapped, dropped or taken from another file fail authentication`, hidden ? {} : needsNative, () => {
    withPath(hidden, () => {
      const header = 17 + 60
      const record = CHUNK + 16
      const data = randomBytes(4 * CHUNK + 10)
      const sealed = sealBuffer(passSeal, data, LOG2)
      const chunk = (file: Buffer, i: number): Buffer => file.subarray(header + i * record, header + (i + 1) * record)
      const swapped = Buffer.concat([sealed.subarray(0, header), chunk(sealed, 1), chunk(sealed, 0), sealed.subarray(header + 2 * record)])
      assert.throws(() => openBuffer(passOpen, swapped, what), AUTH)
      const dropped = Buffer.concat([sealed.subarray(0, header), chunk(sealed, 0), sealed.subarray(header + 2 * record)])
      assert.throws(() => openBuffer(passOpen, dropped, what), AUTH)
      assert.throws(() => openBuffer(passOpen, sealed.subarray(0, header + 4 * record), what), /truncated/)
      const other = sealBuffer(passSeal, data, LOG2)
      const spliced = Buffer.concat([sealed.subarray(0, header + record), chunk(other, 1), sealed.subarray(header + 2 * record)])
      assert.throws(() => openBuffer(passOpen, spliced, what), AUTH)
      // Plaintext of a chunk that failed is never handed on.
      const pieces: Buffer[] = []
      const flipped = Buffer.from(sealed)
      flipped[header + 2 * record + 5]! ^= 0x80
      const opener = new Opener(passOpen, what)
      assert.throws(() => opener.write(flipped, (piece) => pieces.push(Buffer.from(piece))), AUTH)
      assert.ok(Buffer.concat(pieces).equals(data.subarray(0, 2 * CHUNK)))
    })
  })
}

// What made encryption cost far more than AES-GCM does in a backup: node:crypto returns every 64 KiB chunk in a new
// buffer (measured: ~26 MB of garbage and ~90 ms of page faults per 90 MB sealed), where native/cipher reuses one.
test('native/cipher: sealing and opening write every chunk into one reused buffer', needsNative, () => {
  const data = randomBytes(8 * 65536 + 100)
  const memoryOf = (pieces: Buffer[]): Set<ArrayBufferLike> => new Set(pieces.map((piece) => piece.buffer))
  const sealedPieces: Buffer[] = []
  const sealed: Buffer[] = []
  const sealer = new Sealer(passSeal)
  const keepSealed = (piece: Buffer): void => {
    sealedPieces.push(piece)
    sealed.push(Buffer.from(piece))
  }
  sealer.write(data, keepSealed)
  sealer.end(keepSealed)
  // The header, then nine chunks (ciphertext and tag together) from one buffer.
  assert.equal(sealedPieces.length, 10)
  assert.equal(memoryOf(sealedPieces.slice(1)).size, 1)
  const openedPieces: Buffer[] = []
  const opened: Buffer[] = []
  const opener = new Opener(passOpen, what)
  const keepOpened = (piece: Buffer): void => {
    openedPieces.push(piece)
    opened.push(Buffer.from(piece))
  }
  opener.write(Buffer.concat(sealed), keepOpened)
  opener.end(keepOpened)
  assert.ok(Buffer.concat(opened).equals(data))
  assert.equal(openedPieces.length, 9)
  assert.equal(memoryOf(openedPieces).size, 1)
})
