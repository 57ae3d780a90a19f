import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import { configLoad } from '../../config/config.js'
import { CIPHER_MAGIC, openBuffer } from '../../io/cipher.js'
import { codecFor } from '../../io/compress.js'
import { decompressBuffer } from '../../io/buffer-codec.js'
import { cipherAdopt, cipherConfigure, cipherJobStateOf, cipherJobUse, cipherOpenKeys, cipherRecordCreate, cipherUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { backupFile, backupFileFanOut, backupPathForTest } from './file.js'

const folder = mkdtempSync(join(tmpdir(), 'walden-backup-file-'))
after(() => rmSync(folder, { recursive: true, force: true }))

const MiB = 1024 * 1024

/** Text-like data that compresses, with a stretch of noise that does not. */
function segmentLike(size: number): Buffer {
  const data = Buffer.alloc(size)
  for (let offset = 0; offset < size; offset += 64) data.write(`row ${offset} value ${(offset * 2654435761) % 1000003} `, offset)
  randomBytes(256 * 1024).copy(data, 2 * MiB)
  return data
}

test('a file copied with compression overlapping the hash is stored byte for byte as without, and checks out', async () => {
  const source = join(folder, 'segment')
  const content = segmentLike(5 * MiB + 777)
  writeFileSync(source, content)
  const stored: Buffer[] = []
  for (const overlap of [false, true]) {
    const repoPath = `copy-${overlap}`
    const result = await backupFile({ source, offset: 0, repo: { type: 'posix', path: folder }, repoPath, compressType: 'lz4', compressLevel: 1, syncEach: true, xxh3: false, overlap })
    assert.equal(result.copied, true)
    assert.equal(result.size, content.length)
    assert.equal(result.sha256, createHash('sha256').update(content).digest('hex'))
    const file = join(folder, `${repoPath}.lz4`)
    assert.equal(result.repoSize, statSync(file).size)
    const bytes = readFileSync(file)
    assert.ok((await decompressBuffer(codecFor('lz4'), bytes)).equals(content), `overlap ${overlap}: decompresses to the source`)
    stored.push(bytes)
  }
  assert.ok(stored[0]!.equals(stored[1]!), 'the same stored bytes either way')
})

test('a part from an offset, overlapped, holds exactly that stretch', async () => {
  const source = join(folder, 'relation')
  const content = segmentLike(4 * MiB)
  writeFileSync(source, content)
  const result = await backupFile({ source, offset: MiB + 8192, length: 2 * MiB + 5, repo: { type: 'posix', path: folder }, repoPath: 'part', compressType: 'lz4', compressLevel: 1, syncEach: false, overlap: true })
  const expected = content.subarray(MiB + 8192, 3 * MiB + 8192 + 5)
  assert.equal(result.sha256, createHash('sha256').update(expected).digest('hex'))
  assert.ok((await decompressBuffer(codecFor('lz4'), readFileSync(join(folder, 'part.lz4')))).equals(expected))
})

test('a zst copy (one frame per chunk, compressed into a reused buffer) reads back whole, with the zstd tool too', async () => {
  const source = join(folder, 'zst-source')
  const content = segmentLike(3 * MiB + 4321)
  writeFileSync(source, content)
  const result = await backupFile({ source, offset: 0, repo: { type: 'posix', path: folder }, repoPath: 'zst-copy', compressType: 'zst', compressLevel: 3, syncEach: false })
  assert.equal(result.sha256, createHash('sha256').update(content).digest('hex'))
  const stored = join(folder, 'zst-copy.zst')
  assert.equal(result.repoSize, statSync(stored).size)
  assert.ok((await decompressBuffer(codecFor('zst'), readFileSync(stored))).equals(content))
  const cli = spawnSync('zstd', ['-dc', stored], { maxBuffer: 64 * MiB })
  if (cli.error === undefined) assert.ok(cli.stdout.equals(content), 'zstd -d reads it')
})

describe('fan-out: one read, one compression, a copy per repository', () => {
  const pass = 'fan-out-test-passphrase'
  let plain: CipherState
  let sealed: CipherState

  before(() => {
    // repo2 encrypted with a passphrase, repo1 not: each repository's state as a backup adopts it.
    cipherConfigure(configLoad({ argv: ['--stanza=demo', 'backup'], env: { WALDEN_REPO2_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO2_CIPHER_PASS: pass, WALDEN_REPO2_PATH: '/unused' }, readFile: () => undefined }))
    cipherUse(2)
    cipherAdopt(cipherRecordCreate(), "stanza 'demo'")
    cipherUse(1)
    cipherAdopt(undefined, "stanza 'demo'")
    plain = cipherJobStateOf(1)
    sealed = cipherJobStateOf(2)
  })
  afterEach(() => {
    backupPathForTest.streams = false
  })

  for (const streams of [false, true]) {
    test(`${streams ? 'stream' : 'synchronous'} path: repo2 holds repo1's compressed bytes, sealed; each reads back to the source`, async () => {
      backupPathForTest.streams = streams
      const source = join(folder, `fan-source-${streams}`)
      const content = segmentLike(5 * MiB + 321)
      writeFileSync(source, content)
      const repo1 = join(folder, `fan-repo1-${streams}`)
      const repo2 = join(folder, `fan-repo2-${streams}`)
      const result = await backupFileFanOut({
        source,
        offset: 0,
        compressType: 'lz4',
        compressLevel: 1,
        syncEach: false,
        targets: [
          { repo: { type: 'posix', path: repo1 }, repoPath: 'base/1/2', cipher: plain },
          { repo: { type: 'posix', path: repo2 }, repoPath: 'base/1/2', cipher: sealed },
        ],
      })
      assert.equal(result.copied, true)
      assert.equal(result.size, content.length)
      assert.equal(result.sha256, createHash('sha256').update(content).digest('hex'))
      const stored1 = readFileSync(join(repo1, 'base/1/2.lz4'))
      const stored2 = readFileSync(join(repo2, 'base/1/2.lz4'))
      assert.deepEqual(result.stored, [{ repoSize: stored1.length }, { repoSize: stored2.length }])
      assert.ok(stored2.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC), 'repo2 is sealed')
      assert.ok(!stored1.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC), 'repo1 is not')
      // Compressed once: what repo2 seals is exactly what repo1 stores.
      cipherJobUse(sealed)
      assert.ok(openBuffer(cipherOpenKeys()!, stored2, 'repo2 copy').equals(stored1))
      assert.ok((await decompressBuffer(codecFor('lz4'), stored1)).equals(content))
    })

    test(`${streams ? 'stream' : 'synchronous'} path: a repository that cannot be written is reported, the other is complete`, async () => {
      backupPathForTest.streams = streams
      const source = join(folder, `fan-fail-source-${streams}`)
      const content = segmentLike(3 * MiB)
      writeFileSync(source, content)
      // A file where the repository's folder should be: nothing can be created under it.
      const blocked = join(folder, `fan-blocked-${streams}`)
      writeFileSync(blocked, 'not a folder')
      const good = join(folder, `fan-good-${streams}`)
      const result = await backupFileFanOut({
        source,
        offset: 0,
        compressType: 'zst',
        compressLevel: 3,
        syncEach: true,
        targets: [
          { repo: { type: 'posix', path: blocked }, repoPath: 'base/1/3', cipher: plain },
          { repo: { type: 'posix', path: good }, repoPath: 'base/1/3', cipher: sealed },
        ],
      })
      const [first, second] = result.stored
      assert.ok(first && 'error' in first, 'repo1 failed')
      assert.ok(first.error.message.includes(blocked), first.error.message)
      assert.ok(second && 'repoSize' in second, 'repo2 got its copy')
      const stored = readFileSync(join(good, 'base/1/3.zst'))
      assert.equal(second.repoSize, stored.length)
      cipherJobUse(sealed)
      assert.ok((await decompressBuffer(codecFor('zst'), openBuffer(cipherOpenKeys()!, stored, 'copy'))).equals(content))
      assert.equal(result.sha256, createHash('sha256').update(content).digest('hex'))
    })
  }

  for (const streams of [false, true]) {
    test(`${streams ? 'stream' : 'synchronous'} path: a repository whose disk fills during the copy drops out, the other gets the whole file`, async () => {
      backupPathForTest.streams = streams
      const source = join(folder, `fan-full-source-${streams}`)
      const content = segmentLike(4 * MiB)
      writeFileSync(source, content)
      // The stored file of repo1 opens fine but every write fails with ENOSPC: a symbolic link to /dev/full.
      const fullRepo = join(folder, `fan-diskfull-${streams}`)
      mkdirSync(join(fullRepo, 'base/1'), { recursive: true })
      symlinkSync('/dev/full', join(fullRepo, 'base/1/4.lz4'))
      const good = join(folder, `fan-diskfull-good-${streams}`)
      const result = await backupFileFanOut({
        source,
        offset: 0,
        compressType: 'lz4',
        compressLevel: 1,
        syncEach: false,
        targets: [
          { repo: { type: 'posix', path: fullRepo }, repoPath: 'base/1/4', cipher: sealed },
          { repo: { type: 'posix', path: good }, repoPath: 'base/1/4', cipher: plain },
        ],
      })
      const [first, second] = result.stored
      assert.ok(first && 'error' in first, 'repo1 failed')
      assert.match(first.error.message, /no space left on device|ENOSPC/)
      assert.ok(second && 'repoSize' in second)
      const stored = readFileSync(join(good, 'base/1/4.lz4'))
      assert.equal(second.repoSize, stored.length)
      assert.ok((await decompressBuffer(codecFor('lz4'), stored)).equals(content))
      assert.equal(existsSync(join(fullRepo, 'base/1/4.lz4')), false, "the failed repository's file is removed")
    })
  }

  test('into one repository that cannot be written, the copy fails naming it, and leaves nothing behind', async () => {
    const source = join(folder, 'single-fail-source')
    writeFileSync(source, segmentLike(2 * MiB))
    const blocked = join(folder, 'single-blocked')
    writeFileSync(blocked, 'not a folder')
    await assert.rejects(
      backupFile({ source, offset: 0, repo: { type: 'posix', path: blocked }, repoPath: 'x/y', compressType: 'lz4', compressLevel: 1, syncEach: false }),
      (error: Error) => error instanceof WaldenError && error.message.includes(blocked),
    )
  })

  test('a source gone before it is read is reported as not copied, and no repository gets a file', async () => {
    const repo = join(folder, 'fan-missing')
    const result = await backupFileFanOut({
      source: join(folder, 'no-such-file'),
      offset: 0,
      compressType: 'lz4',
      compressLevel: 1,
      syncEach: false,
      targets: [{ repo: { type: 'posix', path: repo }, repoPath: 'gone', cipher: plain }],
    })
    assert.equal(result.copied, false)
    assert.equal(existsSync(join(repo, 'gone.lz4')), false)
  })
})
