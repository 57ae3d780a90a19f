// Command name -> implementation. Imports are lazy so archive-push and archive-get, which PostgreSQL starts once
// per WAL segment, load only their own code: and only the code of the mode they run in, chosen here so that no
// command waits for a second round of imports.

import type { Command } from '../commands/command.js'
import type { CommandName } from '../config/commands.js'
import type { Config } from '../config/config.js'

export type Dispatch = Record<CommandName, (cfg: Config) => Promise<Command>>

export const DISPATCH: Dispatch = {
  'archive-get': async (cfg) =>
    cfg.role === 'async'
      ? (await import('../commands/archive/get-async.js')).archiveGetBackground
      : cfg.boolean('archive-async')
        ? (await import('../commands/archive/get-queued.js')).archiveGetQueuedCommand
        : (await import('../commands/archive/get.js')).archiveGet,
  'archive-push': async (cfg) =>
    cfg.role === 'async'
      ? (await import('../commands/archive/push-async.js')).archivePushBackground
      : cfg.boolean('archive-async')
        ? (await import('../commands/archive/push-wait.js')).archivePushQueued
        : (await import('../commands/archive/push.js')).archivePush,
  backup: async () => (await import('../commands/backup/index.js')).backup,
  check: async () => (await import('../commands/stanza/check.js')).check,
  'clone-create': async () => (await import('../commands/staging/clone.js')).cloneCreate,
  'clone-destroy': async () => (await import('../commands/staging/clone.js')).cloneDestroy,
  'clone-list': async () => (await import('../commands/staging/clone.js')).cloneList,
  expire: async () => (await import('../commands/stanza/expire.js')).expire,
  help: async () => (await import('./help.js')).help,
  info: async () => (await import('../commands/stanza/info.js')).info,
  jobs: async () => (await import('../commands/staging/jobs.js')).jobs,
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
  promote: async () => (await import('../commands/replication/promote.js')).promote,
  remote: async () => (await import('../commands/remote/serve.js')).remote,
  'repo-get': async () => (await import('../commands/browse/repo-get.js')).repoGet,
  'repo-ls': async () => (await import('../commands/browse/repo-ls.js')).repoLs,
  'replication-status': async () => (await import('../commands/replication/status.js')).replicationStatus,
  restore: async () => (await import('../commands/restore/index.js')).restore,
  setup: async () => (await import('../commands/replication/setup.js')).setup,
  'stanza-create': async () => (await import('../commands/stanza/create-delete.js')).stanzaCreate,
  'stanza-delete': async () => (await import('../commands/stanza/create-delete.js')).stanzaDelete,
  'standby-create': async () => (await import('../commands/restore/index.js')).standbyCreate,
  'staging-disable': async () => (await import('../commands/staging/lifecycle.js')).stagingDisable,
  'staging-enable': async () => (await import('../commands/staging/lifecycle.js')).stagingEnable,
  'staging-link': async () => (await import('../commands/staging/link.js')).stagingLink,
  'staging-resync': async () => (await import('../commands/staging/lifecycle.js')).stagingResync,
  'staging-snapshot': async () => (await import('../commands/staging/snapshot.js')).stagingSnapshot,
  'staging-status': async () => (await import('../commands/staging/status.js')).stagingStatus,
  'staging-unlink': async () => (await import('../commands/staging/lifecycle.js')).stagingUnlink,
  'staging-wal-get': async () => (await import('../commands/staging/wal-feed.js')).stagingWalGet,
  start: async () => (await import('../commands/stanza/control.js')).start,
  stop: async () => (await import('../commands/stanza/control.js')).stop,
  verify: async () => (await import('../commands/verify/index.js')).verify,
  version: async () => (await import('./help.js')).version,
}
