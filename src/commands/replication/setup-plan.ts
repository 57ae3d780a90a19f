// What `walden setup` changes on a primary, decided from the server's settings alone, so the rules are testable
// without a server. Each setting is judged by the value it will have after a restart (the config files'), not the
// running one: that is what makes a second run, before the restart, change nothing.

export interface SettingState {
  name: string
  /** The running value, as pg_settings shows it. */
  running: string
  /** The value the config files give (the last one read wins); the running one when no file sets it. */
  configured: string
  /** pg_settings.unit, e.g. 'MB' for wal_keep_size. */
  unit: string | null
  /** pg_settings.context: 'postmaster' settings need a restart. */
  context: string
}

export interface SettingChange {
  name: string
  from: string
  to: string
  restart: boolean
}

export interface SetupPlan {
  changes: SettingChange[]
  /** Settings already configured to the right value but not yet running: a restart is still due for them. */
  pendingRestart: string[]
  /** Why setup must not go on without --force, if it must not. */
  refusal?: string
}

/** Values setup raises a setting to when it is lower. */
export const SETUP_MIN_WAL_SENDERS = 10
export const SETUP_MIN_WAL_KEEP_MB = 512

const TRUE_WORDS = new Set(['on', 'true', 'yes', '1'])

/** A size setting in MB; a value without a unit is in the setting's own unit. */
export function sizeInMb(value: string, unit: string | null): number {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*([kMGT]?B)?\s*$/.exec(value)
  if (!match) return Number.NaN
  const factor: Record<string, number> = { B: 1 / 1048576, kB: 1 / 1024, MB: 1, GB: 1024, TB: 1048576 }
  // pg_settings' unit may be a multiple such as '8kB'; setup only deals with single units.
  return Number(match[1]) * (factor[match[2] ?? unit ?? 'MB'] ?? 1)
}

/** Whether an archive_command calls walden archive-push for this stanza (possibly another install of it). */
export function isWaldenArchiveCommand(command: string, stanza: string): boolean {
  return /\barchive-push\b/.test(command) && (command.includes(`--stanza=${stanza} `) || command.includes(`--stanza=${stanza}'`))
}

/** A time setting in seconds; a value without a unit is in the setting's own unit (seconds for archive_timeout). */
export function timeInSeconds(value: string, unit: string | null): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(value)
  if (!match) return Number.NaN
  const factor: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, min: 60, h: 3600, d: 86400 }
  return Number(match[1]) * (factor[match[2] ?? unit ?? 's'] ?? 1)
}

/** Same value as PostgreSQL would read it: case and boolean spellings do not matter. */
function normalise(state: SettingState, value: string): string {
  if (state.name === 'archive_mode') return TRUE_WORDS.has(value.toLowerCase()) ? 'on' : value.toLowerCase() === 'always' ? 'always' : 'off'
  if (state.name === 'wal_keep_size') return String(sizeInMb(value, state.unit))
  if (state.name === 'archive_timeout') return String(timeInSeconds(value, state.unit))
  if (state.name === 'archive_command') return value === '(disabled)' ? '' : value
  return value.toLowerCase()
}

/**
 * archive_timeout setup aims for: `seconds` (0 leaves it alone). A default is only written where archive_timeout is
 * off, so a DBA's own value survives; a value given explicitly is written whatever is there.
 */
export interface ArchiveTimeoutWish {
  seconds: number
  explicit: boolean
}

export function setupPlan(
  states: ReadonlyMap<string, SettingState>,
  stanza: string,
  archiveCommand: string,
  force: boolean,
  archiveTimeout?: ArchiveTimeoutWish,
): SetupPlan {
  const changes: SettingChange[] = []
  let refusal: string | undefined
  const want = (name: string, decide: (configured: string) => string | undefined): void => {
    const state = states.get(name)
    if (state === undefined) return // not on this major
    const configured = normalise(state, state.configured)
    const to = decide(configured)
    if (to !== undefined && normalise(state, to) !== configured) {
      changes.push({ name, from: state.configured, to, restart: state.context === 'postmaster' })
    }
  }

  want('wal_level', (value) => (value === 'minimal' ? 'replica' : undefined))
  want('archive_mode', (value) => (value === 'off' ? 'on' : undefined))
  want('archive_command', (value) => {
    // A walden archive-push for this stanza is kept as it is: the DBA may have tuned it (the sh front of
    // bin/walden-archive-push, options); --force writes walden's plain command instead.
    if (value !== '' && isWaldenArchiveCommand(value, stanza) && !force) return undefined
    if (value !== '' && value !== archiveCommand && !force) {
      refusal = `archive_command is already set to '${value}', which does not call walden archive-push for stanza '${stanza}'`
    }
    return archiveCommand
  })
  want('max_wal_senders', (value) => (Number(value) < SETUP_MIN_WAL_SENDERS ? String(SETUP_MIN_WAL_SENDERS) : undefined))
  want('wal_keep_size', (value) => (Number(value) < SETUP_MIN_WAL_KEEP_MB ? `${SETUP_MIN_WAL_KEEP_MB}MB` : undefined))
  if (archiveTimeout !== undefined && (archiveTimeout.seconds > 0 || archiveTimeout.explicit)) {
    // A segment is archived at the latest this long after a commit, so a backup's WAL and a point-in-time target
    // never wait for a quiet server to fill a segment.
    want('archive_timeout', (value) => (archiveTimeout.explicit || Number(value) === 0 ? `${archiveTimeout.seconds}s` : undefined))
  }

  const changed = new Set(changes.map((change) => change.name))
  const pendingRestart = [...states.values()]
    .filter((state) => state.context === 'postmaster' && !changed.has(state.name) && normalise(state, state.running) !== normalise(state, state.configured))
    .map((state) => state.name)
  return { changes, pendingRestart, ...(refusal !== undefined ? { refusal } : {}) }
}
