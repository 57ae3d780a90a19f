// Builds the immutable Config a command receives: command line > environment > config file > default, every value
// checked against the option table. Nothing is silently ignored: an unknown option, a value of the wrong type, or
// an option given to a command it does not apply to is an error that names the option and where it came from.

import { readdirSync, readFileSync } from 'node:fs'
import { isAbsolute, join, normalize } from 'node:path'
import { errnoCode, fail } from '../common/errors.js'
import { HOOK_VARIABLES } from '../common/hook-variables.js'
import { COMMANDS, isCommandName } from './commands.js'
import type { CommandName } from './commands.js'
import { iniMerge, iniParse } from './ini.js'
import type { IniDocument } from './ini.js'
import { OPTIONS, optionAllow, optionDef, optionDefault, optionEnvName } from './options.js'
import type { OptionDef, OptionName, OptionValue } from './options.js'
import { parseArgv } from './parse-argv.js'

export type OptionSource = 'command line' | 'environment' | 'config file' | 'default'

/** Where each raw value came from, for error messages: "option 'x' in section '[demo]' of '/etc/...'" etc. */
interface RawValue {
  values: string[]
  source: OptionSource
  where: string
  /** The config file the value is in (the main one or an include file). */
  file?: string
}

const STANZA_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

export class Config {
  readonly command: CommandName
  /** 'async': the background process of archive-push or archive-get, which walden starts itself. */
  readonly role: 'main' | 'async'
  readonly params: readonly string[]
  readonly #values: ReadonlyMap<string, OptionValue>
  readonly #sources: ReadonlyMap<string, OptionSource>
  readonly #files: ReadonlyMap<string, string>
  /** Problems worth a warning once logging is set up (the logger's levels come from this very config). */
  readonly warnings: readonly string[]

  constructor(
    command: CommandName,
    params: readonly string[],
    values: ReadonlyMap<string, OptionValue>,
    sources: ReadonlyMap<string, OptionSource>,
    warnings: readonly string[] = [],
    role: 'main' | 'async' = 'main',
    files: ReadonlyMap<string, string> = new Map(),
  ) {
    this.#files = files
    this.role = role
    this.warnings = warnings
    this.command = command
    this.params = Object.freeze([...params])
    this.#values = values
    this.#sources = sources
  }

  has(name: OptionName): boolean {
    return this.#values.has(name)
  }

  source(name: OptionName): OptionSource | undefined {
    return this.#sources.get(name)
  }

  /** The config file an option's value was read from (the main file or one in config-include-path), if any. */
  configFile(name: OptionName): string | undefined {
    return this.#files.get(name)
  }

  /** The value of a string, path or enum option, or undefined when unset. */
  string(name: OptionName): string | undefined {
    const value = this.#values.get(name)
    if (value !== undefined && typeof value !== 'string') fail('Assert', `option '${name}' is not a string`)
    return value
  }

  number(name: OptionName): number | undefined {
    const value = this.#values.get(name)
    if (value !== undefined && typeof value !== 'number') fail('Assert', `option '${name}' is not a number`)
    return value
  }

  boolean(name: OptionName): boolean {
    const value = this.#values.get(name) ?? false
    if (typeof value !== 'boolean') fail('Assert', `option '${name}' is not a boolean`)
    return value
  }

  hash(name: OptionName): Readonly<Record<string, string>> {
    const value = this.#values.get(name) ?? {}
    if (typeof value !== 'object' || Array.isArray(value)) fail('Assert', `option '${name}' is not a hash`)
    return value as Readonly<Record<string, string>>
  }

  /** Every value of a repeatable (list) option, in the order given; empty when unset. */
  list(name: OptionName): readonly string[] {
    const value = this.#values.get(name) ?? []
    if (!Array.isArray(value)) fail('Assert', `option '${name}' is not a list`)
    return value as readonly string[]
  }

