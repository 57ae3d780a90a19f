// archive-push: PostgreSQL's archive_command. Stores one WAL segment (or .history/.backup file) in the archive of every
// configured repository (or of the one --repo names).
//
// This is the synchronous command: this process pushes the file itself (archive-push-file.ts) and returns 0 once it
// is durably in every repository. With archive-async the CLI runs archive-push-wait.ts instead, which waits for the
// background process (archive-push-async.ts) to acknowledge the file; each path loads only its own code, as
// PostgreSQL starts this command once per segment.
//
// Several repositories: each one that can take the file gets it, whatever happens to the others; the command
// succeeds only when all have it, and its error names each repository that does not ("repo2: ..."). PostgreSQL
// keeps the segment in pg_wal and retries, and the retry writes only where the file is still missing.

import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { CompressType } from '../../io/compress.js'
import { cipherJobInput, cipherUse } from '../../repo/cipher.js'
import { archivePushDrop, archivePushPath } from './async.js'
import { archivePushFile, archivePushOutcome } from './push-file.js'
import type { ArchivePushFileInput } from './push-file.js'
import type { Command } from '../command.js'
import { repoLocation, repoSelected } from '../repo-storage.js'

/**
 * What a push of `walPath` needs from the configuration, as plain data for a worker thread: each repository with the
 * cipher state this thread holds for it (its keys already unlocked when its archive.info was read here).
 */
export function archivePushInput(cfg: Config, walPath: string): ArchivePushFileInput {
  return {
    stanza: cfg.stanza(),
    repos: repoSelected(cfg).map((index) => {
      cipherUse(index)
      return { index, location: repoLocation(cfg, index), ...cipherJobInput() }
    }),
    walPath,
    dataDir: process.cwd(),
    pgPath: cfg.string('pg1-path'),
    compressType: (cfg.string('compress-type') ?? 'zst') as CompressType,
    compressLevel: cfg.number('compress-level'),
  }
}

export const archivePush: Command = {
  async run(cfg) {
    const walPath = archivePushPath(cfg)
    if (await archivePushDrop(cfg, walPath)) return 0
    const result = await archivePushFile(archivePushInput(cfg, walPath))
    // A retry (PostgreSQL did not see the earlier push's exit) of the same content is already safe: said quietly.
    log.info(archivePushOutcome(result))
    return 0
  },
}
