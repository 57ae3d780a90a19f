// bz2 decompression (read only, for repositories pgBackRest wrote) against Debian's bzip2 program: what bzip2 writes
// decodes to the same bytes through every path walden reads with (stream, chunk decoder, whole buffer, and the
// repository readers), and damaged, truncated, empty or trailed input fails as a 'Format' error (a 'Checksum' error
// naming the file in the repository readers), never hanging.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { posixStorage } from '../storage/posix.js'
import { storedFileCopy, storedFileCopyToFileSync, storedFileDigest, storedFileRead } from '../repo/stored-file.js'
import { codecAvailable, codecFor, codecFromExtension, hiddenEnginesForTest, type Codec } from './compress.js'

const TIMEOUT = { timeout: 120_000 } // a hang is a failure, not a stuck run
const MiB = 1024 * 1024
const hasBzip2 = spawnSync('bzip2', ['--help'], { stdio: 'ignore' }).status === 0
const skip = !codecAvailable('bz2') ? "walden's libbz2 binding is not built (npm run build)" : !hasBzip2 ? 'bzip2 is not installed' : false

function bzip2(args: string[], input: Buffer): Buffer {
  const result = spawnSync('bzip2', args, { input, maxBuffer: 1 << 30 })
  assert.equal(result.status, 0, `bzip2 ${args.join(' ')}: ${result.stderr?.toString()}`)
  return result.stdout
}

/** Deterministic mixed content: random bytes, runs, and database-like rows, so bzip2 has real work in every block. */
function mixed(size: number, seed: number): Buffer {
  let x = seed >>> 0 || 1
  const next = (): number => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    return (x >>>= 0)
  }
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  while (pos < size) {
    const length = Math.min(size - pos, 1 + (next() % 200_000))
    const kind = next() % 3
    if (kind === 0) for (let i = 0; i < length; i++) out[pos + i] = next() & 0xff
    else if (kind === 1) out.fill(next() & 0xff, pos, pos + length)
    else out.fill(`${next() % 100000}|paid|2026-12-0${next() % 9}|${next()}\n`, pos, pos + length)
    pos += length
  }
  return out
}

function* pieces(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size)
}

async function viaStream(codec: Codec, data: Buffer, pieceSize: number): Promise<Buffer> {
  const out: Buffer[] = []
  await pipeline(
    Readable.from(pieces(data, pieceSize)),
    codec.decompress(),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk)
        callback()
      },
    }),
  )
  return Buffer.concat(out)
}

function viaChunkDecoder(codec: Codec, data: Buffer, pieceSize: number): Buffer {
  const decoder = codec.chunkDecoder!()
  const out: Buffer[] = []
  const sink = (piece: Buffer): void => void out.push(Buffer.from(piece))
  try {
    for (const piece of pieces(data, pieceSize)) decoder.write(piece, sink)
    decoder.end(sink)
  } finally {
    decoder.release()
  }
  return Buffer.concat(out)
}

/** Every way walden decodes bz2, each expected to fail with a 'Format' error on `data`. */
async function rejectsEverywhere(codec: Codec, data: Buffer, what: string): Promise<void> {
  const isFormat = (error: unknown): boolean => {
    assert.ok(error instanceof WaldenError, `${what}: expected a WaldenError, got ${String(error)}`)
    assert.equal(error.kind, 'Format', `${what}: ${error.message}`)
    return true
  }
  await assert.rejects(viaStream(codec, data, 4096), isFormat, `${what} (stream)`)
  assert.throws(() => viaChunkDecoder(codec, data, 1000), isFormat, `${what} (chunk decoder)`)
  assert.throws(() => codec.decompressSync!(data), isFormat, `${what} (whole buffer)`)
}

