// Recovery settings for the restored cluster. Every supported major (13+) reads them from postgresql.conf files
// and a signal file: recovery.signal to recover and finish, standby.signal to stay a standby.

/** Settings walden manages; stale copies from the backed-up cluster or an earlier restore are removed. */
const MANAGED = /^\s*(restore_command|recovery_target\w*|recovery_end_command|primary_conninfo|primary_slot_name)\s*=/

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

/** Quotes a value for postgresql.conf: single quotes, embedded quotes doubled. */
export function confQuote(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

/** Quotes one shell word when it needs it. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_\-./=:%@,+]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`
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
  for (const [key, value] of Object.entries(request.options)) settings.set(key, value)
  return settings
}

/** postgresql.auto.conf with managed settings replaced by `settings`. */
export function autoConfRewrite(existing: string, settings: ReadonlyMap<string, string>): string {
  const overridden = new Set(settings.keys())
  const kept = existing
    .split('\n')
    .filter((line) => {
      if (settings.size === 0) return true
      if (MANAGED.test(line)) return false
      const key = /^\s*([A-Za-z_.]+)\s*=/.exec(line)?.[1]
      return key === undefined || !overridden.has(key)
    })
    .join('\n')
    .replace(/\n*$/, '\n')
  if (settings.size === 0) return kept
  const lines = [...settings].map(([key, value]) => `${key} = ${confQuote(value)}`)
  return `${kept}# Recovery settings written by walden restore\n${lines.join('\n')}\n`
}

/** Signal file for the recovery type, if any. */
export function signalFile(type: string): 'recovery.signal' | 'standby.signal' | undefined {
  if (type === 'standby') return 'standby.signal'
  if (type === 'preserve' || type === 'none') return undefined
  return 'recovery.signal'
}