  /** A string option the command cannot do without. */
  requireString(name: OptionName): string {
    const value = this.string(name)
    if (value === undefined) {
      fail('OptionRequired', `${this.command} command requires option '${name}'`, {
        hint:
          OPTIONS[name].section === false
            ? `give --${name} on the command line.`
            : `give --${name}, set ${optionEnvName(name)}, or set ${name} in the config file.`,
      })
    }
    return value
  }

  /** The stanza name; every command that works on one stanza calls this. */
  stanza(): string {
    return this.requireString('stanza')
  }

  /**
   * Options given on the command line or in the environment, as --name=value arguments for another walden
   * command: restore writes them into restore_command, which PostgreSQL runs without this process's environment.
   */
  explicitArguments(forCommand: CommandName): string[] {
    const args: string[] = []
    for (const [name, value] of this.#values) {
      const source = this.#sources.get(name)
      if (source !== 'command line' && source !== 'environment') continue
      const def: OptionDef = OPTIONS[name as OptionName]
      if (!def.commands.includes(forCommand) || typeof value === 'object') continue
      // A secret would end up in postgresql.auto.conf's restore_command and in `ps`.
      if (def.notOnCommandLine === true) continue
      args.push(typeof value === 'boolean' ? (value ? `--${name}` : `--no-${name}`) : `--${name}=${value}`)
    }
    return args
  }

  /** Options that differ from their defaults, for the "command begin" log line; secure values redacted. */
  describe(): string {
    const parts: string[] = []
    for (const [name, value] of this.#values) {
      if (this.#sources.get(name) === 'default') continue
      const def: OptionDef = OPTIONS[name as OptionName]
      const shown =
        def.secure === true
          ? '<redacted>'
          : Array.isArray(value)
            ? value.join(' ')
            : typeof value === 'object'
            ? Object.entries(value)
                // A connection string (recovery-option primary_conninfo=...) or a password may hold a secret.
                .map(([key, item]) => `${key}=${/conninfo|pass/i.test(key) ? '<redacted>' : item}`)
                .join(' ')
            : String(value)
      const quoted = /[\s"']/.test(shown) ? `"${shown.replaceAll('"', '\\"')}"` : shown
      parts.push(typeof value === 'boolean' ? (value ? `--${name}` : `--no-${name}`) : `--${name}=${quoted}`)
    }
    return parts.join(' ')
  }
}

export interface ConfigLoadInput {
  argv: readonly string[]
  env: Readonly<Record<string, string | undefined>>
  /** Reads the config file; injectable for tests. Returns undefined when the file does not exist. */
  readFile?: (path: string) => string | undefined
  /** Names in the include folder; injectable for tests. Returns undefined when the folder does not exist. */
  readDir?: (path: string) => string[] | undefined
}

function readConfigFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    fail('Config', `unable to read config file '${path}': ${(error as Error).message}`)
  }
}

function readConfigDir(path: string): string[] | undefined {
  try {
    return readdirSync(path)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    fail('Config', `unable to list config include path '${path}': ${(error as Error).message}`)
  }
}

/**
 * The config file and its include files, as pgBackRest loads them: the *.conf files of config-include-path, in name
 * order, after the main file. The include folder is read unless --config names a file and config-include-path is not
 * given (so `--config=FILE` alone means that file only); a folder given that does not exist is an error, the default
 * one missing is not. All of them make one document: a key set twice in one section, in any two files, is an error.
 */
function configFiles(raw: ReadonlyMap<string, RawValue>, input: ConfigLoadInput): Array<{ path: string; text: string }> {
  const configPath = raw.get('config')?.values[0] ?? (OPTIONS.config.default as string)
  const read = input.readFile ?? readConfigFile
  const text = read(configPath)
  if (text === undefined && raw.has('config')) {
    fail('Config', `config file '${configPath}' does not exist`, { hint: 'check --config or WALDEN_CONFIG.' })
  }
  const files = text === undefined ? [] : [{ path: configPath, text }]
  const includeGiven = raw.get('config-include-path')
  if (raw.has('config') && includeGiven === undefined) return files
  const includePath = includeGiven?.values[0] ?? (OPTIONS['config-include-path'].default as string)
  const names = (input.readDir ?? readConfigDir)(includePath)
  if (names === undefined) {
    if (includeGiven !== undefined) {
      fail('PathMissing', `config include path '${includePath}' does not exist`, { hint: 'check --config-include-path or WALDEN_CONFIG_INCLUDE_PATH.' })
    }
    return files
  }
  for (const name of names.filter((item) => item.endsWith('.conf')).sort()) {
    const path = join(includePath, name)
    const included = read(path)
    // Removed between the listing and the read: as if it had not been there.
    if (included !== undefined) files.push({ path, text: included })
  }
  return files
}

