// Where a cluster of the stanza is, and how walden reaches its files and its SQL: on this host, or on a database host
// over SSH (pgN-host, pgBackRest's meaning), where a `walden remote --remote-type=pg` started as the cluster's owner
// reads the files and relays the SQL connection to the cluster's local socket (commands/remote/pg-service.ts).
//
// What a command asks of a cluster's host is the table PG_HOST_OPS: plain data in, plain data out, so the same
// function answers here for a local cluster and on the database host for a remote one. File copies of a backup are
// worker jobs (backup/file.ts), which reach a remote host through a session of their own thread (pgHostClient); the
// table and that session are in pg-host-ops.ts, which loads no PostgreSQL driver.

import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import { pgOption } from '../config/options.js'
import type { PgIndex } from '../config/options.js'
import { pgControlParse } from '../pg/control.js'
import type { PgControl } from '../pg/control.js'
import { pgConnect } from '../pg/session.js'
import type { PgSession } from '../pg/session.js'
import { ProtocolClient } from '../protocol/client.js'
import { PG_HOST_OPS } from './pg-host-ops.js'
import type { OpArgs, OpResult, PgHostOp, PgRemote } from './pg-host-ops.js'
import { pgSessionOptions } from './pg-session.js'
import { sshTargetOf } from './remote-host.js'

export type { PgRemote } from './pg-host-ops.js'

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
