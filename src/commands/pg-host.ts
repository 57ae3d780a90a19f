// Where a cluster of the stanza is, and how walden reaches its files and its SQL: on this host, or on a database host
// over SSH (pgN-host, pgBackRest's meaning), where a `walden remote --remote-type=pg` started as the cluster's owner
// reads the files and relays the SQL connection to the cluster's local socket (commands/remote/pg-service.ts).
//
// What a command asks of a cluster's host is the table PG_HOST_OPS: plain data in, plain data out, so the same
// function answers here for a local cluster and on the database host for a remote one. File copies of a backup are
// worker jobs (backup/file.ts), which reach a remote host through a session of their own thread (pgHostClient).

import { realpath } from 'node:fs/promises'
import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import { pgOption } from '../config/options.js'
import type { PgIndex } from '../config/options.js'
import { pgControlParse, pgControlReadRaw } from '../pg/control.js'
import { pgRunning } from '../pg/data-dir.js'
import type { PgControl } from '../pg/control.js'
import { pgConnect } from '../pg/session.js'
import type { PgSession } from '../pg/session.js'
import { ProtocolClient } from '../protocol/client.js'
import type { RemoteArguments, RemoteHost } from '../protocol/client.js'
import type { ManifestConfigFile } from '../repo/manifest.js'
import { configFileRead } from './backup/config-files.js'
import { scanCluster, walFilesList } from './backup/scan.js'
import type { ClusterScan, ScannedFile } from './backup/scan.js'
import { pgSessionOptions } from './pg-session.js'
import { sshTargetOf } from './remote-host.js'

/** A database host over SSH, as plain data a worker thread can take: where, and what the remote walden is told. */
export interface PgRemote {
  target: RemoteHost
  args: RemoteArguments
}

/** What a command asks of the host of a cluster. Each runs where the cluster is. */
export const PG_HOST_OPS = {
  /** pg_control of a data folder, as its bytes (parsed where it is used, so its 64-bit fields stay exact). */
  async control(args: { path: string }): Promise<string> {
    return (await pgControlReadRaw(args.path)).toString('base64')
  },
  /** A path with its links resolved; the path itself when it cannot be. */
  async realpath(args: { path: string }): Promise<string> {
    return realpath(args.path).catch(() => args.path)
  },
  async scan(args: { path: string; tablespaces: Array<[number, string]> }): Promise<ClusterScan> {
    return scanCluster(args.path, new Map(args.tablespaces))
  },
  async walFiles(args: { path: string; timeline: number; start: string; last: string; segmentSize: number }): Promise<ScannedFile[]> {
    return walFilesList(args.path, args.timeline, BigInt(args.start), BigInt(args.last), args.segmentSize)
  },
  /** Whether a postmaster runs on the data folder (its postmaster.pid names a live process). */
  async running(args: { path: string }): Promise<boolean> {
    return pgRunning(args.path)
  },
  async configFile(args: { path: string; kind: ManifestConfigFile['kind'] }): Promise<ManifestConfigFile | null> {
    return (await configFileRead(args.path, args.kind)) ?? null
  },
} as const

export type PgHostOp = keyof typeof PG_HOST_OPS
type OpArgs<K extends PgHostOp> = Parameters<(typeof PG_HOST_OPS)[K]>[0]
type OpResult<K extends PgHostOp> = Awaited<ReturnType<(typeof PG_HOST_OPS)[K]>>

/** Cluster pgN: its data folder (as its own host names it) and the host it is on. */
export class PgHost {
  readonly index: PgIndex
  /** pgN-path. */
  readonly path: string
  /** The database host over SSH; undefined for a cluster on this host. */
  readonly remote: PgRemote | undefined
  readonly #cfg: Config
  #client: ProtocolClient | undefined

  constructor(cfg: Config, index: PgIndex) {
    this.#cfg = cfg
    this.index = index
    this.path = cfg.requireString(pgOption(index, 'path'))
    this.remote = pgRemoteOf(cfg, index)
  }

