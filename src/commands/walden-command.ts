// The shell command PostgreSQL runs to call walden: restore_command (archive-get) and archive_command (archive-push).

import { accessSync, constants } from 'node:fs'
import { join, resolve } from 'node:path'
import { configLoad } from '../config/config.js'
import type { Config, ConfigLoadInput } from '../config/config.js'
import { COMMANDS } from '../config/commands.js'
import type { CommandName } from '../config/commands.js'
import { waldenPackageRoot } from '../pg/binaries.js'
import { commandWord } from '../pg/conf-syntax.js'

/** The sh fronts in bin/ that settle the usual asynchronous call without starting Node.js. */
const FRONTS: Partial<Record<CommandName, string>> = {
  'archive-get': 'walden-archive-get',
  'archive-push': 'walden-archive-push',
}

export interface WaldenCommandOptions {
  /** Reads the config file when deciding whether `command` runs asynchronously; injectable for tests. */
  readFile?: ConfigLoadInput['readFile']
  /** Where the sh fronts are; bin/ of this walden by default. */
  frontFolder?: string
}

/**
 * This very walden (or --cmd), by absolute paths of Node and the script, since PostgreSQL may run the command with a
 * PATH that finds neither (a systemd unit's minimal environment). Options given to the running command that also
 * apply to `command` are passed on, as PostgreSQL's environment does not have ours; the console level is not, as
 * PostgreSQL's log is no console. `placeholders` are PostgreSQL's, such as `%f "%p"`, and are not quoted.
 *
 * When `command` will run with archive-async (as its config says, for that command), the line starts walden through
 * its sh front in bin/, with the stanza and spool path on the command line, where the front can read them: it
 * delivers a segment the background process has fetched (archive-get), or settles one it has pushed (archive-push),
 * without starting Node.js, and runs walden with the same arguments for everything else. Not with --cmd, whose
 * command may be anything.
 *
 * Every word is quoted for sh and has its % doubled (commandWord), so a path with a quote, a space or a % in it
 * reaches walden as it is; the config-file layer is the writer's (confValue).
 */
export function waldenCommandLine(cfg: Config, command: CommandName, placeholders: string, options: WaldenCommandOptions = {}): string {
  const node = process.execPath
  const script = resolve(process.argv[1] ?? 'walden')
  const forwarded = cfg
    .explicitArguments(command)
    .filter((arg) => !arg.startsWith('--stanza=') && !arg.startsWith('--log-level-console='))
  const stanza = `--stanza=${cfg.stanza()}`
  const given = cfg.string('cmd')
  if (given !== undefined) return [given, ...[...forwarded, stanza].map(commandWord), command, placeholders].join(' ')

  const front = frontPath(command, options.frontFolder)
  const spoolPath = front === undefined ? undefined : asyncSpoolPath([...forwarded, stanza], command, options.readFile)
  if (front !== undefined && spoolPath !== undefined) {
    const words = [front, node, script, ...forwarded.filter((arg) => !arg.startsWith('--spool-path=')), stanza, `--spool-path=${spoolPath}`]
    return [...words.map(commandWord), placeholders].join(' ')
  }
  return [...[node, script, ...forwarded, stanza].map(commandWord), command, placeholders].join(' ')
}

/** The front for `command`, when there is one and it can be run. */
function frontPath(command: CommandName, folder: string | undefined): string | undefined {
  const name = FRONTS[command]
  if (name === undefined) return undefined
  try {
    const path = join(folder ?? join(waldenPackageRoot(), 'bin'), name)
    accessSync(path, constants.X_OK)
    return path
  } catch {
    // Not shipped with this install (or not executable): walden itself serves, only slower.
    return undefined
  }
}

/**
 * The spool path `command` will use when PostgreSQL runs it with `args`, if it runs asynchronously: its config as
 * loaded from those arguments and the config file, which is what [global:archive-get] and the like apply to.
 * Undefined when not asynchronous, or when the config cannot be loaded (the command will then say why, itself).
 */
function asyncSpoolPath(args: readonly string[], command: CommandName, readFile: ConfigLoadInput['readFile']): string | undefined {
  try {
    const params = COMMANDS[command].parameters.map((name) => name.replace('?', ''))
    const commandCfg = configLoad({ argv: [...args, command, ...params], env: {}, ...(readFile !== undefined ? { readFile } : {}) })
    return commandCfg.boolean('archive-async') ? commandCfg.string('spool-path') : undefined
  } catch {
    return undefined
  }
}
