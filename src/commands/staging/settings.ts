// staging-setting and clone-setting: `name=value` sets a setting of the staging cluster (or clone), `#name` comments
// out every line that sets it (e.g. a shared_preload_libraries the staging host does not have). Settings walden owns
// are refused, naming the setting: a staging copy that listened on another port, stopped being a standby or stopped
// asking walden for its WAL would no longer be what its record says.
//
// Where they are written: `name=value` into postgresql.auto.conf, which PostgreSQL reads last, so it wins over the
// source's postgresql.conf; `#name` comments the setting out in postgresql.conf and postgresql.auto.conf. At every
// (re)application (link, enable, resync) the lines of the settings applied before are removed first, so a setting
// dropped from the list does not linger. A line commented out stays commented out.

import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import { confLine, confValueCheck, settingName } from '../../pg/conf-syntax.js'

export type SettingChange = { kind: 'set'; name: string; value: string } | { kind: 'comment'; name: string }

/**
 * Settings walden owns on a staging cluster or clone. Recovery and replication settings, the port, hot standby and
 * archiving (snapshots keep the staging copy's WAL in the repository), and what would move the data or the config
 * itself. Names are lower-case, as PostgreSQL compares them.
 */
const OWNED_EXACT = new Set([
  'port',
  'hot_standby',
  'primary_conninfo',
  'primary_slot_name',
  'restore_command',
  'archive_cleanup_command',
  'recovery_end_command',
  'recovery_min_apply_delay',
  'promote_trigger_file',
  'standby_mode',
  'trigger_file',
  'wal_receiver_create_temp_slot',
  'archive_mode',
  'archive_command',
  'archive_library',
  'data_directory',
  'config_file',
  'hba_file',
  'ident_file',
  'include',
  'include_if_exists',
  'include_dir',
])
const OWNED_PREFIX = ['recovery_target']

/** Why walden owns a setting, if it does: for the error. */
export function settingOwned(name: string): boolean {
  return OWNED_EXACT.has(name) || OWNED_PREFIX.some((prefix) => name.startsWith(prefix))
}

/**
 * Parses one staging-setting or clone-setting value. `option` names the option in errors. Refuses a name that is
 * not a setting name, a value that cannot be written to a config file, and settings walden owns.
 */
export function settingParse(text: string, option: string): SettingChange {
  const trimmed = text.trim()
  let change: SettingChange
  if (trimmed.startsWith('#')) {
    change = { kind: 'comment', name: settingName(trimmed.slice(1).trim(), `${option} name`) }
  } else {
    const equals = trimmed.indexOf('=')
    if (equals <= 0) {
      fail('OptionInvalidValue', `${option} '${trimmed}' must be name=value, or #name to comment a setting out`, {
        hint: `e.g. --${option}=work_mem=64MB or --${option}=#shared_preload_libraries.`,
      })
    }
    const name = settingName(trimmed.slice(0, equals).trim(), `${option} name`)
    const value = trimmed.slice(equals + 1).trim()
    confValueCheck(name, value, option)
    change = { kind: 'set', name, value }
  }
  if (settingOwned(change.name)) {
    fail('OptionInvalidValue', `${option} '${change.name}' is a setting walden owns on this cluster and cannot be ${change.kind === 'set' ? 'set' : 'commented out'}`, {
      hint:
        change.name === 'port'
          ? 'the port is staging-port (clone-port for a clone).'
          : 'walden writes the port, recovery, replication and archiving settings itself; leave them out.',
    })
  }
  return change
}

/** Parses every value of a setting option; a name given twice is refused (which one should win?). */
export function settingsParse(texts: readonly string[], option: string): SettingChange[] {
  const changes = texts.map((text) => settingParse(text, option))
  const seen = new Set<string>()
  for (const change of changes) {
    if (seen.has(change.name)) {
      fail('OptionInvalidValue', `${option} '${change.name}' is given more than once`, { hint: 'give each setting once.' })
    }
    seen.add(change.name)
  }
  return changes
}

