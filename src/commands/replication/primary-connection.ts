// Reaching the primary a standby follows, from the standby's connection string: the password is taken from the
// string or from the password file it names (or libpq's default one), as the WAL receiver itself would find it.

import { userInfo } from 'node:os'
import type { Conninfo } from '../../pg/conninfo.js'
import { conninfoSessionOptions } from '../../pg/conninfo.js'
import { pgpassHost, pgpassLookup, pgpassPath, pgpassRead } from '../../pg/pgpass.js'
import type { PgSession } from '../../pg/session.js'
import { pgConnect } from '../../pg/session.js'

/** The OS user libpq would connect as when the string names no user. */
export function osUserName(): string {
  return userInfo().username
}

/**
 * The password-file key of a replication connection. `defaultSocketDir` is that of the libpq making the connection
 * (the standby server's build), which decides whether a socket folder is looked up as 'localhost'.
 */
export function replicationPgpassKey(info: Conninfo, defaultSocketDir?: string): { host: string; port: string; database: string; user: string } {
  // libpq takes host for the lookup, and hostaddr only when no host is given.
  const host = info.get('host')
  return {
    host: pgpassHost(host === undefined || host === '' ? info.get('hostaddr') : host, defaultSocketDir),
    port: info.get('port') ?? '5432',
    database: 'replication',
    user: info.get('user') ?? osUserName(),
  }
}

/** Opens an SQL session on the server a replication connection string names. */
export async function primaryConnect(info: Conninfo, defaultSocketDir?: string): Promise<PgSession> {
  let password = info.get('password')
  if (password === undefined) {
    const text = await pgpassRead(info.get('passfile') ?? pgpassPath())
    const key = replicationPgpassKey(info, defaultSocketDir)
    // The entry for the replication pseudo-database, else one for the database walden's session opens.
    password = pgpassLookup(text, key) ?? pgpassLookup(text, { ...key, database: info.get('dbname') ?? 'postgres' })
  }
  return pgConnect(conninfoSessionOptions(info, password, osUserName()))
}
