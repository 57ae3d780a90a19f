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

// Where restore's settings go in postgresql.auto.conf: one block between these two lines, at the end of the file (so
// its settings win: PostgreSQL takes the last line of a setting). Each restore replaces the block whole, so settings
// of an earlier restore (another target, archive_mode = off, a port) never linger and nothing piles up; lines
// outside it are the user's, kept as they are. ALTER SYSTEM rewrites the file without comments, markers included:
// its lines are then outside any block, and the rule for recovery settings outside the block applies to them.
export const AUTO_CONF_BEGIN = '# walden restore: recovery settings; the next restore replaces this block, lines outside it are kept'
export const AUTO_CONF_END = '# walden restore: end of recovery settings'
/** What walden restore wrote before the block (issue #15): this line, then its settings, at the end of the file. */
const LEGACY_HEADER = '# Recovery settings written by walden restore'
/** Put before a line restore turned off, as pgBackRest does with recovery settings it finds. */
export const AUTO_CONF_COMMENTED = '# commented out by walden restore: '

export interface AutoConfRewrite {
  text: string
  /** Names of the settings of lines that restore commented out (never their values: primary_conninfo may hold a password). */
  commentedOut: string[]
}

/**
 * postgresql.auto.conf with walden's block (see above) replaced by `settings`. Outside the block:
 * - a recovery setting (restore_command, recovery_target*, primary_conninfo ...) is commented out, as pgBackRest does:
 *   a target left from the backed-up cluster or set by hand would otherwise steer this recovery unasked;
 * - the lines an earlier walden wrote without a block (after its header line, up to the first blank or comment line)
 *   go when walden sets them now or they are recovery settings, and are commented out otherwise (archive_mode = off,
 *   a port: that restore's wishes, not this one's, but perhaps a line added by hand, so kept readable);
 * - everything else stays as it is.
 * Every name and value goes through confLine, which escapes the value by PostgreSQL's rules or refuses it: the lines
 * are made before anything is kept, so a refusal leaves nothing half-written.
 */
export function autoConfRewrite(existing: string, settings: ReadonlyMap<string, string>): AutoConfRewrite {
  if (settings.size === 0) return { text: existing.replace(/\n*$/, '\n'), commentedOut: [] }
  const lines = [...settings].map(([key, value]) => confLine(key, value))
  const overridden = new Set([...settings.keys()].map((key) => key.toLowerCase()))
  const input = existing.split('\n')
  const kept: string[] = []
  const commentedOut: string[] = []
  const commentOut = (line: string, key: string): void => {
    kept.push(`${AUTO_CONF_COMMENTED}${line.trim()}`)
    commentedOut.push(key)
  }
  let state: 'outside' | 'block' | 'legacy' = 'outside'
  for (const [index, line] of input.entries()) {
    const marker = line.trim()
    if (state === 'block') {
      if (marker === AUTO_CONF_END) state = 'outside'
      continue
    }
    if (marker === AUTO_CONF_BEGIN) {
      // A block whose end line was removed by hand: where it ends is unknown, so its lines are judged one by one.
      state = input.slice(index + 1).some((after) => after.trim() === AUTO_CONF_END) ? 'block' : 'legacy'
      continue
    }
    if (marker === AUTO_CONF_END) continue
    if (marker === LEGACY_HEADER) {
      state = 'legacy'
      continue
    }
    const key = lineSetting(line)
    if (key === undefined) {
      if (state === 'legacy') state = 'outside'
      kept.push(line)
      continue
    }
    if (state === 'legacy') {
      if (!MANAGED.test(key) && !overridden.has(key)) commentOut(line, key)
      continue
    }
    if (MANAGED.test(key)) commentOut(line, key)
    else kept.push(line)
  }
  const before = kept.join('\n').replace(/\n*$/, '')
  return { text: `${before === '' ? '' : `${before}\n`}${AUTO_CONF_BEGIN}\n${lines.join('\n')}\n${AUTO_CONF_END}\n`, commentedOut }
}

/** Signal file for the recovery type, if any. */
export function signalFile(type: string): 'recovery.signal' | 'standby.signal' | undefined {
  if (type === 'standby') return 'standby.signal'
  if (type === 'preserve' || type === 'none') return undefined
  return 'recovery.signal'
}
