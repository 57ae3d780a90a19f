// A session with the cluster from the configuration, and the check that pg1-path is the server's data directory.

import { realpath } from 'node:fs/promises'
import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import { pgOption } from '../config/options.js'
import type { PgIndex } from '../config/options.js'
import type { PgConnectOptions, PgSession } from '../pg/session.js'
import { pgConnect } from '../pg/session.js'

export async function pgSessionOpen(cfg: Config): Promise<PgSession> {
  return pgSessionOpenIndex(cfg, 1)
}

/**
 * A session with cluster pgN. pg2 and up (standbys named for backup-standby) connect through their own socket folder,
 * port, user and database, each defaulting like pg1's.
 */
export async function pgSessionOpenIndex(cfg: Config, index: PgIndex, options: { connectTimeoutMs?: number } = {}): Promise<PgSession> {
  return pgConnect(pgSessionOptions(cfg, index, options))
}

/** How to connect to cluster pgN, from its options. */
export function pgSessionOptions(cfg: Config, index: PgIndex, options: { connectTimeoutMs?: number } = {}): PgConnectOptions {
  const socketPath = cfg.string(pgOption(index, 'socket-path'))
  const host = index === 1 ? cfg.string('pg1-tcp-host') : undefined
  return {
    ...(socketPath !== undefined ? { socketPath } : {}),
    ...(host !== undefined ? { host } : {}),
    port: cfg.number(pgOption(index, 'port')) ?? 5432,
    user: cfg.string(pgOption(index, 'user')) ?? 'postgres',
    database: cfg.string(pgOption(index, 'database')) ?? 'postgres',
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
  }
}

/** Fails unless pgN-path (pg1-path by default) is the data directory of the server walden is connected to (links resolved). */
export async function checkDataDirectory(cfg: Config, serverDataDirectory: string, where: string, index: PgIndex = 1): Promise<void> {
  const option = pgOption(index, 'path')
  const pgPath = cfg.requireString(option)
  const [configured, actual] = await Promise.all([
    realpath(pgPath).catch(() => pgPath),
    realpath(serverDataDirectory).catch(() => serverDataDirectory),
  ])
  if (configured !== actual) {
    fail('DbMismatch', `${option} '${pgPath}' is not the data directory '${serverDataDirectory}' of the server at ${where}`, {
      hint: `point ${option} and pg${index}-port (or pg${index}-socket-path) at the same cluster.`,
    })
  }
}
