// setup: prepares a primary for walden through ALTER SYSTEM (see setup-plan.ts for what it changes and why), and
// with --restart restarts the server and checks the new settings are the running ones.

import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import { confValueCheck, settingName, sqlLiteral } from '../../pg/conf-syntax.js'
import { dbInfo } from '../../pg/db.js'
import type { PgSession } from '../../pg/session.js'
import type { Command } from '../command.js'
import { checkDataDirectory, pgSessionOpen } from '../pg-session.js'
import { serverControl } from '../server-control.js'
import { setupPlan } from './setup-plan.js'
import { replicationAccessPlan } from './setup-access.js'
import { waldenCommandLine } from '../walden-command.js'
import type { SettingState } from './setup-plan.js'

const SETTINGS = ['wal_level', 'archive_mode', 'archive_command', 'max_wal_senders', 'wal_keep_size', 'archive_timeout']

/**
 * Running and configured values. pg_file_settings re-reads the files on every query; its last row for a setting is
 * the value after a restart (its error column is set for every change still waiting for one, so it is not a filter).
 */
async function settingStates(session: PgSession): Promise<Map<string, SettingState>> {
  const rows = await session.query<{ name: string; setting: string; unit: string | null; context: string; file_setting: string | null }>(
    `select s.name, s.setting, s.unit, s.context,
            (select f.setting from pg_file_settings f
              where f.name = s.name order by f.seqno desc limit 1) as file_setting
       from pg_settings s where s.name = any($1)`,
    [SETTINGS],
  )
  // In SETTINGS order, so messages list them the same way every time.
  rows.sort((a, b) => SETTINGS.indexOf(a.name) - SETTINGS.indexOf(b.name))
  return new Map(
    rows.map((row) => [row.name, { name: row.name, running: row.setting, configured: row.file_setting ?? row.setting, unit: row.unit, context: row.context }]),
  )
}

const show = (value: string): string => (value === '' ? "''" : value.includes(' ') ? `'${value}'` : value)

export const setup: Command = {
  async run(cfg) {
    const applied = await setupApply(cfg)
    if (applied === undefined) return 0
    await serverControl(cfg, 'restart', applied.dataDirectory, applied.major)
    const session = await pgSessionOpen(cfg)
    try {
      const after = await settingStates(session)
      const stale = applied.restartFor.filter((name) => {
        const state = after.get(name)
        return state !== undefined && state.running !== state.configured
      })
      if (stale.length > 0) {
        fail('PgState', `after the restart, ${stale.join(', ')} still differ from the configured values`, {
          hint: 'a setting given on the postgres command line overrides postgresql.auto.conf; check how the server is started.',
        })
      }
    } finally {
      await session.close()
    }
    process.stdout.write(`restarted PostgreSQL: ${applied.restartFor.join(', ')} now in effect\n`)
    return 0
  },
}

/** Plans and (unless --dry-run) applies the changes; returns what to restart for when --restart should run. */
async function setupApply(cfg: Config): Promise<{ dataDirectory: string; major: number; restartFor: string[] } | undefined> {
  const stanza = cfg.stanza()
  const dryRun = cfg.boolean('dry-run')
  const session = await pgSessionOpen(cfg)
  try {
    const server = await dbInfo(session)
    await checkDataDirectory(cfg, server.dataDirectory, session.where)
    if (server.inRecovery) {
      fail('PgState', `the server at ${session.where} is a standby`, { hint: 'run setup on the primary; a standby takes its settings from it.' })
    }
    const archiveTimeout = { seconds: cfg.number('pg-archive-timeout') ?? 60, explicit: (cfg.source('pg-archive-timeout') ?? 'default') !== 'default' }
    const plan = setupPlan(await settingStates(session), stanza, waldenCommandLine(cfg, 'archive-push', '%p'), cfg.boolean('force'), archiveTimeout)
    if (plan.refusal !== undefined) {
      fail('OptionInvalid', plan.refusal, { hint: "another tool may be archiving this cluster; give --force to replace its archive_command with walden's." })
    }
    // The role, the password file and pg_hba.conf: planned (and refused) before anything at all is changed.
    const [{ port } = { port: '5432' }] = await session.query<{ port: string }>(`select current_setting('port') as port`)
    const access = await replicationAccessPlan(cfg, session, port)

    const out: string[] = []
    if (plan.changes.length === 0 && access.length === 0) out.push(`stanza '${stanza}': nothing to change on ${server.dataDirectory}`)
    else out.push(`stanza '${stanza}': ${dryRun ? 'would change' : 'changed'} on ${server.dataDirectory} (PostgreSQL ${server.major}):`)
    const width = Math.max(...plan.changes.map((change) => change.name.length), 0)
    for (const change of plan.changes) {
      out.push(`  ${change.name.padEnd(width)}  ${show(change.from)} -> ${show(change.to)}${change.restart ? '  (needs restart)' : ''}`)
    }
    for (const step of access) out.push(`  ${step.shown}`)
    // All checked before the first is applied: a refusal halfway would leave the server half set up.
    for (const change of plan.changes) confValueCheck(change.name, change.to)
    if (!dryRun) {
      for (const change of plan.changes) {
        // ALTER SYSTEM takes no bind parameters; the name is from our own list and the value an E'' literal, which
        // means the same whatever standard_conforming_strings is. PostgreSQL escapes it for the file itself.
        await session.query(`alter system set ${settingName(change.name)} = ${sqlLiteral(change.to)}`)
      }
      for (const step of access) await step.apply()
      if (plan.changes.length > 0 || access.some((step) => step.reload)) await session.query('select pg_reload_conf()')
    }

    const restartFor = [...plan.changes.filter((change) => change.restart).map((change) => change.name), ...plan.pendingRestart]
    const restarting = restartFor.length > 0 && cfg.boolean('restart') && !dryRun
    if (restartFor.length === 0) {
      out.push(plan.changes.length === 0 && !access.some((step) => step.reload) ? 'no restart needed' : `no restart ${dryRun ? 'would be ' : ''}needed: a reload applies ${dryRun ? 'them' : 'them, and was done'}`)
    } else if (!restarting) {
      out.push(`restart needed for: ${restartFor.join(', ')}${dryRun ? '' : ' (run setup --restart, or restart PostgreSQL yourself)'}`)
    }
    process.stdout.write(`${out.join('\n')}\n`)
    return restarting ? { dataDirectory: server.dataDirectory, major: server.major, restartFor } : undefined
  } finally {
    await session.close()
  }
}
