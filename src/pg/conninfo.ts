// Connection strings as libpq users write them: 'host=/run/pg port=5433 dbname=app' or a postgres:// URI. The pg
// driver reads only URIs, so key=value strings are parsed here (quoting and backslash escapes as libpq does).

import { fail } from '../common/errors.js'

export interface ConninfoTarget {
  host?: string
  port?: number
  user?: string
  password?: string
  database?: string
  /** Set for a URI: the driver parses it itself. */
  connectionString?: string
}

// libpq names the driver does not know, mapped to what it calls them.
const KEY_ALIASES: Record<string, keyof ConninfoTarget> = { dbname: 'database', host: 'host', port: 'port', user: 'user', password: 'password' }

// Keys walden accepts and leaves to the server defaults (they change nothing the driver does).
const IGNORED_KEYS = new Set(['application_name', 'connect_timeout', 'sslmode', 'options', 'client_encoding'])

export function conninfoParse(text: string, optionName: string): ConninfoTarget {
  const trimmed = text.trim()
  if (/^postgres(ql)?:\/\//.test(trimmed)) return { connectionString: trimmed }
  const target: ConninfoTarget = {}
  let at = 0
  const invalid = (why: string): never =>
    fail('OptionInvalidValue', `option '${optionName}' is not a valid connection string: ${why}`, {
      hint: "write it as libpq does, e.g. 'host=/var/run/postgresql port=5432 dbname=app user=postgres', or as a postgres:// URI.",
    })
  while (at < trimmed.length) {
    while (/\s/.test(trimmed[at] ?? '')) at++
    if (at >= trimmed.length) break
    const keyMatch = /^([A-Za-z_]+)\s*=\s*/.exec(trimmed.slice(at))
    if (!keyMatch) invalid(`expected key=value at '${trimmed.slice(at)}'`)
    const key = keyMatch![1]!
    at += keyMatch![0].length
    let value = ''
    if (trimmed[at] === "'") {
      at++
      for (; at < trimmed.length && trimmed[at] !== "'"; at++) {
        if (trimmed[at] === '\\') at++
        value += trimmed[at] ?? ''
      }
      if (trimmed[at] !== "'") invalid(`unterminated quoted value for '${key}'`)
      at++
    } else {
      for (; at < trimmed.length && !/\s/.test(trimmed[at]!); at++) {
        if (trimmed[at] === '\\') at++
        value += trimmed[at] ?? ''
      }
    }
    const name = KEY_ALIASES[key]
    if (name === 'port') {
      const port = Number(value)
      if (!Number.isInteger(port) || port < 1 || port > 65535) invalid(`port '${value}' is not a port number`)
      target.port = port
    } else if (name !== undefined && name !== 'connectionString') {
      target[name] = value
    } else if (!IGNORED_KEYS.has(key)) {
      invalid(`unknown key '${key}'`)
    }
  }
  return target
}

/** The connection string with any password hidden, for messages. */
export function conninfoRedact(text: string): string {
  return text.replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/g, '$1***').replace(/(:\/\/[^:/@]*:)[^@]*@/, '$1***@')
}
