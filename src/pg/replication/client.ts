// A client for PostgreSQL's physical replication protocol on the 'pg' driver: the walsender connection
// (startup parameter replication=true) and the commands walden needs to make a standby of a server it cannot reach
// otherwise (no SSH, no walden on the source host): IDENTIFY_SYSTEM, CREATE/DROP_REPLICATION_SLOT and BASE_BACKUP.
//
// The driver knows nothing of COPY OUT beyond handing each CopyData message to the active query, so BASE_BACKUP runs
// as a custom "submittable" query object that routes the CopyData messages into the caller's Writables, pausing
// the socket while a Writable is full: a base backup of any size passes through in bounded memory.
//
// Together with session.ts and link.ts, the only modules that import 'pg'.

import { finished } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import pg from 'pg'
import { WaldenError, fail } from '../../common/errors.js'
import { pgClientConfig, type PgConnectOptions } from '../session.js'
import {
  type BaseBackupRequest,
  baseBackupCommand,
  baseBackupMessageParse,
  createPhysicalSlotCommand,
  dropSlotCommand,
} from './commands.js'

export interface IdentifySystem {
  /** The cluster's system identifier, as decimal text (it does not fit a JS number). */
  systemId: string
  timeline: number
  /** Current WAL flush position, 'HI/LO'. */
  xlogPos: string
}

export interface BaseBackupArchive {
  /** Tablespace OID, or undefined for the main data directory (base.tar). */
  tablespaceOid: number | undefined
  /** The tablespace's folder on the source; undefined for the main data directory. */
  location: string | undefined
}

export interface BaseBackupSink {
  /**
   * A tar stream begins; its bytes are written to the Writable returned, which is ended when the archive is complete
   * (the stream has no end-of-archive blocks). BASE_BACKUP finishes only once every Writable has finished.
   */
  archive(archive: BaseBackupArchive): Writable
  /** Bytes sent so far (PostgreSQL 15+, which reports progress explicitly). */
  progress?(bytes: bigint): void
}

export interface BaseBackupResult {
  startLsn: string
  startTimeline: number
  endLsn: string
  endTimeline: number
  tablespaces: Array<{ oid: number; location: string }>
}

type Fields = Array<string | null>

/** Options of a replication connection: a session's, plus the password as a function asked only if the server wants one. */
export interface ReplicationConnectOptions extends Omit<PgConnectOptions, 'password' | 'database'> {
  password?: () => Promise<string | undefined>
  applicationName?: string
}

/** A walsender connection. One command at a time; BASE_BACKUP holds it until the backup is complete. */
export class ReplicationConnection {
  readonly where: string
  readonly user: string
  /** The server's major version (13, 17, ...). */
  readonly major: number
  readonly #client: pg.Client
  #closed = false

  private constructor(client: pg.Client, where: string, user: string, major: number) {
    this.#client = client
    this.where = where
    this.user = user
    this.major = major
  }

  /** Connects for physical replication; the failure says where, as whom, and the server's own reason. */
  static async open(options: ReplicationConnectOptions): Promise<ReplicationConnection> {
    const { password, applicationName, ...session } = options
    const { config, where } = pgClientConfig({ ...session, database: 'replication' })
    const client = new pg.Client({
      ...config,
      ...(password !== undefined ? { password } : {}),
      application_name: applicationName ?? 'walden',
      replication: 'true',
    } as pg.ClientConfig)
    // A dropped connection emits 'error' on the client; without a listener Node would crash the process.
    client.on('error', () => undefined)
    try {
      await client.connect()
    } catch (error) {
      await client.end().catch(() => undefined)
      if (error instanceof WaldenError) throw error
      fail('DbConnect', `unable to open a replication connection to ${where} as user '${options.user}': ${(error as Error).message}`, {
        hint: 'check the host, port and user, that the role has REPLICATION and LOGIN, and that pg_hba.conf has a "replication" line for this host.',
        cause: error,
      })
    }
    const connection = new ReplicationConnection(client, where, options.user, 0)
    try {
      const [row] = await connection.#simple('SHOW server_version_num')
      const versionNum = Number(row?.[0])
      if (!Number.isInteger(versionNum)) fail('Protocol', `${where} answered SHOW server_version_num with '${String(row?.[0])}'`)
      return new ReplicationConnection(client, where, options.user, Math.floor(versionNum / 10000))
    } catch (error) {
      await client.end().catch(() => undefined)
      throw error
    }
  }

