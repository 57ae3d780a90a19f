// The backup copy path into a bucket (backupFile's chunked copy, which backup and archive-push take to S3) against a
// real Ceph gateway, each stored object read back through its repository's cipher and codec: every compress type,
// sealed or not, jobs interleaved on one thread, stored sizes at the cipher's chunk and the upload's part boundaries,
// and a fan-out to a folder and two buckets at once.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { configLoad } from '../../src/config/config.js'
import { CIPHER_MAGIC, openBuffer, Sealer } from '../../src/io/cipher.js'
import { decompressBuffer } from '../../src/io/buffer-codec.js'
import { codecFor } from '../../src/io/compress.js'
import type { CompressType } from '../../src/io/compress.js'
import { cipherAdopt, cipherConfigure, cipherJobStateOf, cipherJobUse, cipherOpenKeys, cipherRecordCreate, cipherSealData, cipherUse } from '../../src/repo/cipher.js'
import type { CipherState } from '../../src/repo/cipher.js'
import { backupFile, backupFileFanOut } from '../../src/commands/backup/file.js'
import { S3Storage } from '../../src/storage/s3.js'
import type { S3Location } from '../../src/storage/location.js'
import { s3Gateway } from '../harness/s3.js'

const MIB = 1024 * 1024
const PART = 5 * MIB
const folder = mkdtempSync(join(tmpdir(), 'walden-s3-copy-'))
after(() => rmSync(folder, { recursive: true, force: true }))

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** Text-like rows that compress, with a stretch of noise that does not (so compressed chunks span many cipher chunks). */
function segmentLike(size: number): Buffer {
  const data = Buffer.alloc(size)
  for (let offset = 0; offset < size; offset += 64) data.write(`row ${offset} value ${(offset * 2654435761) % 1000003} `, offset)
  randomBytes(Math.min(size, 1536 * 1024)).copy(data, Math.min(MIB, size >> 2))
  return data
}

let serial = 0
function sourceFile(content: Buffer): string {
  const path = join(folder, `source-${++serial}`)
  writeFileSync(path, content)
  return path
}

/** The stored object as the source's bytes again: opened with the repository's keys (when sealed), decompressed. */
async function readBack(stored: Buffer, compressType: CompressType, cipher: CipherState, what: string): Promise<Buffer> {
  cipherJobUse(cipher)
  const keys = cipherOpenKeys()
  if (keys) assert.ok(stored.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC), `${what}: sealed`)
  return decompressBuffer(codecFor(compressType), keys ? openBuffer(keys, stored, what) : stored)
}

