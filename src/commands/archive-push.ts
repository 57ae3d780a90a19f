// archive-push: PostgreSQL's archive_command. Stores one WAL segment (or .history/.backup file) in the archive.
//
// This is the synchronous command: this process pushes the file itself (archive-push-file.ts) and returns 0 once it
// is durably in the repository. With archive-async the CLI runs archive-push-wait.ts instead, which waits for the
// background process (archive-push-async.ts) to acknowledge the file; each path loads only its own code, as
// PostgreSQL starts this command once per segment.

import { basename } from 'node:path'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import type { CompressType } from '../io/compress.js'
import { archivePushDrop, archivePushPath } from './archive-async.js'
import { archivePushFile } from './archive-push-file.js'
import type { ArchivePushFileInput } from './archive-push-file.js'
import type { Command } from './command.js'
import { cipherJobInput } from '../repo/cipher.js'

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
    ...cipherJobInput(),
  }
}

export const archivePush: Command = {
  async run(cfg) {
    const walPath = archivePushPath(cfg)
    const walName = basename(walPath)
    if (await archivePushDrop(cfg, walPath)) return 0
    const result = await archivePushFile(archivePushInput(cfg, walPath))
    // A retry (PostgreSQL did not see the earlier push's exit) of the same content is already safe: say so quietly.
    log.info(result.alreadyArchived ? `WAL file '${walName}' is already in the archive with the same checksum` : `pushed WAL file '${walName}' to the archive`)
    return 0
  },
}
