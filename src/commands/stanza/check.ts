// check: the configuration is right and WAL archiving works end to end, in every configured repository (or the one
// --repo names). One WAL switch serves all of them: archive-push stores each segment in every repository, so the
// segment must arrive in each, and check reports each repository by name.

import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { RepoIndex } from '../../config/options.js'
import { dbInfo, dbWalSwitch } from '../../pg/db.js'
import { archiveWaitFor } from '../../repo/archive.js'
import { archiveInfoLoad, backupInfoLoad, checkIdentity } from '../../repo/stanza-info.js'
import type { ArchiveInfo } from '../../repo/stanza-info.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { PgHost } from '../pg-host.js'
import { repoFailureOf, repoFailuresError, repoPrefix } from '../repo-failures.js'
import type { RepoFailure } from '../repo-failures.js'
import { repoOpen, repoSelected } from '../repo-storage.js'

interface CheckedRepo {
  index: RepoIndex
  storage: Storage
  archiveInfo: ArchiveInfo
}

export const check: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const pgPath = cfg.requireString('pg1-path')
    const indexes = repoSelected(cfg)
    const several = indexes.length > 1
    // Each repository's info files, read with its own keys. A repository that cannot be read is reported by name,
    // after the others have been checked.
    const failures: RepoFailure[] = []
    const loaded: { index: RepoIndex; storage: Storage; archiveInfo: ArchiveInfo; backupDb: ArchiveInfo['db'] }[] = []
    for (const index of indexes) {
      try {
        const { storage } = await repoOpen(cfg, index)
        const [archiveInfo, backupInfo] = await Promise.all([archiveInfoLoad(storage, stanza), backupInfoLoad(storage, stanza)])
        loaded.push({ index, storage, archiveInfo, backupDb: backupInfo.db })
      } catch (error) {
        failures.push(repoFailureOf(index, error))
      }
    }
    if (loaded.length === 0) throw repoFailuresError(failures, { several })
    // The cluster, here or on its database host (pg1-host).
    const host = new PgHost(cfg, 1)
    try {
      return await checkCluster(host)
    } finally {
      host.close()
    }

    async function checkCluster(host: PgHost): Promise<number> {
      const control = await host.control()
      const found = { systemId: control.systemId.toString(), version: control.version }

      const session = await host.connect()
      try {
        const server = await dbInfo(session)
        // The data directory first: a pg1-path naming another folder is the likelier mistake, and its message says so.
        await host.checkDataDirectory(server.dataDirectory, session.where)
        const repos: CheckedRepo[] = []
        for (const repo of loaded) {
          try {
            checkIdentity(stanza, repo.archiveInfo.db, found, `cluster '${pgPath}'`)
            checkIdentity(stanza, repo.backupDb, found, `cluster '${pgPath}'`)
            repos.push(repo)
          } catch (error) {
            failures.push(repoFailureOf(repo.index, error))
          }
        }
        if (repos.length === 0) throw repoFailuresError(failures.sort((a, b) => a.repo - b.repo), { several })
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
          if (failures.length > 0) throw repoFailuresError(failures.sort((a, b) => a.repo - b.repo), { several: true })
          return 0
        }
        const timeoutSeconds = cfg.number('archive-timeout') ?? 60
        const { walFile } = await dbWalSwitch(session)
        // The repositories are waited for one after the other, against one deadline: archive-push stores the segment
        // in all of them in one go, so the first wait usually covers the others.
        const deadline = Date.now() + timeoutSeconds * 1000
        for (const repo of repos) {
          const prefix = repoPrefix(repo.index, several)
          try {
            const missing = await archiveWaitFor(repo.storage, repo.archiveInfo, [walFile], Math.max(0, deadline - Date.now()))
            if (missing.length > 0) {
              fail('ArchiveTimeout', `WAL segment '${walFile}' did not reach the archive within ${timeoutSeconds} second(s)`, {
                hint: 'check the PostgreSQL log for archive_command errors, and that archive_command names this stanza and config.',
              })
            }
            log.info(`${prefix}WAL segment '${walFile}' successfully archived to stanza '${stanza}'`)
            process.stdout.write(`${prefix}stanza '${stanza}': configuration ok, WAL segment ${walFile} archived\n`)
          } catch (error) {
            failures.push(repoFailureOf(repo.index, error))
          }
        }
        if (failures.length > 0) throw repoFailuresError(failures.sort((a, b) => a.repo - b.repo), { several })
        return 0
      } finally {
        await session.close()
      }
    }
  },
}
