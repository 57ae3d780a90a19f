// libpq connection strings: the `key=value` form PostgreSQL itself stores in primary_conninfo, and the
// postgresql:// URI form users often paste. walden parses them to take the password out before anything is
// written to disk, and to open its own sessions with the same settings the standby's WAL receiver will use.

import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import { optionEnvName } from '../config/options.js'
import type { OptionName } from '../config/options.js'
import type { PgConnectOptions } from './session.js'

export type Conninfo = Map<string, string>

/** Keywords libpq accepts that walden passes through untouched; anything else is most likely a typo. */
const KNOWN = new Set([
  'host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'passfile', 'channel_binding', 'connect_timeout',
  'client_encoding', 'options', 'application_name', 'fallback_application_name', 'keepalives', 'keepalives_idle',
  'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'replication', 'gssencmode', 'sslmode',
  'requiressl', 'sslcompression', 'sslcert', 'sslkey', 'sslpassword', 'sslcertmode', 'sslrootcert', 'sslcrl',
  'sslcrldir', 'sslsni', 'requirepeer', 'ssl_min_protocol_version', 'ssl_max_protocol_version', 'krbsrvname',
  'gsslib', 'gssdelegation', 'service', 'target_session_attrs', 'load_balance_hosts', 'require_auth', 'sslnegotiation',
])

/** Parses a libpq connection string (key=value pairs, or a postgres:// URI). `what` names it in errors. */
export function conninfoParse(text: string, what = 'connection string'): Conninfo {
  const trimmed = text.trim()
  const info = /^postgres(ql)?:\/\//.test(trimmed) ? parseUri(trimmed, what) : parsePairs(trimmed, what)
  for (const key of info.keys()) {
    if (!KNOWN.has(key)) {
      fail('OptionInvalidValue', `${what} has the unknown keyword '${key}'`, {
        hint: "write it as libpq's 'host=... port=... user=...' or postgresql://user@host:port/.",
      })
    }
  }
  return info
}

function parsePairs(text: string, what: string): Conninfo {
  const info: Conninfo = new Map()
  let at = 0
  const skipSpace = (): void => {
    while (at < text.length && /\s/.test(text[at]!)) at++
  }
  for (skipSpace(); at < text.length; skipSpace()) {
    const keyStart = at
    while (at < text.length && /[A-Za-z0-9_]/.test(text[at]!)) at++
    const key = text.slice(keyStart, at)
    skipSpace()
    if (key === '' || text[at] !== '=') {
      fail('OptionInvalidValue', `${what} is not a list of key=value pairs (at '${text.slice(keyStart, keyStart + 20)}')`, {
        hint: "quote values that hold spaces with single quotes: password='a b'.",
      })
    }
    at++
    skipSpace()
    let value = ''
    if (text[at] === "'") {
      at++
      for (;;) {
        if (at >= text.length) fail('OptionInvalidValue', `${what} has an unterminated quoted value for '${key}'`)
        const char = text[at++]!
        if (char === "'") break
        value += char === '\\' && at < text.length ? text[at++]! : char
      }
    } else {
      while (at < text.length && !/\s/.test(text[at]!)) {
        const char = text[at++]!
        value += char === '\\' && at < text.length ? text[at++]! : char
      }
    }
    info.set(key, value)
  }
  return info
}

function parseUri(text: string, what: string): Conninfo {
  let url: URL
  try {
    // URL only knows the host part for special schemes; parse it as http and read the pieces back.
    url = new URL(text.replace(/^postgres(ql)?:/, 'http:'))
  } catch {
    fail('OptionInvalidValue', `${what} '${conninfoRedact(text)}' is not a valid postgresql:// URI`)
  }
  const info: Conninfo = new Map()
  if (url.hostname !== '') info.set('host', decodeURIComponent(url.hostname.replace(/^\[|\]$/g, '')))
  if (url.port !== '') info.set('port', url.port)
  if (url.username !== '') info.set('user', decodeURIComponent(url.username))
  if (url.password !== '') info.set('password', decodeURIComponent(url.password))
  const dbname = decodeURIComponent(url.pathname.replace(/^\//, ''))
  if (dbname !== '') info.set('dbname', dbname)
  for (const [key, value] of url.searchParams) info.set(key, value)
  return info
}

/** Formats a Conninfo as key=value pairs, quoting values as libpq reads them back. */
export function conninfoFormat(info: Conninfo): string {
  return [...info]
    .map(([key, value]) => (/^[^\s'\\]+$/.test(value) ? `${key}=${value}` : `${key}='${value.replace(/[\\']/g, (c) => `\\${c}`)}'`))
    .join(' ')
}

/** The string with any password hidden, for messages and logs. */
export function conninfoRedact(text: string): string {
  return text.replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1<redacted>').replace(/(\/\/[^:/@]*:)[^@]*@/, '$1<redacted>@')
}

/** Where a connection string points, for messages: host:port. */
export function conninfoWhere(info: Conninfo): string {
  return `${info.get('host') ?? info.get('hostaddr') ?? 'localhost'}:${info.get('port') ?? '5432'}`
}

/**
 * Session options for walden's own SQL connection to the server a connection string names (the physical
 * replication keywords do not apply to it). The password comes from the string or from the password file.
 */
export function conninfoSessionOptions(info: Conninfo, password: string | undefined, osUser: string): PgConnectOptions {
  const host = (info.get('host') ?? info.get('hostaddr') ?? '').split(',')[0]!
  const sslmode = info.get('sslmode') ?? 'prefer'
  const timeout = Number(info.get('connect_timeout') ?? '10')
  return {
    ...(host.startsWith('/') ? { socketPath: host } : host !== '' ? { host } : {}),
    port: Number((info.get('port') ?? '5432').split(',')[0]),
    user: info.get('user') ?? osUser,
    database: info.get('dbname') !== undefined && info.get('dbname') !== 'replication' ? info.get('dbname')! : 'postgres',
    ...(password !== undefined ? { password } : {}),
    connectTimeoutMs: (Number.isFinite(timeout) && timeout > 0 ? timeout : 10) * 1000,
    // libpq's 'prefer' tries TLS and falls back; the driver cannot, so only an explicit require turns TLS on.
    ssl: ['require', 'verify-ca', 'verify-full'].includes(sslmode) ? { verify: sslmode !== 'require' } : false,
  }
}

/**
 * The connection string an option holds, parsed. A password in it is refused when the option came from the command
 * line: every user of the machine can read a process's arguments (ps, /proc/PID/cmdline), for as long as the process
 * runs. `text` is the string when it sits inside another option (recovery-option primary_conninfo=...).
 */
export function conninfoFromOption(cfg: Config, option: OptionName, text: string, what = `option '${option}'`): Conninfo {
  const info = conninfoParse(text, what)
  if (info.has('password') && cfg.source(option) === 'command line') {
    fail('OptionInvalidValue', `${what} holds a password on the command line, where every user of this machine can read it`, {
      hint:
        'put the password in the password file (~/.pgpass, or the file PGPASSFILE or passfile= names, mode 0600) or in PGPASSWORD; ' +
        `or give the whole string in ${optionEnvName(option)} or the config file.`,
    })
  }
  return info
}
