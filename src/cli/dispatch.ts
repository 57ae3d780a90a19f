// Command name -> implementation. Imports are lazy so archive-push and archive-get, which PostgreSQL starts once
// per WAL segment, load only their own code.

import type { Command } from '../commands/command.js'
import type { CommandName } from '../config/commands.js'

export const DISPATCH: Record<CommandName, () => Promise<Command>> = {
  'archive-get': async () => (await import('../commands/archive-get.js')).archiveGet,
  'archive-push': async () => (await import('../commands/archive-push.js')).archivePush,
  backup: async () => (await import('../commands/backup/index.js')).backup,
  check: async () => (await import('../commands/check.js')).check,
  expire: async () => (await import('../commands/expire.js')).expire,
  help: async () => (await import('./help.js')).help,
  info: async () => (await import('../commands/info.js')).info,
  'mirror-add-host': async () => (await import('../commands/mirror/admin.js')).mirrorAddHost,
  'mirror-add-table': async () => (await import('../commands/mirror/admin.js')).mirrorAddTable,
  'mirror-clean': async () => (await import('../commands/mirror/admin.js')).mirrorClean,
  'mirror-init-host': async () => (await import('../commands/mirror/init-host.js')).mirrorInitHost,
  'mirror-remove-host': async () => (await import('../commands/mirror/admin.js')).mirrorRemoveHost,
  'mirror-remove-table': async () => (await import('../commands/mirror/admin.js')).mirrorRemoveTable,
  'mirror-run': async () => (await import('../commands/mirror/run.js')).mirrorRun,
  'mirror-setup': async () => (await import('../commands/mirror/admin.js')).mirrorSetup,
  'mirror-status': async () => (await import('../commands/mirror/status.js')).mirrorStatus,
  'mirror-teardown': async () => (await import('../commands/mirror/admin.js')).mirrorTeardown,
  restore: async () => (await import('../commands/restore/index.js')).restore,
  'stanza-create': async () => (await import('../commands/stanza.js')).stanzaCreate,
  'stanza-delete': async () => (await import('../commands/stanza.js')).stanzaDelete,
  start: async () => (await import('../commands/control.js')).start,
  stop: async () => (await import('../commands/control.js')).stop,
  version: async () => (await import('./help.js')).version,
}
