import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable, type Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, describe, test } from 'node:test'
import * as zlib from 'node:zlib'
import { WaldenError } from '../common/errors.js'
import {
  type Codec,
  type CompressEngine,
  type CompressType,
  type StoredCompressType,
  codecAvailable,
  codecFor,
  codecFromExtension,
  hiddenEnginesForTest,
} from './compress.js'
import { LZ4_BLOCK_SIZE } from './lz4-frame.js'
import { xxh32 } from './xxhash32.js'

const MiB = 1024 * 1024
const TIMEOUT = { timeout: 120_000 } // a hang is a failure, not a stuck run

// --- helpers ----------------------------------------------------------------------------------------------------

/** Deterministic pseudo-random numbers (xorshift32), so a failure reproduces. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

/** Runs of random bytes, repeated bytes, repeated text and database-like rows, in random order and lengths. */
function mixedData(size: number, seed = 7): Buffer {
  const next = random(seed)
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  let id = 1
  while (pos < size) {
    const length = Math.min(size - pos, 1 + (next() % 300_000))
    const kind = next() % 4
    if (kind === 0) {
      for (let i = 0; i < length; i++) out[pos + i] = next() & 0xff
    } else if (kind === 1) {
      out.fill(next() & 0xff, pos, pos + length)
    } else if (kind === 2) {
      out.fill(`walden ${next() % 1000} repeats itself; `, pos, pos + length)
    } else {
      let end = pos
      while (end < pos + length) {
        const row = `${id++}|${next() % 5000}|2024-06-${10 + (next() % 20)}|${['paid', 'shipped', 'open'][next() % 3]}|${next() % 100000}\n`
        end += out.write(row, end, pos + length - end)
      }
    }
    pos += length
  }
  return out
}

/** Splits a buffer at random points, empty pieces included. */
function* randomPieces(data: Buffer, seed: number, maxPiece: number): Generator<Buffer> {
  const next = random(seed)
  let offset = 0
  while (offset < data.length) {
    const size = next() % 17 === 0 ? 0 : 1 + (next() % maxPiece)
    yield data.subarray(offset, offset + size)
    offset += size
  }
}

function* fixedPieces(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size)
}

/** Writes the pieces through the transform and collects what comes out. */
async function through(transform: Transform, pieces: Iterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = []
  await pipeline(
    Readable.from(pieces),
    transform,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk)
        callback()
      },
    }),
  )
  return Buffer.concat(out)
}

const compress = (codec: Codec, data: Buffer, pieceSize = 65_536): Promise<Buffer> =>
  through(codec.compress(), fixedPieces(data, pieceSize))
const decompress = (codec: Codec, data: Buffer, pieceSize = 65_536): Promise<Buffer> =>
  through(codec.decompress(), fixedPieces(data, pieceSize))

/** Expects a promise to fail with a walden 'Format' error. */
async function rejectsFormat(promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof WaldenError, `${what}: expected a WaldenError, got ${String(error)}`)
    assert.equal(error.kind, 'Format', `${what}: ${error.message}`)
    return true
  })
}

function withHidden<T>(engines: CompressEngine[], run: () => T): T {
  for (const engine of engines) hiddenEnginesForTest.add(engine)
  try {
    return run()
  } finally {
    hiddenEnginesForTest.clear()
  }
}

function hasCli(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0
}

function cli(command: string, args: string[], input?: Buffer): Buffer {
  const result = spawnSync(command, args, { input: input ?? Buffer.alloc(0), maxBuffer: 1 << 30 })
  assert.equal(result.status, 0, `${command} ${args.join(' ')}: ${result.stderr?.toString()}`)
  return result.stdout
}

// Every implementation that can run here: zst twice when Node has a built-in zstd next to zstd-napi.
interface Variant {
  name: string
  type: CompressType
  hide: CompressEngine[]
  engine?: string
}

