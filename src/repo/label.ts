// Backup labels, pgBackRest's convention: 20261122-013000F for a full backup, and for a differential or
// incremental the label of its full backup, '_', its own time and D or I: 20261122-013000F_20261123-013000I.
// Labels sort in time order, which expire and restore rely on.

import { fail } from '../common/errors.js'

export type BackupType = 'full' | 'diff' | 'incr'

const LABEL = /^(\d{8}-\d{6})F(?:_(\d{8}-\d{6})([DI]))?$/

function stamp(date: Date): string {
  const pad = (value: number): string => String(value).padStart(2, '0')
  return (
    `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`
  )
}

/**
 * A new label for a backup starting at `date`. When the label would not sort after `after` (two backups in one
 * second, or a clock moved back), the time is moved forward a second at a time until it does.
 */
export function backupLabelNew(type: BackupType, fullLabel: string | undefined, date: Date, after?: string): string {
  let time = new Date(date.getTime())
  for (;;) {
    const label =
      type === 'full'
        ? `${stamp(time)}F`
        : `${fullLabel ?? fail('Assert', 'a diff or incr label needs its full label')}_${stamp(time)}${type === 'diff' ? 'D' : 'I'}`
    if (after === undefined || labelTime(label) > labelTime(after)) return label
    time = new Date(time.getTime() + 1000)
  }
}

/** The time part that orders labels: the backup's own timestamp. */
function labelTime(label: string): string {
  const match = LABEL.exec(label)
  return match ? (match[2] ?? match[1]!) : label
}

export function backupLabelParse(label: string): { type: BackupType; fullLabel: string } | undefined {
  const match = LABEL.exec(label)
  if (!match) return undefined
  const type: BackupType = match[3] === undefined ? 'full' : match[3] === 'D' ? 'diff' : 'incr'
  return { type, fullLabel: `${match[1]}F` }
}

export function isBackupLabel(label: string): boolean {
  return LABEL.test(label)
}
