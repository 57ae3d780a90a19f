// Connections for mirroring: the master from --mirror-master, else the stanza's pg1-* options; a host database from
// --mirror-target.

import type { Config } from '../config/config.js'
import { fail } from '../common/errors.js'
import { userInfo } from 'node:os'
import { conninfoParse, conninfoRedact, conninfoSessionOptions } from '../pg/conninfo.js'
import { pgLinkOpen } from '../pg/link.js'
import type { PgLink } from '../pg/link.js'
import type { PgConnectOptions } from '../pg/session.js'

/** A connection string as libpq reads it: without dbname, the database named like the user. */
function conninfoTarget(text: string, option: string): PgConnectOptions {
  const info = conninfoParse(text, `option '${option}'`)
  const options = conninfoSessionOptions(info, info.get('password'), userInfo().username)
  return info.has('dbname') ? options : { ...options, database: options.user }
}

function masterTarget(cfg: Config): { target: PgConnectOptions; what: string } {
  const conninfo = cfg.string('mirror-master')
  if (conninfo !== undefined) return { target: conninfoTarget(conninfo, 'mirror-master'), what: `master '${conninfoRedact(conninfo)}'` }
  const pg1Given = cfg.source('pg1-port') !== 'default' || cfg.string('pg1-socket-path') !== undefined || cfg.string('pg1-host') !== undefined
  if (cfg.string('stanza') === undefined && !pg1Given) {
    fail('OptionRequired', `${cfg.command} command requires option 'mirror-master' or a stanza whose pg1-* options name the master`, {
      hint: "give --mirror-master='host=... dbname=...' or --stanza=NAME.",
    })
  }
  const socketPath = cfg.string('pg1-socket-path')
  const host = socketPath ?? cfg.string('pg1-host')
  const database = cfg.string('pg1-database') ?? 'postgres'
  const port = cfg.number('pg1-port') ?? 5432
  return {
    target: { ...(socketPath !== undefined ? { socketPath } : host !== undefined ? { host } : {}), port, user: cfg.string('pg1-user') ?? 'postgres', database },
    what: `master database '${database}' (${host ?? 'default host'}:${port})`,
  }
}

export async function masterOpen(cfg: Config): Promise<PgLink> {
  const { target, what } = masterTarget(cfg)
  return pgLinkOpen(target, what)
}

export async function hostDatabaseOpen(cfg: Config): Promise<PgLink> {
  const conninfo = cfg.requireString('mirror-target')
  return pgLinkOpen(conninfoTarget(conninfo, 'mirror-target'), `host database '${conninfoRedact(conninfo)}'`)
}

/** Fails with a hint when mirror-setup has not run on this master. */
export async function masterSchemaCheck(master: PgLink): Promise<void> {
  const [row] = await master.query("SELECT (to_regclass('walden_mirror.change') IS NOT NULL)::text AS installed")
  if (row!['installed'] !== 'true') {
    fail('DbMismatch', `the mirror schema is not installed in the ${master.where}`, { hint: "run 'walden mirror-setup' first." })
  }
}
