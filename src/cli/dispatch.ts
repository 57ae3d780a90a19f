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
  promote: async () => (await import('../commands/promote.js')).promote,
  'replication-status': async () => (await import('../commands/replication-status.js')).replicationStatus,
  restore: async () => (await import('../commands/restore/index.js')).restore,
  setup: async () => (await import('../commands/setup.js')).setup,
  'stanza-create': async () => (await import('../commands/stanza.js')).stanzaCreate,
  'stanza-delete': async () => (await import('../commands/stanza.js')).stanzaDelete,
  'standby-create': async () => (await import('../commands/restore/index.js')).standbyCreate,
  start: async () => (await import('../commands/control.js')).start,
  stop: async () => (await import('../commands/control.js')).stop,
  version: async () => (await import('./help.js')).version,
}
