import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CreditGate,
  creditDecode,
  creditEncode,
  FRAME_HEADER_BYTES,
  FRAME_PAYLOAD_MAX,
  FrameDecoder,
  FrameError,
  frameEncode,
  frameEncodeJson,
  frameHeader,
  FrameType,
  jsonDecode,
} from './framing.js'

describe('FrameDecoder', () => {
  test('frames cut at every byte boundary come out whole and in order', () => {
    const stream = Buffer.concat([
      frameEncodeJson(FrameType.Hello, 0, { walden: '0.1.0', protocol: 1 }),
      frameEncode(FrameType.Data, 7, Buffer.from('abcdefgh')),
      frameEncode(FrameType.End, 7),
      creditEncode(7, 123456),
    ])
    for (let cut = 1; cut < stream.length; cut++) {
      const decoder = new FrameDecoder()
      const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))]
      assert.equal(frames.length, 4, `cut at ${cut}`)
      assert.deepEqual(jsonDecode(frames[0]!.payload), { walden: '0.1.0', protocol: 1 })
      assert.equal(frames[1]!.type, FrameType.Data)
      assert.equal(frames[1]!.channel, 7)
      assert.equal(frames[1]!.payload.toString(), 'abcdefgh')
      assert.equal(frames[2]!.type, FrameType.End)
      assert.equal(frames[2]!.payload.length, 0)
      assert.equal(creditDecode(frames[3]!.payload), 123456)
      assert.equal(decoder.pending, 0)
    }
  })

  test('a stream fed one byte at a time holds the part of a frame not yet whole', () => {
    const decoder = new FrameDecoder()
    const frame = frameEncode(FrameType.Data, 1, Buffer.alloc(100, 1))
    for (let index = 0; index < frame.length - 1; index++) assert.deepEqual(decoder.push(frame.subarray(index, index + 1)), [])
    assert.equal(decoder.pending, frame.length - 1)
    const [last] = decoder.push(frame.subarray(frame.length - 1))
    assert.deepEqual(last!.payload, Buffer.alloc(100, 1))
  })

  test('a header and its data sent apart (as sendData writes them) decode as one frame', () => {
    const data = Buffer.from('payload bytes')
    const decoder = new FrameDecoder()
    assert.deepEqual(decoder.push(frameHeader(FrameType.Data, 3, data.length)), [])
    const [frame] = decoder.push(data)
    assert.equal(frame!.channel, 3)
    assert.equal(frame!.payload.toString(), 'payload bytes')
  })

  test('text a login script prints before walden starts is a protocol error naming what came', () => {
    const decoder = new FrameDecoder()
    assert.throws(() => decoder.push(Buffer.from('Welcome to backup1!\n')), (error: unknown) => {
      assert.ok(error instanceof FrameError)
      assert.equal(error.message, "unknown frame type 0x57 ('Welcome t')")
      return true
    })
  })

  test('a length beyond the limit is refused before anything is buffered for it', () => {
    const header = frameHeader(FrameType.Request, 1, FRAME_PAYLOAD_MAX + 1)
    assert.throws(() => new FrameDecoder().push(header), /frame payload of 4194305 bytes exceeds 4194304/)
    assert.throws(() => frameEncode(FrameType.Data, 1, Buffer.alloc(FRAME_PAYLOAD_MAX + 1)), RangeError)
  })

  test('a control frame that is not JSON is a protocol error', () => {
    const [frame] = new FrameDecoder().push(frameEncode(FrameType.Request, 1, Buffer.from('{not json')))
    assert.throws(() => jsonDecode(frame!.payload), /control frame is not JSON: '\{not json'/)
  })

  test('header layout: type, channel and length in network byte order', () => {
    const header = frameHeader(FrameType.Credit, 0x01020304, 4)
    assert.equal(header.length, FRAME_HEADER_BYTES)
    assert.deepEqual([...header], [0x41, 1, 2, 3, 4, 0, 0, 0, 4])
  })
})

describe('CreditGate', () => {
  test('a sender takes at most the credit it has and waits for more', async () => {
    const gate = new CreditGate(10)
    assert.equal(await gate.take(4), 4)
    assert.equal(await gate.take(100), 6)
    let granted: number | undefined
    const waiting = gate.take(5).then((bytes) => (granted = bytes))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(granted, undefined, 'no credit: the sender waits')
    gate.grant(3)
    assert.equal(await waiting, 3)
    assert.equal(gate.available, 0)
  })

  test('the gate tells when a sender starts and stops waiting (protocol-timeout runs meanwhile)', async () => {
    const events: boolean[] = []
    const gate = new CreditGate(1, (waiting) => events.push(waiting))
    await gate.take(1)
    assert.deepEqual(events, [], 'credit at hand: no wait')
    const waiting = gate.take(1)
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(events, [true])
    gate.grant(1)
    await waiting
    assert.deepEqual(events, [true, false])
  })

  test('closing the gate wakes a waiting sender with the error', async () => {
    const gate = new CreditGate(0)
    const waiting = gate.take(1)
    gate.close(new Error('session lost'))
    await assert.rejects(waiting, /session lost/)
    await assert.rejects(gate.take(1), /session lost/)
  })
})
