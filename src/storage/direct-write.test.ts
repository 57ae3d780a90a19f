import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, describe, test } from 'node:test'
import { alignedAllocUnsafe, alignmentForTest, alignmentKnown, DIRECT_ALIGNMENT, isAligned } from '../io/aligned.js'
import { nativeAddonPath } from '../io/native.js'
import { DirectWriter } from './direct-write.js'

const folder = mkdtempSync(join(tmpdir(), 'walden-direct-'))
after(() => rmSync(folder, { recursive: true, force: true }))
afterEach(() => {
  alignmentForTest.hidden = false
  alignmentForTest.claimAligned = false
})

const MiB = 1024 * 1024
const builtHere = nativeAddonPath('io') !== undefined && (constants as Record<string, number | undefined>).O_DIRECT !== undefined
const needsDirect = { skip: builtHere ? false : 'native/io is not built, or this platform has no O_DIRECT' }

/** Writes `content` through a DirectWriter in pieces of the given sizes, each copied into the kind of buffer given. */
function writeInPieces(path: string, content: Buffer, pieces: { size: number; aligned: boolean }[], target: { flags?: 'w' | 'r+'; position?: number } = {}): boolean {
  const writer = new DirectWriter({ path, flags: target.flags ?? 'w', mode: 0o600, position: target.position, direct: true })
  let usedDirect: boolean
  try {
    let offset = 0
    for (const piece of pieces) {
      const data = content.subarray(offset, offset + piece.size)
      // An aligned buffer as restore's decoder hands over, or one a byte past a boundary.
      const holder = piece.aligned ? alignedAllocUnsafe(data.length) : alignedAllocUnsafe(data.length + 1).subarray(1)
      data.copy(holder)
      writer.write(holder)
      holder.fill(0xee) // the writer must be done with it
      offset += piece.size
    }
    assert.equal(offset, content.length, 'the pieces cover the content')
    writer.sync()
    usedDirect = writer.direct
  } finally {
    writer.close()
  }
  return usedDirect
}

describe('aligned buffers', needsDirect, () => {
  test('start on a block boundary, and a slice one byte in does not', () => {
    for (const size of [1, 4096, MiB, MiB + 7]) {
      const buffer = alignedAllocUnsafe(size)
      assert.equal(buffer.length, size)
      assert.equal(isAligned(buffer), true)
      assert.equal(isAligned(buffer.subarray(1)), false)
      assert.equal(isAligned(buffer.subarray(DIRECT_ALIGNMENT)), size >= DIRECT_ALIGNMENT)
    }
  })
})

describe('DirectWriter', needsDirect, () => {
  test('a whole file from aligned blocks, unaligned pieces and an odd tail goes through O_DIRECT and reads back the same', () => {
    const content = randomBytes(3 * MiB + 12345)
    const path = join(folder, 'whole')
    const pieces = [
      { size: MiB, aligned: true },
      { size: 100, aligned: false }, // staged from here on
      { size: MiB - 100, aligned: true },
      { size: 8192, aligned: true },
      { size: MiB - 8192 + 12345, aligned: false }, // ends on an odd length: the tail goes through the ordinary descriptor
    ]
    assert.equal(writeInPieces(path, content, pieces), true, 'O_DIRECT was used throughout')
    assert.deepEqual(readFileSync(path), content)
  })

  test('a stretch written into an existing file at an aligned position leaves the rest alone', () => {
    const path = join(folder, 'part')
    const before = randomBytes(4 * MiB)
    writeFileSync(path, before)
    const part = randomBytes(MiB + 4096)
    assert.equal(writeInPieces(path, part, [{ size: part.length, aligned: true }], { flags: 'r+', position: 2 * MiB }), true)
    const expected = Buffer.concat([before.subarray(0, 2 * MiB), part, before.subarray(2 * MiB + part.length)])
    assert.deepEqual(readFileSync(path), expected)
  })

  test('an unaligned position, or no way to know alignment, writes through the page cache with the same result', () => {
    const content = randomBytes(MiB + 3)
    const unaligned = join(folder, 'unaligned')
    writeFileSync(unaligned, Buffer.alloc(MiB * 2))
    assert.equal(writeInPieces(unaligned, content, [{ size: content.length, aligned: true }], { flags: 'r+', position: 512 }), false)
    assert.deepEqual(readFileSync(unaligned).subarray(512, 512 + content.length), content)

    alignmentForTest.hidden = true
    assert.equal(alignmentKnown(), false)
    const hidden = join(folder, 'hidden')
    assert.equal(writeInPieces(hidden, content, [{ size: content.length, aligned: true }]), false)
    assert.deepEqual(readFileSync(hidden), content)
  })

  test('a write the kernel refuses (memory not aligned after all) falls back to ordinary writes without losing a byte', () => {
    const content = randomBytes(2 * MiB + 5)
    const path = join(folder, 'refused')
    alignmentForTest.claimAligned = true // every piece passes as aligned; the kernel knows better
    const usedDirect = writeInPieces(path, content, [
      { size: MiB, aligned: true },
      { size: MiB, aligned: false },
      { size: 5, aligned: true },
    ])
    assert.equal(usedDirect, false, 'the writer noticed the refusal and switched')
    assert.deepEqual(readFileSync(path), content)
  })

  test('a second writer opened while one is open does not share the staging buffer', () => {
    const first = new DirectWriter({ path: join(folder, 'first'), flags: 'w', mode: 0o600, direct: true })
    const second = new DirectWriter({ path: join(folder, 'second'), flags: 'w', mode: 0o600, direct: true })
    try {
      assert.equal(first.direct, true)
      assert.equal(second.direct, false)
    } finally {
      second.close()
      first.close()
    }
    const third = new DirectWriter({ path: join(folder, 'third'), flags: 'w', mode: 0o600, direct: true })
    assert.equal(third.direct, true, 'the staging buffer is free again once the first one closed')
    third.close()
  })
})
