// The dispatch table of dist/wal.mjs: main.ts bundled with this file in place of dispatch.ts (scripts/build.mjs),
// as one file with no chunks to load. bin/walden starts it for archive-push and archive-get, which PostgreSQL runs
// once per WAL segment, so they load one file instead of a dozen: in Node 20 each module file costs milliseconds.
//
// It holds what PostgreSQL's commands run in the foreground. The background processes (COMMAND:async) and every
// other command go through dist/cli.mjs; should one arrive here anyway, it fails plainly rather than half-runs.

import { archiveGet } from '../commands/archive/get.js'
import { archiveGetQueuedCommand } from '../commands/archive/get-queued.js'
import { archivePush } from '../commands/archive/push.js'
import { archivePushQueued } from '../commands/archive/push-wait.js'
import type { Command } from '../commands/command.js'
import { fail } from '../common/errors.js'
import { COMMAND_NAMES } from '../config/commands.js'
import type { Config } from '../config/config.js'
import { help, version } from './help.js'
import type { Dispatch } from './dispatch.js'

const notHere = async (cfg: Config): Promise<Command> =>
  fail('Assert', `command '${cfg.command}${cfg.role === 'async' ? ':async' : ''}' was started through dist/wal.mjs, which does not hold it`, {
    hint: 'start walden through bin/walden, which picks dist/cli.mjs for it.',
  })

export const DISPATCH: Dispatch = {
  ...(Object.fromEntries(COMMAND_NAMES.map((name) => [name, notHere])) as Dispatch),
  'archive-get': async (cfg) => (cfg.role === 'async' ? notHere(cfg) : cfg.boolean('archive-async') ? archiveGetQueuedCommand : archiveGet),
  'archive-push': async (cfg) => (cfg.role === 'async' ? notHere(cfg) : cfg.boolean('archive-async') ? archivePushQueued : archivePush),
  help: async () => help,
  version: async () => version,
}
