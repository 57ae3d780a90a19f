// docs/reference.md, rendered from the command, option and error tables so the documentation cannot drift from the
// code. `npm run docs` writes it; a unit test fails when the committed file is stale.

import { ERROR_CODES } from '../common/errors.js'
import { COMMAND_NAMES, COMMANDS } from '../config/commands.js'
import { listedOptions, OPTIONS, optionDefault, optionEnvName } from '../config/options.js'
import type { OptionDef, OptionName } from '../config/options.js'

/** What each exit code means for a DBA reading a script's output. */
const ERROR_MEANINGS: Record<keyof typeof ERROR_CODES, string> = {
  Assert: 'an internal check failed: a bug in walden',
  Checksum: 'data does not match its recorded checksum (a damaged repository or WAL file)',
  Config: 'the config file cannot be read or parsed',
  FileInvalid: 'a file is not what it should be',
  Format: 'a file or value cannot be parsed (corrupt compressed data, a bad WAL header)',
  OptionInvalid: 'an unknown option, or one not valid for this command or config section',
  OptionInvalidValue: 'an option value of the wrong type, out of range or not allowed',
  OptionRequired: 'a required option is missing',
  PgRunning: 'PostgreSQL is running where it must not be (restore, stanza-delete)',
  Protocol: 'the remote protocol failed: walden versions differ between the hosts, no answer within protocol-timeout, or a malformed stream',
  HostConnect: 'a remote host cannot be reached over SSH (host key, user, key, sshd), or the session to it was lost',
  PathNotEmpty: 'restore target folder is not empty',
  FileOpen: 'a file cannot be opened',
  FileRead: 'a file cannot be read',
  ParamRequired: 'a command parameter is missing',
  ArchiveMismatch: 'WAL or a cluster does not belong to the stanza (system identifier or version)',
  ArchiveDuplicate: 'a different WAL file with the same name is already archived',
  VersionNotSupported: 'the PostgreSQL version is not supported',
  LockAcquire: 'another walden process holds the stanza lock',
  BackupMismatch: 'no backup fits the request (--set, recovery target)',
  PathMissing: 'a required folder does not exist',
  FileMissing: 'a required file does not exist',
  DbConnect: 'cannot connect to PostgreSQL',
  DbQuery: 'a query to PostgreSQL failed',
  DbMismatch: 'the server or data folder is not the one the configuration names',
  Stop: '`walden stop` is in effect',
  Term: 'terminated by a signal',
  FileWrite: 'a file cannot be written',
  FeatureNotSupported: 'an option asks for something walden does not do there (a command that changes the cluster, run on the backup host with pg1-host set)',
  ParamInvalid: 'a command parameter is wrong',
  ArchiveTimeout: 'WAL did not reach the archive within archive-timeout',
  ReplicationLag: 'replication-status or mirror-status: a standby, slot or mirror host is behind --max-lag-bytes/--max-lag-seconds (or no standby is connected)',
  SplitBrain: 'promote refused: the primary can still be reached and accepts writes',
  PgState: 'the server is not in the state the command needs (promote on a server that is not a standby)',
  VerifyFailed: 'verify found a problem: a backup or WAL file missing, damaged or not matching its checksum, a broken reference, or a gap in the archived WAL; the report names each',
  StagingInactive: 'staging-status found the staging copy INACTIVE: disabled, its cluster not running, or a fault standing (a break in the WAL chain, streaming stopped); the output says which',
  Crypto: 'a cipher key is missing or wrong, or encrypted data failed authentication',
  RepoInvalid: 'the stanza or repository is missing or damaged',
  CommandInvalid: 'unknown command',
  Unhandled: 'an unexpected error: a bug in walden, please report it',
}

function typeText(name: OptionName, def: OptionDef): string {
  if (def.perCommand) {
    return Object.entries(def.perCommand)
      .map(([command, value]) => `${command}: ${value!.allow.join(', ')}`)
      .join('; ')
  }
  if (def.allow) return def.allow.join(', ')
  if (def.type === 'integer' && def.range) return `integer ${def.range[0]}..${def.range[1]}`
  if (def.type === 'seconds' && def.range) return `seconds ${def.range[0]}..${def.range[1]}`
  if (def.type === 'size') return 'size (bytes, or with KiB, MiB, GiB, TiB)'
  if (def.type === 'boolean') return 'y/n (`--' + name + '`, `--no-' + name + '`)'
  if (def.type === 'hash') return 'KEY=VALUE, repeatable'
  if (def.type === 'list') return 'repeatable (environment: one value a line)'
  return def.type
}

