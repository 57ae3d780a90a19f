// archive-get: PostgreSQL's restore_command. Fetches one WAL file, verified, into the path PostgreSQL asks for.

import { basename, dirname, resolve } from 'node:path'
import { log } from '../common/log.js'
import { archiveFileFind } from '../repo/archive.js'
import { storedFileCopy } from '../repo/stored-file.js'
import { archiveInfoLoad } from '../repo/stanza-info.js'
import { PosixStorage } from '../storage/posix.js'
import type { Command } from './command.js'
import { repoStorage } from './repo-storage.js'

/** Exit status for "not in the archive": PostgreSQL takes it as the end of archived WAL, not as a failure. */
export const ARCHIVE_GET_NOT_FOUND = 1

export const archiveGet: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const walName = cfg.params[0]!
    const destination = resolve(cfg.params[1]!)
    const repo = repoStorage(cfg)
    const info = await archiveInfoLoad(repo, stanza)

    const found = await archiveFileFind(repo, info, walName)
    if (!found) {
      log.info(`unable to find WAL file '${walName}' in the archive`)
      return ARCHIVE_GET_NOT_FOUND
    }
    const target = new PosixStorage(dirname(destination))
    const what = `archived WAL file '${repo.describe(found.path)}'`
    // Written under a temporary name and renamed once verified: PostgreSQL must never find a damaged segment at %p.
    await storedFileCopy(repo, found.path, found.sha256, what, () => target.openWrite(basename(destination), { mode: 0o600 }))
    log.info(`found WAL file '${walName}' in the archive (${found.archiveId})`)
    return 0
  },
}
