// A session with the cluster from the configuration, and the check that pg1-path is the server's data directory.

import { realpath } from 'node:fs/promises'
import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import type { PgSession } from '../pg/session.js'
import { pgConnect } from '../pg/session.js'

export async function pgSessionOpen(cfg: Config): Promise<PgSession> {
  const socketPath = cfg.string('pg1-socket-path')
  const host = cfg.string('pg1-tcp-host')
  return pgConnect({
    ...(socketPath !== undefined ? { socketPath } : {}),
    ...(host !== undefined ? { host } : {}),
    port: cfg.number('pg1-port') ?? 5432,
    user: cfg.string('pg1-user') ?? 'postgres',
    database: cfg.string('pg1-database') ?? 'postgres',
  })
}

/** Fails unless pg1-path is the data directory of the server walden is connected to (links resolved). */
export async function checkDataDirectory(cfg: Config, serverDataDirectory: string, where: string): Promise<void> {
  const pgPath = cfg.requireString('pg1-path')
  const [configured, actual] = await Promise.all([
    realpath(pgPath).catch(() => pgPath),
    realpath(serverDataDirectory).catch(() => serverDataDirectory),
  ])
  if (configured !== actual) {
    fail('DbMismatch', `pg1-path '${pgPath}' is not the data directory '${serverDataDirectory}' of the server at ${where}`, {
      hint: 'point pg1-path and pg1-port (or pg1-socket-path) at the same cluster.',
    })
  }
}
