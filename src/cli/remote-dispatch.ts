// The dispatch table of dist/remote.mjs: main.ts bundled with this file in place of dispatch.ts (scripts/build.mjs),
// as one file with no chunks to load. bin/walden starts it for `walden remote`, which every SSH session of another
// walden starts (one per worker of a backup or restore, one per archive-push to a backup host): in Node 20 each module
// file costs milliseconds, and the chunks of dist/cli.mjs that the remote needs are two dozen.
//
// Every other command goes through dist/cli.mjs; should one arrive here anyway, it fails plainly rather than half-runs.

import type { Command } from '../commands/command.js'
import { remote } from '../commands/remote/serve.js'
import { fail } from '../common/errors.js'
import { COMMAND_NAMES } from '../config/commands.js'
import type { Config } from '../config/config.js'
import { help, version } from './help.js'
import type { Dispatch } from './dispatch.js'

const notHere = async (cfg: Config): Promise<Command> =>
  fail('Assert', `command '${cfg.command}' was started through dist/remote.mjs, which does not hold it`, {
    hint: 'start walden through bin/walden, which picks dist/cli.mjs for it.',
  })

export const DISPATCH: Dispatch = {
  ...(Object.fromEntries(COMMAND_NAMES.map((name) => [name, notHere])) as Dispatch),
  remote: async () => remote,
  help: async () => help,
  version: async () => version,
}
