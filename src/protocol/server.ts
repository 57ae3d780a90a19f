// The server end of the remote protocol: `walden remote`, started over SSH by a walden on another host, serves a
// service of this host through stdin and stdout: the storage of a repository on a backup host (storageService, below),
// or a cluster's files and SQL socket on a database host (commands/remote/pg-service.ts). For a repository, the client
// names paths relative to it; where the repository is comes from this host's own configuration, never from the client.
//
// Every stream carries the SHA-256 of its bytes in its End frame, checked where the bytes land: a file is stored, or
// a read returned, only when what arrived is what was sent.
//
// Writes keep the storage's guarantee here, where the disk is: the posix storage writes a temporary name, fsyncs,
// renames and fsyncs the folder only when the client's stream ends cleanly. A client that goes away (EOF on stdin, a
// dropped SSH session) or aborts a write makes the server destroy the writer, which removes the temporary file, so
// nothing ever appears under the name.

import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import { posix } from 'node:path'
import type { Duplex, Readable, Writable } from 'node:stream'
import { fail, WaldenError } from '../common/errors.js'
import type { Storage, WriteOptions } from '../storage/storage.js'
import { VERSION } from '../version.js'
import { asObject, FrameConnection, streamEndCheck, wireError } from './connection.js'
import type { StreamEnd } from './connection.js'
import { CREDIT_WINDOW, CreditGate, creditDecode, FrameType, jsonDecode, PROTOCOL_VERSION } from './framing.js'
import type { Frame, Hello } from './framing.js'

/** A request answered with a stream of bytes, and what to say at its end (trailer), once every byte is sent. */
export class StreamReply {
  constructor(
    readonly stream: Readable,
    readonly trailer?: () => unknown | Promise<unknown>,
  ) {}
}

/**
 * A request answered with bytes a producer hands over a chunk at a time, without a stream between: each `send`
 * resolves once the connection has taken the chunk, so the producer fills the same buffer again. What `produce`
 * resolves to is the trailer; a send rejects once the client has abandoned the read, and the producer stops there.
 */
export class ProducedReply {
  constructor(readonly produce: (send: (chunk: Buffer) => Promise<void>) => Promise<unknown>) {}
}

/** What a `walden remote` serves: requests by name, and optionally files to write and sockets to open. */
export interface ProtocolService {
  /** Said in the handshake: what is served, and the root its paths are under (for messages on the client). */
  description: string
  root: string
  /** Answers a request: a plain (JSON) value, or a StreamReply. Unknown requests fail with a Protocol error. */
  call(op: string, args: Record<string, unknown>): Promise<unknown>
  /** Opens a file for writing (openWrite); absent: the service takes no files. */
  openWrite?(args: Record<string, unknown>): Promise<Writable>
  /** Connects a byte stream to a socket of this host (openSocket); resolves once connected. */
  openSocket?(args: Record<string, unknown>): Promise<Duplex>
}

export interface ServeOptions {
  input: Readable
  output: Writable
  service: ProtocolService
  /** The version this end states in the handshake (tests make it differ). */
  version?: string
  deflateLevel?: number
}

interface ReadChannel {
  kind: 'read'
  /** Absent for a ProducedReply, which closing the gate stops. */
  stream?: Readable
  gate: CreditGate
}

interface WriteChannel {
  kind: 'write'
  writer: Writable
  /** Frames of this channel are handled in order, each after the previous one's write finished or failed. */
  queue: Promise<void>
  failed: boolean
  /** Of every byte written, checked against the client's at the end. */
  hash: Hash
}

interface SocketChannel {
  kind: 'socket'
  socket: Duplex
  gate: CreditGate
}

type Channel = ReadChannel | WriteChannel | SocketChannel

/**
 * Serves requests until the client closes its end (or the connection breaks). Resolves when every open stream has
 * been closed or abandoned; rejects only on a handshake the client failed.
 */