const VARIANTS: Variant[] = [
  { name: 'none', type: 'none', hide: [] },
  { name: 'gz', type: 'gz', hide: [] },
  { name: 'zst via zstd-napi', type: 'zst', hide: ['node-zstd'], engine: 'zstd-napi' },
  { name: 'zst via node:zlib', type: 'zst', hide: ['zstd-napi'], engine: 'node:zlib' },
  { name: 'lz4 via liblz4', type: 'lz4', hide: [], engine: 'liblz4' },
  { name: 'lz4 via lz4-napi', type: 'lz4', hide: ['liblz4'], engine: 'lz4-napi' },
]

function codecOf(variant: Variant): Codec | undefined {
  try {
    const codec = withHidden(variant.hide, () => codecFor(variant.type))
    return variant.engine === undefined || codec.engine === variant.engine ? codec : undefined
  } catch {
    return undefined
  }
}

const CLI_FOR: Partial<Record<StoredCompressType, string>> = { gz: 'gzip', zst: 'zstd', lz4: 'lz4' }

const work = mkdtempSync(join(tmpdir(), 'walden-compress-'))
after(() => rmSync(work, { recursive: true, force: true }))

// --- round trips and damage, per implementation -----------------------------------------------------------------

for (const variant of VARIANTS) {
  const codec = codecOf(variant)
  const skip = codec ? false : `${variant.name} is not available on this machine`

  describe(variant.name, { skip }, () => {
    const c = codec as Codec
    const sample = mixedData(3 * MiB + 12_345, 11)

    for (const [label, size] of [
      ['empty input', 0],
      ['1 byte', 1],
      ['exactly one chunk', LZ4_BLOCK_SIZE],
      ['one chunk plus one byte', LZ4_BLOCK_SIZE + 1],
    ] as const) {
      test(`round-trips ${label}`, TIMEOUT, async () => {
        const data = mixedData(size, size + 1)
        const packed = await compress(c, data)
        if (c.type !== 'none') assert.ok(packed.length > 0, 'even empty input makes a non-empty compressed file')
        assert.deepEqual(await decompress(c, packed), data)
      })
    }

    // Only engines that have it (liblz4, zstd-napi). lz4 writes the very bytes of its stream; zstd, given the whole
    // chunk at once, also records its size in the frame.
    if (codec?.compressInto) test('compressInto writes a frame the decoders read, into one reused buffer', TIMEOUT, async () => {
      const noise = randomBytesSeeded(LZ4_BLOCK_SIZE + 5, 8)
      const inputs = [mixedData(1, 1), mixedData(100, 2), mixedData(LZ4_BLOCK_SIZE, 3), noise, randomBytesSeeded(1000, 9), Buffer.concat([noise.subarray(0, 1000), mixedData(LZ4_BLOCK_SIZE, 7)])]
      const out = Buffer.alloc(c.compressBound!(LZ4_BLOCK_SIZE + 1000))
      for (const data of inputs) {
        assert.ok(c.compressBound!(data.length) <= out.length)
        out.fill(0xee)
        const length = c.compressInto!(data, c.defaultLevel, out)
        if (c.type === 'lz4') assert.ok(out.subarray(0, length).equals(await compress(c, data)), `${data.length} bytes`)
        assert.ok((await decompress(c, out.subarray(0, length))).equals(data), `${data.length} bytes`)
        assert.ok(c.decompressSync!(out.subarray(0, length)).equals(data), `${data.length} bytes, decompressSync`)
      }
    })

    test('round-trips many chunks written and read in random pieces', TIMEOUT, async () => {
      for (const seed of [1, 2, 3]) {
        const packed = await through(c.compress(), randomPieces(sample, seed, 70_000 * seed))
        const back = await through(c.decompress(), randomPieces(packed, seed + 10, 9_000 * seed))
        assert.ok(back.equals(sample), `seed ${seed}`)
      }
      // Byte by byte over the start of a stream: every header field split across writes.
      const small = mixedData(200_000, 5)
      const packed = await through(c.compress(), randomPieces(small, 4, 3))
      assert.ok((await through(c.decompress(), fixedPieces(packed, 1))).equals(small))
    })

    test('round-trips 40 MiB of mixed data', TIMEOUT, async () => {
      const data = mixedData(40 * MiB, 3)
      const packed = await compress(c, data, 333_331)
      if (c.type !== 'none') assert.ok(packed.length < data.length, 'mixed data compresses')
      assert.ok((await decompress(c, packed, 1_000_003)).equals(data))
    })

    if (c?.type === 'none') {
      test('passes chunks through without copying', async () => {
        const chunk = Buffer.from('unchanged')
        const out: Buffer[] = []
        await pipeline(
          Readable.from([chunk]),
          c.compress(),
          new Writable({
            write(piece: Buffer, _encoding, callback) {
              out.push(piece)
              callback()
            },
          }),
        )
        assert.equal(out[0], chunk)
      })
      return
    }

    test('keeps little decompressed data in memory while the reader is slow', TIMEOUT, async () => {
      const size = 64 * MiB
      const packed = await compress(c, Buffer.alloc(size))
      assert.ok(packed.length < MiB)
      const stream = c.decompress()
      stream.end(packed) // one chunk that expands 100 times or more
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
      assert.ok(stream.readableLength <= 8 * MiB, `${stream.readableLength} bytes waiting`)
      let total = 0
      for await (const chunk of stream) total += (chunk as Buffer).length
      assert.equal(total, size)
    })

    test('rejects empty and truncated input', TIMEOUT, async () => {
      const packed = await compress(c, sample)
      await rejectsFormat(decompress(c, Buffer.alloc(0)), 'empty')
      for (const length of [1, 3, 4, 7, 10, 100, packed.length >> 1, packed.length - 9, packed.length - 4, packed.length - 1]) {
        await rejectsFormat(decompress(c, packed.subarray(0, length), 10_007), `truncated to ${length}`)
      }
      const empty = await compress(c, Buffer.alloc(0))
      for (let length = 0; length < empty.length; length++) {
        await rejectsFormat(decompress(c, empty.subarray(0, length)), `empty stream truncated to ${length}`)
      }
    })

    test('rejects data after the end of the stream', TIMEOUT, async () => {
      const packed = await compress(c, sample)
      await rejectsFormat(decompress(c, Buffer.concat([packed, Buffer.from('junk')])), 'junk')
      await rejectsFormat(decompress(c, Buffer.concat([packed, Buffer.from([1])])), 'one byte')
    })

    // What walden writes as lz4 carries no content checksum (the file's SHA-256 is checked instead, see
    // src/repo/stored-file.test.ts), so a flipped literal there decodes to wrong data; frames with one are checked here.
    test('rejects bit flips or still returns exactly the original', TIMEOUT, async () => {
      const data = mixedData(2 * MiB, 9)
      const packed = c.type === 'lz4' ? withContentChecksum(await compress(c, data), data) : await compress(c, data)
      const next = random(99)
      const positions = new Set<number>()
      for (let i = 0; i < Math.min(32, packed.length); i++) positions.add(i)
      for (let i = Math.max(0, packed.length - 16); i < packed.length; i++) positions.add(i)
      while (positions.size < 160) positions.add(next() % packed.length)
      let rejected = 0
      let middle = 0
      let middleRejected = 0
      for (const position of positions) {
        const damaged = Buffer.from(packed)
        damaged[position] = (damaged[position] as number) ^ (1 << (next() % 8))
        const isMiddle = position >= 32 && position < packed.length - 16
        if (isMiddle) middle++
        try {
          const back = await decompress(c, damaged)
          // Some header bits are not covered by any check (gzip's mtime, say); then the data must still be intact.
          assert.ok(back.equals(data), `flip at ${position} of ${packed.length} returned wrong data without an error`)
        } catch (error) {
          assert.ok(error instanceof WaldenError && error.kind === 'Format', `flip at ${position}: ${String(error)}`)
          rejected++
          if (isMiddle) middleRejected++
        }
      }
      assert.ok(middleRejected >= middle * 0.95, `only ${middleRejected} of ${middle} flips in the payload were caught`)
      assert.ok(rejected > 0)
    })

    test('rejects input that is not compressed at all', TIMEOUT, async () => {
      await rejectsFormat(decompress(c, sample.subarray(0, 100_000)), 'plain data')
    })

    const command = CLI_FOR[c?.type ?? 'none']
    describe('interoperates with the command-line tool', { skip: command && hasCli(command) ? false : `${command} is not installed` }, () => {
      const tool = command as string

      test('the tool decompresses our output', TIMEOUT, async () => {
        for (const data of [Buffer.alloc(0), Buffer.from('x'), sample, mixedData(9 * MiB + 3, 21)]) {
          const packed = await compress(c, data)
          assert.ok(cli(tool, ['-d', '-c'], packed).equals(data), `${data.length} bytes`)
        }
      })

      test('we decompress the tool output', TIMEOUT, async () => {
        const file = join(work, `${variant.name.replace(/\W/g, '-')}.in`)
        const data = mixedData(5 * MiB + 77, 33)
        writeFileSync(file, data)
        const flagSets: Partial<Record<StoredCompressType, string[][]>> = {
          none: [],
          gz: [[], ['-1'], ['-9']],
          zst: [[], ['-1'], ['-19'], ['--no-check'], ['--no-check', '-T2']],
          // Default (4 MiB independent blocks, content checksum); linked 64 KiB blocks; block checksums and content
          // size; no content checksum; high compression.
          lz4: [[], ['-BD', '-B4'], ['-BX', '-B5', '--content-size'], ['--no-frame-crc', '-B6'], ['-9', '-BD']],
        }
        for (const flags of flagSets[c.type] ?? []) {
          const packed = cli(tool, [...flags, '-c', file])
          assert.ok((await decompress(c, packed, 50_001)).equals(data), `${tool} ${flags.join(' ')}`)
        }
        // Empty input from the tool.
        const emptyFile = join(work, 'empty.in')
        writeFileSync(emptyFile, '')
        assert.equal((await decompress(c, cli(tool, ['-c', emptyFile]))).length, 0)
      })

      test('concatenated streams', TIMEOUT, async () => {
        const first = mixedData(700_000, 41)
        const second = mixedData(300_000, 42)
        const joined = Buffer.concat([cli(tool, ['-c'], first), cli(tool, ['-c'], second)])
        // A trailing stream without data (an empty gzip member, zstd or LZ4 frame) changes nothing.
        const withEmpty = Buffer.concat([cli(tool, ['-c'], first), cli(tool, ['-c'], Buffer.alloc(0))])
        assert.ok((await decompress(c, withEmpty, 1000)).equals(first))
        if (c.engine === 'node:zlib' && c.type === 'zst') {
          // Node's zstd decoder cannot be trusted past the first frame, so a second one is refused.
          await rejectsFormat(decompress(c, joined), 'two frames')
        } else {
          assert.ok((await decompress(c, joined)).equals(Buffer.concat([first, second])))
        }
      })
    })
  })
}

