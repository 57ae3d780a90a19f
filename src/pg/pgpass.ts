// The libpq password file (~/.pgpass, or $PGPASSFILE): `host:port:database:user:password` per line, `*` matching
// anything, `\:` and `\\` escaping. walden keeps replication passwords here instead of in primary_conninfo, which
// PostgreSQL shows to anyone who may read pg_settings and which is copied into every backup of the standby.

import { readFile, stat } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { errnoCode, fail } from '../common/errors.js'
import { PosixStorage } from '../storage/posix.js'

export interface PgpassEntry {
  host: string
  port: string
  database: string
  user: string
  password: string
}

export type PgpassKey = Omit<PgpassEntry, 'password'>

/** The file libpq would read for the user running walden. */
export function pgpassPath(): string {
  const fromEnv = process.env['PGPASSFILE']
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  // The passwd entry, not $HOME: walden may run under `su`/`runuser` with the caller's HOME still set.
  return join(userInfo().homedir, '.pgpass')
}

/** How libpq names the host in the password file: a socket folder (or no host) is 'localhost'. */
export function pgpassHost(host: string | undefined): string {
  return host === undefined || host === '' || host.startsWith('/') ? 'localhost' : host
}

function splitFields(line: string): string[] {
  const fields: string[] = []
  let field = ''
  for (let at = 0; at < line.length; at++) {
    const char = line[at]!
    if (char === '\\' && at + 1 < line.length) field += line[++at]!
    else if (char === ':' && fields.length < 4) {
      fields.push(field)
      field = ''
    } else field += char
  }
  fields.push(field)
  return fields
}

const escapeField = (value: string): string => value.replace(/[\\:]/g, (c) => `\\${c}`)

/** The password libpq would use for a connection: the first line that matches, wildcards included. */
export function pgpassLookup(text: string, key: PgpassKey): string | undefined {
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const fields = splitFields(line)
    if (fields.length !== 5) continue
    const wanted = [key.host, key.port, key.database, key.user]
    if (wanted.every((value, index) => fields[index] === '*' || fields[index] === value)) return fields[4]
  }
  return undefined
}

/**
 * The file's text with the entry for exactly this host, port, database and user set to the password: the line is
 * replaced where it is (libpq takes the first match, so order matters) or appended. Other lines stay as they were.
 */
export function pgpassUpsert(text: string, entry: PgpassEntry): string {
  const line = [entry.host, entry.port, entry.database, entry.user, entry.password].map(escapeField).join(':')
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n')
  const index = lines.findIndex((existing) => {
    const fields = splitFields(existing)
    return fields.length === 5 && fields[0] === entry.host && fields[1] === entry.port && fields[2] === entry.database && fields[3] === entry.user
  })
  if (index >= 0) lines[index] = line
  else lines.push(line)
  return `${lines.join('\n')}\n`
}

export async function pgpassRead(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return ''
    fail('FileRead', `unable to read password file '${path}': ${(error as Error).message}`)
  }
}

/** Writes the password file atomically with mode 0600, which libpq insists on (it ignores a more open file). */
export async function pgpassWrite(path: string, text: string): Promise<void> {
  await stat(dirname(path)).catch(() =>
    fail('PathMissing', `folder '${dirname(path)}' for the password file does not exist`, {
      hint: "create the OS user's home folder, or point PGPASSFILE at a file the standby's OS user owns.",
    }),
  )
  try {
    // Temporary name, fsync, rename, folder fsync: a crash leaves the old file or the new one, never half of it.
    await new PosixStorage(dirname(path)).write(basename(path), text, { mode: 0o600 })
  } catch (error) {
    fail('FileWrite', `unable to write password file '${path}': ${(error as Error).message}`, {
      hint: 'run walden as the OS user that runs the standby (usually postgres).',
    })
  }
}
