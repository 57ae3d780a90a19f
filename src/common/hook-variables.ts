// The names of the WALDEN_* variables walden sets for hooks that are not options. A hook may call walden itself (a
// `walden info` in a post-snapshot hook), and walden reads every WALDEN_* variable as an option: these are known, so
// such a call does not warn about them. The variables named like options (WALDEN_STANZA, WALDEN_STAGING_PATH, ...)
// hold the values of those very options, so a walden command in a hook works on the same stanza and staging copy.

export const HOOK_VARIABLES: ReadonlySet<string> = new Set([
  'WALDEN_HOOK',
  'WALDEN_HOOK_RESULT',
  'WALDEN_SNAPSHOT_LABEL',
  'WALDEN_SNAPSHOT_START_LSN',
  'WALDEN_SNAPSHOT_STOP_LSN',
  'WALDEN_SNAPSHOT_REPLAY_LSN',
  'WALDEN_SNAPSHOT_TIMELINE',
  'WALDEN_REPLAY_LSN',
  'WALDEN_JOB_ID',
])
