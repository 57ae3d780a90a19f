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

/** PostgreSQL's own default socket folder, for when the build's cannot be found out (see pgDefaultSocketDir). */
export const UPSTREAM_SOCKET_DIR = '/tmp'

/**
 * How libpq names the host when it looks up the password file: no host, or the socket folder its build uses by
 * default, is 'localhost'; any other socket folder is the folder itself, exactly as given (libpq compares the
 * strings, so /run/postgresql and /var/run/postgresql differ); a host name or address is itself.
 */
export function pgpassHost(host: string | undefined, defaultSocketDir: string = UPSTREAM_SOCKET_DIR): string {
  if (host === undefined || host === '' || host === defaultSocketDir) return 'localhost'
  return host
}

/** The wildcard field `*`. */
const ANY = Symbol('any')

/**
 * A line's fields as libpq reads them: `\\x` is x, an unescaped `:` ends a field, and the password ends at the
 * next unescaped `:` too (anything after it is ignored). `*` alone is a wildcard in the first four; an escaped
 * `\\*` is a literal star. A line with fewer than five fields matches nothing.
 */
function splitFields(line: string): Array<string | typeof ANY> {
  const fields: Array<string | typeof ANY> = []
  let field = ''
  let raw = ''
  for (let at = 0; fields.length < 5; at++) {
    const char = line[at]
    if (char === undefined || char === ':') {
      fields.push(raw === '*' && fields.length < 4 ? ANY : field)
      field = raw = ''
      if (char === undefined) break
    } else if (char === '\\' && at + 1 < line.length) {
      raw += char + line[at + 1]!
      field += line[++at]!
    } else {
      raw += char
      field += char
    }
  }
  return fields
}

/** A field escaped for the file: `:` and `\\` escaped, and a literal `*` so that it is not a wildcard. */
function escapeField(value: string, what: string): string {
  if (/[\n\r]/.test(value)) {
    fail('OptionInvalidValue', `the ${what} for the password file contains a line break`, { hint: 'libpq reads the password file a line at a time; choose one without.' })
  }
  return value === '*' ? '\\*' : value.replace(/[\\:]/g, (c) => `\\${c}`)
}

/** The password libpq would use for a connection: the first line that matches, wildcards included. */
export function pgpassLookup(text: string, key: PgpassKey): string | undefined {
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const fields = splitFields(line.replace(/\r$/, ''))
    if (fields.length !== 5) continue
    const wanted = [key.host, key.port, key.database, key.user]
    if (wanted.every((value, index) => fields[index] === ANY || fields[index] === value)) return fields[4] as string
  }
  return undefined
}

/**
 * The file's text with the entry for exactly this host, port, database and user set to the password: the line is
 * replaced where it is (libpq takes the first match, so order matters) or appended. Other lines stay as they were.
 */
export function pgpassUpsert(text: string, entry: PgpassEntry, options: { wildcards?: boolean } = {}): string {
  const names = ['host', 'port', 'database', 'user name', 'password']
  // With wildcards, a key field that is exactly '*' is written as libpq's wildcard rather than a literal star.
  const wild = (value: string, index: number): boolean => options.wildcards === true && index < 4 && value === '*'
  const values = [entry.host, entry.port, entry.database, entry.user, entry.password]
  const line = values.map((value, index) => (wild(value, index) ? '*' : escapeField(value, names[index]!))).join(':')
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n')
  const index = lines.findIndex((existing) => {
    const fields = splitFields(existing)
    return fields.length === 5 && values.slice(0, 4).every((value, at) => fields[at] === (wild(value, at) ? ANY : value))
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
