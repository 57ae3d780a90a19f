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
  restore: async () => (await import('../commands/restore/index.js')).restore,
  'stanza-create': async () => (await import('../commands/stanza.js')).stanzaCreate,
  'stanza-delete': async () => (await import('../commands/stanza.js')).stanzaDelete,
  start: async () => (await import('../commands/control.js')).start,
  stop: async () => (await import('../commands/control.js')).stop,
  version: async () => (await import('./help.js')).version,
}
