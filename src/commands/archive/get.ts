// archive-get: PostgreSQL's restore_command. Fetches one WAL file, verified, into the path PostgreSQL asks for, from
// the first repository that holds a good copy (repo1 first; only the one --repo names when given).
//
// This is the synchronous command. With archive-async the CLI runs archive-get-queued.ts instead, which serves
// segments from the queue the background process (archive-get-async.ts) fills ahead of recovery, and comes back
// here for anything not queued.

import { resolve } from 'node:path'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { archiveGetFile } from './get-file.js'
import type { ArchiveGetRepo } from './get-file.js'
import type { Command } from '../command.js'
import { repoFailureOf } from '../repo-failures.js'
import { repoLocation, repoSelected } from '../repo-storage.js'

/** Exit status for "not in the archive": PostgreSQL takes it as the end of archived WAL, not as a failure. */
export const ARCHIVE_GET_NOT_FOUND = 1

/** The repositories to search, in order; one whose configuration is incomplete is passed over with its error. */
export function archiveGetRepos(cfg: Config): ArchiveGetRepo[] {
  return repoSelected(cfg).map((index) => {
    try {
      return { index, location: repoLocation(cfg, index) }
    } catch (error) {
      return { index, unavailable: repoFailureOf(index, error) }
    }
  })
}

/**
 * Fetches `walName` from the repositories into `destination` in this process. Each repository's archive.info is read
 * (and its keys unlocked) only when the search reaches it: with the segment in repo1, an encrypted repo2 costs
 * nothing.
 */
export async function archiveGetSync(cfg: Config, walName: string, destination: string): Promise<number> {
  const repos = archiveGetRepos(cfg)
  const result = await archiveGetFile({ stanza: cfg.stanza(), repos, walName, destination })
  for (const warning of result.warnings) log.warn(warning)
  if (result.archiveId === undefined) {
    log.info(`unable to find WAL file '${walName}' in the archive`)
    return ARCHIVE_GET_NOT_FOUND
  }
  log.info(`found WAL file '${walName}' in the archive (${repos.length > 1 ? `repo${result.repo}: ` : ''}${result.archiveId})`)
  return 0
}

export const archiveGet: Command = {
  async run(cfg) {
    return archiveGetSync(cfg, cfg.params[0]!, resolve(cfg.params[1]!))
  },
}