describe('bz2 (read only)', { skip }, () => {
  const codec = skip ? (undefined as unknown as Codec) : codecFor('bz2')
  const sample = mixed(3 * MiB + 123, 5)

  test('is picked by the .bz2 extension, through libbz2, and refuses to compress', () => {
    assert.equal(codecFromExtension('archive/db/17-1/0000000100000000/000000010000000000000003-2f1b.bz2').type, 'bz2')
    assert.deepEqual([codec.extension, codec.engine], ['.bz2', 'libbz2'])
    for (const attempt of [() => codec.compress(), () => codec.compressSync!(Buffer.from('x'))]) {
      assert.throws(attempt, (error: unknown) => error instanceof WaldenError && error.kind === 'FeatureNotSupported' && /does not write bz2/.test(error.message))
    }
  })

  test('decodes what bzip2 wrote, through the stream, the chunk decoder and the whole-buffer path', TIMEOUT, async () => {
    // Runs of one byte make tiny input decode to far more than the 256 KiB output buffer in one write.
    const cases: Array<[string, Buffer, string[]]> = [
      ['empty', Buffer.alloc(0), ['-9']],
      ['one byte', Buffer.from('x'), ['-9']],
      ['mixed, 900k blocks', sample, ['-9']],
      ['mixed, 100k blocks', sample, ['-1']],
      ['20 MiB of zeros', Buffer.alloc(20 * MiB), ['-9']],
    ]
    for (const [what, data, flags] of cases) {
      const packed = bzip2(['-c', ...flags], data)
      for (const pieceSize of [1, 977, 65_536, packed.length || 1]) {
        if (pieceSize === 1 && packed.length > 200_000) continue
        assert.ok((await viaStream(codec, packed, pieceSize)).equals(data), `${what}: stream in pieces of ${pieceSize}`)
        assert.ok(viaChunkDecoder(codec, packed, pieceSize).equals(data), `${what}: chunk decoder in pieces of ${pieceSize}`)
      }
      assert.ok(codec.decompressSync!(packed).equals(data), `${what}: whole buffer`)
    }
  })

  test('decodes concatenated streams as one file, as bzip2 -d does', TIMEOUT, async () => {
    const first = sample.subarray(0, 500_000)
    const second = mixed(700_000, 9)
    const packed = Buffer.concat([bzip2(['-c'], first), bzip2(['-c', '-1'], second)])
    const expected = bzip2(['-d', '-c'], packed)
    assert.ok(expected.equals(Buffer.concat([first, second])))
    assert.ok((await viaStream(codec, packed, 10_000)).equals(expected))
    assert.ok(viaChunkDecoder(codec, packed, 333).equals(expected))
  })

  test('fails on empty, truncated, trailed, damaged or plain input with a format error', TIMEOUT, async () => {
    const packed = bzip2(['-c'], sample)
    await rejectsEverywhere(codec, Buffer.alloc(0), 'empty')
    for (const length of [1, 3, 4, 10, 1000, Math.floor(packed.length / 2), packed.length - 1]) {
      await rejectsEverywhere(codec, packed.subarray(0, length), `truncated to ${length}`)
    }
    await rejectsEverywhere(codec, Buffer.concat([packed, Buffer.from('junk')]), 'junk after the stream')
    await rejectsEverywhere(codec, Buffer.concat([packed, Buffer.from('BZ')]), 'a partial magic after the stream')
    await rejectsEverywhere(codec, sample.subarray(0, 100_000), 'plain data')
    // Bytes all over a smaller stream of two blocks (header, block headers, Huffman tables, data, CRCs) flipped whole:
    // bzip2 guards each block and the stream with CRCs, so none may decode quietly.
    const small = bzip2(['-c', '-1'], sample.subarray(0, 150_000))
    const step = Math.max(1, Math.floor(small.length / 120))
    for (let position = 0; position < small.length; position += step) {
      const damaged = Buffer.from(small)
      damaged[position] = damaged[position]! ^ 0xff
      await rejectsEverywhere(codec, damaged, `flip at ${position} of ${small.length}`)
    }
    const last = Buffer.from(packed)
    last[last.length - 1] = last[last.length - 1]! ^ 0xff
    await rejectsEverywhere(codec, last, 'flip of the last byte')
  })

  test('the repository readers report a damaged bz2 file as a checksum error naming it', TIMEOUT, async () => {
    const root = mkdtempSync(join(tmpdir(), 'walden-bz2-'))
    after(() => rmSync(root, { recursive: true, force: true }))
    const repo = posixStorage(root)
    const data = sample.subarray(0, 2_500_000)
    // pgBackRest records SHA-1 for its files; the readers pick the hash by the checksum's length.
    const sha1 = createHash('sha1').update(data).digest('hex')
    const packed = bzip2(['-c'], data)
    const path = 'pg_data/base/1/1259.bz2'
    await repo.write(path, packed)
    assert.ok((await storedFileRead(repo, path, sha1, 'file one')).equals(data))
    assert.deepEqual(await storedFileDigest(repo, path, 'file one', 'sha1'), { size: data.length, sha256: sha1 })
    const target = join(root, 'restored')
    assert.equal(storedFileCopyToFileSync(repo, path, sha1, 'file one', { path: target, flags: 'w', mode: 0o600, sync: false }), true)

    const damaged = Buffer.from(packed)
    damaged[Math.floor(damaged.length / 2)] ^= 0xff
    await repo.write(path, damaged)
    const namesFile = (error: unknown): boolean =>
      error instanceof WaldenError && error.kind === 'Checksum' && /^file one is damaged: bz2 data is corrupt/.test(error.message)
    await assert.rejects(storedFileRead(repo, path, sha1, 'file one'), namesFile)
    await assert.rejects(storedFileDigest(repo, path, 'file one', 'sha1'), namesFile)
    await assert.rejects(
      storedFileCopy(repo, path, sha1, 'file one', async () => new Writable({ write: (_chunk, _encoding, done) => done() })),
      namesFile,
    )
    assert.throws(() => storedFileCopyToFileSync(repo, path, sha1, 'file one', { path: target, flags: 'w', mode: 0o600, sync: false }), namesFile)
  })

  test('without the binding, bz2 is unavailable with a hint, not read as plain data', () => {
    hiddenEnginesForTest.add('libbz2')
    try {
      assert.equal(codecAvailable('bz2'), false)
      assert.throws(() => codecFromExtension('x/PG_VERSION.bz2'), (error: unknown) => {
        return error instanceof WaldenError && error.message === "compress-type 'bz2' is not available on this machine" && /npm run build/.test(error.hint ?? '')
      })
    } finally {
      hiddenEnginesForTest.clear()
    }
  })
})