/** Parses the command line, environment and config file into a Config for the command given. */
export function configLoad(input: ConfigLoadInput): Config {
  const parsed = parseArgv(input.argv)

  // `walden`, `walden --help` and `walden backup --help` all mean help.
  let command: CommandName = parsed.command ?? 'help'
  let params = parsed.params
  if (parsed.help && command !== 'help') {
    params = [command]
    command = 'help'
  }
  const def = COMMANDS[command]

  const raw = new Map<string, RawValue>()
  const warnings: string[] = []

  // Command line: an option the command does not use is a mistake worth stopping for.
  for (const [name, values] of parsed.options) {
    const option = optionDef(name)!
    if (!option.commands.includes(command) && command !== 'help') {
      fail('OptionInvalid', `option '--${name}' is not valid for command '${command}'`, {
        hint: `run \`walden help ${command}\` for the options it takes.`,
      })
    }
    if (option.notOnCommandLine === true) {
      fail('OptionInvalid', `option '--${name}' is secret and may not be given on the command line, where any user sees it in \`ps\``, {
        hint: `set ${optionEnvName(name)}, or set ${name} in the config file (mode 0600).`,
      })
    }
    raw.set(name, { values, source: 'command line', where: 'on the command line' })
  }

  // help and version never read the environment or config file, so a broken config cannot hide the help.
  if (command !== 'help' && command !== 'version') {
    for (const [name, value] of envOptions(input.env, warnings)) {
      if (!raw.has(name)) raw.set(name, { values: value, source: 'environment', where: `in ${optionEnvName(name)}` })
    }
    const files = configFiles(raw, input)
    if (files.length > 0) {
      const stanza = raw.get('stanza')?.values[0]
      const documents = files.map((file) => iniParse(file.text, file.path))
      for (const [index, document] of documents.entries()) sectionsCheck(document, files[index]!.path)
      for (const [name, value] of configFileOptions(iniMerge(documents), command, stanza)) {
        if (!raw.has(name)) raw.set(name, value)
      }
    }
  }

  const values = new Map<string, OptionValue>()
  const sources = new Map<string, OptionSource>()
  const files = new Map<string, string>()
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const option: OptionDef = OPTIONS[name]
    if (!option.commands.includes(command)) continue
    const given = raw.get(name)
    if (given) {
      values.set(name, coerce(name, option, command, given))
      sources.set(name, given.source)
      if (given.file !== undefined) files.set(name, given.file)
    } else {
      const fallback = optionDefault(name, command)
      if (fallback !== undefined) {
        // Size defaults are written as people write them ('128MiB') for help and the reference.
        values.set(name, option.type === 'size' && typeof fallback === 'string' ? sizeParse(fallback)! : fallback)
        sources.set(name, 'default')
      }
    }
  }

  const stanza = values.get('stanza')
  if (typeof stanza === 'string' && !STANZA_NAME.test(stanza)) {
    fail('OptionInvalidValue', `stanza name '${stanza}' is not valid`, {
      hint: 'use letters, digits, "-", "_" and "." only, starting with a letter or digit.',
    })
  }
  if (def.stanzaRequired && stanza === undefined) {
    fail('OptionRequired', `${command} command requires option 'stanza'`, { hint: 'give --stanza=NAME.' })
  }
  // The background processes take lists of WAL names, checked where they are used.
  if (parsed.role === undefined) checkParameters(command, params)
  return new Config(command, params, values, sources, warnings, parsed.role ?? 'main', files)
}