  /** IDENTIFY_SYSTEM: which cluster this is and where its WAL stands. */
  async identifySystem(): Promise<IdentifySystem> {
    const [row] = await this.#simple('IDENTIFY_SYSTEM')
    if (row === undefined || row[0] == null || row[1] == null || row[2] == null) fail('Protocol', `${this.where} sent no answer to IDENTIFY_SYSTEM`)
    return { systemId: row[0], timeline: Number(row[1]), xlogPos: row[2] }
  }

  /** Creates a physical slot that reserves WAL now; returns the position it holds from. */
  async createPhysicalSlot(slot: string): Promise<{ slot: string; lsn: string | undefined }> {
    const [row] = await this.#simple(createPhysicalSlotCommand(this.major, slot))
    return { slot, lsn: row?.[1] ?? undefined }
  }

  async dropSlot(slot: string): Promise<void> {
    await this.#simple(dropSlotCommand(slot))
  }

  /**
   * BASE_BACKUP: streams every tablespace's tar into the sink and returns the backup's start and end positions.
   * A failure of a sink's Writable aborts the backup (the connection is closed, the server ends the backup).
   */
  async baseBackup(request: BaseBackupRequest, sink: BaseBackupSink): Promise<BaseBackupResult> {
    const query = new BaseBackupQuery(baseBackupCommand(this.major, request), this.major >= 15, sink, this.#client)
    const sets = await new Promise<Fields[][]>((resolve, reject) => {
      query.settle = (error, value) => (error ? reject(error) : resolve(value!))
      this.#client.query(query as unknown as pg.QueryConfig)
    }).catch((error: unknown) => {
      throw this.#queryError('BASE_BACKUP', error)
    })
    const [start, list, end] = [sets[0]?.[0], sets[1] ?? [], sets[2]?.[0]]
    if (start?.[0] == null || end?.[0] == null) fail('Protocol', `${this.where} ended BASE_BACKUP without its start and end positions`)
    return {
      startLsn: start[0],
      startTimeline: Number(start[1]),
      endLsn: end[0],
      endTimeline: Number(end[1]),
      tablespaces: list.filter((row) => row[0] != null).map((row) => ({ oid: Number(row[0]), location: row[1] ?? '' })),
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#client.end().catch(() => undefined)
  }

  /** A replication command answered by at most one result set; its rows as text fields. */
  async #simple(command: string): Promise<Fields[]> {
    try {
      const result = await this.#client.query({ text: command, rowMode: 'array' })
      return (result.rows as Fields[]) ?? []
    } catch (error) {
      throw this.#queryError(command.split(' ')[0]!, error)
    }
  }

  #queryError(what: string, error: unknown): Error {
    if (error instanceof WaldenError) return error
    return new WaldenError('DbQuery', `${what} failed at ${this.where}: ${(error as Error).message}`, { cause: error })
  }
}

/**
 * The BASE_BACKUP conversation as a query object of the driver. Result sets (start position, tablespace list, end
 * position) are collected as text rows; CopyData goes to the sink. PostgreSQL 13/14 send one CopyOut per tablespace
 * in the order of the tablespace list (base last), each plain tar bytes; 15+ send one CopyOut whose messages carry a
 * type byte ('n' new archive, 'd' data, 'p' progress, 'm' manifest).
 */
class BaseBackupQuery {
  readonly text: string
  settle: (error: Error | undefined, value?: Fields[][]) => void = () => undefined
  readonly #newProtocol: boolean
  readonly #sink: BaseBackupSink
  readonly #client: pg.Client
  readonly #sets: Fields[][] = []
  #current: Writable | undefined
  #discard = false
  #copyCount = 0
  readonly #pending: Array<Promise<void>> = []
  #failure: Error | undefined
  #paused = false
  #onCopyOut = (): void => this.#copyOutBegin()
  #onCopyDone = (): void => this.#archiveEnd()

  constructor(text: string, newProtocol: boolean, sink: BaseBackupSink, client: pg.Client) {
    this.text = text
    this.#newProtocol = newProtocol
    this.#sink = sink
    this.#client = client
  }

