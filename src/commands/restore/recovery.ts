// Recovery settings for the restored cluster. Every supported major (13+) reads them from postgresql.conf files
// and a signal file: recovery.signal to recover and finish, standby.signal to stay a standby.

import { confLine, settingName } from '../../pg/conf-syntax.js'

/** Settings walden manages; stale copies from the backed-up cluster or an earlier restore are removed. */
const MANAGED = /^(restore_command|recovery_target\w*|recovery_end_command|primary_conninfo|primary_slot_name)$/

/** The setting a config-file line sets (lower-cased), if it sets one: `name = value`, or `name value` without `=`. */
function lineSetting(line: string): string | undefined {
  return /^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(?:=|\s|'|$)/.exec(line)?.[1]?.toLowerCase()
}

export interface RecoveryRequest {
  type: string
  target?: string
  targetAction: string
  targetExclusive: boolean
  targetTimeline?: string
  restoreCommand: string
  options: Readonly<Record<string, string>>
  /** Turn archiving off on the restored cluster (restore --archive-mode=off). */
  archiveOff?: boolean
}

/** The settings to append for a recovery type; empty for preserve and none. */
export function recoverySettings(request: RecoveryRequest): Map<string, string> {
  const settings = new Map<string, string>()
  if (request.archiveOff) settings.set('archive_mode', 'off')
  if (request.type === 'preserve' || request.type === 'none') return settings
  settings.set('restore_command', request.restoreCommand)
  const targetSetting: Record<string, string> = {
    time: 'recovery_target_time',
    xid: 'recovery_target_xid',
    name: 'recovery_target_name',
    lsn: 'recovery_target_lsn',
  }
  if (request.type === 'immediate') settings.set('recovery_target', 'immediate')
  const setting = targetSetting[request.type]
  if (setting !== undefined) {
    settings.set(setting, request.target!)
    if (request.targetExclusive) settings.set('recovery_target_inclusive', 'false')
  }
  if (setting !== undefined || request.type === 'immediate') settings.set('recovery_target_action', request.targetAction)
  if (request.targetTimeline !== undefined) settings.set('recovery_target_timeline', request.targetTimeline)
  // Names are compared as PostgreSQL does, so an option overrides walden's own setting whatever its case.
  for (const [key, value] of Object.entries(request.options)) settings.set(settingName(key, 'recovery option name'), value)
  return settings
}

/**
 * postgresql.auto.conf with managed settings replaced by `settings`. Every name and value goes through confLine,
 * which escapes the value by PostgreSQL's rules or refuses it: the lines are made before anything is kept, so a
 * refusal leaves nothing half-written.
 */
export function autoConfRewrite(existing: string, settings: ReadonlyMap<string, string>): string {
  if (settings.size === 0) return existing.replace(/\n*$/, '\n')
  const lines = [...settings].map(([key, value]) => confLine(key, value))
  const overridden = new Set([...settings.keys()].map((key) => key.toLowerCase()))
  const kept = existing
    .split('\n')
    .filter((line) => {
      const key = lineSetting(line)
      return key === undefined || !(MANAGED.test(key) || overridden.has(key))
    })
    .join('\n')
    .replace(/\n*$/, '\n')
  return `${kept}# Recovery settings written by walden restore\n${lines.join('\n')}\n`
}

/** Signal file for the recovery type, if any. */
export function signalFile(type: string): 'recovery.signal' | 'standby.signal' | undefined {
  if (type === 'standby') return 'standby.signal'
  if (type === 'preserve' || type === 'none') return undefined
  return 'recovery.signal'
}
