// What verify found, and how it is shown: text for people (a line per problem, naming the file, then a summary per
// backup and for the archive) and JSON for monitoring.

import { formatBytes } from '../../common/progress.js'
import type { WalGap } from './continuity.js'
import type { FileProblemKind } from './file.js'

/**
 * The kinds of problem verify reports; stable, for monitoring:
 * - missing, damaged (does not decompress), size, checksum, read: a stored file (FileProblemKind);
 * - reference: a file of a diff/incr refers to a backup that is not in backup.info;
 * - manifest: backup.manifest does not load, or disagrees with itself (a file's parts against its checksum);
 * - info: backup.info or archive.info does not load;
 * - duplicate: one WAL name archived more than once with different content;
 * - history: a timeline history file that does not parse;
 * - wal-gap: WAL this backup's recovery to the end of the archive needs is missing (details in archive.gaps);
 * - unrestorable: WAL between this backup's start and stop is missing or damaged: it cannot be restored at all.
 */
export type ProblemKind = FileProblemKind | 'reference' | 'manifest' | 'info' | 'duplicate' | 'history' | 'wal-gap' | 'unrestorable'

export interface VerifyProblem {
  kind: ProblemKind
  /** The file concerned: a manifest file name ('pg_data/base/5/16384', '... part 2' for a part), a WAL name, or a repository path. */
  file: string
  message: string
}

/**
 * `walden verify --output=json` prints one VerifyReport per repository verified: the object alone when one repository
 * is (one configured, or --repo), an array of them in repository order when several are:
 *
 *   { "stanza": "demo", "repo": 1, "status": "ok" | "error",
 *     "problems": [ VerifyProblem ],                   repository-wide: backup.info, archive.info
 *     "backups": [ { "label", "type", "status": "ok" | "error" | "expired",
 *                    "files": checked, "bytes": decompressed bytes read, "problems": [ VerifyProblem ] } ],
 *     "archive": { "status", "archiveIds": ["15-1"], "files": checked, "bytes",
 *                  "gaps": [ { "archiveId", "timeline", "from", "to", "neededBy": [labels] } ],
 *                  "problems": [ VerifyProblem ] } }
 *
 * A VerifyProblem is { "kind", "file", "message" }. "expired": the backup left backup.info while verify ran (expire
 * removed it); its problems are dropped, as its files were being removed. status is "error" when any problem is
 * reported anywhere, and the exit status is then VerifyFailed's code.
 */
export interface VerifyReport {
  stanza: string
  /** The repository verified (repoN). */
  repo: number
  status: 'ok' | 'error'
  problems: VerifyProblem[]
  backups: BackupReport[]
  archive: ArchiveReport
}

export interface BackupReport {
  label: string
  type: string
  status: 'ok' | 'error' | 'expired'
  files: number
  bytes: number
  problems: VerifyProblem[]
}

export interface ArchiveGap extends WalGap {
  archiveId: string
}

export interface ArchiveReport {
  status: 'ok' | 'error'
  archiveIds: string[]
  files: number
  bytes: number
  gaps: ArchiveGap[]
  problems: VerifyProblem[]
}

/** Sets every status from the problems found. */
export function reportSettle(report: VerifyReport): void {
  for (const backup of report.backups) {
    if (backup.status === 'expired') backup.problems = []
    else backup.status = backup.problems.length > 0 ? 'error' : 'ok'
  }
  report.archive.status = report.archive.problems.length > 0 || report.archive.gaps.length > 0 ? 'error' : 'ok'
  const bad = report.problems.length > 0 || report.archive.status === 'error' || report.backups.some((backup) => backup.status === 'error')
  report.status = bad ? 'error' : 'ok'
}

/** Problems found, each once: a gap counts once, not again for every backup that needs it. */
export function problemCount(report: VerifyReport): number {
  const inBackups = report.backups.reduce((sum, backup) => sum + backup.problems.filter((problem) => problem.kind !== 'wal-gap').length, 0)
  return report.problems.length + report.archive.problems.length + report.archive.gaps.length + inBackups
}

export function gapText(gap: ArchiveGap): string {
  const range = gap.from === gap.to ? gap.from : `${gap.from} to ${gap.to}`
  return `WAL missing on timeline ${gap.timeline}: ${range}, needed by backup${gap.neededBy.length === 1 ? '' : 's'} ${gap.neededBy.join(', ')}`
}

/** The text for people; with `several`, each line of the summary names the repository. */
export function verifyRenderText(report: VerifyReport, options: { several?: boolean } = {}): string {
  const where = options.several ? `repo${report.repo} ` : ''
  const lines: string[] = []
  for (const problem of report.problems) lines.push(`${where}${problem.file}: ${problem.kind}: ${problem.message}`)
  for (const backup of report.backups) {
    // Gaps are shown once, under the archive.
    for (const problem of backup.problems) if (problem.kind !== 'wal-gap') lines.push(`${where}backup ${backup.label}: ${problem.file}: ${problem.kind}: ${problem.message}`)
  }
  for (const problem of report.archive.problems) lines.push(`${where}archive: ${problem.file}: ${problem.kind}: ${problem.message}`)
  for (const gap of report.archive.gaps) lines.push(`${where}archive ${gap.archiveId}: ${gapText(gap)}`)
  if (lines.length > 0) lines.push('')

  for (const backup of report.backups) {
    const what = `${backup.files} file${backup.files === 1 ? '' : 's'} (${formatBytes(backup.bytes)})`
    const status =
      backup.status === 'expired'
        ? 'expired while verify ran, not checked to the end'
        : backup.status === 'ok'
          ? `ok, ${what} verified`
          : `error, ${backup.problems.length} problem${backup.problems.length === 1 ? '' : 's'}, ${what} checked`
    lines.push(`${where}backup ${backup.label} (${backup.type}): ${status}`)
  }
  const archive = report.archive
  const archiveProblems = archive.problems.length + archive.gaps.length
  lines.push(
    `${where}archive ${archive.archiveIds.join(', ') || '(none)'}: ${archive.status}, ${archive.files} WAL file${archive.files === 1 ? '' : 's'} (${formatBytes(archive.bytes)}) checked` +
      (archiveProblems > 0 ? `, ${archive.problems.length} problem${archive.problems.length === 1 ? '' : 's'}, ${archive.gaps.length} gap${archive.gaps.length === 1 ? '' : 's'}` : ''),
  )
  const count = problemCount(report)
  lines.push(`stanza ${report.stanza}${options.several ? ` repo${report.repo}` : ''}: ${report.status === 'ok' ? 'ok' : `error, ${count} problem${count === 1 ? '' : 's'}`}`)
  return `${lines.join('\n')}\n`
}

export function verifyRenderJson(report: VerifyReport): string {
  return `${JSON.stringify(report, null, 2)}\n`
}

/** Several repositories' reports, as one JSON array in repository order. */
export function verifyRenderJsonAll(reports: readonly VerifyReport[]): string {
  return `${JSON.stringify(reports, null, 2)}\n`
}
