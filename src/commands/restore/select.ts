// Which repository, and which backup in it, a restore (or standby-create) reads: with --repo, that repository (or
// those listed, in order); without, every configured repository in order. The first that holds a backup suitable for
// the request (--set, or one that can reach the recovery target along the requested timeline) and whose manifest
// reads is used; each repository passed over is named with the reason.

import { fail, WaldenError } from '../../common/errors.js'
import type { ErrorKind } from '../../common/errors.js'
import { repoNamed } from '../repo-failures.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { RepoIndex } from '../../config/options.js'
import { cipherJobStateOf } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { manifestLoad } from '../../repo/manifest.js'
import type { Manifest } from '../../repo/manifest.js'
import type { BackupRecord } from '../../repo/stanza-info.js'
import { backupInfoLoad } from '../../repo/stanza-info.js'
import type { StorageLocation } from '../../storage/location.js'
import type { Storage } from '../../storage/storage.js'
import { repoIndexes, repoOpen, repoSelected } from '../repo-storage.js'
import { backupSelect } from './target.js'
import { timelineReach } from './timeline.js'

/** The repository and backup a restore reads. */
export interface RestoreSource {
  index: RepoIndex
  location: StorageLocation
  storage: Storage
  cipher: CipherState
  backup: BackupRecord
  manifest: Manifest
}

// Errors of the request itself, the same in every repository: no point trying the next one.
const REQUEST_ERRORS: ReadonlySet<ErrorKind> = new Set(['OptionInvalid', 'OptionInvalidValue', 'OptionRequired'])

export async function restoreSourceSelect(cfg: Config, stanza: string, type: string, target: string | undefined): Promise<RestoreSource> {
  const candidates = cfg.has('repo') ? repoSelected(cfg) : repoIndexes(cfg)
  const passedOver: string[] = []
  for (const index of candidates) {
    try {
      const { storage, location } = await repoOpen(cfg, index)
      const info = await backupInfoLoad(storage, stanza)
      const onTimeline = await timelineReach(storage, stanza, cfg.string('target-timeline'))
      const backup = backupSelect(info.backups, type, target, cfg.string('set'), onTimeline)
      const manifest = await manifestLoad(storage, stanza, backup.label)
      return { index, location, storage, cipher: cipherJobStateOf(index), backup, manifest }
    } catch (error) {
      // With one repository to look in, its error is the restore's, as it always was.
      if (candidates.length === 1 || !(error instanceof WaldenError) || REQUEST_ERRORS.has(error.kind)) throw error
      log.warn(repoNamed(index, error.message))
      passedOver.push(repoNamed(index, error.message))
    }
  }
  fail('BackupMismatch', `no repository holds a backup to restore for this request (${passedOver.join('; ')})`, {
    hint: 'check --set and the recovery target against `walden info`, or name a repository with --repo.',
  })
}
