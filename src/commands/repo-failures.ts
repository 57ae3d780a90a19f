// What a command that works on several repositories reports when some of them fail: one error naming each failing
// repository ("repo2: ..."), so the user knows which one to fix, while the repositories that worked keep what they
// got. Plain data, so a failure found on a worker thread crosses back to the main thread unchanged.

import { WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { RepoFormatNewerError } from '../repo/info-file.js'

/** One repository's failure: its number and the error, as plain data. */
export interface RepoFailure {
  repo: number
  kind: ErrorKind
  message: string
  hint?: string
  /** The repository was written by a newer walden (RepoFormatNewerError), which archive-get must tell apart. */
  newerFormat?: boolean
}

/** A failure of repository `repo` from whatever was thrown; anything but a WaldenError is a bug (Unhandled). */
export function repoFailureOf(repo: number, error: unknown): RepoFailure {
  if (error instanceof WaldenError) {
    return {
      repo,
      kind: error.kind,
      message: error.message,
      ...(error.hint !== undefined ? { hint: error.hint } : {}),
      ...(error instanceof RepoFormatNewerError ? { newerFormat: true } : {}),
    }
  }
  return {
    repo,
    kind: 'Unhandled',
    message: `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    hint: 'this is a bug in walden; please report it with the lines above.',
  }
}

/**
 * The error to report for `failures` (in repository order). With one repository in play (`several` false) it is that
 * repository's error exactly as it was, so a stanza with one repository reports what it always has. With several, the
 * message names each failing repository ("repo2: unable to ...; repo3: ..."), the kind (and so the exit status) and
 * hint are the first failure's, and `stored` (the repositories that did get what the command wrote) is said in the
 * hint, so the user knows the failure left nothing unprotected.
 */
export function repoFailuresError(failures: readonly RepoFailure[], options: { several: boolean; stored?: readonly number[]; retry?: string }): WaldenError {
  const first = failures[0]
  if (first === undefined) return new WaldenError('Assert', 'repoFailuresError called without a failure')
  const message = !options.several && failures.length === 1 ? first.message : failures.map((failure) => repoNamed(failure.repo, failure.message)).join('; ')
  if (first.newerFormat) return new RepoFormatNewerError(message, first.hint ?? '')
  if (!options.several && failures.length === 1) return new WaldenError(first.kind, first.message, first.hint !== undefined ? { hint: first.hint } : {})
  const stored = options.stored ?? []
  const hints = [
    ...(first.hint !== undefined ? [first.hint] : []),
    ...(stored.length > 0 ? [`${repoList(stored)} ${stored.length === 1 ? 'has' : 'have'} it${options.retry !== undefined ? `; ${options.retry}` : '.'}`] : []),
  ]
  return new WaldenError(first.kind, message, hints.length > 0 ? { hint: hints.join(' ') } : {})
}

/** "repo1", "repo1 and repo3", "repo1, repo2 and repo4". */
export function repoList(repos: readonly number[]): string {
  const names = repos.map((repo) => `repo${repo}`)
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`
}

/**
 * `repoN: message`, unless the message names the repository already: a failure talking to S3 does so itself
 * (storage/s3-client.ts), even when the command works on that repository alone.
 */
export function repoNamed(repo: number, message: string): string {
  return message.startsWith(`repo${repo}: `) ? message : `repo${repo}: ${message}`
}

/** A message about one repository: prefixed with its name when the command works on several, as it is when alone. */
export function repoPrefix(repo: number, several: boolean): string {
  return several ? `repo${repo}: ` : ''
}