export function protocolServe(options: ServeOptions): Promise<void> {
  const { service } = options
  const channels = new Map<number, Channel>()
  let helloSeen = false
  let finish: (error?: Error) => void = () => undefined
  const done = new Promise<void>((resolve, reject) => {
    finish = (error) => (error ? reject(error) : resolve())
  })

  const connection = new FrameConnection(
    options.input,
    options.output,
    (frame) => onFrame(frame),
    (error) => void end(error),
    options.deflateLevel ?? 0,
  )
  const hello: Hello = { walden: options.version ?? VERSION, protocol: PROTOCOL_VERSION, description: service.description, root: service.root }
  connection.sendJson(FrameType.Hello, 0, hello)

  let ending = false
  async function end(error?: Error): Promise<void> {
    if (ending) return
    ending = true
    connection.close(error ?? new WaldenError('HostConnect', 'the client closed the session'))
    // Anything still open was abandoned by the client: a write leaves nothing under its name.
    const abandoned = [...channels.values()]
    channels.clear()
    await Promise.all(abandoned.map((channel) => abandon(channel)))
    finish()
  }

  // Writes being opened: frames that follow an openWrite request wait here, in order, until the file is open.
  const opening = new Map<number, Promise<void>>()
  function deferred(frame: Frame): boolean {
    const before = opening.get(frame.channel)
    if (before === undefined) return false
    const next = before.then(() => {
      if (opening.get(frame.channel) === next) opening.delete(frame.channel)
      onChannelFrame(frame)
    })
    opening.set(frame.channel, next)
    return true
  }

  function onFrame(frame: Frame): void {
    if (!helloSeen) {
      if (frame.type !== FrameType.Hello) return void refuse('protocol error: the client did not start with a handshake')
      helloSeen = true
      const theirs = asObject(jsonDecode(frame.payload), 'handshake') as Partial<Hello>
      if (theirs.walden !== hello.walden || theirs.protocol !== PROTOCOL_VERSION) {
        // The client words the mismatch for the user; this end only stops.
        return void end()
      }
      return
    }
    if (frame.type === FrameType.Request) {
      const message = asObject(jsonDecode(frame.payload), 'request')
      const handled = request(frame.channel, message)
      if (message['op'] === 'openWrite' || message['op'] === 'openSocket') {
        const open: Promise<void> = handled.then(() => {
          if (opening.get(frame.channel) === open) opening.delete(frame.channel)
        })
        opening.set(frame.channel, open)
      }
      return
    }
    if (!deferred(frame)) onChannelFrame(frame)
  }

  function onChannelFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.Data:
        return write(frame.channel, frame.payload)
      case FrameType.End:
        return writeEnd(frame.channel, frame.payload.length === 0 ? {} : (asObject(jsonDecode(frame.payload), 'end') as StreamEnd))
      case FrameType.Abort: {
        const channel = channels.get(frame.channel)
        channels.delete(frame.channel)
        // Answered once done, so the client's stream closes only when nothing of the write is left here.
        const acknowledge = (): void => connection.sendJson(FrameType.Abort, frame.channel, { abandoned: true })
        if (channel?.kind === 'write') return void abandon(channel).then(acknowledge)
        if (channel) void abandon(channel)
        else acknowledge()
        return
      }
      case FrameType.Credit: {
        const channel = channels.get(frame.channel)
        if (channel?.kind === 'read' || channel?.kind === 'socket') channel.gate.grant(creditDecode(frame.payload))
        return
      }
      default:
        return void refuse(`protocol error: unexpected frame type 0x${frame.type.toString(16)}`)
    }
  }

  function refuse(message: string): Promise<void> {
    connection.sendJson(FrameType.Response, 0, { error: wireError(new WaldenError('Protocol', message)) })
    return end()
  }

  function respond(channel: number, result: unknown): void {
    connection.sendJson(FrameType.Response, channel, { result: result ?? null })
  }

  function respondError(channel: number, error: unknown): void {
    connection.sendJson(FrameType.Response, channel, { error: wireError(error) })
  }

  async function request(channel: number, message: Record<string, unknown>): Promise<void> {
    const op = message['op']
    const args = asObject(message['args'] ?? {}, 'request arguments')
    try {
      if (op === 'openWrite' && service.openWrite) return await openWrite(channel, () => service.openWrite!(args))
      if (op === 'openSocket' && service.openSocket) return await openSocket(channel, () => service.openSocket!(args))
      const result = await service.call(String(op), args)
      if (result instanceof StreamReply) return await streamOut(channel, result)
      if (result instanceof ProducedReply) return await produceOut(channel, result)
      respond(channel, result)
    } catch (error) {
      respondError(channel, error)
    }
  }

  /** Sends a stream's bytes on its channel, as the client grants credit, then its end with SHA-256 and trailer. */
  async function streamOut(channel: number, reply: StreamReply): Promise<void> {
    const { stream } = reply
    const gate = new CreditGate(CREDIT_WINDOW)
    const hash = createHash('sha256')
    channels.set(channel, { kind: 'read', stream, gate })
    respond(channel, null)
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        hash.update(chunk)
        await connection.sendData(channel, gate, chunk)
      }
      if (channels.get(channel)?.kind !== 'read') return
      const end: StreamEnd = { sha256: hash.digest('hex'), ...(reply.trailer ? { trailer: await reply.trailer() } : {}) }
      connection.sendJson(FrameType.End, channel, end)
    } catch (error) {
      // Abandoned by the client (the gate was closed) needs no answer; a read that failed here does.
      if (channels.has(channel)) connection.sendJson(FrameType.Abort, channel, { error: wireError(error) })
    } finally {
      channels.delete(channel)
    }
  }

  /** Sends what a producer hands over on its channel, as the client grants credit, then its end with SHA-256 and trailer. */
  async function produceOut(channel: number, reply: ProducedReply): Promise<void> {
    const gate = new CreditGate(CREDIT_WINDOW)
    const hash = createHash('sha256')
    channels.set(channel, { kind: 'read', gate })
    respond(channel, null)
    try {
      const trailer = await reply.produce(async (chunk) => {
        hash.update(chunk)
        await connection.sendData(channel, gate, chunk, true)
      })
      if (channels.get(channel)?.kind !== 'read') return
      const end: StreamEnd = { sha256: hash.digest('hex'), trailer }
      connection.sendJson(FrameType.End, channel, end)
    } catch (error) {
      // Abandoned by the client (the gate was closed) needs no answer; a read that failed here does.
      if (channels.has(channel)) connection.sendJson(FrameType.Abort, channel, { error: wireError(error) })
    } finally {
      channels.delete(channel)
    }
  }

  /** Relays a socket of this host both ways, with credit each way; either end's close ends the channel. */
  async function openSocket(channel: number, connect: () => Promise<Duplex>): Promise<void> {
    const socket = await connect()
    if (ending) return void socket.destroy()
    const gate = new CreditGate(CREDIT_WINDOW)
    channels.set(channel, { kind: 'socket', socket, gate })
    socket.on('error', () => undefined)
    respond(channel, null)
    // Not awaited: the client's frames for this channel wait until this request is handled (see `opening`).
    void (async () => {
      try {
        for await (const chunk of socket as AsyncIterable<Buffer>) await connection.sendData(channel, gate, chunk)
        if (channels.get(channel)?.kind === 'socket') connection.sendJson(FrameType.End, channel, {})
      } catch (error) {
        if (channels.has(channel)) connection.sendJson(FrameType.Abort, channel, { error: wireError(error) })
      } finally {
        channels.delete(channel)
        socket.destroy()
      }
    })()
  }

  async function openWrite(channel: number, open: () => Promise<Writable>): Promise<void> {
    const writer = await open()
    const state: WriteChannel = { kind: 'write', writer, queue: Promise.resolve(), failed: false, hash: createHash('sha256') }
    if (ending) {
      // The client went away while the file was being opened.
      await abandon(state)
      return
    }
    writer.on('error', (error) => {
      if (state.failed) return
      state.failed = true
      // Tell the client at once, so it stops sending; the writer has removed its temporary file.
      if (channels.get(channel) === state) connection.sendJson(FrameType.Abort, channel, { error: wireError(error) })
      channels.delete(channel)
    })
    channels.set(channel, state)
    respond(channel, null)
  }

  function write(channel: number, chunk: Buffer): void {
    const state = channels.get(channel)
    if (state?.kind === 'socket') {
      state.socket.write(chunk, (error) => {
        if (!error) connection.sendCredit(channel, chunk.length)
      })
      return
    }
    if (state?.kind !== 'write' || state.failed) return
    state.hash.update(chunk)
    // Credit goes back once the bytes are written, so the client never has more than a window in this process.
    state.writer.write(chunk, (error) => {
      if (!error) connection.sendCredit(channel, chunk.length)
    })
  }

  function writeEnd(channel: number, end: StreamEnd): void {
    const state = channels.get(channel)
    if (state?.kind === 'socket') return void state.socket.end()
    if (state?.kind !== 'write' || state.failed) return
    // Only what the client sent may be stored: a mismatch destroys the writer, which leaves nothing under the name.
    const mismatch = streamEndCheck(state.hash, end, `file written by the remote client`)
    if (mismatch) {
      channels.delete(channel)
      void abandon(state).then(() => connection.sendJson(FrameType.Abort, channel, { error: wireError(mismatch) }))
      return
    }
    state.writer.end(() => {
      if (state.failed) return
      channels.delete(channel)
      respond(channel, null)
    })
  }

  return done
}

