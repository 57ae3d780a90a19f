// INI reader for walden.conf. Keeps repeated keys (hash options such as recovery-option are repeated one per line)
// and the line each key came from, so errors can point at it.

import { fail } from '../common/errors.js'

export interface IniEntry {
  key: string
  value: string
  line: number
  /** The file the entry is in: a config file and its include files are merged into one document. */
  file: string
}

/** Section name -> entries in file order. A section that appears twice is merged. */
export type IniDocument = Map<string, IniEntry[]>

/** Several documents as one, in the order given: sections of the same name merged, entries in order. */
export function iniMerge(documents: readonly IniDocument[]): IniDocument {
  const merged: IniDocument = new Map()
  for (const document of documents) {
    for (const [section, entries] of document) merged.set(section, [...(merged.get(section) ?? []), ...entries])
  }
  return merged
}

export function iniParse(text: string, fileName: string): IniDocument {
  const document: IniDocument = new Map()
  let current: IniEntry[] | undefined
  const lines = text.split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.trim()
    const lineNo = index + 1
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    if (line.startsWith('[')) {
      if (!line.endsWith(']') || line.length < 3) {
        fail('Config', `invalid section header '${line}' at line ${lineNo} of '${fileName}'`)
      }
      const name = line.slice(1, -1).trim()
      current = document.get(name)
      if (!current) document.set(name, (current = []))
      continue
    }
    const equals = line.indexOf('=')
    if (equals <= 0) {
      fail('Config', `invalid line '${line}' at line ${lineNo} of '${fileName}'`, {
        hint: 'each line must be [section], key=value or a comment starting with #.',
      })
    }
    if (!current) {
      fail('Config', `option '${line.slice(0, equals).trim()}' at line ${lineNo} of '${fileName}' is outside any section`, {
        hint: 'put it under [global] or under a [stanza] section.',
      })
    }
    current.push({ key: line.slice(0, equals).trim(), value: line.slice(equals + 1).trim(), line: lineNo, file: fileName })
  }
  return document
}
