import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { ZstdFrameGuard } from './zstd-stream.js'

// The guard protects Node's built-in zstd decoder, which this Node may not have, so it is tested on its own here
// against frames the zstd CLI writes.

const hasZstd = spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0
const work = mkdtempSync(join(tmpdir(), 'walden-zstd-guard-'))
after(() => rmSync(work, { recursive: true, force: true }))

function zstd(args: string[], input: Buffer): Buffer {
  const file = join(work, 'in')
  writeFileSync(file, input)
  const result = spawnSync('zstd', [...args, '-c', file], { maxBuffer: 1 << 30 })
  assert.equal(result.status, 0, result.stderr.toString())
  return result.stdout
}

function check(data: Buffer, pieceSize: number): void {
  const guard = new ZstdFrameGuard()
  for (let offset = 0; offset < data.length; offset += pieceSize) guard.update(data.subarray(offset, offset + pieceSize))
  guard.finish()
}

const isFormat = (error: unknown): boolean => error instanceof WaldenError && error.kind === 'Format'

function sample(): Buffer {
  const text = Buffer.from('row 1|walden|2024-06-01|paid\n'.repeat(20_000))
  const noise = Buffer.alloc(300_000)
  let x = 1
  for (let i = 0; i < noise.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    noise[i] = x >>> 24
  }
  // Compressed, raw (noise) and RLE (zeros) blocks.
  return Buffer.concat([text, noise, Buffer.alloc(500_000), text])
}

describe('zstd frame guard', { skip: hasZstd ? false : 'zstd is not installed' }, () => {
  const data = sample()

  test('accepts single frames however they are split', () => {
    for (const flags of [[], ['--no-check'], ['-19'], ['--no-content-size'], ['-1', '--long=24']]) {
      const packed = zstd(flags, data)
      for (const pieceSize of [1, 7, 4096, packed.length]) check(packed, pieceSize)
    }
    check(zstd([], Buffer.alloc(0)), 1)
  })

  test('accepts empty frames after the first', () => {
    const packed = Buffer.concat([zstd([], data), zstd([], Buffer.alloc(0)), zstd(['--no-check'], Buffer.alloc(0))])
    check(packed, 5)
  })

  test('rejects empty and truncated streams', () => {
    assert.throws(() => check(Buffer.alloc(0), 1), isFormat)
    const packed = zstd([], data)
    for (const length of [1, 4, 5, 6, 100, packed.length >> 1, packed.length - 4, packed.length - 1]) {
      assert.throws(() => check(packed.subarray(0, length), 333), isFormat, `length ${length}`)
    }
  })

  test('rejects a second frame with data, and anything not a frame', () => {
    const packed = zstd([], data)
    assert.throws(() => check(Buffer.concat([packed, zstd([], Buffer.from('more'))]), 1000), isFormat)
    assert.throws(() => check(Buffer.concat([packed, Buffer.from([0])]), 1000), isFormat)
    const skippable = Buffer.alloc(8)
    skippable.writeUInt32LE(0x184d2a50, 0)
    assert.throws(() => check(Buffer.concat([skippable, packed]), 1000), isFormat)
    assert.throws(() => check(Buffer.from('not zstd at all'), 1000), isFormat)
  })

  test('rejects reserved bits and block types', () => {
    const packed = Buffer.from(zstd(['--no-content-size'], Buffer.from('x')))
    const reservedBit = Buffer.from(packed)
    reservedBit[4] = (reservedBit[4] as number) | 0x08
    assert.throws(() => check(reservedBit, 1000), isFormat)
  })
})
