// Connections for mirroring: the master from --mirror-master, else the stanza's pg1-* options; a host database from
// --mirror-target.

import type { Config } from '../config/config.js'
import { fail } from '../common/errors.js'
import { userInfo } from 'node:os'
import { conninfoFromOption, conninfoRedact, conninfoSessionOptions } from '../pg/conninfo.js'
import { pgpassHost, pgpassLookup, pgpassPath, pgpassRead } from '../pg/pgpass.js'
import { pgLinkOpen } from '../pg/link.js'
import type { PgLink } from '../pg/link.js'
import type { PgConnectOptions } from '../pg/session.js'

/**
 * The password libpq would use when the connection string has none: PGPASSWORD (left to the driver, which reads it
 * itself), else the password file (passfile=, $PGPASSFILE or ~/.pgpass), where a socket folder is named as libpq names it
 * (pgpassHost: localhost for PostgreSQL's default folder, the folder itself for any other). The driver's own fallback
 * to the password file does not know that, and is deprecated.
 */
async function passwordFromFile(options: PgConnectOptions, passfile: string | undefined): Promise<string | undefined> {
  if (options.password !== undefined || (process.env['PGPASSWORD'] ?? '') !== '') return options.password
  const text = await pgpassRead(passfile ?? pgpassPath())
  return pgpassLookup(text, {
    host: pgpassHost(options.socketPath ?? options.host ?? process.env['PGHOST']),
    port: String(options.port),
    database: options.database,
    user: options.user,
  })
}

/**
 * A connection string option as libpq reads it (without dbname, the database named like the user). A password in it
 * is refused when the string came from the command line: every user of the machine can read a process's arguments
 * (ps, /proc/PID/cmdline), and mirror-run runs for months.
 */
async function conninfoTarget(cfg: Config, option: 'mirror-master' | 'mirror-target'): Promise<PgConnectOptions> {
  const info = conninfoFromOption(cfg, option, cfg.requireString(option))
  const options = conninfoSessionOptions(info, info.get('password'), userInfo().username)
  const target = info.has('dbname') ? options : { ...options, database: options.user }
  const password = await passwordFromFile(target, info.get('passfile'))
  return password === undefined ? target : { ...target, password }
}

async function masterTarget(cfg: Config): Promise<{ target: PgConnectOptions; what: string }> {
  const conninfo = cfg.string('mirror-master')
  if (conninfo !== undefined) return { target: await conninfoTarget(cfg, 'mirror-master'), what: `master '${conninfoRedact(conninfo)}'` }
  const pg1Given = cfg.source('pg1-port') !== 'default' || cfg.string('pg1-socket-path') !== undefined || cfg.string('pg1-tcp-host') !== undefined
  if (cfg.string('stanza') === undefined && !pg1Given) {
    fail('OptionRequired', `${cfg.command} command requires option 'mirror-master' or a stanza whose pg1-* options name the master`, {
      hint: "give --mirror-master='host=... dbname=...' or --stanza=NAME.",
    })
  }
  const socketPath = cfg.string('pg1-socket-path')
  const host = socketPath ?? cfg.string('pg1-tcp-host')
  const database = cfg.string('pg1-database') ?? 'postgres'
  const port = cfg.number('pg1-port') ?? 5432
  const target: PgConnectOptions = {
    ...(socketPath !== undefined ? { socketPath } : host !== undefined ? { host } : {}),
    port,
    user: cfg.string('pg1-user') ?? 'postgres',
    database,
  }
  const password = await passwordFromFile(target, undefined)
  return {
    target: password === undefined ? target : { ...target, password },
    what: `master database '${database}' (${host ?? 'default host'}:${port})`,
  }
}

// walden's sessions on the master often run as a superuser, and the master's other users may be able to create
// functions in a schema on the default search path (public, before PostgreSQL 15). A function there whose argument
// types match better than pg_catalog's (a public.quote_ident(name)) would be called instead, with walden's rights. So
// the session looks names up in pg_catalog only; every other name walden uses there is schema-qualified. Only a
// table name the user gives is looked up by their search path (tableOid in admin.ts).
const PIN_SEARCH_PATH = "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)"

export async function masterOpen(cfg: Config): Promise<PgLink> {
  const { target, what } = await masterTarget(cfg)
  const link = await pgLinkOpen(target, what)
  try {
    await link.query(PIN_SEARCH_PATH)
  } catch (error) {
    await link.close()
    throw error
  }
  return link
}

export async function hostDatabaseOpen(cfg: Config): Promise<PgLink> {
  const conninfo = cfg.requireString('mirror-target')
  return pgLinkOpen(await conninfoTarget(cfg, 'mirror-target'), `host database '${conninfoRedact(conninfo)}'`)
}

/** Fails with a hint when mirror-setup has not run on this master. */
export async function masterSchemaCheck(master: PgLink): Promise<void> {
  const [row] = await master.query("SELECT (to_regclass('walden_mirror.change') IS NOT NULL)::text AS installed")
  if (row!['installed'] !== 'true') {
    fail('DbMismatch', `the mirror schema is not installed in the ${master.where}`, { hint: "run 'walden mirror-setup' first." })
  }
}