/** The setting a config-file line sets (lower-cased), if it sets one: `name = value`, or `name value` without `=`. */
export function lineSetting(line: string): string | undefined {
  return /^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(?:=|\s|'|$)/.exec(line)?.[1]?.toLowerCase()
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw error
  }
}

/** Writes a config file of the (stopped) cluster by temporary name and rename: the server never reads half of it. */
async function confWrite(path: string, text: string): Promise<void> {
  const temporary = `${path}.walden.tmp`
  await writeFile(temporary, text, { mode: 0o600 })
  await rename(temporary, path)
}

/** `text` with every line setting one of `names` commented out. */
function commentOut(text: string, names: ReadonlySet<string>): string {
  return text
    .split('\n')
    .map((line) => {
      const name = lineSetting(line)
      return name !== undefined && names.has(name) ? `#${line}  # commented out by walden` : line
    })
    .join('\n')
}

/** `text` without the lines setting one of `names`. */
function withoutSettings(text: string, names: ReadonlySet<string>): string {
  return text
    .split('\n')
    .filter((line) => {
      const name = lineSetting(line)
      return name === undefined || !names.has(name)
    })
    .join('\n')
}

const USER_HEADER = '# staging settings (staging-setting), written by walden'
const OWNED_HEADER = '# written by walden for the staging copy; do not change'

/**
 * Writes the cluster's settings into its data folder (the server must be stopped):
 * - `owned`: walden's own settings (port, hot_standby, restore_command, primary_conninfo, ...), written last in
 *   postgresql.auto.conf after any earlier copy of them is removed from it;
 * - `changes`: the user's settings; `previous` are the ones applied last time, whose lines are removed first.
 * Every line is made (and so every value checked) before a file is written.
 */
export async function settingsApply(
  dataDir: string,
  owned: ReadonlyMap<string, string>,
  changes: readonly SettingChange[],
  previous: readonly SettingChange[] = [],
): Promise<void> {
  const ownedLines = [...owned].map(([name, value]) => confLine(name, value))
  const setLines = changes.flatMap((change) => (change.kind === 'set' ? [confLine(change.name, change.value)] : []))
  const commented = new Set(changes.filter((change) => change.kind === 'comment').map((change) => change.name))
  const removed = new Set([
    ...owned.keys(),
    ...changes.filter((change) => change.kind === 'set').map((change) => change.name),
    ...previous.filter((change) => change.kind === 'set').map((change) => change.name),
  ])

  const confPath = join(dataDir, 'postgresql.conf')
  const autoPath = join(dataDir, 'postgresql.auto.conf')
  const conf = await readOptional(confPath)
  const auto = (await readOptional(autoPath)) ?? '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n'

  // Settings walden owns are removed from postgresql.conf too: the source's port or primary_conninfo there would
  // be overridden by postgresql.auto.conf anyway, but a reader of the file should not be misled.
  const ownedNames = new Set(owned.keys())
  if (conf !== undefined && commented.size + ownedNames.size > 0) {
    await confWrite(confPath, commentOut(conf, new Set([...commented, ...ownedNames])))
  }
  // The headers of walden's own blocks go with their lines, to be written again below.
  const withoutHeaders = withoutSettings(auto, removed)
    .split('\n')
    .filter((line) => line !== USER_HEADER && line !== OWNED_HEADER)
    .join('\n')
  const kept = commentOut(withoutHeaders, commented).replace(/\n*$/, '\n')
  const blocks = [kept]
  if (setLines.length > 0) blocks.push(`${USER_HEADER}\n${setLines.join('\n')}\n`)
  if (ownedLines.length > 0) blocks.push(`${OWNED_HEADER}\n${ownedLines.join('\n')}\n`)
  await confWrite(autoPath, blocks.join(''))
}
