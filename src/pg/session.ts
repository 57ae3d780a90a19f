// The SQL conversation with PostgreSQL. Only this module and link.ts (long-running connections for table
// mirroring) import 'pg': the rest of the code sees PgSession or PgLink, so the driver can change without touching
// commands.

import type { Duplex } from 'node:stream'
import pg from 'pg'
import { fail, WaldenError } from '../common/errors.js'

export interface PgConnectOptions {
  /** Unix socket folder; takes precedence over host. */
  socketPath?: string
  host?: string
  port: number
  user: string
  database: string
  password?: string
  /** Give up connecting after this long; the driver's default is to wait for the OS. */
  connectTimeoutMs?: number
  /** TLS as libpq's sslmode asks: false, or whether the server certificate must verify. */
  ssl?: false | { verify: boolean }
  /** A byte stream to the server other than a socket of this host (a database host's socket relayed over SSH). */
  stream?: () => Duplex
  /** Where that stream leads, for messages. */
  where?: string
}

export type Row = Record<string, unknown>

export interface PgSession {
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>
  close(): Promise<void>
  /** Where the session is connected, for messages. */
  readonly where: string
}

/** The driver's settings for a connection, and where it goes, for messages. Shared with link.ts. */
export function pgClientConfig(options: PgConnectOptions): { config: pg.ClientConfig; where: string } {
  // Like libpq: a unix socket in /var/run/postgresql unless told otherwise.
  const host = options.socketPath ?? options.host ?? process.env['PGHOST'] ?? '/var/run/postgresql'
  const where = options.where ?? (host.startsWith('/') ? `socket '${host}/.s.PGSQL.${options.port}'` : `'${host}:${options.port}'`)
  const config: pg.ClientConfig = {
    host,
    port: options.port,
    user: options.user,
    database: options.database,
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.connectTimeoutMs !== undefined ? { connectionTimeoutMillis: options.connectTimeoutMs } : {}),
    ...(options.ssl ? { ssl: { rejectUnauthorized: options.ssl.verify } } : {}),
    ...(options.stream !== undefined ? { stream: options.stream } : {}),
    application_name: 'walden',
    // Keep the server's own notion of time and types out of our parsing: we read text.
    types: { getTypeParser: () => (value: string) => value },
  }
  return { config, where }
}

/** Opens one session. Errors name where walden tried to connect and say what to check. */
export async function pgConnect(options: PgConnectOptions): Promise<PgSession> {
  const { config, where } = pgClientConfig(options)
  const client = new pg.Client(config)
  // A dropped connection emits 'error' on the client; without a listener Node would crash the process.
  client.on('error', () => undefined)
  try {
    await client.connect()
  } catch (error) {
    fail('DbConnect', `unable to connect to PostgreSQL at ${where} as user '${options.user}': ${(error as Error).message}`, {
      hint: 'check that the cluster is running and pg1-port, pg1-socket-path (or pg1-tcp-host) and pg1-user are right.',
      cause: error,
    })
  }
  return {
    where,
    async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      try {
        const result = await client.query(sql, params as unknown[])
        return result.rows as T[]
      } catch (error) {
        if (error instanceof WaldenError) throw error
        fail('DbQuery', `query failed at ${where}: ${(error as Error).message}`, { cause: error })
      }
    },
    async close(): Promise<void> {
      await client.end().catch(() => undefined)
    },
  }
}