  submit(connection: pg.Connection): void {
    connection.on('copyOutResponse', this.#onCopyOut)
    connection.on('copyDone', this.#onCopyDone)
    ;(connection as unknown as { query(text: string): void }).query(this.text)
  }

  handleRowDescription(): void {
    this.#sets.push([])
  }

  handleDataRow(message: { fields: Fields }): void {
    this.#sets.at(-1)?.push(message.fields)
  }

  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}

  handleCopyData(message: { chunk: Buffer }): void {
    if (this.#failure) return
    try {
      if (!this.#newProtocol) return this.#write(message.chunk)
      const parsed = baseBackupMessageParse(message.chunk)
      switch (parsed.type) {
        case 'archive': {
          this.#archiveEnd()
          const tablespace = parsed.location === '' ? undefined : this.#tablespaceOf(parsed.location)
          this.#archiveBegin({ tablespaceOid: tablespace, location: parsed.location === '' ? undefined : parsed.location })
          break
        }
        case 'data':
          this.#write(parsed.data)
          break
        case 'progress':
          this.#sink.progress?.(parsed.bytes)
          break
        case 'manifest':
          // Not requested; a server that sends one anyway has it dropped.
          this.#archiveEnd()
          this.#discard = true
          break
      }
    } catch (error) {
      this.#abort(error as Error)
    }
  }

  handleError(error: Error): void {
    this.#detach()
    // The archive being received is incomplete: destroyed, not ended, so the sink discards it rather than reporting
    // a truncated tar, which would hide the server's reason.
    const writable = this.#current
    this.#current = undefined
    writable?.destroy(error)
    this.#settleAfterWrites(this.#failure ?? error)
  }

  handleReadyForQuery(): void {
    this.#detach()
    this.#archiveEnd()
    this.#settleAfterWrites(this.#failure)
  }

  #settleAfterWrites(error: Error | undefined): void {
    Promise.allSettled(this.#pending).then((outcomes) => {
      const writeFailure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')?.reason as Error | undefined
      // The first cause wins: a sink's failure (which closed the connection), else the server's error, else a sink
      // that failed while finishing.
      const failure = this.#failure ?? error ?? writeFailure
      if (failure) this.settle(failure)
      else this.settle(undefined, this.#sets)
    })
  }

  #detach(): void {
    this.#client.connection.off('copyOutResponse', this.#onCopyOut)
    this.#client.connection.off('copyDone', this.#onCopyDone)
    if (this.#paused) {
      this.#paused = false
      this.#client.connection.stream.resume()
    }
  }

  #copyOutBegin(): void {
    if (this.#newProtocol || this.#failure) return
    // The old protocol: the n-th CopyOut is the n-th row of the tablespace list; one more is a manifest.
    const list = this.#sets[1] ?? []
    const row = list[this.#copyCount++]
    if (row === undefined) {
      this.#discard = true
      return
    }
    try {
      this.#archiveBegin({ tablespaceOid: row[0] == null ? undefined : Number(row[0]), location: row[1] ?? undefined })
    } catch (error) {
      this.#abort(error as Error)
    }
  }

  #tablespaceOf(location: string): number | undefined {
    const row = (this.#sets[1] ?? []).find((fields) => fields[1] === location)
    return row?.[0] == null ? undefined : Number(row[0])
  }

  #archiveBegin(archive: BaseBackupArchive): void {
    this.#discard = false
    const writable = this.#sink.archive(archive)
    writable.on('error', (error: Error) => this.#abort(error))
    this.#current = writable
  }

  #archiveEnd(): void {
    const writable = this.#current
    this.#discard = false
    if (writable === undefined) return
    this.#current = undefined
    const done = finished(writable)
    done.catch(() => undefined)
    this.#pending.push(done)
    writable.end()
  }

  #write(data: Buffer): void {
    if (this.#discard) return
    const writable = this.#current
    if (writable === undefined) {
      this.#abort(new WaldenError('Protocol', 'base backup stream: data arrived outside an archive'))
      return
    }
    // The driver's parser reuses its buffer; the Writable may keep the chunk queued past this call.
    if (!writable.write(Buffer.from(data)) && !this.#paused) {
      // Stop reading from the socket until the extractor has caught up: TCP then holds the server back.
      this.#paused = true
      const stream = this.#client.connection.stream
      stream.pause()
      writable.once('drain', () => {
        if (this.#paused) {
          this.#paused = false
          stream.resume()
        }
      })
    }
  }

  #abort(error: Error): void {
    if (this.#failure) return
    this.#failure = error
    this.#current?.destroy(error)
    this.#current = undefined
    // The server cannot be told to stop a BASE_BACKUP mid-stream; closing the connection ends it on its side.
    this.#client.connection.stream.destroy()
  }
}
