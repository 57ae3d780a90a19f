import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { after, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { codecAvailable, codecFor } from '../io/compress.js'
import type { CompressType } from '../io/compress.js'
import { posixStorage } from '../storage/posix.js'
import { storedFileCopy, storedFileCopyToFileFromStream, storedFileDigest, storedFileRead } from './stored-file.js'

const root = await mkdtemp(join(tmpdir(), 'walden-stored-'))
after(() => rm(root, { recursive: true, force: true }))
const repo = posixStorage(root)

/** Text with repeats, so every codec really compresses it and a flip lands in compressed data, not a stored block. */
function content(size: number): Buffer {
  const words = Array.from({ length: 64 }, () => randomBytes(6).toString('hex'))
  let text = ''
  while (text.length < size) text += `${words[Math.floor(Math.random() * words.length)]} `
  return Buffer.from(text.slice(0, size))
}

function sink(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() })
}

for (const type of ['lz4', 'zst', 'gz', 'none'] as CompressType[]) {
  test(`a flipped bit anywhere in a stored ${type} file fails its read with a checksum error`, { skip: codecAvailable(type) ? false : `${type} is not available` }, async () => {
    const codec = codecFor(type)
    const data = content(300_000)
    const sha256 = createHash('sha256').update(data).digest('hex')
    const stored = await buffer(Readable.from([data]).pipe(codec.compress(codec.defaultLevel)))
    const path = `file-${type}${codec.extension}`
    await repo.write(path, stored)
    assert.ok((await storedFileRead(repo, path, sha256, 'file')).equals(data), 'the intact file reads back')

    for (let trial = 0; trial < 40; trial++) {
      const damaged = Buffer.from(stored)
      const position = Math.floor(Math.random() * damaged.length)
      damaged[position] = damaged[position]! ^ (1 << trial % 8)
      await repo.write(path, damaged)
      const isChecksum = (error: unknown): boolean => error instanceof WaldenError && error.kind === 'Checksum'
      await assert.rejects(storedFileRead(repo, path, sha256, 'file'), isChecksum, `flip at ${position} (read)`)
      await assert.rejects(storedFileCopy(repo, path, sha256, 'file', async () => sink()), isChecksum, `flip at ${position} (copy)`)
    }
  })
}

for (const type of ['lz4', 'zst', 'gz', 'none'] as CompressType[]) {
  test(`storedFileDigest of a ${type} file gives its decoded size and SHA-256; damage either changes them or fails as a checksum error`, { skip: codecAvailable(type) ? false : `${type} is not available` }, async () => {
    const codec = codecFor(type)
    // Over one 1 MiB read, so the synchronous decoders run more than one piece.
    const data = content(2_500_000)
    const sha256 = createHash('sha256').update(data).digest('hex')
    const stored = await buffer(Readable.from([data]).pipe(codec.compress(codec.defaultLevel)))
    const path = `digest-${type}${codec.extension}`
    await repo.write(path, stored)
    assert.deepEqual(await storedFileDigest(repo, path, 'file'), { size: data.length, sha256 })

    const isChecksum = (error: unknown): boolean => error instanceof WaldenError && error.kind === 'Checksum'
    for (const damaged of [Buffer.from(stored).fill(0x55, 1000, 1010), stored.subarray(0, Math.floor(stored.length / 2))]) {
      await repo.write(path, damaged)
      const result = await storedFileDigest(repo, path, 'file').catch((error: unknown) => {
        assert.ok(isChecksum(error), String(error))
        return undefined
      })
      if (result) assert.notDeepEqual(result, { size: data.length, sha256 })
    }
    await repo.remove(path)
    await assert.rejects(storedFileDigest(repo, path, 'file'), (error: unknown) => error instanceof WaldenError && error.kind === 'FileMissing')
  })
}

