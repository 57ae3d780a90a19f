// Retention: which backups and which WAL to keep. Pure functions over backup.info records, so the policy is
// tested without a repository.

import { isWalSegmentName } from '../pg/wal.js'
import type { BackupRecord } from './stanza-info.js'

export interface RetentionPolicy {
  full?: number
  fullType: 'count' | 'time'
  diff?: number
  archive?: number
}

/**
 * Labels of backups to expire. Dependants expire with what they depend on: a diff or incr whose full (or whose
 * prior chain) expires goes too. `now` is in epoch seconds, for the time policy.
 */
export function backupsToExpire(backups: readonly BackupRecord[], policy: RetentionPolicy, now: number): Set<string> {
  const expired = new Set<string>()
  const fulls = backups.filter((backup) => backup.type === 'full')

  if (policy.full !== undefined) {
    if (policy.fullType === 'count') {
      for (const full of fulls.slice(0, Math.max(0, fulls.length - policy.full))) expired.add(full.label)
    } else {
      // Keep the newest full that is already older than the window, so recovery to any moment in the window has a
      // backup to start from; everything before it expires. The newest full always stays.
      const cutoff = now - policy.full * 86400
      const oldEnough = fulls.filter((full) => full.timestampStop <= cutoff)
      const anchor = oldEnough.at(-1)
      if (anchor) for (const full of fulls) if (full.label < anchor.label) expired.add(full.label)
    }
  }

  if (policy.diff !== undefined) {
    const diffs = backups.filter((backup) => backup.type === 'diff' && !expired.has(backup.label))
    for (const diff of diffs.slice(0, Math.max(0, diffs.length - policy.diff))) expired.add(diff.label)
  }

  // Anything that builds on an expired backup (prior) or uses its files (reference) expires with it.
  for (const backup of backups) {
    if ((backup.prior !== null && expired.has(backup.prior)) || backup.reference.some((label) => expired.has(label))) {
      expired.add(backup.label)
    }
  }
  return expired
}

/** A WAL position to compare segments across timelines: the 16 hex digits after the timeline. */
function walPosition(walName: string): string {
  return walName.slice(8, 24)
}

/**
 * The backups whose WAL is kept for point-in-time recovery (the rest keep only their own WAL): every backup, or with
 * repo1-retention-archive (`archive`) those from the Nth newest full on. `backups` in label order.
 */
export function pitrWindow(backups: readonly BackupRecord[], archive: number | undefined): BackupRecord[] {
  if (backups.length === 0 || archive === undefined) return [...backups]
  const fulls = backups.filter((backup) => backup.type === 'full')
  const windowStart = fulls.at(-Math.min(archive, fulls.length)) ?? backups[0]!
  return backups.filter((backup) => backup.label >= windowStart.label)
}

/**
 * Decides whether an archived WAL segment is still needed by the kept backups. Every kept backup keeps its own
 * range (what makes it consistent); the newest `archive` full backups (all, without the option) also keep
 * everything after their start, for point-in-time recovery. History files are always kept: they are tiny and
 * recovery needs them to follow timelines.
 */
export function walKeepPredicate(kept: readonly BackupRecord[], archive: number | undefined): (walName: string) => boolean {
  if (kept.length === 0) return () => true
  // Its WAL starts at the lowest start position of any backup in the window, not at the oldest label's: after a
  // point-in-time recovery a newer backup on a new timeline can start earlier in the WAL than an older one.
  const window = pitrWindow(kept, archive)
  const from = window.map((backup) => walPosition(backup.walStart)).reduce((low, position) => (position < low ? position : low))
  const ranges = kept.map((backup) => ({
    timeline: backup.walStart.slice(0, 8),
    start: walPosition(backup.walStart),
    stop: walPosition(backup.walStop),
  }))
  return (walName: string): boolean => {
    if (!isWalSegmentName(walName.slice(0, 24))) return true
    const position = walPosition(walName)
    if (position >= from) return true
    return ranges.some((range) => walName.slice(0, 8) === range.timeline && position >= range.start && position <= range.stop)
  }
}
