// The repositories one backup is written to, and which of them have dropped out.
//
// Failure policy of a backup to several repositories: a repository that cannot be read or written at any step drops
// out, with an error naming it, and the backup completes in the others; the command then exits with the dropped
// repository's error, naming it. Only when no repository is left does the backup itself fail. With one repository,
// its error is the command's error, as it always was.

import { WaldenError } from '../../common/errors.js'
import { repoNamed } from '../repo-failures.js'
import { log } from '../../common/log.js'
import type { RepoIndex } from '../../config/options.js'
import { cipherUse } from '../../repo/cipher.js'

export class RepoGroup<T extends { index: RepoIndex }> {
  readonly #all: readonly T[]
  readonly failed = new Map<RepoIndex, WaldenError>()

  constructor(repos: readonly T[]) {
    this.#all = repos
  }

  /** More than one repository was chosen: messages then name the repository. */
  get fanOut(): boolean {
    return this.#all.length > 1
  }

  get live(): T[] {
    return this.#all.filter((repo) => !this.failed.has(repo.index))
  }

  /** `repoN: ` before a message about one repository, when there are several. */
  tag(repo: T): string {
    return this.fanOut ? `repo${repo.index}: ` : ''
  }

  /**
   * Runs `step` on each repository still in the backup, in order, with that repository's keys in use (repo/cipher.ts).
   * A repository whose step fails drops out; with one repository, or when none is left, the error is thrown.
   */
  async each(step: (repo: T) => Promise<void>): Promise<void> {
    for (const repo of this.live) {
      cipherUse(repo.index)
      try {
        await step(repo)
      } catch (error) {
        this.drop(repo, error)
      }
    }
  }

  /** Takes a repository out of the backup for `error`, or throws when it was the last one. */
  drop(repo: T, error: unknown): void {
    this.dropMany([[repo, error]])
  }

  /** Takes several repositories out at once (those that could not be opened), naming each. */
  dropMany(drops: ReadonlyArray<readonly [T, unknown]>): void {
    if (drops.length === 0) return
    if (!this.fanOut) throw drops[0]![1]
    for (const [repo, error] of drops) {
      this.failed.set(repo.index, error instanceof WaldenError ? error : new WaldenError('Unhandled', (error as Error).message ?? String(error), { cause: error }))
    }
    const others = this.live
    if (others.length === 0) {
      const [first] = this.failed.values()
      throw new WaldenError(first!.kind, `the backup failed in every repository: ${[...this.failed].map(([index, failed]) => repoNamed(index, failed.message)).join('; ')}`, {
        ...(first!.hint !== undefined ? { hint: first!.hint } : {}),
      })
    }
    for (const [repo] of drops) {
      log.error(`${repoNamed(repo.index, this.failed.get(repo.index)!.message)}; the backup goes on in ${others.map((other) => `repo${other.index}`).join(', ')} without it`)
    }
  }

  /** After the backup: when a repository dropped out, the error that names it (the command's exit status). */
  outcome(label: string): WaldenError | undefined {
    if (this.failed.size === 0) return undefined
    const [first] = this.failed.values()
    const failedNames = [...this.failed.keys()].map((index) => `repo${index}`)
    const done = this.live.map((repo) => `repo${repo.index}`).join(', ')
    return new WaldenError(
      first!.kind,
      `backup ${label} failed in ${failedNames.join(', ')} (${[...this.failed].map(([index, failed]) => repoNamed(index, failed.message)).join('; ')}); it completed in ${done}`,
      { hint: `fix ${failedNames.join(', ')}; the next backup to it stores what it lacks (in each repository a diff or incr builds on that repository's own latest backup).` },
    )
  }
}