test('storedFileRead of lz4 files allocates no block-sized buffer per file, and reads files of several blocks whole', { skip: codecAvailable('lz4') ? false : 'lz4 is not available' }, async () => {
  const codec = codecFor('lz4')
  // Restore from a backup host or S3 reads every small file this way. Memory outside the heap (buffers) must not
  // grow by a block's 4 MiB per file: 8 files of 100 kB would otherwise add 32 MiB before V8 collects any.
  const small = content(100_000)
  const smallSha = createHash('sha256').update(small).digest('hex')
  const smallPath = `small${codec.extension}`
  await repo.write(smallPath, await buffer(Readable.from([small]).pipe(codec.compress(codec.defaultLevel))))
  const usage = (): number => process.memoryUsage().arrayBuffers + process.memoryUsage().external
  const base = usage()
  let peak = 0
  for (let read = 0; read < 8; read++) {
    assert.ok((await storedFileRead(repo, smallPath, smallSha, 'file')).equals(small))
    peak = Math.max(peak, usage() - base)
  }
  assert.ok(peak < 8 * 1024 * 1024, `buffers grew by ${(peak / 1048576).toFixed(1)} MiB over 8 reads of a 100 kB file`)

  // More than two 4 MiB blocks: the decoded pieces are put together.
  const large = content(9_000_000)
  const largePath = `several-blocks${codec.extension}`
  await repo.write(largePath, await buffer(Readable.from([large]).pipe(codec.compress(codec.defaultLevel))))
  assert.ok((await storedFileRead(repo, largePath, createHash('sha256').update(large).digest('hex'), 'file')).equals(large))
})

test('storedFileCopyToFileFromStream: copies wait their turn in a thread while small files decode meanwhile, whole files and parts come out exact, damage removes a whole file', { skip: codecAvailable('lz4') ? false : 'lz4 is not available' }, async () => {
  const codec = codecFor('lz4')
  const store = async (name: string, data: Buffer): Promise<{ path: string; sha256: string }> => {
    const path = `${name}${codec.extension}`
    await repo.write(path, await buffer(Readable.from([data]).pipe(codec.compress(codec.defaultLevel))))
    return { path, sha256: createHash('sha256').update(data).digest('hex') }
  }
  const first = content(2_500_000)
  const second = content(3_100_000)
  const small = content(9_000)
  const [a, b, c] = [await store('stream-a', first), await store('stream-b', second), await store('stream-small', small)]
  const whole = join(root, 'out-whole')
  const parted = join(root, 'out-parted')
  // A file restored in parts: made at its full size first, the part written at its offset.
  await writeFile(parted, Buffer.alloc(4096 + second.length))
  const target = (path: string, flags: 'w' | 'r+', position = 0) => ({ path, flags, mode: 0o600, position, sync: false, direct: true })
  // Both copies yield while their streams are read; a synchronous small-file read runs between their pieces.
  const [copiedA, copiedB, read] = await Promise.all([
    storedFileCopyToFileFromStream(repo, a.path, a.sha256, 'a', target(whole, 'w')),
    storedFileCopyToFileFromStream(repo, b.path, b.sha256, 'b', target(parted, 'r+', 4096)),
    storedFileRead(repo, c.path, c.sha256, 'c'),
  ])
  assert.deepEqual([copiedA, copiedB], [true, true])
  assert.ok(read.equals(small))
  assert.ok((await readFile(whole)).equals(first))
  const partedNow = await readFile(parted)
  assert.ok(partedNow.subarray(4096).equals(second))
  assert.ok(partedNow.subarray(0, 4096).equals(Buffer.alloc(4096)), 'nothing written before the part')

  // Damaged: a checksum error naming the file, and a whole file is not left half written.
  const damaged = join(root, 'out-damaged')
  await assert.rejects(
    storedFileCopyToFileFromStream(repo, a.path, b.sha256, `repository file 'a'`, target(damaged, 'w')),
    (error: unknown) => error instanceof WaldenError && error.kind === 'Checksum' && /repository file 'a' has checksum/.test(error.message),
  )
  await assert.rejects(stat(damaged), /ENOENT/)
  // A codec without a chunk decoder: nothing done, the caller takes its stream path.
  const zst = codecFor('zst')
  assert.equal(await storedFileCopyToFileFromStream(repo, `x${zst.extension}`, a.sha256, 'x', target(join(root, 'out-zst'), 'w')), false)
  await assert.rejects(stat(join(root, 'out-zst')), /ENOENT/)
})
