// The one repository repo-ls and repo-get read: the one --repo names, or the first configured (repo1), as in
// pgBackRest, where these commands take a single repository.

import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import type { RepoIndex } from '../../config/options.js'
import type { StorageLocation } from '../../storage/location.js'
import { repoSelected } from '../repo-storage.js'

export function repoOne(cfg: Config): RepoIndex {
  const selected = repoSelected(cfg)
  if (cfg.has('repo') && selected.length !== 1) {
    fail('OptionInvalidValue', `${cfg.command} reads one repository; option 'repo' names ${selected.length} ('${cfg.string('repo')}')`, {
      hint: 'give one repository number, e.g. --repo=2.',
    })
  }
  return selected[0] ?? 1
}

/** The repository's absolute path, where it is configured on this host (not for a repository on a backup host). */
export function repoRoot(location: StorageLocation): string | undefined {
  return location.type === 'remote' ? undefined : location.path
}
