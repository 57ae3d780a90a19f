// archive-get: PostgreSQL's restore_command. Fetches one WAL file, verified, into the path PostgreSQL asks for.
//
// This is the synchronous command. With archive-async the CLI runs archive-get-queued.ts instead, which serves
// segments from the queue the background process (archive-get-async.ts) fills ahead of recovery, and comes back
// here for anything not queued.

import { resolve } from 'node:path'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { posixStorage } from '../storage/posix.js'
import { archiveInfoLoad } from '../repo/stanza-info.js'
import { archiveGetFile } from './archive-get-file.js'
import type { Command } from './command.js'

/** Exit status for "not in the archive": PostgreSQL takes it as the end of archived WAL, not as a failure. */
export const ARCHIVE_GET_NOT_FOUND = 1

/** Fetches `walName` from the repository into `destination` in this process. */
export async function archiveGetSync(cfg: Config, walName: string, destination: string): Promise<number> {
  const repoPath = cfg.string('repo1-path') ?? '/var/lib/walden'
  const info = await archiveInfoLoad(posixStorage(repoPath), cfg.stanza())
  const { archiveId } = await archiveGetFile({ repoPath, info, walName, destination })
  if (archiveId === undefined) {
    log.info(`unable to find WAL file '${walName}' in the archive`)
    return ARCHIVE_GET_NOT_FOUND
  }
  log.info(`found WAL file '${walName}' in the archive (${archiveId})`)
  return 0
}

export const archiveGet: Command = {
  async run(cfg) {
    return archiveGetSync(cfg, cfg.params[0]!, resolve(cfg.params[1]!))
  },
}