for (const type of ['zst', 'lz4'] as const) {
  const engines = VARIANTS.filter((variant) => variant.type === type)
  test(`the ${type} engines read each other`, { skip: engines.every((v) => codecOf(v)) ? false : `only one ${type} engine here` }, async () => {
    const [first, second] = engines.map((variant) => codecOf(variant) as Codec)
    const data = mixedData(3 * MiB, 17)
    for (const [writer, reader] of [[first, second], [second, first]] as [Codec, Codec][]) {
      for (const size of [0, 1, data.length]) {
        const packed = await through(writer.compress(), randomPieces(data.subarray(0, size), size, 100_000))
        assert.ok((await decompress(reader, packed)).equals(data.subarray(0, size)), `${writer.engine} -> ${reader.engine}`)
      }
    }
  })
}

// --- lz4 specifics ----------------------------------------------------------------------------------------------

function randomBytesSeeded(size: number, seed: number): Buffer {
  const next = random(seed)
  const data = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) data[i] = next() & 0xff
  return data
}

/** Our frame (which has no content checksum) as another writer would make it: with one. */
function withContentChecksum(frame: Buffer, content: Buffer): Buffer {
  const copy = Buffer.from(frame)
  copy[4] = copy[4]! | 0x04
  copy[6] = (xxh32(copy.subarray(4, 6)) >>> 8) & 0xff
  const checksum = Buffer.alloc(4)
  checksum.writeUInt32LE(xxh32(content), 0)
  return Buffer.concat([copy, checksum])
}

