// A PostgreSQL connection for long-running work that PgSession does not cover: multi-statement scripts sent in one
// round trip, LISTEN/NOTIFY, and errors that keep their SQLSTATE so the caller can tell a data conflict from a lost
// connection. Like session.ts, values arrive as text: nothing is parsed behind the caller's back.

import pg from 'pg'
import { fail, WaldenError } from '../common/errors.js'
import type { PgConnectOptions } from './session.js'
import { pgClientConfig } from './session.js'

export type LinkRow = Record<string, string | null>

/**
 * A failed statement: a DbQuery error for the user (the CLI prints its message), which also keeps the server's own
 * message and SQLSTATE (undefined when the connection itself failed) for callers that must tell errors apart.
 */
export class SqlError extends WaldenError {
  readonly sqlState: string | undefined
  /** The server's message and detail on one line, the way a log reader wants them. */
  readonly full: string

  constructor(where: string, serverMessage: string, sqlState: string | undefined, detail: string | undefined, cause: unknown) {
    const full = detail ? `${serverMessage} (${detail})` : serverMessage
    super('DbQuery', `query failed at ${where}: ${full}`, { cause })
    this.sqlState = sqlState
    this.full = full
  }
}

function sqlError(where: string, error: unknown): SqlError {
  const raw = error as { message?: string; code?: string; detail?: string }
  const sqlState = typeof raw.code === 'string' && /^[0-9A-Z]{5}$/.test(raw.code) ? raw.code : undefined
  return new SqlError(where, raw.message ?? String(error), sqlState, raw.detail, error)
}

export interface PgLink {
  readonly where: string
  /** One parameterised statement. Throws SqlError. */
  query(sql: string, params?: readonly unknown[]): Promise<LinkRow[]>
  /** Several statements in one round trip (simple protocol); the server stops at the first error. Throws SqlError. */
  script(sql: string): Promise<void>
  /** Calls back for every NOTIFY on a channel this link LISTENs to. */
  onNotify(callback: (channel: string) => void): void
  /** Calls back once when the connection is lost. */
  onLost(callback: (error: Error) => void): void
  close(): Promise<void>
}

/** Opens a link; a failure to connect is a WaldenError (DbConnect) naming where and why. */
export async function pgLinkOpen(target: PgConnectOptions, what: string): Promise<PgLink> {
  const client = new pg.Client(pgClientConfig(target).config)
  let lost: ((error: Error) => void) | undefined
  client.on('error', (error) => lost?.(error))
  client.on('end', () => lost?.(new Error('connection closed')))
  const where = what
  try {
    await client.connect()
  } catch (error) {
    fail('DbConnect', `unable to connect to ${where}: ${(error as Error).message}`, {
      hint: 'check the connection string and that the server is running.',
      cause: error,
    })
  }
  return {
    where,
    async query(sql, params = []) {
      try {
        return (await client.query(sql, params as unknown[])).rows as LinkRow[]
      } catch (error) {
        throw sqlError(where, error)
      }
    },
    async script(sql) {
      try {
        await client.query(sql)
      } catch (error) {
        throw sqlError(where, error)
      }
    },
    onNotify(callback) {
      client.on('notification', (message) => callback(message.channel))
    },
    onLost(callback) {
      lost = callback
    },
    async close() {
      lost = undefined
      await client.end().catch(() => undefined)
    },
  }
}
