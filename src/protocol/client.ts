// The client end of the remote protocol: starts `walden remote` on another host through the ssh client (an argv
// array, no local shell), checks both ends run the same walden, and sends requests over the session. One client is
// one SSH session; requests and streams share it as channels, so a worker copies many files through one session.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { hostname } from 'node:os'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import type { Duplex, Readable } from 'node:stream'
import { ERROR_CODES, WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { log } from '../common/log.js'
import { VERSION } from '../version.js'
import { asObject, ChannelDuplex, FrameConnection, IncomingStream, wireErrorRestore } from './connection.js'
import type { StreamEnd } from './connection.js'
import { shellQuote } from '../common/shell.js'
import { CREDIT_WINDOW, CreditGate, creditDecode, FrameType, jsonDecode, PROTOCOL_VERSION } from './framing.js'
import type { Frame, Hello, WireError } from './framing.js'

/** How to reach a remote walden over SSH: from the -host options of a repository (repoN-host) or cluster (pgN-host). */
export interface SshTarget {
  /** Host name or address ssh connects to. */
  host: string
  /** OS user on that host (ssh -l); absent: ssh's own default (the local user, or ~/.ssh/config). */
  user?: string
  port?: number
  /** walden on the remote host: a path, run through the remote user's shell as one word. */
  cmd: string
  /** The remote walden's config file; absent: its default. */
  config?: string
  /** The ssh client to run. */
  ssh: string
  /** Seconds without any answer while one is awaited, before the session is given up. */
  timeoutSeconds: number
  /** zlib level of data frames this end sends (compress-level-network); 0 for none. */
  deflateLevel: number
}

export interface RemoteHost extends SshTarget {
  /** What the remote host is to this one, for messages: 'backup host' or 'database host'. */
  role: string
  /** The option naming the host, for hints: 'repo1-host' (its -user, -port, -cmd and -config follow from it). */
  option: string
}

/** Arguments after the remote command: options the remote walden takes (its repository comes from its own config). */
export interface RemoteArguments {
  stanza?: string
  repo?: number
  /** What the remote serves: a repository (the default) or a cluster's files and socket ('pg'). */
  remoteType?: 'pg'
}

/**
 * The command line ssh runs on the remote host. It goes through the remote user's shell, so every word is quoted by
 * sh rules: a path with spaces, quotes or `$(...)` arrives as that one word, never as shell code.
 */
export function remoteCommandLine(target: RemoteHost, args: RemoteArguments): string {
  const words = [target.cmd]
  if (target.config !== undefined) words.push(`--config=${target.config}`)
  if (args.stanza !== undefined) words.push(`--stanza=${args.stanza}`)
  if (args.repo !== undefined) words.push(`--repo=${args.repo}`)
  if (args.remoteType !== undefined) words.push(`--remote-type=${args.remoteType}`)
  // Both directions use this side's level: reads come back compressed as this side asked.
  if (target.deflateLevel > 0) words.push(`--compress-level-network=${target.deflateLevel}`)
  words.push('remote')
  return words.map(shellQuote).join(' ')
}


/** ssh's arguments: never a prompt (no terminal to answer it), never an option taken from the host or user name. */
export function sshArguments(target: RemoteHost, args: RemoteArguments): string[] {
  return [
    '-o', 'BatchMode=yes',
    '-o', 'LogLevel=error',
    '-o', 'Compression=no',
    '-o', `ConnectTimeout=${Math.max(1, Math.ceil(Math.min(target.timeoutSeconds, 300)))}`,
    '-T',
    ...(target.port !== undefined ? ['-p', String(target.port)] : []),
    ...(target.user !== undefined ? ['-l', target.user] : []),
    '--',
    target.host,
    remoteCommandLine(target, args),
  ]
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
}

/** A write stream's channel: credit for its data, and the waiter for the answer to its end. */
interface WriteState {
  gate: CreditGate
  fail: (error: Error) => void
  close?: Pending
  /** Data waits for credit the remote has not granted yet. */
  starved?: boolean
}

/** Bytes of the remote's stderr kept for messages. */
const STDERR_KEEP = 8192

export class ProtocolClient {
  readonly target: RemoteHost
  /** The remote storage's description and root path, from its handshake. */
  remote: Hello | undefined
  readonly #child: ChildProcess
  readonly #connection: FrameConnection
  readonly #pending = new Map<number, Pending>()
  /** Writes this side abandoned, until the remote says it has removed what it held. */
  readonly #abandoning = new Map<number, () => void>()
  readonly #reads = new Map<number, IncomingStream | ChannelDuplex>()
  readonly #writes = new Map<number, WriteState>()
  #nextChannel = 1
  #stderr = ''
  #failure: WaldenError | undefined
  #timer: NodeJS.Timeout | undefined
  #ready: Promise<Hello>
  #onClose: Array<() => void> = []

  constructor(target: RemoteHost, args: RemoteArguments) {
    this.target = target
    // stdin and stdout carry frames; stderr carries ssh's own messages and the remote walden's log lines.
    this.#child = spawn(target.ssh, sshArguments(target, args), { stdio: ['pipe', 'pipe', 'pipe'] })
    let helloResolve: (hello: Hello) => void = () => undefined
    let helloReject: (error: Error) => void = () => undefined
    this.#ready = new Promise((resolve, reject) => {
      helloResolve = resolve
      helloReject = reject
    })
    this.#ready.catch(() => undefined)
    this.#pending.set(0, { resolve: (value) => helloResolve(value as Hello), reject: helloReject })

    this.#child.stderr!.setEncoding('utf8').on('data', (text: string) => this.#onStderr(text))
    this.#child.on('error', (error) => {
      this.#fail(new WaldenError('HostConnect', `unable to start '${target.ssh}' to reach ${target.role} '${target.host}': ${error.message}`, {
        hint: 'set cmd-ssh to the path of the ssh client.',
      }))
    })
    this.#child.on('close', (code, signal) => this.#fail(this.#lostError(code, signal)))
    this.#child.stdin!.on('error', () => undefined)
    this.#connection = new FrameConnection(
      this.#child.stdout!,
      this.#child.stdin!,
      (frame) => this.#onFrame(frame),
      (error) => {
        if (!(error instanceof WaldenError)) return // the close handler words it, with ssh's exit status and message
        if (error.kind === 'Protocol' && /ended in the middle of a frame/.test(error.message)) {
          // A session cut off mid-stream (sshd stopped, the host gone): ssh's exit follows at once and says why, which
          // tells the user more than the torn frame does. Only a stream that ends with ssh still running is this.
          setTimeout(() => this.#fail(error), 2000).unref()
          return
        }
        this.#fail(error)
      },
      target.deflateLevel,
    )
    this.#connection.sendJson(FrameType.Hello, 0, { walden: VERSION, protocol: PROTOCOL_VERSION } satisfies Hello)
    this.#arm()
    this.#refresh()
  }

  /** Waits for the remote's handshake and checks it; the failure of a session that never started, worded. */
  async ready(): Promise<Hello> {
    const hello = await this.#ready
    return hello
  }

  onClose(listener: () => void): void {
    this.#onClose.push(listener)
  }

  get failed(): boolean {
    return this.#failure !== undefined
  }

  /** Sends a request and waits for its answer. */
  async request(op: string, args: Record<string, unknown>): Promise<unknown> {
    await this.ready()
    return this.#call(this.#nextChannel++, op, args)
  }

  /** Opens a remote file for reading: a stream fed by the remote as this end reads. */
  openRead(args: Record<string, unknown>): Promise<Readable> {
    return this.openStream('openRead', args)
  }

  /**
   * Sends a request the remote answers with a stream (openRead, backupRead): its bytes, verified against the remote's
   * SHA-256 at the end, and then its `trailer`, the result the remote sends after the last byte.
   */
  async openStream(op: string, args: Record<string, unknown>, options: { unhashed?: boolean } = {}): Promise<IncomingStream> {
    await this.ready()
    const channel = this.#nextChannel++
    const stream = new IncomingStream(this.#connection, channel, !options.unhashed, (error) => {
      if (!this.#reads.has(channel)) return
      this.#reads.delete(channel)
      // The consumer stopped early: the remote stops sending and closes the file.
      if (error !== null || !stream.ended) this.#connection.sendJson(FrameType.Abort, channel, {})
      this.#refresh()
    })
    // Failures reach the consumer through its reads; a session lost before anyone reads must not crash the process.
    stream.on('error', () => undefined)
    this.#reads.set(channel, stream)
    try {
      // `unhashed`: the caller verifies the content itself (ReadOptions.contentVerified), so neither end hashes it.
      await this.#call(channel, op, options.unhashed ? { ...args, unhashed: true } : args)
    } catch (error) {
      this.#reads.delete(channel)
      stream.destroy()
      throw error
    }
    return stream
  }

  /**
   * A byte stream to a socket on the remote host (the remote service decides which sockets it connects to), opened by
   * the stream's connect(): how the PostgreSQL driver reaches a cluster's local socket on a database host.
   */
  socket(args: Record<string, unknown>): Duplex {
    const channel = this.#nextChannel++
    const gate = new CreditGate(CREDIT_WINDOW)
    const open = async (): Promise<void> => {
      await this.ready()
      this.#reads.set(channel, duplex)
      this.#writes.set(channel, { gate, fail: (error) => duplex.destroy(error) })
      await this.#call(channel, 'openSocket', args)
    }
    const duplex: ChannelDuplex = new ChannelDuplex(this.#connection, channel, gate, open, (error, ended) => {
      const known = this.#reads.delete(channel)
      this.#writes.delete(channel)
      gate.close(error ?? new WaldenError('HostConnect', 'socket closed'))
      if (known && (error !== null || !ended)) this.#connection.sendJson(FrameType.Abort, channel, {})
      this.#refresh()
    })
    return duplex
  }

  /**
   * Opens a remote file for writing. The remote keeps the storage's guarantee: the file appears under its name only
   * when this stream finishes; destroying it (or losing the session) leaves nothing there.
   *
   * The open is not awaited: data follows the request at once and the remote holds it until the file is open, so a
   * small file costs one round trip, not two. A failure to open (permission denied, no space) fails the stream's next
   * write or its end, as with the S3 driver, whose uploads also start on the first bytes.
   */
  async openWrite(args: Record<string, unknown>): Promise<Writable> {
    await this.ready()
    const channel = this.#nextChannel++
    // Waiting for credit is waiting for the remote too: protocol-timeout applies while the window is used up.
    const gate = new CreditGate(CREDIT_WINDOW, (waiting) => {
      state.starved = waiting
      this.#arm()
    })
    let remoteError: Error | undefined
    // Of every byte sent: the remote stores the file only if what it received hashes the same.
    const hash = createHash('sha256')
    const state: WriteState = {
      gate,
      fail: (error) => {
        remoteError ??= error
        gate.close(error)
        const waiter = state.close
        state.close = undefined
        waiter?.reject(error)
      },
    }
    this.#writes.set(channel, state)
    const opened = this.#call(channel, 'openWrite', args)
    opened.catch((error: Error) => state.fail(error))
    const connection = this.#connection
    const client = this
    return new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk)
        connection.sendData(channel, gate, chunk).then(
          () => callback(),
          (error: Error) => void client.#failureOf(remoteError ?? error).then(callback),
        )
      },
      final(callback) {
        if (remoteError) return callback(remoteError)
        // The remote fsyncs and renames on End and answers (after answering the open) once the file is in place.
        const closed = new Promise<unknown>((resolve, reject) => (state.close = { resolve, reject }))
        connection.sendJson(FrameType.End, channel, { sha256: hash.digest('hex') } satisfies StreamEnd)
        client.#arm()
        Promise.all([opened, closed]).then(
          () => {
            client.#writes.delete(channel)
            client.#refresh()
            callback()
          },
          (error: Error) => void client.#failureOf(remoteError ?? error).then(callback),
        )
      },
      destroy(error, callback) {
        const open = client.#writes.delete(channel) && !this.writableFinished
        client.#pending.delete(channel)
        if (!open) {
          client.#refresh()
          return callback(error)
        }
        gate.close(error ?? new WaldenError('FileWrite', 'write abandoned'))
        // The stream closes once the remote has removed what it held: a caller that looks at the folder after the
        // close must not find the temporary file (the guarantee posix gives).
        void client.#abandon(channel).then(() => callback(error))
      },
    })
  }

  /** Asks the remote to drop a write, and waits until it has (or the session is gone). */
  #abandon(channel: number): Promise<void> {
    if (this.#failure) return Promise.resolve()
    const done = new Promise<void>((resolve) => this.#abandoning.set(channel, resolve))
    this.#connection.sendJson(FrameType.Abort, channel, {})
    this.#arm()
    this.#refresh()
    return done
  }

  /** Ends the session: the remote walden sees end of input, closes what is open and exits, and ssh with it. */
  close(): void {
    this.#child.stdin!.end()
  }

  /** Stops the session at once (ssh killed); the remote ends on the lost connection. */
  kill(): void {
    this.#child.kill('SIGTERM')
  }

  /**
   * An error from the remote, with paths under its repository named as `host:/path`, the way this side's storage
   * describes them, so a message on the database host says which host the file is on.
   */
  #remoteError(wire: WireError): WaldenError {
    const root = this.remote?.root
    if (root === undefined || root === '') return wireErrorRestore(wire)
    const named = wire.message.replaceAll(`'${root}`, `'${this.target.host}:${root}`)
    return wireErrorRestore({ ...wire, message: named })
  }

  /**
   * The error to report for a failed send. A pipe error (EPIPE when ssh has gone) says nothing useful: the session's
   * own failure, worded from ssh's exit and last message, follows within moments, so wait for it.
   */
  async #failureOf(error: Error): Promise<Error> {
    if (error instanceof WaldenError) return error
    for (let waited = 0; waited < 5000 && this.#failure === undefined; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
    return (
      this.#failure ??
      new WaldenError('HostConnect', `connection to ${this.target.role} '${this.target.host}' lost: ${error.message}`, { cause: error })
    )
  }

  #call(channel: number, op: string, args: Record<string, unknown>): Promise<unknown> {
    const answer = this.#await(channel)
    this.#connection.sendJson(FrameType.Request, channel, { op, args })
    return answer
  }

  #await(channel: number): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure)
    const answer = new Promise<unknown>((resolve, reject) => this.#pending.set(channel, { resolve, reject }))
    this.#arm()
    this.#refresh()
    return answer
  }

  #onFrame(frame: Frame): void {
    this.#arm()
    switch (frame.type) {
      case FrameType.Hello:
        return this.#onHello(asObject(jsonDecode(frame.payload), 'handshake') as Partial<Hello>)
      case FrameType.Response: {
        const message = asObject(jsonDecode(frame.payload), 'response')
        const pending = this.#pending.get(frame.channel)
        if (frame.channel === 0 && message['error'] !== undefined) {
          return this.#fail(this.#remoteError(message['error'] as WireError))
        }
        if (!pending) {
          // A write's second answer: its end, once the file is in place.
          const write = this.#writes.get(frame.channel)
          const waiter = write?.close
          if (!write || !waiter) return
          write.close = undefined
          if (message['error'] !== undefined) waiter.reject(this.#remoteError(message['error'] as WireError))
          else waiter.resolve(message['result'])
          return
        }
        this.#pending.delete(frame.channel)
        if (message['error'] !== undefined) pending.reject(this.#remoteError(message['error'] as WireError))
        else pending.resolve(message['result'])
        this.#refresh()
        return
      }
      case FrameType.Data:
        return this.#reads.get(frame.channel)?.deliver(frame.payload)
      case FrameType.End: {
        const stream = this.#reads.get(frame.channel)
        if (stream instanceof ChannelDuplex) return stream.finish()
        this.#reads.delete(frame.channel)
        stream?.finish(frame.payload.length === 0 ? {} : (asObject(jsonDecode(frame.payload), 'end') as StreamEnd))
        this.#refresh()
        return
      }
      case FrameType.Abort: {
        const message = asObject(jsonDecode(frame.payload), 'abort')
        if (message['abandoned'] === true) {
          // The remote's answer to an abort from this side: nothing is left there.
          this.#abandoning.get(frame.channel)?.()
          this.#abandoning.delete(frame.channel)
          this.#arm()
          this.#refresh()
          return
        }
        const error = message['error'] !== undefined ? this.#remoteError(message['error'] as WireError) : new WaldenError('FileRead', 'stream abandoned by the remote')
        const stream = this.#reads.get(frame.channel)
        if (stream) {
          this.#reads.delete(frame.channel)
          stream.destroy(error)
        }
        this.#writes.get(frame.channel)?.fail(error)
        const pending = this.#pending.get(frame.channel)
        this.#pending.delete(frame.channel)
        pending?.reject(error)
        this.#refresh()
        return
      }
      case FrameType.Credit:
        return this.#writes.get(frame.channel)?.gate.grant(creditDecode(frame.payload))
      default:
        return
    }
  }

  #onHello(hello: Partial<Hello>): void {
    if (hello.walden !== VERSION || hello.protocol !== PROTOCOL_VERSION) {
      const theirs = hello.walden === VERSION ? `${VERSION} with protocol ${String(hello.protocol)} (here ${PROTOCOL_VERSION})` : String(hello.walden)
      this.#fail(
        new WaldenError('Protocol', `walden ${VERSION} on ${hostname()}, ${theirs} on ${this.target.host}: install the same version on both`, {
          hint: `the ${this.target.role} runs '${this.target.cmd}' (${this.target.option}-cmd); both ends must be the same walden release.`,
        }),
      )
      this.kill()
      return
    }
    this.remote = hello as Hello
    const pending = this.#pending.get(0)
    this.#pending.delete(0)
    pending?.resolve(hello)
    this.#refresh()
  }

  #onStderr(text: string): void {
    this.#stderr = (this.#stderr + text).slice(-STDERR_KEEP)
    // The remote walden's warnings belong in this command's log too, marked with the host they come from.
    for (const line of text.split('\n')) {
      const match = /^P\d\d\s+WARN: (.*)$/.exec(line)
      if (match) log.warn(`${this.target.host}: ${match[1]}`)
    }
  }

  /** The error of a session that ended: the remote walden's own error where it reported one, else ssh's last words. */
  #lostError(code: number | null, signal: NodeJS.Signals | null): WaldenError {
    const lines = this.#stderr.split('\n').map((line) => line.trim()).filter((line) => line !== '')
    const where = `${this.target.role} '${this.target.host}'${this.target.user !== undefined ? ` as user '${this.target.user}'` : ''}`
    // The remote walden failed on its own (its config, its repository): carry its error and code across.
    const remoteError = lines.map((line) => /ERROR: \[(\d{3})\]: (.*)$/.exec(line)).find((match) => match !== null)
    if (remoteError) {
      const kind = (Object.entries(ERROR_CODES).find(([, value]) => value === Number(remoteError[1]))?.[0] ?? 'HostConnect') as ErrorKind
      // A config file the remote cannot find is named by this side's option, not the remote's --config.
      const hint = /^(config file '.*' does not exist|unable to read config file )/.test(remoteError[2]!)
        ? `check ${this.target.option}-config, the config file walden reads on '${this.target.host}'.`
        : lines.find((line) => /HINT: /.test(line))?.replace(/^.*HINT: /, '')
      return new WaldenError(kind, `${this.target.host}: ${remoteError[2]}`, hint !== undefined ? { hint } : {})
    }
    const said = lines.filter((line) => !/^P\d\d\s+\w+: /.test(line)).at(-1) ?? (signal ? `ssh ended by signal ${signal}` : `ssh exited with status ${String(code)}`)
    if (this.remote === undefined) {
      return new WaldenError('HostConnect', `unable to start walden on ${where}: ${said}`, { hint: connectHint(said, this.target) })
    }
    return new WaldenError('HostConnect', `connection to ${where} lost: ${said}`, {
      hint: 'check that the host is up and its sshd running; what was being written there is not kept, so run the command again.',
    })
  }

  #fail(error: WaldenError): void {
    if (this.#failure) return
    this.#failure = error
    clearTimeout(this.#timer)
    this.#connection.close(error)
    for (const pending of this.#pending.values()) pending.reject(error)
    this.#pending.clear()
    for (const stream of this.#reads.values()) stream.destroy(error)
    this.#reads.clear()
    for (const write of this.#writes.values()) write.fail(error)
    this.#writes.clear()
    for (const abandoned of this.#abandoning.values()) abandoned()
    this.#abandoning.clear()
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM')
    for (const listener of this.#onClose) listener()
    this.#refresh()
  }

  /** protocol-timeout: while an answer is awaited, silence that long ends the session. */
  #arm(): void {
    clearTimeout(this.#timer)
    const closing = [...this.#writes.values()].some((write) => write.close !== undefined || write.starved === true)
    if (this.#failure || (this.#pending.size === 0 && this.#abandoning.size === 0 && !closing)) return
    this.#timer = setTimeout(() => {
      this.#fail(new WaldenError('Protocol', `no answer from ${this.target.role} '${this.target.host}' in ${this.target.timeoutSeconds} second(s)`, {
        hint: 'check the host and its load; protocol-timeout sets how long walden waits.',
      }))
    }, this.target.timeoutSeconds * 1000)
    this.#timer.unref()
  }

  /**
   * The session keeps this process alive only while something is awaited or streaming: an idle session must not
   * hold a finished command open (its end closes the session).
   */
  #refresh(): void {
    const busy = !this.#failure && (this.#pending.size > 0 || this.#reads.size > 0 || this.#writes.size > 0 || this.#abandoning.size > 0)
    const pipes = [this.#child.stdout, this.#child.stderr] as unknown as Array<{ ref?: () => void; unref?: () => void }>
    if (busy) {
      this.#child.ref()
      for (const pipe of pipes) pipe.ref?.()
    } else {
      this.#child.unref()
      for (const pipe of pipes) pipe.unref?.()
    }
  }
}

/** What to check for the usual ssh failures, by its message. */
function connectHint(said: string, target: RemoteHost): string {
  if (/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|no .* host key is known/i.test(said)) {
    return `the host key of '${target.host}' is not the one known_hosts holds for it: check the host, then fix known_hosts of the user running walden.`
  }
  if (/permission denied/i.test(said)) {
    return `check that the key of the user running walden is in ~/.ssh/authorized_keys of '${target.user ?? 'the remote user'}' on '${target.host}' (${target.option}-user).`
  }
  if (/not found|no such file/i.test(said)) return `check ${target.option}-cmd: walden must be installed at '${target.cmd}' on '${target.host}'.`
  if (/connection refused|could not resolve|timed out|no route/i.test(said)) return `check ${target.option} and ${target.option}-port, and that sshd runs on '${target.host}'.`
  return `try \`ssh${target.port !== undefined ? ` -p ${target.port}` : ''} ${target.user !== undefined ? `${target.user}@` : ''}${target.host}\` as the user running walden.`
}
