// archive-get: PostgreSQL's restore_command. Fetches one WAL file, verified, into the path PostgreSQL asks for.
//
// Synchronous by default. With archive-async, WAL segments come from the queue the background process fills ahead
// of recovery (archive-get-async.ts); anything not queued is still fetched here.

import { resolve } from 'node:path'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { isWalSegmentName } from '../pg/wal.js'
import type { Command } from './command.js'

/** Exit status for "not in the archive": PostgreSQL takes it as the end of archived WAL, not as a failure. */
export const ARCHIVE_GET_NOT_FOUND = 1

/** Fetches `walName` from the repository into `destination` in this process. */
export async function archiveGetSync(cfg: Config, walName: string, destination: string): Promise<number> {
  const [{ archiveGetFile }, { archiveInfoLoad }, { posixStorage }] = await Promise.all([
    import('./archive-get-file.js'),
    import('../repo/stanza-info.js'),
    import('../storage/posix.js'),
  ])
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
    if (cfg.role === 'async') return (await import('./archive-get-async.js')).archiveGetAsync(cfg)
    const walName = cfg.params[0]!
    const destination = resolve(cfg.params[1]!)
    // Only segments are queued: history files and partial segments are small, rare and asked for out of order.
    if (cfg.boolean('archive-async') && isWalSegmentName(walName)) {
      return (await import('./archive-get-async.js')).archiveGetQueued(cfg, walName, destination)
    }
    return archiveGetSync(cfg, walName, destination)
  },
}