describe('backup copy into a bucket, read back', () => {
  let plain: CipherState
  let sealed: CipherState
  let sealedOther: CipherState
  let location: (bucket: string) => S3Location

  before(async () => {
    // repo1 plain, repo2 and repo3 encrypted with passphrases of their own, each adopted as a backup would.
    const env = {
      WALDEN_REPO2_CIPHER_TYPE: 'aes-256-gcm',
      WALDEN_REPO2_CIPHER_PASS: 's3-copy-test-passphrase-2',
      WALDEN_REPO2_PATH: '/unused',
      WALDEN_REPO3_CIPHER_TYPE: 'aes-256-gcm',
      WALDEN_REPO3_CIPHER_PASS: 's3-copy-test-passphrase-3',
      WALDEN_REPO3_PATH: '/unused',
    }
    cipherConfigure(configLoad({ argv: ['--stanza=demo', 'backup'], env, readFile: () => undefined }))
    for (const repo of [2, 3]) {
      cipherUse(repo)
      cipherAdopt(cipherRecordCreate(), "stanza 'demo'")
    }
    cipherUse(1)
    cipherAdopt(undefined, "stanza 'demo'")
    plain = cipherJobStateOf(1)
    sealed = cipherJobStateOf(2)
    sealedOther = cipherJobStateOf(3)
    const gateway = await s3Gateway()
    location = (bucket) => gateway.location(bucket, { uploadChunkSize: PART })
  })

  test('every compress type, sealed or not, overlapped or not, copies interleaved on one thread: each object reads back to its source', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('copy-types')
    const storage = new S3Storage(location(bucket))
    // Several parts long once sealed and uncompressed (none), one part compressed; the noise makes compressed chunks
    // of 1 MiB that span many 64 KiB cipher chunks.
    const content = segmentLike(11 * MIB + 4321)
    const source = sourceFile(content)
    for (const compressType of ['none', 'lz4', 'zst', 'gz'] as const) {
      // Overlapped too, as a synchronous archive-push copies (compression on the thread pool, two chunks in flight).
      const copies = [
        { cipher: plain, overlap: false },
        { cipher: sealed, overlap: false },
        { cipher: sealed, overlap: true },
      ]
      const runs = copies.map(async ({ cipher, overlap }) => {
        const repoPath = `${compressType}/${cipher.repo}-${overlap}`
        const result = await backupFile({ source, offset: 0, repo: location(bucket), repoPath, cipher, compressType, compressLevel: 1, syncEach: false, overlap, uploadTurns: !overlap })
        return { cipher, overlap, repoPath, result }
      })
      for (const { cipher, overlap, repoPath, result } of await Promise.all(runs)) {
        const what = `${compressType}, repo${cipher.repo}${overlap ? ', overlapped' : ''}`
        assert.equal(result.sha256, sha256(content), what)
        const stored = await storage.read(`${repoPath}${codecFor(compressType).extension}`)
        assert.equal(result.repoSize, stored.length, `${what}: the size recorded is the size stored`)
        assert.ok((await readBack(stored, compressType, cipher, what)).equals(content), `${what}: reads back to the source`)
      }
    }
  })

  test('stored sizes at a 64 KiB cipher chunk and at an upload part, each ±1, with one and two part buffers', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('copy-sizes')
    const storage = new S3Storage(location(bucket))
    // A sealed file of n bytes (uncompressed) is its header, n bytes, and a 16-byte tag per started 64 KiB chunk plus
    // the last (possibly empty) one: sizes are chosen so that the *stored* object lands on each boundary.
    cipherJobUse(sealed)
    const probe = new Sealer(cipherSealData()!)
    probe.end(() => undefined)
    const header = probe.written - 16
    const sealedSize = (n: number): number => header + n + 16 * (Math.floor(n / 65536) + 1)
    const plainFor = (stored: number): number | undefined => {
      for (let n = stored - header - 16 * (Math.floor(stored / 65536) + 2); n <= stored; n++) if (sealedSize(n) === stored) return n
      return undefined // no plaintext size seals to exactly that many bytes (a tag boundary): skipped
    }
    const targets = [1, 65535, 65536, 65537, PART - 1, PART, PART + 1, 2 * PART]
    for (const cipher of [plain, sealed]) {
      for (const target of targets) {
        const size = cipher === plain ? target : plainFor(target)
        if (size === undefined || size <= 0) continue
        const content = randomBytes(size)
        const source = sourceFile(content)
        for (const partBuffers of [1, 2] as const) {
          const what = `repo${cipher.repo}, stored ${target}, ${partBuffers} part buffer(s)`
          const repoPath = `size-${cipher.repo}-${target}-${partBuffers}`
          const result = await backupFile({ source, offset: 0, repo: location(bucket), repoPath, cipher, compressType: 'none', compressLevel: 0, syncEach: false, partBuffers, uploadTurns: true })
          const stored = await storage.read(repoPath)
          assert.equal(stored.length, target, `${what}: the stored object is of the size aimed at`)
          assert.equal(result.repoSize, stored.length, what)
          assert.ok((await readBack(stored, 'none', cipher, what)).equals(content), `${what}: reads back to the source`)
          await storage.remove(repoPath)
        }
        rmSync(source)
      }
    }
  })

  test('fan-out to a folder and two buckets, two of them sealed with keys of their own: each reads back to the source', async () => {
    const gateway = await s3Gateway()
    const bucketPlain = await gateway.bucket('fan-plain')
    const bucketSealed = await gateway.bucket('fan-sealed')
    const content = segmentLike(7 * MIB + 99)
    const source = sourceFile(content)
    const repoFolder = join(folder, 'fan-folder')
    for (const compressType of ['lz4', 'zst'] as const) {
      const result = await backupFileFanOut({
        source,
        offset: 0,
        compressType,
        compressLevel: 1,
        syncEach: false,
        uploadTurns: true,
        targets: [
          { repo: { type: 'posix', path: repoFolder }, repoPath: 'base/1/2', cipher: sealed },
          { repo: location(bucketPlain), repoPath: 'base/1/2', cipher: plain },
          { repo: location(bucketSealed), repoPath: 'base/1/2', cipher: sealedOther },
        ],
      })
      assert.equal(result.sha256, sha256(content))
      const extension = codecFor(compressType).extension
      const stored = [
        readFileSync(join(repoFolder, `base/1/2${extension}`)),
        await new S3Storage(location(bucketPlain)).read(`base/1/2${extension}`),
        await new S3Storage(location(bucketSealed)).read(`base/1/2${extension}`),
      ]
      assert.deepEqual(result.stored, stored.map((bytes) => ({ repoSize: bytes.length })))
      const ciphers = [sealed, plain, sealedOther]
      for (const [index, bytes] of stored.entries()) {
        const what = `${compressType}, target ${index + 1}`
        assert.ok((await readBack(bytes, compressType, ciphers[index]!, what)).equals(content), `${what}: reads back to the source`)
      }
    }
  })
})