/** A path the client named, as a path inside the repository: absolute or '..' paths could reach outside it. */
function repositoryPath(value: unknown): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') fail('Protocol', 'protocol error: a path is not a string')
  const normal = posix.normalize(value === '' ? '.' : value)
  if (posix.isAbsolute(normal) || normal === '..' || normal.startsWith('../')) {
    fail('FileOpen', `path '${value}' is outside the repository`)
  }
  return normal === '.' ? '' : normal
}

function writeOptions(value: unknown): WriteOptions {
  const given = value === undefined ? {} : asObject(value, 'write options')
  const options: WriteOptions = {}
  if (typeof given['mode'] === 'number') options.mode = given['mode'] & 0o777
  if (typeof given['mtimeMs'] === 'number') options.mtimeMs = given['mtimeMs']
  if (typeof given['atomic'] === 'boolean') options.atomic = given['atomic']
  if (typeof given['sync'] === 'boolean') options.sync = given['sync']
  return options
}

async function abandon(channel: Channel): Promise<void> {
  if (channel.kind === 'socket') return void channel.socket.destroy()
  if (channel.kind === 'read') {
    channel.gate.close(new WaldenError('HostConnect', 'read abandoned by the client'))
    channel.stream?.destroy()
    return
  }
  channel.failed = true
  if (channel.writer.writableFinished) return
  await new Promise<void>((resolve) => {
    channel.writer.once('close', () => resolve())
    channel.writer.destroy()
  })
}

/** A repository's storage as a service: every path the client names is kept inside it. */
export function storageService(storage: Storage): ProtocolService {
  return {
    description: storage.description,
    root: storage.describe(''),
    async call(op, args) {
      const path = repositoryPath(args['path'])
      switch (op) {
        case 'info':
          return storage.info(path)
        case 'list':
          return storage.list(path)
        case 'move':
          return storage.move(path, repositoryPath(args['to']))
        case 'remove':
          return storage.remove(path)
        case 'removeEmptyPath':
          return storage.removeEmptyPath(path)
        case 'removePath':
          return storage.removePath(path)
        case 'syncPath':
          return storage.syncPath(path, { missingOk: args['missingOk'] === true })
        case 'openRead':
          return new StreamReply(await storage.openRead(path, args['range'] as { offset: number; length?: number } | undefined))
        default:
          fail('Protocol', `protocol error: unknown request '${op}'`)
      }
    },
    openWrite(args) {
      return storage.openWrite(repositoryPath(args['path']), writeOptions(args['options']))
    },
  }
}
