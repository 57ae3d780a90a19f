// Remote storage driver: a repository on another host (repoN-host), reached over SSH through a `walden remote` there
// (protocol/), which serves that host's own storage of the repository. Every call here is one request on the
// session; reads and writes are streams with flow control, so no file is ever held whole on either side.
//
// What makes a write safe happens on the host with the disk: the temporary name, fsync, rename and fsync of the
// folder are the remote posix storage's, done only when this side's stream finishes; a destroyed stream or a lost
// session leaves nothing under the name there. Encryption happens above the storage, on this side, so the
// repository passphrase never travels.

import type { Readable, Writable } from 'node:stream'
import { WaldenError } from '../common/errors.js'
import { ProtocolClient } from '../protocol/client.js'
import type { RemoteLocation } from './location.js'
import type { ReadOptions, ReadRange, Storage, StorageInfo, WriteOptions } from './storage.js'

export class RemoteStorage implements Storage {
  readonly description: string
  readonly #client: ProtocolClient
  readonly #root: string
  readonly #host: string

  private constructor(client: ProtocolClient, host: string, root: string, description: string) {
    this.#client = client
    this.#host = host
    this.#root = root
    this.description = `${description} on ${host}`
  }

  /** Starts the session and waits for the handshake: a failure to connect surfaces here, worded by the client. */
  static async open(location: RemoteLocation, onClose: () => void): Promise<RemoteStorage> {
    const client = new ProtocolClient(
      {
        host: location.host,
        ...(location.user !== undefined ? { user: location.user } : {}),
        ...(location.port !== undefined ? { port: location.port } : {}),
        cmd: location.cmd,
        ...(location.config !== undefined ? { config: location.config } : {}),
        ssh: location.ssh,
        timeoutSeconds: location.timeoutSeconds,
        deflateLevel: location.deflateLevel,
        role: 'backup host',
        option: `repo${location.index}-host`,
      },
      { ...(location.stanza !== undefined ? { stanza: location.stanza } : {}), repo: location.index },
    )
    client.onClose(onClose)
    try {
      const hello = await client.ready()
      return new RemoteStorage(client, location.host, (hello.root ?? '').replace(/\/+$/, ''), hello.description ?? "'?'")
    } catch (error) {
      onClose()
      throw error
    }
  }

  describe(path: string): string {
    return `${this.#host}:${this.#root}${path === '' ? '' : `/${path.replace(/^\/+/, '')}`}`
  }

  async info(path: string): Promise<StorageInfo | undefined> {
    return ((await this.#client.request('info', { path })) as StorageInfo | null) ?? undefined
  }

  async exists(path: string): Promise<boolean> {
    return (await this.info(path)) !== undefined
  }

  async list(path: string): Promise<string[]> {
    return (await this.#client.request('list', { path })) as string[]
  }

  read(path: string, options?: { missingOk?: false } & ReadOptions): Promise<Buffer>
  read(path: string, options: { missingOk: true } & ReadOptions): Promise<Buffer | undefined>
  async read(path: string, options?: { missingOk?: boolean } & ReadOptions): Promise<Buffer | undefined> {
    let stream: Readable
    try {
      // 'read', not 'openRead': the remote reads the file whole into a buffer of its size, where a read stream would
      // take a 1 MiB buffer for every file, most of which are a few KiB (restore reads its small files this way).
      stream = await this.#client.openStream('read', { path }, { unhashed: options?.contentVerified === true })
    } catch (error) {
      if (options?.missingOk && error instanceof WaldenError && error.kind === 'FileMissing') return undefined
      throw error
    }
    const chunks: Buffer[] = []
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk)
    return Buffer.concat(chunks)
  }

  openRead(path: string, range?: ReadRange, options?: ReadOptions): Promise<Readable> {
    return this.#client.openStream('openRead', { path, ...(range !== undefined ? { range } : {}) }, { unhashed: options?.contentVerified === true })
  }

  async write(path: string, data: Buffer | string, options: WriteOptions = {}): Promise<void> {
    const stream = await this.openWrite(path, options)
    await new Promise<void>((resolve, reject) => {
      stream.once('error', reject)
      stream.end(typeof data === 'string' ? Buffer.from(data) : data, (error?: Error | null) => (error ? reject(error) : resolve()))
    })
  }

  openWrite(path: string, options: WriteOptions = {}): Promise<Writable> {
    return this.#client.openWrite({ path, options })
  }

  async move(from: string, to: string): Promise<void> {
    await this.#client.request('move', { path: from, to })
  }

  async remove(path: string): Promise<void> {
    await this.#client.request('remove', { path })
  }

  async removeEmptyPath(path: string): Promise<void> {
    await this.#client.request('removeEmptyPath', { path })
  }

  async removePath(path: string): Promise<void> {
    await this.#client.request('removePath', { path })
  }

  async syncPath(path: string, options: { missingOk?: boolean } = {}): Promise<void> {
    await this.#client.request('syncPath', { path, missingOk: options.missingOk === true })
  }

  /** Ends the session (the remote walden exits on end of input). */
  close(): void {
    this.#client.close()
  }
}
