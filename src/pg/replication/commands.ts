// The text of the replication commands walden sends on a walsender connection, per PostgreSQL major, and the parsing
// of what comes back that does not depend on the connection. The grammar is the walsender's own (repl_gram.y), not
// SQL: strings are single-quoted with quotes doubled (no E'' form), slot names are bare identifiers.
//
// PostgreSQL 15 introduced the parenthesized option list (`BASE_BACKUP (LABEL '...', CHECKPOINT 'fast')`) and a new
// COPY sub-protocol for base backups; PostgreSQL 13 and 14 know only the old keyword form and send one CopyOut per
// tablespace. See doc/src/sgml/protocol.sgml, "Streaming Replication Protocol", of each major.

import { fail } from '../../common/errors.js'

/** Majors whose BASE_BACKUP walden speaks. */
export const REPLICATION_MAJOR_MIN = 13
export const REPLICATION_MAJOR_MAX = 18

/** A replication slot name as PostgreSQL accepts it (ReplicationSlotValidateName): a-z, 0-9, _; 1 to 63 bytes. */
const SLOT_NAME = /^[a-z0-9_]{1,63}$/

export function slotNameCheck(name: string): string {
  if (!SLOT_NAME.test(name)) {
    fail('OptionInvalidValue', `replication slot name '${name}' is not valid`, { hint: 'use 1 to 63 lower-case letters, digits and underscores.' })
  }
  return name
}

/** A string literal of the replication grammar: single quotes, a quote inside doubled. */
export function replicationLiteral(value: string): string {
  if (value.includes('\0')) fail('OptionInvalidValue', 'a replication command string cannot hold a NUL byte')
  return `'${value.replaceAll("'", "''")}'`
}

function majorCheck(major: number): void {
  if (major < REPLICATION_MAJOR_MIN || major > REPLICATION_MAJOR_MAX) {
    fail('VersionNotSupported', `PostgreSQL ${major} is not supported for a base backup over the replication protocol`, {
      hint: `walden takes base backups of PostgreSQL ${REPLICATION_MAJOR_MIN} to ${REPLICATION_MAJOR_MAX}.`,
    })
  }
}

/**
 * CREATE_REPLICATION_SLOT for a physical slot that reserves WAL at once, so the server keeps every segment from
 * before the base backup's checkpoint until a standby has streamed it.
 */
export function createPhysicalSlotCommand(major: number, slot: string): string {
  majorCheck(major)
  slotNameCheck(slot)
  // PostgreSQL 15 added the option list; the old keyword form is still accepted there, but not forever.
  return major >= 15 ? `CREATE_REPLICATION_SLOT ${slot} PHYSICAL (RESERVE_WAL)` : `CREATE_REPLICATION_SLOT ${slot} PHYSICAL RESERVE_WAL`
}

/** DROP_REPLICATION_SLOT; without WAIT, so an active slot is an error rather than a hang. */
export function dropSlotCommand(slot: string): string {
  return `DROP_REPLICATION_SLOT ${slotNameCheck(slot)}`
}

export interface BaseBackupRequest {
  /** Shown in backup_label and pg_stat_progress_basebackup. */
  label: string
  /** Request an immediate checkpoint instead of waiting for the next spread one. */
  fast: boolean
  /** Include the WAL needed to make the backup consistent (pg_wal in base.tar). */
  wal: boolean
  /** Throttle in kB/s (32 to 1048576), or undefined for no limit. */
  maxRateKb?: number
}

/**
 * The BASE_BACKUP command. WAIT false / NOWAIT: the server does not wait for the backup's WAL to be archived, which
 * a source without archiving would never do; the WAL comes from the tar (wal) or from a replication slot.
 * No TABLESPACE_MAP: the server then sends pg_tblspc/<oid> as symbolic links, which the extractor points at the
 * staging copy's own tablespace folders. No manifest: the staging copy is checked by replaying and by walden's own
 * backups of it.
 */
export function baseBackupCommand(major: number, request: BaseBackupRequest): string {
  majorCheck(major)
  const { maxRateKb } = request
  if (maxRateKb !== undefined && !(Number.isInteger(maxRateKb) && maxRateKb >= 32 && maxRateKb <= 1_048_576)) {
    fail('OptionInvalidValue', `base backup rate limit '${maxRateKb}' kB/s is out of range`, { hint: 'use 32 to 1048576 kB/s.' })
  }
  if (major >= 15) {
    const options = [
      `LABEL ${replicationLiteral(request.label)}`,
      `CHECKPOINT ${request.fast ? "'fast'" : "'spread'"}`,
      `WAL ${request.wal ? 'true' : 'false'}`,
      'WAIT false',
      "MANIFEST 'no'",
      ...(maxRateKb !== undefined ? [`MAX_RATE ${maxRateKb}`] : []),
    ]
    return `BASE_BACKUP (${options.join(', ')})`
  }
  return [
    'BASE_BACKUP',
    `LABEL ${replicationLiteral(request.label)}`,
    ...(request.fast ? ['FAST'] : []),
    ...(request.wal ? ['WAL'] : []),
    'NOWAIT',
    ...(maxRateKb !== undefined ? [`MAX_RATE ${maxRateKb}`] : []),
  ].join(' ')
}

/** One CopyData message of the PostgreSQL 15+ base backup sub-protocol, by its first byte. */
export type BaseBackupMessage =
  | { type: 'archive'; name: string; location: string }
  | { type: 'data'; data: Buffer }
  | { type: 'progress'; bytes: bigint }
  | { type: 'manifest' }

/** Parses a CopyData message of the PostgreSQL 15+ base backup stream ('n', 'd', 'p', 'm'). */
export function baseBackupMessageParse(message: Buffer): BaseBackupMessage {
  const kind = String.fromCharCode(message[0] ?? 0)
  switch (kind) {
    case 'd':
      return { type: 'data', data: message.subarray(1) }
    case 'n': {
      const nameEnd = message.indexOf(0, 1)
      const locationEnd = nameEnd === -1 ? -1 : message.indexOf(0, nameEnd + 1)
      if (locationEnd === -1) fail('Protocol', 'base backup stream: a new-archive message is not two NUL-terminated strings')
      return { type: 'archive', name: message.toString('utf8', 1, nameEnd), location: message.toString('utf8', nameEnd + 1, locationEnd) }
    }
    case 'p':
      if (message.length < 9) fail('Protocol', 'base backup stream: a progress message is shorter than 9 bytes')
      return { type: 'progress', bytes: message.readBigInt64BE(1) }
    case 'm':
      return { type: 'manifest' }
    default:
      return fail('Protocol', `base backup stream: unknown message type '${kind}' (0x${(message[0] ?? 0).toString(16)})`, {
        hint: 'the server speaks a newer protocol than this walden knows; update walden.',
      })
  }
}
