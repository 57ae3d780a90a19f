import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Transform, Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { FanOut } from './fan-out.js'
import { PosixStorage } from './posix.js'
import { streamInto } from './stream-into.js'

/** A destination that takes `limit` bytes and then fails, as a full disk does. */
function failingAfter(limit: number): Writable {
  let taken = 0
  return new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _encoding, done) {
      taken += chunk.length
      setImmediate(() => done(taken > limit ? Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }) : null))
    },
  })
}

/** Upper-cases what passes: a per-destination stage, as a repository's encryption is. */
const upper = (): Transform =>
  new Transform({
    transform(chunk: Buffer, _encoding, done) {
      done(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1'))
    },
  })

/** 4 MiB in 64 KiB chunks, enough to fill every buffer on the way several times. */
function source(fail?: Error): Readable {
  let sent = 0
  return new Readable({
    read() {
      if (sent === 64) {
        if (fail) this.destroy(fail)
        else this.push(null)
        return
      }
      sent++
      this.push(Buffer.alloc(64 * 1024, 'abcd'))
    },
  })
}

describe('FanOut', () => {
  let root: string
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'walden-fan-out-'))
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  test('every destination gets the whole stream through its own stages; one that fails is dropped, the others finish', async () => {
    const storage = new PosixStorage(join(root, 'a'))
    const fanOut = new FanOut([
      { transforms: [], writer: await storage.openWrite('plain') },
      { transforms: [], writer: failingAfter(300 * 1024) },
      { transforms: [upper()], writer: await storage.openWrite('upper') },
    ])
    await streamInto(source(), [], fanOut)
    const outcomes = await fanOut.outcomes()
    assert.equal(outcomes[0], undefined)
    assert.match(String(outcomes[1]), /no space left on device/)
    assert.equal(outcomes[2], undefined)
    const plain = await readFile(join(root, 'a', 'plain'))
    assert.equal(plain.length, 4 * 1024 * 1024)
    assert.ok(plain.equals(Buffer.alloc(4 * 1024 * 1024, 'abcd')))
    assert.ok((await readFile(join(root, 'a', 'upper'))).equals(Buffer.alloc(4 * 1024 * 1024, 'ABCD')))
  })

  test('when every destination fails, the stream fails with the first error', async () => {
    const fanOut = new FanOut([
      { transforms: [], writer: failingAfter(100 * 1024) },
      { transforms: [], writer: failingAfter(200 * 1024) },
    ])
    await assert.rejects(streamInto(source(), [], fanOut), /no space left on device/)
    const outcomes = await fanOut.outcomes()
    assert.ok(outcomes.every((outcome) => outcome !== undefined))
  })

  test('a failing source commits nothing anywhere: each writer removes its partial file', async () => {
    const storage = new PosixStorage(join(root, 'b'))
    const fanOut = new FanOut([
      { transforms: [], writer: await storage.openWrite('one') },
      { transforms: [upper()], writer: await storage.openWrite('two') },
    ])
    await assert.rejects(streamInto(source(new Error('read error')), [], fanOut), /read error/)
    const outcomes = await fanOut.outcomes()
    assert.ok(outcomes.every((outcome) => outcome !== undefined))
    assert.deepEqual(await readdir(join(root, 'b')), [])
  })
})
