// The streaming part of a standby restore: primary_conninfo without its password, the password in the password
// file, and the replication slot on the primary. Done before any file is copied, so a wrong connection string
// fails in seconds rather than after a long restore, and the slot holds WAL from before the copy starts.

import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { pgBinFor, pgDefaultSocketDir } from '../../pg/binaries.js'
import { conninfoFormat, conninfoFromOption, conninfoWhere } from '../../pg/conninfo.js'
import { pgpassLookup, pgpassPath, pgpassRead, pgpassUpsert, pgpassWrite } from '../../pg/pgpass.js'
import { primaryConnect, replicationPgpassKey } from '../replication/primary-connection.js'

const SLOT_NAME = /^[a-z0-9_]{1,63}$/

/**
 * Settings a standby restore adds to postgresql.auto.conf; empty for the other restore types. `major` is the
 * restored cluster's: its server's libpq is the one that reads the password file.
 */
export async function standbyPrepare(cfg: Config, type: string, major: number): Promise<Record<string, string>> {
  // recovery-option=primary_conninfo=... is the pgBackRest way to say the same; it gets the same care.
  // Setting names are case-insensitive to PostgreSQL (and recovery.ts writes them lower-cased): PRIMARY_CONNINFO
  // is the same setting, and gets the same care.
  const viaRecoveryOption = Object.entries(cfg.hash('recovery-option')).find(([name]) => name.trim().toLowerCase() === 'primary_conninfo')?.[1]
  if (viaRecoveryOption !== undefined && cfg.string('primary-conninfo') !== undefined) {
    fail('OptionInvalid', "give the primary's connection string once: option 'primary-conninfo' or recovery-option primary_conninfo, not both")
  }
  const conninfoText = cfg.string('primary-conninfo') ?? (type === 'standby' ? viaRecoveryOption : undefined)
  const slot = cfg.string('slot')
  if (type !== 'standby') {
    for (const [name, value] of [['primary-conninfo', conninfoText], ['slot', slot]] as const) {
      if (value !== undefined) {
        fail('OptionInvalid', `option '${name}' is only valid with --type=standby (or the standby-create command), not --type=${type}`)
      }
    }
    return {}
  }
  if (slot !== undefined && !SLOT_NAME.test(slot)) {
    fail('OptionInvalidValue', `slot name '${slot}' is not valid`, { hint: 'use 1 to 63 lower-case letters, digits and underscores.' })
  }
  const settings: Record<string, string> = { hot_standby: 'on' }
  if (conninfoText === undefined) {
    if (slot !== undefined) {
      fail('OptionRequired', "option 'slot' needs option 'primary-conninfo'", { hint: 'a slot is used by a standby that streams from the primary; say where the primary is.' })
    }
    log.info('standby fed from the archive only (no --primary-conninfo)')
    return settings
  }

  const info =
    cfg.string('primary-conninfo') !== undefined
      ? conninfoFromOption(cfg, 'primary-conninfo', conninfoText)
      : conninfoFromOption(cfg, 'recovery-option', conninfoText, 'recovery-option primary_conninfo')
  const password = info.get('password')
  info.delete('password')
  const passfile = info.get('passfile') ?? pgpassPath()
  const defaultSocketDir = await pgBinFor(major).then(pgDefaultSocketDir, () => undefined)
  const key = replicationPgpassKey(info, defaultSocketDir)
  const existing = await pgpassRead(passfile)
  // Named explicitly: the server's environment may point HOME elsewhere than the OS user's home.
  if (password !== undefined || pgpassLookup(existing, key) !== undefined) info.set('passfile', passfile)

  // Checked now, with the password: the same connection the WAL receiver will make, minus replication.
  const withPassword = new Map(info)
  if (password !== undefined) withPassword.set('password', password)
  const session = await primaryConnect(withPassword, defaultSocketDir)
  try {
    // Stored only once the primary has taken it: a mistyped password never lands in the password file.
    if (password !== undefined && pgpassLookup(existing, key) !== password) {
      await pgpassWrite(passfile, pgpassUpsert(existing, { ...key, password }))
      log.info(`password for ${key.user}@${key.host}:${key.port} written to '${passfile}' (mode 0600)`)
    }
    const [role] = await session.query<{ in_recovery: boolean | string }>('select pg_is_in_recovery()::text as in_recovery')
    if (role?.in_recovery === 'true') log.warn(`the server at ${conninfoWhere(info)} is itself a standby: this standby will cascade from it`)
    if (slot !== undefined) {
      const [found] = await session.query<{ slot_type: string; active: string; active_pid: string | null }>(
        'select slot_type, active::text, active_pid::text from pg_replication_slots where slot_name = $1',
        [slot],
      )
      if (found === undefined) {
        // Reserved at once, so the primary keeps WAL from now until this standby connects.
        await session.query('select pg_create_physical_replication_slot($1, true)', [slot])
        log.info(`replication slot '${slot}' created on ${conninfoWhere(info)}`)
      } else if (found.slot_type !== 'physical') {
        fail('OptionInvalidValue', `replication slot '${slot}' on ${conninfoWhere(info)} is a ${found.slot_type} slot`, { hint: 'choose another name for this standby\'s physical slot.' })
      } else if (found.active === 'true') {
        fail('OptionInvalidValue', `replication slot '${slot}' on ${conninfoWhere(info)} is in use (by process ${found.active_pid})`, {
          hint: 'every standby needs its own slot; choose another name.',
        })
      } else {
        log.info(`replication slot '${slot}' already exists on ${conninfoWhere(info)}; the standby will use it`)
      }
      settings['primary_slot_name'] = slot
    }
  } finally {
    await session.close()
  }
  settings['primary_conninfo'] = conninfoFormat(info)
  return settings
}
