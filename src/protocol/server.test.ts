// The server end driven frame by frame over in-process pipes, with a real posix storage in a temp folder: the
// handshake, the write guarantee (a file appears only on a clean end; an abort or a client gone mid-write leaves
// nothing), flow control of reads, and paths that would leave the repository.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { after, describe, test } from 'node:test'
import { PosixStorage } from '../storage/posix.js'
import { VERSION } from '../version.js'
import { ProducedReply, protocolServe, storageService } from './server.js'
import type { ProtocolService } from './server.js'
import { CREDIT_WINDOW, creditDecode, creditEncode, FRAME_DATA_MAX, FrameDecoder, frameEncode, frameEncodeJson, FrameType, jsonDecode, PROTOCOL_VERSION } from './framing.js'
import type { Frame } from './framing.js'

const folders: string[] = []
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true })
})

/**
 * A server on a fresh repository folder (or of `service`), and the client's side of its pipes. With `slowOutput`, the
 * server's output takes each write a millisecond later, as a pipe that is full does, so writes queue up in it.
 */
async function serve(options: { version?: string; service?: ProtocolService; slowOutput?: boolean } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'walden-protocol-'))
  folders.push(root)
  const toServer = new PassThrough()
  const frames: Frame[] = []
  const decoder = new FrameDecoder()
  let wake: (() => void) | undefined
  const receive = (chunk: Buffer): void => {
    frames.push(...decoder.push(chunk))
    wake?.()
  }
  let fromServer: Writable
  if (options.slowOutput) {
    // Copied when taken, as the kernel copies what is written to a pipe.
    fromServer = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        receive(Buffer.from(chunk))
        setTimeout(callback, 1)
      },
    })
  } else {
    const pipe = new PassThrough()
    pipe.on('data', receive)
    fromServer = pipe
  }
  const service = options.service ?? storageService(new PosixStorage(root))
  const done = protocolServe({ input: toServer, output: fromServer, service, ...(options.version ? { version: options.version } : {}) })
  const send = (frame: Buffer): void => void toServer.write(frame)
  /** Waits for the next frame matching `match`, removing it from the list. */
  const next = async (match: (frame: Frame) => boolean): Promise<Frame> => {
    for (;;) {
      const index = frames.findIndex(match)
      if (index >= 0) return frames.splice(index, 1)[0]!
      await new Promise<void>((resolve) => (wake = resolve))
    }
  }
  const answer = async (channel: number): Promise<Record<string, unknown>> =>
    jsonDecode((await next((frame) => frame.type === FrameType.Response && frame.channel === channel)).payload) as Record<string, unknown>
  const request = (channel: number, op: string, args: Record<string, unknown>): void => send(frameEncodeJson(FrameType.Request, channel, { op, args }))
  return { root, send, next, answer, request, frames, done, end: () => toServer.end() }
}

async function handshake(server: Awaited<ReturnType<typeof serve>>): Promise<Record<string, unknown>> {
  server.send(frameEncodeJson(FrameType.Hello, 0, { walden: VERSION, protocol: PROTOCOL_VERSION }))
  return jsonDecode((await server.next((frame) => frame.type === FrameType.Hello)).payload) as Record<string, unknown>
}

