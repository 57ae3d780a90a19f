// `walden help [COMMAND]` and `walden version`, rendered from the command and option tables.

import type { Command } from '../commands/command.js'
import { COMMAND_NAMES, COMMANDS, commandResolve } from '../config/commands.js'
import type { CommandName } from '../config/commands.js'
import { fail } from '../common/errors.js'
import { listedOptions, OPTIONS, optionAllow, optionDefault, optionEnvName } from '../config/options.js'
import type { OptionDef, OptionName } from '../config/options.js'
import { basename } from 'node:path'
import { PGBACKREST_LEVEL, VERSION } from '../version.js'

const WIDTH = 100

function wrap(text: string, indent: number): string {
  const words = text.split(/\s+/)
  const lines: string[] = []
  let line = ''
  for (const word of words) {
    if (line !== '' && indent + line.length + 1 + word.length > WIDTH) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') lines.push(line)
  return lines.map((item, index) => (index === 0 ? item : `${' '.repeat(indent)}${item}`)).join('\n')
}

export function helpGeneral(): string {
  const listed = COMMAND_NAMES.filter((name) => COMMANDS[name].internal !== true)
  const width = Math.max(...listed.map((name) => name.length)) + 2
  return [
    `walden ${VERSION} - PostgreSQL backup, point-in-time recovery and replication`,
    '',
    'Usage: walden [options] COMMAND [parameters] [options]',
    '',
    'Commands:',
    ...listed.map((name) => `  ${name.padEnd(width)}${COMMANDS[name].summary}`),
    '',
    'Run `walden help COMMAND` for the options of a command. Options are read from the command line,',
    'WALDEN_* environment variables and the config file (default /etc/walden/walden.conf), in that order.',
  ].join('\n')
}

function optionUsage(name: OptionName, def: OptionDef, command: CommandName): string {
  const allow = optionAllow(name, command)
  if (def.type === 'boolean') return `--${name}`
  if (allow) return `--${name}=${allow.join('|')}`
  if (def.type === 'hash') return `--${name}=KEY=VALUE`
  if (def.type === 'list') return `--${name}=VALUE (repeatable)`
  return `--${name}=${def.type === 'integer' ? 'N' : def.type === 'seconds' ? 'SECONDS' : def.type === 'size' ? 'SIZE' : def.type.toUpperCase()}`
}

export function helpCommand(command: CommandName): string {
  const def = COMMANDS[command]
  const names = listedOptions().filter((name) => (OPTIONS[name] as OptionDef).commands.includes(command))
  const usages = names.map((name) => optionUsage(name, OPTIONS[name], command))
  const width = Math.min(40, Math.max(...usages.map((usage) => usage.length)) + 2)
  const lines = [
    `walden ${VERSION} - ${command}: ${def.summary}`,
    '',
    `Usage: walden ${command} ${def.parameters.map((param) => (param.endsWith('?') ? `[${param.slice(0, -1)}]` : param)).join(' ')} [options]`.replace(/ +/g, ' '),
    '',
    wrap(def.description, 0),
    '',
    'Options:',
  ]
  names.forEach((name, index) => {
    const option: OptionDef = OPTIONS[name]
    const fallback = optionDefault(name, command)
    const notes = [
      fallback === undefined ? undefined : `default: ${typeof fallback === 'boolean' ? (fallback ? 'y' : 'n') : fallback}`,
      option.section === false ? 'command line only' : undefined,
      option.section === 'stanza' ? 'stanza section only' : undefined,
      option.section === 'global' ? '[global] only' : undefined,
    ].filter(Boolean)
    const text = `${option.summary}${option.description ? ` ${option.description}` : ''}${notes.length ? ` (${notes.join('; ')})` : ''}`
    const usage = usages[index]!
    const head = usage.length + 2 > width ? `  ${usage}\n${' '.repeat(width + 2)}` : `  ${usage.padEnd(width)}`
    lines.push(`${head}${wrap(text, width + 2)}`)
  })
  lines.push('', `Every option can also be set as ${optionEnvName('option-name')} in the environment.`)
  return lines.join('\n')
}

export const help: Command = {
  async run(cfg) {
    const topic = cfg.params[0]
    const command = topic === undefined ? undefined : commandResolve(topic)
    if (topic === undefined) process.stdout.write(`${helpGeneral()}\n`)
    else if (command !== undefined) process.stdout.write(`${helpCommand(command)}\n`)
    else fail('CommandInvalid', `invalid command '${topic}'`, { hint: 'run `walden help` for the list of commands.' })
    return 0
  },
}

/**
 * A version as one number, as pgBackRest's `version --output=num` prints its own (2.45.0 is 2045000): major * 1000000 +
 * minor * 1000 + patch, so scripts can compare versions as integers. A pre-release suffix ('-dev') is dropped.
 */
export function versionNum(version: string): number {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version)
  if (!match) fail('Assert', `version '${version}' is not MAJOR.MINOR.PATCH`)
  return Number(match[1]) * 1_000_000 + Number(match[2]) * 1_000 + Number(match[3] ?? 0)
}

/**
 * What `version` says: walden's own version, or, run under the name `pgbackrest`, the pgBackRest level walden follows
 * as pgBackRest prints its own ("pgBackRest 2.45"), so tools that gate on pgBackRest's version accept it.
 */
export function versionText(programName: string, output: string | undefined): string {
  const asPgBackRest = programName === 'pgbackrest'
  const version = asPgBackRest ? PGBACKREST_LEVEL : VERSION
  if (output === 'num') return `${versionNum(version)}`
  return asPgBackRest ? `pgBackRest ${version}` : `walden ${version}`
}

export const version: Command = {
  async run(cfg) {
    process.stdout.write(`${versionText(basename(process.argv[1] ?? ''), cfg.string('output'))}\n`)
    return 0
  },
}
