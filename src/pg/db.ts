// What walden asks the server: its identity and settings, online backup begin/end, WAL switches, tablespaces.
// Every call is one round trip; a backup costs a handful of queries, not one per file.

import type { PgSession } from './session.js'

export interface DbInfo {
  /** server_version_num, e.g. 150004. */
  versionNum: number
  major: number
  dataDirectory: string
  archiveMode: string
  archiveCommand: string
  inRecovery: boolean
  dataChecksums: boolean
  walSegmentSize: number
}

export async function dbInfo(session: PgSession): Promise<DbInfo> {
  const [row] = await session.query<{
    version_num: string
    data_directory: string
    archive_mode: string
    archive_command: string
    in_recovery: string
    data_checksums: string
    wal_segment_size: string
  }>(
    `select current_setting('server_version_num') as version_num,
            current_setting('data_directory') as data_directory,
            current_setting('archive_mode') as archive_mode,
            current_setting('archive_command') as archive_command,
            pg_is_in_recovery()::text as in_recovery,
            current_setting('data_checksums') as data_checksums,
            (select setting::bigint * case unit when 'B' then 1 when 'kB' then 1024 when 'MB' then 1048576 else 1 end
               from pg_settings where name = 'wal_segment_size')::text as wal_segment_size`,
  )
  const versionNum = Number(row!.version_num)
  return {
    versionNum,
    major: Math.floor(versionNum / 10000),
    dataDirectory: row!.data_directory,
    archiveMode: row!.archive_mode,
    archiveCommand: row!.archive_command,
    inRecovery: row!.in_recovery === 'true',
    dataChecksums: row!.data_checksums === 'on',
    walSegmentSize: Number(row!.wal_segment_size),
  }
}

export interface BackupBegin {
  lsn: string
  /** Server time when the backup began, ISO 8601. */
  time: string
}

/**
 * Begins a non-exclusive backup on this session. The backup stays open only while the session lives, so a walden
 * killed mid-backup can never leave the server in backup mode.
 */
export async function dbBackupBegin(session: PgSession, major: number, label: string, fast: boolean): Promise<BackupBegin> {
  const call = major >= 15 ? 'pg_backup_start($1, $2)' : 'pg_start_backup($1, $2, false)'
  const [row] = await session.query<{ lsn: string; time: string }>(
    `select ${call}::text as lsn, to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as time`,
    [label, fast],
  )
  return { lsn: row!.lsn, time: row!.time }
}

export interface BackupEnd {
  lsn: string
  labelFile: string
  tablespaceMap: string
  time: string
}

/**
 * Ends the backup. wait_for_archive is off: walden itself waits for the WAL to reach its repository, with its own
 * timeout and a message that says which segment is missing, rather than blocking inside the server.
 */
export async function dbBackupEnd(session: PgSession, major: number): Promise<BackupEnd> {
  const call = major >= 15 ? 'pg_backup_stop(false)' : 'pg_stop_backup(false, false)'
  const [row] = await session.query<{ lsn: string; labelfile: string; spcmapfile: string | null; time: string }>(
    `select lsn::text as lsn, labelfile, spcmapfile,
            to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as time
       from ${call}`,
  )
  return { lsn: row!.lsn, labelFile: row!.labelfile, tablespaceMap: row!.spcmapfile ?? '', time: row!.time }
}

/**
 * Forces a switch to a new WAL segment and returns the name of the segment just completed. A restore point is
 * written first so the segment is never empty: switching an idle server would otherwise complete nothing.
 */
export async function dbWalSwitch(session: PgSession): Promise<{ walFile: string; lsn: string }> {
  await session.query(`select pg_create_restore_point('walden archive check')`)
  const [row] = await session.query<{ lsn: string; wal_file: string }>(
    `select lsn::text as lsn, pg_walfile_name(lsn) as wal_file from (select pg_switch_wal() as lsn) switched`,
  )
  return { walFile: row!.wal_file, lsn: row!.lsn }
}

export interface Tablespace {
  oid: number
  name: string
  location: string
}

export async function dbTablespaces(session: PgSession): Promise<Tablespace[]> {
  const rows = await session.query<{ oid: string; name: string; location: string }>(
    `select oid::text as oid, spcname as name, pg_tablespace_location(oid) as location
       from pg_tablespace where spcname not in ('pg_default', 'pg_global') order by oid`,
  )
  return rows.map((row) => ({ oid: Number(row.oid), name: row.name, location: row.location }))
}

export interface Database {
  name: string
  oid: number
  /**
   * The highest oid initdb gave a database: databases at or below it (template0, template1) are the system's own.
   * datlastsysoid before PostgreSQL 15; from 15 on, which dropped that column, template0's oid (4), as pgBackRest
   * records it.
   */
  lastSystemOid: number
}

/** The cluster's databases, by name: info --set lists those of a backup (pgBackRest's database-ref). */
export async function dbDatabases(session: PgSession, major: number): Promise<Database[]> {
  const last = major >= 15 ? `(select oid from pg_database where datname = 'template0')` : 'datlastsysoid'
  const rows = await session.query<{ name: string; oid: string; last: string }>(
    `select datname as name, oid::text as oid, ${last}::text as last from pg_database order by datname`,
  )
  return rows.map((row) => ({ name: row.name, oid: Number(row.oid), lastSystemOid: Number(row.last) }))
}

/** What a standby's pg_control and startup process say: how far it has replayed, and where its last restartpoint is. */
export interface ReplayState {
  /** End of the last WAL record replayed; null when the server is not in recovery. */
  replayLsn: string | null
  replayPaused: boolean
  /** Redo point of the last checkpoint (on a standby, restartpoint) in its pg_control. */
  redoLsn: string
  timeline: number
}

export async function dbReplayState(session: PgSession): Promise<ReplayState> {
  const [row] = await session.query<{ replay_lsn: string | null; paused: string; redo_lsn: string; timeline: string }>(
    `select pg_last_wal_replay_lsn()::text as replay_lsn,
            (pg_is_in_recovery() and pg_is_wal_replay_paused())::text as paused,
            redo_lsn::text as redo_lsn, timeline_id::text as timeline
       from pg_control_checkpoint()`,
  )
  return { replayLsn: row!.replay_lsn, replayPaused: row!.paused === 'true', redoLsn: row!.redo_lsn, timeline: Number(row!.timeline) }
}

/** Location of the last checkpoint record in pg_control: right after pg_backup_start, the backup's own checkpoint. */
export async function dbCheckpointLsn(session: PgSession): Promise<string> {
  const [row] = await session.query<{ lsn: string }>(`select checkpoint_lsn::text as lsn from pg_control_checkpoint()`)
  return row!.lsn
}

/** CHECKPOINT; on a standby it makes a restartpoint at the last checkpoint record replayed. */
export async function dbCheckpoint(session: PgSession): Promise<void> {
  await session.query('checkpoint')
}

/** The cluster's identity as its server reports it. */
export async function dbSystemId(session: PgSession): Promise<string> {
  const [row] = await session.query<{ system_id: string }>(`select system_identifier::text as system_id from pg_control_system()`)
  return row!.system_id
}

/** Where a standby's pg_control says recovery must reach before the data is consistent, and on which timeline. */
export async function dbMinRecovery(session: PgSession): Promise<{ lsn: string; timeline: number }> {
  const [row] = await session.query<{ lsn: string; timeline: string }>(
    `select min_recovery_end_lsn::text as lsn, min_recovery_end_timeline::text as timeline from pg_control_recovery()`,
  )
  return { lsn: row!.lsn, timeline: Number(row!.timeline) }
}