describe('protocolServe()', () => {
  test('the server states its version and repository, serves requests, and ends when the client closes', async () => {
    const server = await serve()
    const hello = await handshake(server)
    assert.deepEqual(hello, { walden: VERSION, protocol: PROTOCOL_VERSION, description: `'${server.root}'`, root: server.root })
    await writeFile(join(server.root, 'a.txt'), 'hello')
    server.request(1, 'list', { path: '' })
    assert.deepEqual(await server.answer(1), { result: ['a.txt'] })
    server.request(2, 'info', { path: 'missing' })
    assert.deepEqual(await server.answer(2), { result: null })
    server.request(3, 'openRead', { path: 'missing' })
    const missing = (await server.answer(3))['error'] as Record<string, string>
    assert.equal(missing['kind'], 'FileMissing')
    assert.equal(missing['message'], `unable to open missing file '${server.root}/missing' for read`)
    server.end()
    await server.done
  })

  test('a write appears under its name only after the client ends it, fsynced and renamed there', async () => {
    const server = await serve()
    await handshake(server)
    server.request(1, 'openWrite', { path: 'dir/file', options: { mode: 0o600 } })
    assert.deepEqual(await server.answer(1), { result: null })
    server.send(frameEncode(FrameType.Data, 1, Buffer.from('part one, ')))
    server.send(frameEncode(FrameType.Data, 1, Buffer.from('part two')))
    // Credit comes back as the bytes are written.
    const credit = await server.next((frame) => frame.type === FrameType.Credit && frame.channel === 1)
    assert.ok(creditDecode(credit.payload) > 0)
    const names = await readdir(join(server.root, 'dir'))
    assert.deepEqual(names.filter((name) => name === 'file'), [], 'not under its name before the end')
    server.send(frameEncode(FrameType.End, 1))
    assert.deepEqual(await server.answer(1), { result: null })
    assert.equal(await readFile(join(server.root, 'dir', 'file'), 'utf8'), 'part one, part two')
    assert.deepEqual(await readdir(join(server.root, 'dir')), ['file'])
    server.end()
    await server.done
  })

  test('a write sent whole at once (request, data, end) waits for its file to open, and a failed open takes its data with it', async () => {
    const server = await serve()
    await handshake(server)
    server.send(
      Buffer.concat([
        frameEncodeJson(FrameType.Request, 1, { op: 'openWrite', args: { path: 'deep/new/file' } }),
        frameEncode(FrameType.Data, 1, Buffer.from('all at once')),
        frameEncode(FrameType.End, 1),
      ]),
    )
    assert.deepEqual(await server.answer(1), { result: null }, 'the open')
    assert.deepEqual(await server.answer(1), { result: null }, 'the end')
    assert.equal(await readFile(join(server.root, 'deep', 'new', 'file'), 'utf8'), 'all at once')

    // A folder where the file should go: the open fails, and what followed it is dropped with it.
    server.send(
      Buffer.concat([
        frameEncodeJson(FrameType.Request, 2, { op: 'openWrite', args: { path: 'deep/new/file/below' } }),
        frameEncode(FrameType.Data, 2, Buffer.from('lost')),
        frameEncode(FrameType.End, 2),
      ]),
    )
    const failed = (await server.answer(2))['error'] as Record<string, string>
    assert.equal(failed['kind'], 'FileOpen')
    server.request(3, 'list', { path: 'deep/new' })
    assert.deepEqual(await server.answer(3), { result: ['file'] })
    assert.equal(server.frames.filter((frame) => frame.channel === 2).length, 0, 'no second answer for a write that never opened')
    server.end()
    await server.done
  })

  test('every stream carries its SHA-256: a write whose bytes do not match is not stored, a read says what it sent', async () => {
    const server = await serve()
    await handshake(server)
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex')
    server.request(1, 'openWrite', { path: 'good' })
    assert.deepEqual(await server.answer(1), { result: null })
    server.send(frameEncode(FrameType.Data, 1, Buffer.from('as sent')))
    server.send(frameEncodeJson(FrameType.End, 1, { sha256: sha('as sent') }))
    assert.deepEqual(await server.answer(1), { result: null })
    assert.equal(await readFile(join(server.root, 'good'), 'utf8'), 'as sent')

    // One byte changed on the way: the SHA-256 the client computed of what it sent no longer matches.
    server.request(2, 'openWrite', { path: 'altered' })
    assert.deepEqual(await server.answer(2), { result: null })
    server.send(frameEncode(FrameType.Data, 2, Buffer.from('as sEnt')))
    server.send(frameEncodeJson(FrameType.End, 2, { sha256: sha('as sent') }))
    const abort = jsonDecode((await server.next((frame) => frame.type === FrameType.Abort && frame.channel === 2)).payload) as { error: Record<string, string> }
    assert.equal(abort.error['kind'], 'Protocol')
    assert.match(abort.error['message']!, /do not match the SHA-256/)
    assert.deepEqual((await readdir(server.root)).sort(), ['good'], 'nothing under the altered name, no temporary file left')

    server.request(3, 'openRead', { path: 'good' })
    assert.deepEqual(await server.answer(3), { result: null })
    const data = await server.next((frame) => frame.type === FrameType.Data && frame.channel === 3)
    const end = jsonDecode((await server.next((frame) => frame.type === FrameType.End && frame.channel === 3)).payload) as { sha256: string }
    assert.equal(end.sha256, sha(data.payload.toString()))
    server.end()
    await server.done
  })

  test('an aborted write, and one cut off by the client going away, leave nothing behind', async () => {
    const server = await serve()
    await handshake(server)
    server.request(1, 'openWrite', { path: 'aborted' })
    await server.answer(1)
    server.send(frameEncode(FrameType.Data, 1, Buffer.alloc(1000, 7)))
    server.send(frameEncode(FrameType.Abort, 1))
    // The abort is answered only once the temporary file is gone, so the client can close its stream then.
    const acknowledged = jsonDecode((await server.next((frame) => frame.type === FrameType.Abort && frame.channel === 1)).payload)
    assert.deepEqual(acknowledged, { abandoned: true })
    assert.deepEqual(await readdir(server.root), [], 'nothing left of the aborted write when the abort is answered')
    server.request(2, 'openWrite', { path: 'cut-off' })
    await server.answer(2)
    server.send(frameEncode(FrameType.Data, 2, Buffer.alloc(1000, 7)))
    await server.next((frame) => frame.type === FrameType.Credit && frame.channel === 2)
    assert.equal((await readdir(server.root)).length, 1, 'the second write has its temporary file')
    server.end()
    await server.done
    assert.deepEqual(await readdir(server.root), [])
  })

  test('a read sends one window, then waits for credit', async () => {
    const server = await serve()
    await handshake(server)
    const size = CREDIT_WINDOW + 3 * FRAME_DATA_MAX
    await writeFile(join(server.root, 'big'), Buffer.alloc(size, 1))
    server.request(1, 'openRead', { path: 'big' })
    assert.deepEqual(await server.answer(1), { result: null })
    let received = 0
    while (received < CREDIT_WINDOW) received += (await server.next((frame) => frame.type === FrameType.Data)).payload.length
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(received, CREDIT_WINDOW)
    assert.equal(server.frames.filter((frame) => frame.type === FrameType.Data).length, 0, 'nothing past the window without credit')
    server.send(creditEncode(1, size - CREDIT_WINDOW))
    while (received < size) received += (await server.next((frame) => frame.type === FrameType.Data)).payload.length
    await server.next((frame) => frame.type === FrameType.End && frame.channel === 1)
    assert.equal(received, size)
    server.end()
    await server.done
  })

  test('a produced reply may fill its one buffer again as soon as a send resolves: what arrives is what was sent', async () => {
    const chunks = ['a', 'b', 'c'].map((letter) => Buffer.alloc(FRAME_DATA_MAX + 1000, letter))
    const service: ProtocolService = {
      description: 'test',
      root: '',
      async call() {
        return new ProducedReply(async (send) => {
          // One buffer, refilled after each send: a send that resolved while the output still held the bytes would
          // let 'b' overwrite 'a' before it was written.
          const buffer = Buffer.allocUnsafe(FRAME_DATA_MAX + 1000)
          for (const chunk of chunks) {
            chunk.copy(buffer)
            await send(buffer)
          }
          return { chunks: chunks.length }
        })
      },
    }
    const server = await serve({ service, slowOutput: true })
    await handshake(server)
    server.request(1, 'produce', {})
    assert.deepEqual(await server.answer(1), { result: null })
    const end = await server.next((frame) => frame.type === FrameType.End && frame.channel === 1)
    const received = Buffer.concat(server.frames.filter((frame) => frame.type === FrameType.Data && frame.channel === 1).map((frame) => frame.payload))
    assert.ok(received.equals(Buffer.concat(chunks)), 'the bytes of each chunk arrive as they were when sent')
    const expected = createHash('sha256').update(Buffer.concat(chunks)).digest('hex')
    assert.deepEqual(jsonDecode(end.payload), { sha256: expected, trailer: { chunks: 3 } })
    server.end()
    await server.done
  })

  test('a produced reply the client abandons stops its producer: its next send fails, and nothing more is sent', async () => {
    let stopped: unknown
    let sent = 0
    const service: ProtocolService = {
      description: 'test',
      root: '',
      async call() {
        return new ProducedReply(async (send) => {
          const buffer = Buffer.alloc(FRAME_DATA_MAX, 1)
          try {
            // More than one window: the producer waits for credit the client never grants.
            for (;;) {
              await send(buffer)
              sent += buffer.length
            }
          } catch (error) {
            stopped = error
            throw error
          }
        })
      },
    }
    const server = await serve({ service })
    await handshake(server)
    server.request(1, 'produce', {})
    assert.deepEqual(await server.answer(1), { result: null })
    while (sent < CREDIT_WINDOW) await new Promise((resolve) => setTimeout(resolve, 5))
    server.send(frameEncodeJson(FrameType.Abort, 1, {}))
    while (stopped === undefined) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.match((stopped as Error).message, /read abandoned by the client/)
    assert.equal(sent, CREDIT_WINDOW)
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(server.frames.filter((frame) => frame.channel === 1 && (frame.type === FrameType.End || frame.type === FrameType.Abort)).length, 0)
    server.end()
    await server.done
  })

  test('paths that would leave the repository are refused', async () => {
    const server = await serve()
    await handshake(server)
    server.request(1, 'info', { path: '../etc/passwd' })
    assert.deepEqual(await server.answer(1), { error: { kind: 'FileOpen', message: "path '../etc/passwd' is outside the repository" } })
    server.request(2, 'openRead', { path: '/etc/passwd' })
    assert.deepEqual(await server.answer(2), { error: { kind: 'FileOpen', message: "path '/etc/passwd' is outside the repository" } })
    server.request(3, 'move', { path: 'a', to: 'x/../../b' })
    assert.equal(((await server.answer(3))['error'] as Record<string, string>)['message'], "path 'x/../../b' is outside the repository")
    server.end()
    await server.done
  })

  test('a client of another version gets no service: the server ends the session', async () => {
    const server = await serve()
    server.send(frameEncodeJson(FrameType.Hello, 0, { walden: '9.9.9', protocol: PROTOCOL_VERSION }))
    await server.done
    server.request(1, 'list', { path: '' })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(server.frames.filter((frame) => frame.type === FrameType.Response).length, 0)
  })
})