  /** ' on host NAME' for a remote cluster, '' for a local one: for messages. */
  get on(): string {
    return this.remote === undefined ? '' : ` on '${this.remote.target.host}'`
  }

  /** The session to the database host, opened on first use and kept for the command. */
  #session(): ProtocolClient {
    if (this.#client === undefined || this.#client.failed) this.#client = new ProtocolClient(this.remote!.target, this.remote!.args)
    return this.#client
  }

  async op<K extends PgHostOp>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    if (this.remote === undefined) return (PG_HOST_OPS[op] as (args: OpArgs<K>) => Promise<OpResult<K>>)(args)
    return (await this.#session().request(op, args as unknown as Record<string, unknown>)) as OpResult<K>
  }

  async control(): Promise<PgControl> {
    const raw = Buffer.from(await this.op('control', { path: this.path }), 'base64')
    return pgControlParse(raw, `${this.remote ? `${this.remote.target.host}:` : ''}${this.path}/global/pg_control`)
  }

  /** An SQL session with the cluster: through its socket folder and port, over the SSH session when it is remote. */
  async connect(options: { connectTimeoutMs?: number } = {}): Promise<PgSession> {
    const connect = pgSessionOptions(this.#cfg, this.index, options)
    if (this.remote === undefined) return pgConnect(connect)
    const client = this.#session()
    const socketPath = connect.socketPath
    return pgConnect({
      ...connect,
      stream: () => client.socket({ ...(socketPath !== undefined ? { socketPath } : {}), port: connect.port }),
      where: `socket '${socketPath ?? 'the default folder'}/.s.PGSQL.${connect.port}' on '${this.remote.target.host}'`,
    })
  }

  /** Fails unless pgN-path is the data directory of the server walden is connected to (links resolved, on its host). */
  async checkDataDirectory(serverDataDirectory: string, where: string): Promise<void> {
    const option = pgOption(this.index, 'path')
    const [configured, actual] = await Promise.all([this.op('realpath', { path: this.path }), this.op('realpath', { path: serverDataDirectory })])
    if (configured !== actual) {
      fail('DbMismatch', `${option} '${this.path}' is not the data directory '${serverDataDirectory}' of the server at ${where}`, {
        hint: `point ${option} and pg${this.index}-port (or pg${this.index}-socket-path) at the same cluster.`,
      })
    }
  }

  /** Ends the SSH session, if one was opened. */
  close(): void {
    this.#client?.close()
    this.#client = undefined
  }
}

/** pgN-host and its companions, as a target for the protocol client; undefined when pgN-host is not set. */
export function pgRemoteOf(cfg: Config, index: PgIndex): PgRemote | undefined {
  const host = cfg.string(pgOption(index, 'host'))
  if (host === undefined) return undefined
  const target = sshTargetOf(cfg, host, (suffix) => pgOption(index, suffix))
  const stanza = cfg.string('stanza')
  return {
    target: { ...target, role: 'database host', option: `pg${index}-host` },
    args: { ...(stanza !== undefined ? { stanza } : {}), remoteType: 'pg' },
  }
}

// A worker thread's sessions to database hosts: one per host for the thread's life, reused for every file it copies;
// one that failed is replaced on next use.
const threadClients = new Map<string, ProtocolClient>()

/** The session of this thread to a database host. */
export function pgHostClient(remote: PgRemote): ProtocolClient {
  const key = JSON.stringify(remote)
  const known = threadClients.get(key)
  if (known && !known.failed) return known
  const client = new ProtocolClient(remote.target, remote.args)
  threadClients.set(key, client)
  return client
}

/** Opens this thread's session to a database host ahead of its first file (a worker job, see backup's poolWarmEarly). */
export async function pgHostWarm(remote: PgRemote): Promise<void> {
  await pgHostClient(remote).ready()
}
