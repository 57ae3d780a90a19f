// check: the configuration is right and WAL archiving works end to end.

import { fail } from '../common/errors.js'
import { log } from '../common/log.js'
import { pgControlRead } from '../pg/control.js'
import { dbInfo, dbWalSwitch } from '../pg/db.js'
import { archiveWaitFor } from '../repo/archive.js'
import { archiveInfoLoad, backupInfoLoad, checkIdentity } from '../repo/stanza-info.js'
import type { Command } from './command.js'
import { checkDataDirectory, pgSessionOpen } from './pg-session.js'
import { repoStorage } from './repo-storage.js'

export const check: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const repo = await repoStorage(cfg)
    const [archiveInfo, backupInfo] = await Promise.all([archiveInfoLoad(repo, stanza), backupInfoLoad(repo, stanza)])
    const pgPath = cfg.requireString('pg1-path')
    const control = await pgControlRead(pgPath)
    const found = { systemId: control.systemId.toString(), version: control.version }

    const session = await pgSessionOpen(cfg)
    try {
      const server = await dbInfo(session)
      // The data directory first: a pg1-path naming another folder is the likelier mistake, and its message says so.
      await checkDataDirectory(cfg, server.dataDirectory, session.where)
      checkIdentity(stanza, archiveInfo.db, found, `cluster '${pgPath}'`)
      checkIdentity(stanza, backupInfo.db, found, `cluster '${pgPath}'`)
      if (server.archiveMode === 'off') {
        fail('ArchiveMismatch', `archive_mode is off on the server at ${session.where}`, {
          hint: "set archive_mode = on and archive_command = 'walden --stanza=" + stanza + " archive-push %p', then restart PostgreSQL.",
        })
      }
      // A wrapper script may call walden; the WAL switch below is the real test, so only warn here.
      if (!/\barchive-push\b/.test(server.archiveCommand)) {
        log.warn(`archive_command '${server.archiveCommand}' does not seem to call walden archive-push`)
      }
      if (server.inRecovery) {
        log.info('the server is a standby: WAL archiving is checked on the primary')
        return 0
      }
      const timeoutSeconds = cfg.number('archive-timeout') ?? 60
      const { walFile } = await dbWalSwitch(session)
      const missing = await archiveWaitFor(repo, archiveInfo, [walFile], timeoutSeconds * 1000)
      if (missing.length > 0) {
        fail('ArchiveTimeout', `WAL segment '${walFile}' did not reach the archive within ${timeoutSeconds} second(s)`, {
          hint: 'check the PostgreSQL log for archive_command errors, and that archive_command names this stanza and config.',
        })
      }
      log.info(`WAL segment '${walFile}' successfully archived to stanza '${stanza}'`)
      process.stdout.write(`stanza '${stanza}': configuration ok, WAL segment ${walFile} archived\n`)
      return 0
    } finally {
      await session.close()
    }
  },
}