function checkParameters(command: CommandName, params: readonly string[]): void {
  const expected = COMMANDS[command].parameters
  const required = expected.filter((name) => !name.endsWith('?'))
  if (params.length < required.length) {
    const missing = required[params.length]!
    fail('ParamRequired', `${command} command requires parameter ${missing}`, {
      hint: `usage: walden ${command} ${expected.join(' ').replaceAll('?', '')}`.trimEnd(),
    })
  }
  if (params.length > expected.length) {
    fail('ParamInvalid', `${command} command takes ${expected.length === 0 ? 'no parameters' : `at most ${expected.length} parameter(s)`}, got '${params.join(' ')}'`, {
      hint: 'options are spelled --name=value; run `walden help ' + command + '`.',
    })
  }
}

/** WALDEN_* variables; an unknown one is reported so a typo does not silently leave a setting at its default. */
function envOptions(env: Readonly<Record<string, string | undefined>>, warnings: string[]): Map<string, string[]> {
  const result = new Map<string, string[]>()
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('WALDEN_') || value === undefined || HOOK_VARIABLES.has(key)) continue
    const name = key.slice('WALDEN_'.length).toLowerCase().replaceAll('_', '-')
    const option = optionDef(name)
    if (!option) {
      // A warning, not an error: the environment is shared with PostgreSQL's archive_command, and an unrelated
      // WALDEN_* variable must not stop WAL archiving.
      warnings.push(`environment variable '${key}' is not a walden option and is ignored`)
      continue
    }
    // Hash options carry several KEY=VALUE pairs separated by ':' in one variable. List items (settings, shell
    // commands) may hold a ':' themselves, so they are one a line.
    result.set(
      name,
      option.type === 'hash'
        ? value.split(':').filter((item) => item !== '')
        : option.type === 'list'
          ? value.split('\n').filter((item) => item.trim() !== '')
          : [value],
    )
  }
  return result
}

/**
 * Options from the config file for this command and stanza. Every section is checked, not only the ones that
 * apply, so a mistake anywhere in the file is found the first time walden reads it.
 */
function configFileOptions(document: IniDocument, command: CommandName, stanza: string | undefined): Map<string, RawValue> {
  // Highest precedence first: [stanza:command], [stanza], [global:command], [global].
  const order = stanza ? [`${stanza}:${command}`, stanza, `global:${command}`, 'global'] : [`global:${command}`, 'global']
  const result = new Map<string, RawValue>()

  for (const [section, entries] of document) {
    const [base, sectionCommand] = section.split(':')
    const isGlobal = base === 'global'
    const seen = new Map<string, string>()
    for (const entry of entries) {
      const where = `at line ${entry.line} of '${entry.file}'`
      const option = optionDef(entry.key)
      if (!option) fail('OptionInvalid', `invalid option '${entry.key}' ${where}`, { hint: 'check its spelling against `walden help`.' })
      if (option.section === false) {
        fail('OptionInvalid', `option '${entry.key}' ${where} cannot be set in a config file`, {
          hint: `give --${entry.key} on the command line.`,
        })
      }
      if (option.section === 'global' && !isGlobal) {
        fail('OptionInvalid', `option '${entry.key}' ${where} may only be set in [global]`, {
          hint: 'every walden process on this host must agree on it.',
        })
      }
      if (option.section === 'stanza' && isGlobal) {
        fail('OptionInvalid', `option '${entry.key}' ${where} may only be set in a stanza section`, {
          hint: `move it under [STANZA]; it identifies one cluster.`,
        })
      }
      if (sectionCommand !== undefined && !option.commands.includes(sectionCommand as CommandName)) {
        fail('OptionInvalid', `option '${entry.key}' ${where} is not valid for command '${sectionCommand}'`)
      }
      const before = seen.get(entry.key)
      if (before !== undefined && option.type !== 'hash' && option.type !== 'list') {
        fail('OptionInvalid', `option '${entry.key}' ${where} is set more than once in section '[${section}]'`, {
          hint: `it is also set ${before}; keep one of them.`,
        })
      }
      seen.set(entry.key, where)
    }
  }

  for (const section of order) {
    for (const entry of document.get(section) ?? []) {
      const existing = result.get(entry.key)
      if (existing && existing.where.includes(`[${section}]`)) existing.values.push(entry.value)
      else if (!existing) {
        result.set(entry.key, {
          values: [entry.value],
          source: 'config file',
          where: `in section '[${section}]' of '${entry.file}'`,
          file: entry.file,
        })
      }
    }
  }
  return result
}

