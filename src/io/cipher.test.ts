import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { test } from 'node:test'
import { CIPHER_MAGIC, Opener, OpenStream, Sealer, SealStream, openBuffer, sealBuffer, WRAP_REPO_KEY, WRAP_X25519 } from './cipher.js'
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
