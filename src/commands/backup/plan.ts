// Which backup a diff or incr builds on, in each repository it is written to.
//
// A backup written to several repositories at once (fan-out) gets the same label in each, and each repository's
// copy is complete and valid on its own: its manifest references only backups stored in that repository. So the
// prior backup is chosen per repository, by the usual rule (diff: the latest full; incr: the latest backup), and a
// file is stored in a repository unless that repository's prior holds it unchanged.
//
// A diff or incr label names the full backup it builds on (<full>_<time>I), so one label needs one full: the priors
// of all repositories must descend from the same full backup label. They do whenever every backup went to every
// repository. When they do not (a repository without backups, or one backed up alone since), the backup becomes a full
// backup in every repository, as a diff or incr without a prior does for one repository: a backup is always taken,
// and no repository ever references a file another repository holds.

import type { RepoIndex } from '../../config/options.js'
import type { BackupType } from '../../repo/label.js'
import type { BackupInfo, BackupRecord } from '../../repo/stanza-info.js'

export interface PriorPlan {
  /** The type taken: the requested one, or full when a diff or incr cannot build on a common full. */
  type: BackupType
  /** The full backup the new label builds on (diff and incr). */
  fullLabel?: string
  /** The backup each repository's diff or incr builds on. */
  priors: Map<RepoIndex, BackupRecord>
  /** Why the type was changed to full, for a warning. */
  changed?: string
}

/** The backup a diff or incr builds on in one repository, or undefined when it has none. */
export function priorBackup(info: BackupInfo, type: BackupType): BackupRecord | undefined {
  const backups = info.backups.filter((backup) => backup.dbId === info.db.id)
  if (type === 'diff') return backups.filter((backup) => backup.type === 'full').at(-1)
  if (type === 'incr') return backups.at(-1)
  return undefined
}

/** The full backup a backup builds on: itself, or the one its label names. */
export function fullLabelOf(backup: BackupRecord): string {
  return backup.type === 'full' ? backup.label : backup.label.slice(0, backup.label.indexOf('_'))
}

export function priorPlan(requested: BackupType, repos: ReadonlyArray<{ index: RepoIndex; info: BackupInfo }>): PriorPlan {
  if (requested === 'full') return { type: 'full', priors: new Map() }
  const priors = new Map<RepoIndex, BackupRecord>()
  const without: RepoIndex[] = []
  for (const repo of repos) {
    const prior = priorBackup(repo.info, requested)
    if (prior) priors.set(repo.index, prior)
    else without.push(repo.index)
  }
  const full = (changed: string): PriorPlan => ({ type: 'full', priors: new Map(), changed })
  if (priors.size === 0) return full(`no prior backup exists, ${requested} backup has been changed to full`)
  if (without.length > 0) {
    return full(
      `no prior backup exists in ${without.map((index) => `repo${index}`).join(', ')}, so the ${requested} backup has been changed to full ` +
        'in every repository (a backup written to several repositories has one label, which names the full backup it builds on)',
    )
  }
  const fulls = new Set([...priors.values()].map(fullLabelOf))
  if (fulls.size > 1) {
    const each = [...priors].map(([index, prior]) => `repo${index} on ${fullLabelOf(prior)}`).join(', ')
    return full(
      `the ${requested} backup has been changed to full: the repositories' latest backups build on different full backups (${each}), ` +
        'and a backup written to several repositories has one label, which names the full backup it builds on',
    )
  }
  return { type: requested, fullLabel: [...fulls][0]!, priors }
}
