// Command-line tokenizer. Options may stand before or after the command name; option names are looked up in the
// option table, which says whether an option takes a value.

import { fail } from '../common/errors.js'
import { commandResolve } from './commands.js'
import type { CommandName } from './commands.js'
import { optionDef } from './options.js'

export interface ParsedArgv {
  command?: CommandName
  params: string[]
  /** Raw values as given; booleans are 'y' or 'n'. Hash and list options keep every occurrence. */
  options: Map<string, string[]>
  /** --help or -h was given. */
  help: boolean
  /** 'async' for the background process of archive-push or archive-get, started as `archive-push:async`. */
  role?: 'async'
}

// Commands that have a background process. Not listed in help: only walden itself starts them.
const ASYNC_COMMANDS: readonly string[] = ['archive-push', 'archive-get']

export function parseArgv(argv: readonly string[]): ParsedArgv {
  const result: ParsedArgv = { params: [], options: new Map(), help: false }
  const positionals: string[] = []
  let onlyPositionals = false

  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (onlyPositionals || !arg.startsWith('-') || arg === '-') {
      positionals.push(arg)
      continue
    }
    if (arg === '--') {
      onlyPositionals = true
      continue
    }
    if (arg === '--help' || arg === '-h') {
      result.help = true
      continue
    }
    if (arg === '--version') {
      positionals.unshift('version')
      continue
    }
    if (!arg.startsWith('--')) {
      fail('OptionInvalid', `invalid option '${arg}'`, { hint: 'options are spelled --name=value; run `walden help`.' })
    }

    const equals = arg.indexOf('=')
    let name = equals === -1 ? arg.slice(2) : arg.slice(2, equals)
    let value: string | undefined = equals === -1 ? undefined : arg.slice(equals + 1)
    let def = optionDef(name)

    // --no-start-fast negates a boolean option.
    if (!def && name.startsWith('no-') && optionDef(name.slice(3))?.type === 'boolean') {
      if (value !== undefined) fail('OptionInvalid', `option '--${name}' does not take a value`)
      name = name.slice(3)
      def = optionDef(name)
      value = 'n'
    }
    if (!def) fail('OptionInvalid', `invalid option '--${name}'`, { hint: 'run `walden help COMMAND` for the options of a command.' })

    if (def.type === 'boolean') {
      if (value === undefined) value = 'y'
      else if (value !== 'y' && value !== 'n' && !arg.startsWith('--no-')) {
        fail('OptionInvalidValue', `boolean option '--${name}' must be 'y' or 'n', not '${value}'`, {
          hint: `use --${name} or --no-${name}.`,
        })
      }
    } else if (value === undefined) {
      const next = argv[index + 1]
      if (next === undefined || next.startsWith('--')) fail('OptionInvalidValue', `option '--${name}' requires a value`)
      value = next
      index++
    }

    const values = result.options.get(name)
    if (values && def.type !== 'hash' && def.type !== 'list') {
      fail('OptionInvalid', `option '--${name}' cannot be given more than once`)
    }
    if (values) values.push(value)
    else result.options.set(name, [value])
  }

  let commandName = positionals.shift()
  if (commandName !== undefined && commandName.endsWith(':async') && ASYNC_COMMANDS.includes(commandName.slice(0, -':async'.length))) {
    commandName = commandName.slice(0, -':async'.length)
    result.role = 'async'
  }
  if (commandName !== undefined) {
    const command = commandResolve(commandName)
    if (command === undefined) {
      fail('CommandInvalid', `invalid command '${commandName}'`, { hint: 'run `walden help` for the list of commands.' })
    }
    result.command = command
  }
  result.params = positionals
  return result
}
