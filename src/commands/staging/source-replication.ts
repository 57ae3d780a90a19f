// The staging copy's conversation with its source over the replication protocol: the connection as the
// staging-source role, and the physical replication slot created and dropped there. Only the replication protocol
// is used, so the source needs no more than what a standby needs: a role with LOGIN and REPLICATION and a
// "replication" line in pg_hba.conf (no line for any database).
//
// The password is read from the password file (passfile= in staging-source, else $PGPASSFILE, else ~/.pgpass) only
// when the server asks for one, held in memory for the authentication, and never written anywhere.

import { WaldenError, fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { type Conninfo, conninfoParse, conninfoSessionOptions, conninfoWhere } from '../../pg/conninfo.js'
import { pgpassLookup, pgpassPath, pgpassRead } from '../../pg/pgpass.js'
import { ReplicationConnection } from '../../pg/replication/client.js'
import { slotNameCheck } from '../../pg/replication/commands.js'
import { osUserName, replicationPgpassKey } from '../replication/primary-connection.js'
import type { StagingRecord } from './state.js'

/**
 * staging-source as the replication connection uses it. link.ts has refused a password in it already; a
 * replication= keyword other than the physical kind is refused here.
 */
export function sourceConninfo(source: string): Conninfo {
  const info = conninfoParse(source, "option 'staging-source'")
  if (info.has('password')) fail('OptionInvalidValue', "option 'staging-source' holds a password", { hint: 'put the password in the password file.' })
  const replication = info.get('replication')
  if (replication !== undefined && !['true', 'on', 'yes', '1'].includes(replication)) {
    fail('OptionInvalidValue', `option 'staging-source' sets replication=${replication}; the staging copy needs a physical replication connection`, {
      hint: 'remove replication= from staging-source.',
    })
  }
  info.delete('replication')
  return info
}

/**
 * Opens a replication connection to the source. The password is looked up only if the server asks for one, so trust
 * or peer authentication needs no password file.
 */
export async function sourceConnect(source: string): Promise<ReplicationConnection> {
  const info = sourceConninfo(source)
  const passfile = info.get('passfile') ?? pgpassPath()
  const key = replicationPgpassKey(info)
  const { database: _database, password: _password, ...session } = conninfoSessionOptions(info, undefined, osUserName())
  return ReplicationConnection.open({
    ...session,
    applicationName: info.get('application_name') ?? 'walden',
    password: async () => {
      const password = pgpassLookup(await pgpassRead(passfile), key)
      if (password === undefined) {
        fail('DbConnect', `the source at ${conninfoWhere(info)} asks for a password, and the password file '${passfile}' has none for user '${key.user}'`, {
          hint: `add the line '${key.host}:${key.port}:replication:${key.user}:<password>' to '${passfile}' (mode 0600, owned by the OS user running walden).`,
        })
      }
      return password
    },
  })
}

/**
 * Creates the physical slot, reserving WAL from now on; returns false when a slot of that name exists (a resync, or
 * one pg_basebackup -C -S made), which the staging copy then uses as it is.
 */
export async function slotCreateOn(connection: ReplicationConnection, slot: string): Promise<boolean> {
  try {
    await connection.createPhysicalSlot(slotNameCheck(slot))
    log.info(`replication slot '${slot}' created on ${connection.where}`)
    return true
  } catch (error) {
    // 42710 duplicate_object; the text is the same in every major.
    if (!/already exists/.test((error as Error).message)) throw error
    log.info(`replication slot '${slot}' exists on ${connection.where}; the staging copy uses it`)
    return false
  }
}

/** The slot of a streaming staging copy made sure of on its source; returns whether it was created now. */
export async function sourceSlotEnsure(record: Pick<StagingRecord, 'source' | 'slotName'>): Promise<boolean> {
  const connection = await sourceConnect(sourceOf(record))
  try {
    return await slotCreateOn(connection, slotOf(record))
  } finally {
    await connection.close()
  }
}

/**
 * Drops the copy's slot on the source, so that it stops keeping WAL. A slot already gone is fine; one still in use
 * (the staging cluster runs) is an error.
 */
export async function sourceSlotDrop(record: Pick<StagingRecord, 'source' | 'slotName'>): Promise<'dropped' | 'missing'> {
  const slot = slotOf(record)
  const connection = await sourceConnect(sourceOf(record))
  try {
    await connection.dropSlot(slot)
    log.info(`replication slot '${slot}' dropped on ${connection.where}`)
    return 'dropped'
  } catch (error) {
    const message = (error as Error).message
    if (/does not exist/.test(message)) return 'missing'
    if (/is active/.test(message)) {
      throw new WaldenError('DbQuery', `replication slot '${slot}' on ${connection.where} is still in use`, {
        hint: 'stop the staging cluster (staging-disable) before its slot is dropped.',
        cause: error,
      })
    }
    throw error
  } finally {
    await connection.close()
  }
}

function sourceOf(record: Pick<StagingRecord, 'source'>): string {
  if (record.source === undefined) fail('OptionRequired', "a streaming staging copy needs option 'staging-source'")
  return record.source
}

function slotOf(record: Pick<StagingRecord, 'slotName'>): string {
  if (record.slotName === undefined) fail('Assert', 'a streaming staging record without a slot name')
  return record.slotName
}
