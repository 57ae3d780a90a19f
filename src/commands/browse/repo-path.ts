// Paths given to repo-ls and repo-get: relative to the repository root, or absolute inside repoN-path, and never
// leading out of the repository. pgBackRest 2.45 lists `repo-ls ../` (the folder above its repository); walden
// refuses it, so these commands cannot be used to read files that are not backups.

import { posix } from 'node:path'
import { fail } from '../../common/errors.js'

/**
 * The storage path (relative to the repository root, '' for the root itself) of a path given on the command line.
 * `root` is the repository's absolute path where it is known here (a folder or S3 repository: repoN-path); for a
 * repository on a backup host it is that host's configuration, so an absolute path cannot be checked and is refused.
 */
export function repoPathResolve(given: string | undefined, root: string | undefined): string {
  if (given === undefined || given === '') return ''
  let relative = given
  if (given.startsWith('/')) {
    if (root === undefined) {
      fail('ParamInvalid', `absolute path '${given}' cannot be checked against a repository on a backup host`, {
        hint: 'give the path relative to the repository root, e.g. archive/STANZA.',
      })
    }
    const base = posix.normalize(root).replace(/(.)\/$/, '$1')
    const normal = posix.normalize(given)
    if (base === '/') relative = normal.slice(1)
    else if (normal === base || normal === `${base}/`) relative = ''
    else if (normal.startsWith(`${base}/`)) relative = normal.slice(base.length + 1)
    else {
      fail('ParamInvalid', `absolute path '${given}' is not in the repository '${base}'`, {
        hint: 'give a path inside the repository, or one relative to its root, e.g. archive/STANZA.',
      })
    }
  }
  const normal = posix.normalize(relative).replace(/\/+$/, '')
  if (normal === '..' || normal.startsWith('../')) {
    fail('ParamInvalid', `path '${given}' leads out of the repository`, {
      hint: 'give a path inside the repository, relative to its root, e.g. archive/STANZA.',
    })
  }
  return normal === '.' ? '' : normal
}

/** The stanza a repository path belongs to (archive/STANZA/... or backup/STANZA/...), if it names one. */
export function repoPathStanza(path: string): string | undefined {
  const match = /^(?:archive|backup)\/([^/]+)(?:\/|$)/.exec(path)
  return match?.[1]
}
