// archive-push: PostgreSQL's archive_command. Stores one WAL segment (or .history/.backup file) in the archive.
//
// Synchronous by default: this process pushes the file itself (archive-push-file.ts). With archive-async it waits
// for the background process to acknowledge the file instead (archive-push-async.ts). Either way it returns 0 only
// once the file is durably in the repository. Each path is loaded only when taken: PostgreSQL starts this command
// once per segment, and the asynchronous foreground needs none of the compression code.

import { access } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { fail } from '../common/errors.js'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import type { CompressType } from '../io/compress.js'
import { isBackupHistoryName, isPartialName, isTimelineHistoryName, isWalSegmentName } from '../pg/wal.js'
import type { ArchivePushFileInput } from './archive-push-file.js'
import type { Command } from './command.js'

/** What a push of `walPath` needs from the configuration, as plain data for a worker thread. */
export function archivePushInput(cfg: Config, walPath: string): ArchivePushFileInput {
  return {
    stanza: cfg.stanza(),
    repoPath: cfg.string('repo1-path') ?? '/var/lib/walden',
    walPath,
    dataDir: process.cwd(),
    pgPath: cfg.string('pg1-path'),
    compressType: (cfg.string('compress-type') ?? 'zst') as CompressType,
    compressLevel: cfg.number('compress-level'),
  }
}

/** PostgreSQL's archiver marked the file ready: pg_wal/archive_status/NAME.ready beside it. */
async function isReady(walPath: string): Promise<boolean> {
  return access(join(dirname(walPath), 'archive_status', `${basename(walPath)}.ready`)).then(
    () => true,
    () => false,
  )
}

export const archivePush: Command = {
  async run(cfg) {
    if (cfg.role === 'async') return (await import('./archive-push-async.js')).archivePushAsync(cfg)

    const walPath = resolve(cfg.params[0]!)
    const walName = basename(walPath)
    if (!isWalSegmentName(walName) && !isTimelineHistoryName(walName) && !isBackupHistoryName(walName) && !isPartialName(walName)) {
      fail('ParamInvalid', `'${walPath}' is not a WAL segment, timeline history or backup history file`, {
        hint: "archive_command should be 'walden --stanza=NAME archive-push %p'.",
      })
    }

    // The background process pushes what the archiver marked ready; a file pushed by hand is pushed here.
    if (cfg.boolean('archive-async') && (await isReady(walPath))) {
      return (await import('./archive-push-async.js')).archivePushWait(cfg, walPath)
    }

    const { archivePushFile } = await import('./archive-push-file.js')
    const result = await archivePushFile(archivePushInput(cfg, walPath))
    // A retry (PostgreSQL did not see the earlier push's exit) of the same content is already safe: say so quietly.
    log.info(result.alreadyArchived ? `WAL file '${walName}' is already in the archive with the same checksum` : `pushed WAL file '${walName}' to the archive`)
    return 0
  },
}