describe('lz4 frames', { skip: codecAvailable('lz4') ? false : 'lz4-napi is not installed' }, () => {
  test('writes one frame of 1 MiB independent blocks without a content checksum', async () => {
    const codec = codecFor('lz4')
    const packed = await compress(codec, mixedData(3 * MiB, 5))
    assert.equal(packed.readUInt32LE(0), 0x184d2204)
    assert.equal(packed[4], 0x60) // version 01, independent blocks, no block or content checksum
    assert.equal(packed[5], 0x60) // 1 MiB blocks
    assert.equal(packed[6], (xxh32(packed.subarray(4, 6)) >>> 8) & 0xff) // header checksum
    assert.equal(packed.readUInt32LE(packed.length - 4), 0, 'the frame ends with the end mark')
  })

  test('compressInto builds the very frame the stream writes, in a buffer it reuses', { skip: codecFor('lz4').compressInto ? false : 'only with walden\'s liblz4 binding' }, async () => {
    const codec = codecFor('lz4')
    const noise = randomBytesSeeded(LZ4_BLOCK_SIZE + 5, 4)
    const out = Buffer.alloc(codec.compressBound!(3 * LZ4_BLOCK_SIZE))
    for (const data of [Buffer.alloc(0), mixedData(100, 2), mixedData(LZ4_BLOCK_SIZE, 3), mixedData(3 * LZ4_BLOCK_SIZE, 6), noise, Buffer.concat([noise.subarray(0, 1000), mixedData(LZ4_BLOCK_SIZE, 7)])]) {
      out.fill(0xee)
      const length = codec.compressInto!(data, 1, out)
      assert.ok(out.subarray(0, length).equals(await compress(codec, data)), `${data.length} bytes`)
      assert.ok((await decompress(codec, out.subarray(0, length))).equals(data))
    }
    assert.throws(() => codec.compressInto!(mixedData(10, 1), 13, out), /compress-level/)
  })

  test('compressIntoAsync builds the same frame on the thread pool, several at once', { skip: codecFor('lz4').compressIntoAsync ? false : 'only with walden\'s liblz4 binding' }, async () => {
    const codec = codecFor('lz4')
    const noise = randomBytesSeeded(LZ4_BLOCK_SIZE + 5, 4)
    const inputs = [Buffer.alloc(0), mixedData(100, 2), mixedData(LZ4_BLOCK_SIZE, 3), mixedData(3 * LZ4_BLOCK_SIZE, 6), noise, Buffer.concat([noise.subarray(0, 1000), mixedData(LZ4_BLOCK_SIZE, 7)])]
    const outs = inputs.map((data) => Buffer.alloc(codec.compressBound!(data.length)).fill(0xee))
    // All in flight together, as archive-push keeps two: each into its own buffer.
    const lengths = await Promise.all(inputs.map((data, i) => codec.compressIntoAsync!(data, 1, outs[i]!)))
    for (const [i, data] of inputs.entries()) {
      const frame = outs[i]!.subarray(0, lengths[i])
      assert.ok(frame.equals(await compress(codec, data)), `${data.length} bytes`)
      assert.ok((await decompress(codec, frame)).equals(data))
    }
    assert.throws(() => codec.compressIntoAsync!(mixedData(10, 1), 13, outs[0]!), /compress-level/)
  })

  test('stores incompressible blocks as they are', async () => {
    const codec = codecFor('lz4')
    const noise = Buffer.allocUnsafe(LZ4_BLOCK_SIZE + 10)
    const next = random(3)
    for (let i = 0; i < noise.length; i++) noise[i] = next() & 0xff
    const packed = await compress(codec, noise)
    assert.ok(packed.length < noise.length + 64)
    assert.equal(packed.readUInt32LE(7) >>> 31, 1, 'the first block is flagged uncompressed')
    assert.ok((await decompress(codec, packed)).equals(noise))
  })

  test('a caller that verifies the content itself skips the content checksum, and still reads frame after frame', async () => {
    const codec = codecFor('lz4')
    const data = mixedData(2 * MiB + 123, 21)
    const frame = withContentChecksum(await compress(codec, data), data)
    assert.ok((await decompress(codec, frame)).equals(data), 'the checksum added here is right')
    const damaged = Buffer.from(frame)
    damaged[damaged.length - 1]! ^= 0xff // the content checksum is the frame's last 4 bytes
    const twice = Buffer.concat([damaged, frame])
    await assert.rejects(through(codec.decompress(), [damaged]), /content checksum mismatch/)
    assert.ok((await through(codec.decompress({ verifiedByCaller: true }), [twice])).equals(Buffer.concat([data, data])))
    assert.ok(codec.decompressSync!(twice, { verifiedByCaller: true }).equals(Buffer.concat([data, data])))
    assert.throws(() => codec.decompressSync!(damaged), /content checksum mismatch/)
  })

  test('skips skippable frames', async () => {
    const codec = codecFor('lz4')
    const data = mixedData(100_000, 8)
    const skippable = Buffer.alloc(8 + 5)
    skippable.writeUInt32LE(0x184d2a57, 0)
    skippable.writeUInt32LE(5, 4)
    const packed = Buffer.concat([skippable, await compress(codec, data), skippable])
    assert.ok((await decompress(codec, packed, 3)).equals(data))
  })

  test('refuses the legacy format with a hint', { skip: hasCli('lz4') ? false : 'lz4 is not installed' }, async () => {
    const legacy = cli('lz4', ['-l', '-c'], mixedData(10_000, 1))
    await assert.rejects(decompress(codecFor('lz4'), legacy), (error: unknown) => {
      assert.ok(error instanceof WaldenError && error.kind === 'Format' && error.hint !== undefined)
      assert.match(error.message, /legacy/)
      return true
    })
  })

  test('refuses blocks larger than the frame allows', async () => {
    const codec = codecFor('lz4')
    const packed = Buffer.from(await compress(codec, Buffer.from('hello')))
    packed.writeUInt32LE(LZ4_BLOCK_SIZE + 1, 7)
    await rejectsFormat(decompress(codec, packed), 'oversized block')
  })
})

