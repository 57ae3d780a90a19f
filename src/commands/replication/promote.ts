// promote: turns the standby at pg1 into a primary, after making sure the primary it followed is not still taking
// writes (two writable primaries would each accept transactions the other never sees), and checks the new
// timeline's history file reaches the archive, since every later restore across the switch needs it.

import { errnoCode, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { conninfoFromOption, conninfoParse, conninfoWhere } from '../../pg/conninfo.js'
import type { PgSession } from '../../pg/session.js'
import { timelineHistoryName } from '../../pg/wal.js'
import { archiveWaitFor } from '../../repo/archive.js'
import { archiveInfoLoad } from '../../repo/stanza-info.js'
import type { Command } from '../command.js'
import { pgSessionOpen } from '../pg-session.js'
import { primaryConnect } from './primary-connection.js'
import { repoStorage } from '../repo-storage.js'
import type { Config } from '../../config/config.js'

/** Seconds pg_promote may take before walden reports a failure. */
const PROMOTE_WAIT_SECONDS = 60

/** Network errors that mean nothing answers at the primary's address: a server that is down, or a host that is gone. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT'])

function isUnreachable(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined
  const code = errnoCode(cause)
  if (code !== undefined) return UNREACHABLE.has(code)
  // The driver's own connect timeout carries no code.
  return cause instanceof Error && /timeout/i.test(cause.message)
}

/** Fails unless the old primary is unreachable or no longer writable (or --force). */
async function splitBrainGuard(cfg: Config, session: PgSession): Promise<void> {
  const [row] = await session.query<{ conninfo: string }>("select current_setting('primary_conninfo') as conninfo")
  const text = cfg.string('primary-conninfo') ?? row!.conninfo
  if (text === '') {
    log.warn('the standby has no primary_conninfo, so walden cannot check that the old primary is down; give --primary-conninfo to check it')
    return
  }
  const given = cfg.string('primary-conninfo')
  const info = given !== undefined ? conninfoFromOption(cfg, 'primary-conninfo', given) : conninfoParse(text, 'primary_conninfo')
  const where = conninfoWhere(info)
  // The standby's build decides which socket folder libpq looks up as 'localhost' in the password file.
  const [socket] = await session.query<{ boot_val: string | null }>("select boot_val from pg_settings where name = 'unix_socket_directories'")
  const defaultSocketDir = socket?.boot_val?.split(',')[0]?.trim() || undefined
  let primary: PgSession
  try {
    // Short: an unreachable primary is the usual case in a failover, and the DBA is waiting.
    info.set('connect_timeout', info.get('connect_timeout') ?? '5')
    primary = await primaryConnect(info, defaultSocketDir)
  } catch (error) {
    if (isUnreachable(error)) {
      log.info(`the primary at ${where} cannot be reached (${(error as Error).message}): going on`)
      return
    }
    // It answered but walden could not get in (a password, pg_hba.conf): it may well be writable.
    if (cfg.boolean('force')) {
      log.warn(`cannot tell whether the primary at ${where} is still writable (${(error as Error).message}); promoting anyway because of --force`)
      return
    }
    fail('SplitBrain', `cannot tell whether the primary at ${where} is still writable: ${(error as Error).message}`, {
      hint: 'stop the old primary (and run `walden stop` on its host), or give --force once you know it is down or fenced off.',
    })
  }
  try {
    const [state] = await primary.query<{ in_recovery: string }>('select pg_is_in_recovery()::text as in_recovery')
    if (state!.in_recovery === 'true') {
      log.info(`the server at ${where} is itself in recovery, not a writable primary: going on`)
      return
    }
  } finally {
    await primary.close()
  }
  if (cfg.boolean('force')) {
    log.warn(`the primary at ${where} is still running and writable; promoting anyway because of --force`)
    return
  }
  fail('SplitBrain', `the primary at ${where} is still running and accepts writes; promoting this standby would make two primaries`, {
    hint: 'stop the old primary (and run `walden stop` on its host) first; give --force only when it is fenced off from clients.',
  })
}

export const promote: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const session = await pgSessionOpen(cfg)
    let timeline: number
    let archiving: boolean
    try {
      const [state] = await session.query<{ in_recovery: string }>('select pg_is_in_recovery()::text as in_recovery')
      if (state!.in_recovery !== 'true') {
        fail('PgState', `the server at ${session.where} is not a standby: there is nothing to promote`, {
          hint: 'point pg1-path and pg1-port (or pg1-socket-path) at the standby.',
        })
      }
      await splitBrainGuard(cfg, session)
      log.info(`promoting the standby at ${session.where}`)
      const [promoted] = await session.query<{ done: string }>('select pg_promote(true, $1)::text as done', [PROMOTE_WAIT_SECONDS])
      if (promoted!.done !== 'true') {
        fail('PgState', `the standby at ${session.where} did not finish promotion within ${PROMOTE_WAIT_SECONDS} seconds`, {
          hint: 'check the PostgreSQL log; promotion may still complete.',
        })
      }
      const [after] = await session.query<{ in_recovery: string; wal: string; archive_mode: string }>(
        "select pg_is_in_recovery()::text as in_recovery, pg_walfile_name(pg_current_wal_lsn()) as wal, current_setting('archive_mode') as archive_mode",
      )
      if (after!.in_recovery === 'true') fail('PgState', `the server at ${session.where} is still in recovery after pg_promote`)
      timeline = parseInt(after!.wal.slice(0, 8), 16)
      archiving = after!.archive_mode !== 'off'
    } finally {
      await session.close()
    }

    const history = timelineHistoryName(timeline)
    if (!archiving) {
      log.warn(`archive_mode is off on the new primary: ${history} and its WAL do not reach the archive`)
      process.stdout.write(`promoted: now a primary on timeline ${timeline}; archiving is off\n`)
      return 0
    }
    const repo = await repoStorage(cfg)
    const timeoutSeconds = cfg.number('archive-timeout') ?? 60
    const missing = await archiveWaitFor(repo, await archiveInfoLoad(repo, stanza), [history], timeoutSeconds * 1000)
    if (missing.length > 0) {
      fail('ArchiveTimeout', `promoted to timeline ${timeline}, but ${history} did not reach the archive within ${timeoutSeconds} second(s)`, {
        hint: "check the new primary's log for archive_command errors: restores across the switch need this file.",
      })
    }
    process.stdout.write(`promoted: now a primary on timeline ${timeline}; ${history} is in the archive of stanza '${stanza}'\n`)
    return 0
  },
}