/** Section names are [global], [global:COMMAND], [STANZA] or [STANZA:COMMAND]; checked per file, to name the file. */
function sectionsCheck(document: IniDocument, path: string): void {
  for (const section of document.keys()) {
    const [base, sectionCommand, extra] = section.split(':')
    if (extra !== undefined || base === '' || (sectionCommand !== undefined && !isCommandName(sectionCommand))) {
      fail('Config', `invalid section '[${section}]' in '${path}'`, {
        hint: 'sections are [global], [global:COMMAND], [STANZA] or [STANZA:COMMAND].',
      })
    }
  }
}

function coerce(name: string, option: OptionDef, command: CommandName, raw: RawValue): OptionValue {
  const value = raw.values[0]!
  const invalid = (why: string, hint?: string): never =>
    fail('OptionInvalidValue', `option '${name}' ${raw.where} ${why}`, hint ? { hint } : undefined)

  switch (option.type) {
    case 'boolean':
      if (value === 'y') return true
      if (value === 'n') return false
      return invalid(`must be 'y' or 'n', not '${value}'`)
    case 'integer': {
      if (!/^-?\d+$/.test(value)) return invalid(`must be a whole number, not '${value}'`)
      const number = Number(value)
      checkRange(number, option, invalid)
      return number
    }
    case 'seconds': {
      if (!/^\d+(\.\d+)?$/.test(value)) return invalid(`must be a number of seconds, not '${value}'`)
      const number = Number(value)
      checkRange(number, option, invalid)
      return number
    }
    case 'size': {
      const bytes = sizeParse(value)
      if (bytes === undefined) return invalid(`must be a size such as 128MiB, 1GiB or 1048576, not '${value}'`)
      checkRange(bytes, option, invalid)
      return bytes
    }
    case 'enum': {
      const allow = optionAllow(name as OptionName, command) ?? []
      if (!allow.includes(value)) return invalid(`must be one of ${allow.map((item) => `'${item}'`).join(', ')}, not '${value}'`)
      return value
    }
    case 'path':
      if (!isAbsolute(value)) return invalid(`must be an absolute path, not '${value}'`)
      return normalize(value).replace(/(.)\/$/, '$1')
    case 'string':
      if (value === '') return invalid('must not be empty')
      return value
    case 'hash': {
      const hash: Record<string, string> = {}
      for (const item of raw.values) {
        const equals = item.indexOf('=')
        if (equals <= 0) invalid(`must be KEY=VALUE, not '${item}'`)
        hash[item.slice(0, equals).trim()] = item.slice(equals + 1).trim()
      }
      return Object.freeze(hash)
    }
    case 'list':
      for (const item of raw.values) if (item.trim() === '') invalid('must not be empty')
      return Object.freeze([...raw.values])
  }
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

/** Bytes of a size such as '128MiB', '1GB' or '4096'. As in pgBackRest, KB and KiB both mean 1024 bytes. */
export function sizeParse(text: string): number | undefined {
  const match = /^(\d+)\s*(?:([kmgt])i?)?(b)?$/i.exec(text.trim())
  if (!match) return undefined
  const unit = (match[2] ?? match[3] ?? '').toLowerCase()
  return Number(match[1]) * SIZE_UNITS[unit]!
}

function checkRange(number: number, option: OptionDef, invalid: (why: string) => never): void {
  if (option.range && (number < option.range[0] || number > option.range[1])) {
    invalid(`is out of range: ${number} is not between ${option.range[0]} and ${option.range[1]}`)
  }
}
