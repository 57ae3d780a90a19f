import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { codecFor } from '../../io/compress.js'
import { decompressBuffer } from '../../io/buffer-codec.js'
import { backupFile } from './file.js'

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
