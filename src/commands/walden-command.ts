// The shell command PostgreSQL runs to call walden: restore_command (archive-get) and archive_command (archive-push).

import { resolve } from 'node:path'
import type { Config } from '../config/config.js'
import type { CommandName } from '../config/commands.js'
import { shellQuote } from './restore/recovery.js'

/**
 * This very walden (or --cmd), by absolute paths of Node and the script, since PostgreSQL may run the command with a
 * PATH that finds neither (a systemd unit's minimal environment). Options given to the running command that also
 * apply to `command` are passed on, as PostgreSQL's environment does not have ours; the console level is not, as
 * PostgreSQL's log is no console. `placeholders` are PostgreSQL's, such as `%f "%p"`, and are not quoted.
 */
export function waldenCommandLine(cfg: Config, command: CommandName, placeholders: string): string {
  const walden = cfg.string('cmd') ?? [process.execPath, resolve(process.argv[1] ?? 'walden')].map(shellQuote).join(' ')
  const forwarded = cfg
    .explicitArguments(command)
    .filter((arg) => !arg.startsWith('--stanza=') && !arg.startsWith('--log-level-console='))
  return [walden, ...[...forwarded, `--stanza=${cfg.stanza()}`].map(shellQuote), command, placeholders].join(' ')
}
