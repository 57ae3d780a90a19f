// pgBackRest's info files (backup.info, archive.info, backup.manifest): INI sections whose values are JSON, the whole
// guarded by a SHA-1 in a closing [backrest] section. The checksum covers a JSON rendering of every section and key
// in file order, each value as written, without the checksum key itself; recomputed here so a damaged or hand-edited
// copy is refused, as pgBackRest refuses it, and the .copy beside it is tried instead.

import { createHash } from 'node:crypto'
import { fail } from '../../common/errors.js'

/** Sections in file order, each a map of key to the value's JSON text as written. */
export type PgbrIni = Map<string, Map<string, string>>

/** Thrown by walden's own info-file reader when it meets pgBackRest's format, so its caller loads it as such (info.ts). */
export class PgbrFormatFound extends Error {
  constructor(readonly path: string) {
    super(`'${path}' is in pgBackRest's format`)
  }
}

/** What the first bytes of a repository file say it is: pgBackRest's INI, plain or encrypted, or neither. */
export function pgbrFileKind(data: Buffer): 'ini' | 'encrypted' | undefined {
  if (data.subarray(0, 10).toString('latin1') === '[backrest]') return 'ini'
  if (data.subarray(0, 8).toString('latin1') === 'Salted__') return 'encrypted'
  return undefined
}

/** Parses the text; the problem in one phrase (for the caller's error) when it is not a whole, checksummed file. */
export function pgbrIniParse(text: string): { ini: PgbrIni } | { problem: string } {
  const ini: PgbrIni = new Map()
  let section: Map<string, string> | undefined
  let checksum: string | undefined
  const lines = text.split('\n')
  for (const [index, line] of lines.entries()) {
    if (line === '') continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header) {
      const name = header[1]!
      section = ini.get(name) ?? new Map<string, string>()
      ini.set(name, section)
      continue
    }
    const equals = line.indexOf('=')
    if (section === undefined || equals <= 0) return { problem: `line ${index + 1} is not 'key=value' in a section` }
    const key = line.slice(0, equals)
    const value = line.slice(equals + 1)
    if (section === ini.get('backrest') && key === 'backrest-checksum') checksum = value
    else section.set(key, value)
  }
  if (checksum === undefined) return { problem: 'has no backrest-checksum (the file is incomplete)' }
  const rendered = [...ini]
    .filter(([, keys]) => keys.size > 0)
    .map(([name, keys]) => `${JSON.stringify(name)}:{${[...keys].map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`)
    .join(',')
  const actual = createHash('sha1').update(`{${rendered}}`).digest('hex')
  if (JSON.stringify(actual) !== checksum) return { problem: `does not match its checksum (${actual}, recorded ${checksum})` }
  return { ini }
}

/**
 * A value's JSON, with integers too large for a JavaScript number (system identifiers, which pgBackRest writes as
 * bare 64-bit integers) kept as their decimal strings: JSON.parse would round them.
 */
export function pgbrValue(text: string): unknown {
  try {
    return JSON.parse(text.replace(/([:[,]|^)(\d{16,})(?=[,}\]]|$)/g, '$1"$2"'))
  } catch {
    // Only a file edited by hand, its checksum recomputed, gets here: pgBackRest writes JSON.
    fail('Format', `pgBackRest info file holds a value that is not JSON: ${text.length > 60 ? `${text.slice(0, 60)}...` : text}`)
  }
}

/** The value of `key` in `section`, parsed; undefined when absent. */
export function pgbrGet(ini: PgbrIni, section: string, key: string): unknown {
  const text = ini.get(section)?.get(key)
  return text === undefined ? undefined : pgbrValue(text)
}