function defaultText(name: OptionName, def: OptionDef): string {
  if (def.perCommand) {
    return Object.keys(def.perCommand)
      .map((command) => `${command}: ${optionDefault(name, command as (typeof COMMAND_NAMES)[number]) ?? '-'}`)
      .join('; ')
  }
  const value = def.default
  return value === undefined ? '-' : typeof value === 'boolean' ? (value ? 'y' : 'n') : String(value)
}

const SECTIONS: Record<string, string> = {
  any: 'any',
  global: '[global] only',
  stanza: 'stanza only',
  false: 'command line / env only',
}

export function renderReference(): string {
  const lines: string[] = [
    '# walden reference',
    '',
    '<!-- Generated from src/config/commands.ts, src/config/options.ts and src/common/errors.ts by `npm run docs`. Do not edit. -->',
    '',
    'Options are read, highest precedence first, from the command line (`--name=value`, before or after the command),',
    `the environment (\`${optionEnvName('repo1-path')}\` for \`repo1-path\`; several KEY=VALUE pairs of a hash option separated by \`:\`),`,
    'the config file (sections `[STANZA:COMMAND]`, `[STANZA]`, `[global:COMMAND]`, `[global]`, in that order), and defaults.',
    'Every `repo1-*` option exists for repositories 1 to 4 (`repo2-path`, `repo3-s3-bucket`, ...); repo1 is listed.',
    'Booleans are `y`/`n` in the config file and environment, `--name`/`--no-name` on the command line.',
    '',
    '## Commands',
    '',
  ]
  for (const name of COMMAND_NAMES) {
    const def = COMMANDS[name]
    const options = listedOptions().filter((option) => (OPTIONS[option] as OptionDef).commands.includes(name))
    const params = def.parameters.map((param) => (param.endsWith('?') ? `[${param.slice(0, -1)}]` : param)).join(' ')
    lines.push(`### ${name}`, '', `\`walden ${name}${params ? ` ${params}` : ''}\``, '', def.description, '')
    lines.push(`Options: ${options.map((option) => `[\`${option}\`](#${option})`).join(', ')}.`, '')
  }
  lines.push('## Options', '', '| option | values | default | config section | commands |', '|---|---|---|---|---|')
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const def: OptionDef = OPTIONS[name]
    const commands = def.commands.length === COMMAND_NAMES.length ? 'all' : def.commands.join(', ')
    lines.push(`| <a id="${name}"></a>\`${name}\` | ${typeText(name, def)} | ${defaultText(name, def)} | ${SECTIONS[String(def.section)]} | ${commands} |`)
  }
  lines.push('')
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const def: OptionDef = OPTIONS[name]
    lines.push(`- **\`${name}\`**: ${def.summary}${def.description ? ` ${def.description}` : ''}`)
  }
  lines.push(
    '',
    '## Exit codes',
    '',
    '0 is success. Every failure exits with its error code, printed as `ERROR: [NNN]: message` with an optional',
    '`HINT:` line. Two exceptions concern `archive-get`, which PostgreSQL runs as restore_command:',
    '',
    '- it exits **1** when the WAL file is not in the archive, which PostgreSQL takes as the end of archived WAL;',
    '- it exits **126** when the stored WAL file is damaged (a checksum or format error, or a segment that is not',
    '  whole: its size is not the segment size its header gives) or archived twice with different content, when both',
    '  copies of archive.info are damaged or written by a newer walden, and on any unexpected error (a bug, reported',
    '  as [124] in the log). PostgreSQL reads any status',
    '  up to 125 as "not in the archive" and would end recovery early and promote at the wrong point; 126 makes it',
    '  abort recovery instead. Other archive-get errors (a repository that cannot be reached) keep their codes, all',
    '  below 126, so a standby retries them.',
    '',
    '| code | error | meaning |',
    '|---|---|---|',
    ...(Object.entries(ERROR_CODES) as Array<[keyof typeof ERROR_CODES, number]>).map(
      ([kind, code]) => `| ${code} | ${kind} | ${ERROR_MEANINGS[kind]} |`,
    ),
    '',
  )
  return lines.join('\n')
}