// --- selection, availability, levels ----------------------------------------------------------------------------

describe('codec registry', () => {
  test('describes each codec', () => {
    assert.deepEqual(
      (['none', 'gz'] as const).map((type) => {
        const { extension, defaultLevel, levelRange, engine } = codecFor(type)
        return { extension, defaultLevel, levelRange, engine }
      }),
      [
        { extension: '', defaultLevel: 0, levelRange: [0, 0], engine: '' },
        { extension: '.gz', defaultLevel: 6, levelRange: [0, 9], engine: 'node:zlib' },
      ],
    )
    if (codecAvailable('zst')) {
      const zst = codecFor('zst')
      assert.deepEqual([zst.extension, zst.defaultLevel, zst.levelRange], ['.zst', 3, [1, 19]])
    }
    if (codecAvailable('lz4')) {
      const lz4 = codecFor('lz4')
      assert.deepEqual([lz4.extension, lz4.defaultLevel, lz4.levelRange], ['.lz4', 1, [1, 1]])
    }
  })

  test('picks the codec from the file name', () => {
    assert.equal(codecFromExtension('000000010000000000000001').type, 'none')
    assert.equal(codecFromExtension('000000010000000000000002.00000028.backup').type, 'none')
    assert.equal(codecFromExtension('pg_data/base/1/1259.gz').type, 'gz')
    assert.equal(codecFromExtension('pg_data/PG_VERSION.gz.tmp').type, 'none')
    assert.equal(codecFromExtension('archive/0000000100000000000000A1-8f1c2e.gz').type, 'gz')
    if (codecAvailable('zst')) assert.equal(codecFromExtension('x/000000010000000000000001.zst').type, 'zst')
    if (codecAvailable('lz4')) assert.equal(codecFromExtension('base/5/16384.lz4').type, 'lz4')
    if (codecAvailable('bz2')) assert.equal(codecFromExtension('base/5/16384.bz2').type, 'bz2')
  })

  test('none and gz are always available', () => {
    withHidden(['node-zstd', 'zstd-napi', 'liblz4', 'lz4-napi'], () => {
      assert.equal(codecAvailable('none'), true)
      assert.equal(codecAvailable('gz'), true)
    })
  })

  test('lz4 prefers walden\'s liblz4 binding, falls back to lz4-napi, and fails clearly without either', () => {
    if (codecOf(VARIANTS.find((v) => v.engine === 'liblz4')!)) assert.equal(codecFor('lz4').engine, 'liblz4')
    withHidden(['liblz4', 'lz4-napi'], () => {
      assert.equal(codecAvailable('lz4'), false)
      for (const attempt of [() => codecFor('lz4'), () => codecFromExtension('base/1/2.lz4')]) {
        assert.throws(attempt, (error: unknown) => {
          assert.ok(error instanceof WaldenError)
          assert.equal(error.kind, 'OptionInvalidValue')
          assert.equal(error.message, "compress-type 'lz4' is not available on this machine")
          assert.match(error.hint ?? '', /'lz4-napi'/)
          return true
        })
      }
    })
  })

  test('zst prefers zstd-napi, falls back to built-in zstd, and fails clearly without either', () => {
    const builtin = typeof (zlib as unknown as { createZstdCompress?: unknown }).createZstdCompress === 'function'
    if (codecOf(VARIANTS[2] as Variant)) assert.equal(codecFor('zst').engine, 'zstd-napi')
    withHidden(['zstd-napi'], () => {
      assert.equal(codecAvailable('zst'), builtin)
      if (builtin) assert.equal(codecFor('zst').engine, 'node:zlib')
    })
    withHidden(['node-zstd', 'zstd-napi'], () => {
      assert.equal(codecAvailable('zst'), false)
      assert.throws(() => codecFor('zst'), (error: unknown) => {
        assert.ok(error instanceof WaldenError && error.kind === 'OptionInvalidValue')
        assert.equal(error.message, "compress-type 'zst' is not available on this machine")
        assert.match(error.hint ?? '', /'zstd-napi'/)
        return true
      })
    })
  })

  test('checks levels against each codec', async () => {
    const invalid = (run: () => unknown): void =>
      assert.throws(run, (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue')
    invalid(() => codecFor('gz').compress(10))
    invalid(() => codecFor('gz').compress(-1))
    invalid(() => codecFor('gz').compress(2.5))
    if (codecAvailable('zst')) {
      invalid(() => codecFor('zst').compress(0))
      invalid(() => codecFor('zst').compress(20))
    }
    if (codecAvailable('lz4')) invalid(() => codecFor('lz4').compress(2))
    // Level is meaningless for none and accepted as is.
    codecFor('none').compress(9)
    const data = mixedData(300_000, 2)
    for (const level of [0, 1, 9]) {
      assert.ok((await decompress(codecFor('gz'), await through(codecFor('gz').compress(level), [data]))).equals(data))
    }
    if (codecAvailable('zst')) {
      const zst = codecFor('zst')
      const fast = await through(zst.compress(1), [data])
      const strong = await through(zst.compress(19), [data])
      assert.ok(strong.length < fast.length)
      assert.ok((await decompress(zst, strong)).equals(data))
    }
  })

  test('an unknown type is an error', () => {
    assert.throws(() => codecFor('xz' as CompressType), (error: unknown) => {
      return error instanceof WaldenError && error.kind === 'OptionInvalidValue'
    })
    assert.equal(codecAvailable('xz' as CompressType), false)
  })
})
