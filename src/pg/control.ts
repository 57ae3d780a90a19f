// Reads global/pg_control directly, for every supported major, instead of running pg_controldata: walden must work
// where only the data directory is at hand (a restore target, a stopped standby, a repository copy), and the binary
// of the right major may not be installed there.
//
// The file is 8192 bytes (PG_CONTROL_FILE_SIZE) of which only the ControlFileData struct at the front is used; its
// last field is a CRC-32C of every byte before it. Field offsets per major live in src/pg/version.ts (ControlLayout),
// derived from src/include/catalog/pg_control.h of each REL_N_STABLE branch.
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from '../common/errors.js'
import { crc32c } from './crc32c.js'
import { isWalSegmentSizeValid } from './wal.js'
import { pgMajorInfo, pgVersionFromControl } from './version.js'

/** Physical size of pg_control (PG_CONTROL_FILE_SIZE); only the front holds data. */
export const PG_CONTROL_FILE_SIZE = 8192

// Enough to read pg_control_version and catalog_version_no, which sit at the same offsets in every major.
const VERSION_FIELDS_END = 16

/** DBState values (pg_control.h), with the words pg_controldata prints for them. */
export const DB_STATE_NAMES: readonly string[] = [
  'starting up', // DB_STARTUP
  'shut down', // DB_SHUTDOWNED
  'shut down in recovery', // DB_SHUTDOWNED_IN_RECOVERY
  'shutting down', // DB_SHUTDOWNING
  'in crash recovery', // DB_IN_CRASH_RECOVERY
  'in archive recovery', // DB_IN_ARCHIVE_RECOVERY
  'in production', // DB_IN_PRODUCTION
]

export const DB_STATE_SHUTDOWNED = 1
export const DB_STATE_SHUTDOWNED_IN_RECOVERY = 2
export const DB_STATE_IN_PRODUCTION = 6

export interface PgControl {
  /** Major version (13..18), from pg_control_version and catalog_version_no. */
  version: number
  systemId: bigint
  controlVersion: number
  catalogVersion: number
  /** DBState; DB_STATE_NAMES[state] is its name. */
  state: number
  /** Time pg_control was last written, seconds since the epoch. */
  time: number
  /** Location of the latest checkpoint record. */
  checkpointLsn: bigint
  /** Where replay starts for that checkpoint (checkPointCopy.redo). */
  redoLsn: bigint
  /** Timeline of the latest checkpoint (checkPointCopy.ThisTimeLineID). */
  timeline: number
  walSegmentSize: number
  walBlockSize: number
  blockSize: number
  /** Blocks per relation segment file (RELSEG_SIZE). */
  relSegmentSize: number
  /** 0 when data checksums are off, otherwise the checksum algorithm version (1). */
  dataChecksumVersion: number
}

/** Name of a DBState as pg_controldata prints it ('in production'), or 'unrecognized status code'. */
export function pgControlStateName(state: number): string {
  return DB_STATE_NAMES[state] ?? 'unrecognized status code'
}

/**
 * Parses the content of global/pg_control. `fileName` names the file in errors. Fails with 'VersionNotSupported'
 * for a major walden does not know, 'FileInvalid' when the file is too short or its sizes are impossible, and
 * 'Checksum' when the CRC does not match (a torn or damaged file).
 */
export function pgControlParse(buffer: Uint8Array, fileName = 'pg_control'): PgControl {
  const data = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength)
  if (data.length < VERSION_FIELDS_END) {
    fail('FileInvalid', `'${fileName}' is too short: '${data.length}' bytes`, {
      hint: `pg_control is ${PG_CONTROL_FILE_SIZE} bytes`,
    })
  }
  // Version first, then CRC, like PostgreSQL's ReadControlFile: the CRC's position depends on the version.
  const controlVersion = data.readUInt32LE(8)
  const catalogVersion = data.readUInt32LE(12)
  const version = pgVersionFromControl(controlVersion, catalogVersion)
  const layout = pgMajorInfo(version).controlLayout
  if (data.length < layout.crc + 4) {
    fail('FileInvalid', `'${fileName}' is too short: '${data.length}' bytes`, {
      hint: `pg_control is ${PG_CONTROL_FILE_SIZE} bytes`,
    })
  }
  const expected = data.readUInt32LE(layout.crc)
  const actual = crc32c(data.subarray(0, layout.crc))
  if (actual !== expected) {
    fail('Checksum', `'${fileName}' has an invalid crc: expected '${hex32(expected)}', computed '${hex32(actual)}'`, {
      hint: 'the file is damaged, or was copied while PostgreSQL was writing it',
    })
  }
  const control: PgControl = {
    version,
    systemId: data.readBigUInt64LE(layout.systemId),
    controlVersion,
    catalogVersion,
    state: data.readUInt32LE(layout.state),
    time: Number(data.readBigInt64LE(layout.time)),
    checkpointLsn: data.readBigUInt64LE(layout.checkpointLsn),
    redoLsn: data.readBigUInt64LE(layout.redoLsn),
    timeline: data.readUInt32LE(layout.timeline),
    walSegmentSize: data.readUInt32LE(layout.walSegmentSize),
    walBlockSize: data.readUInt32LE(layout.walBlockSize),
    blockSize: data.readUInt32LE(layout.blockSize),
    relSegmentSize: data.readUInt32LE(layout.relSegmentSize),
    dataChecksumVersion: data.readUInt32LE(layout.dataChecksumVersion),
  }
  // A matching CRC with impossible sizes means the layout table is wrong for this file, not that the file is bad;
  // refuse rather than compute WAL names and block numbers from garbage.
  if (!isWalSegmentSizeValid(control.walSegmentSize)) {
    fail('FileInvalid', `'${fileName}' has invalid wal segment size '${control.walSegmentSize}'`)
  }
  for (const [name, size] of [
    ['block size', control.blockSize],
    ['wal block size', control.walBlockSize],
  ] as const) {
    if (size < 1024 || size > 65536 || (size & (size - 1)) !== 0) fail('FileInvalid', `'${fileName}' has invalid ${name} '${size}'`)
  }
  return control
}

/**
 * Reads and parses `<dataDir>/global/pg_control` (its first 8192 bytes at most). A missing file is 'FileMissing':
 * the usual cause is a pg1-path that is not the data directory.
 */
export async function pgControlRead(dataDir: string): Promise<PgControl> {
  return pgControlParse(await pgControlReadRaw(dataDir), join(dataDir, 'global', 'pg_control'))
}

/** The bytes of `<dataDir>/global/pg_control` (its first 8192 at most), unparsed: for a reader on another host. */
export async function pgControlReadRaw(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, 'global', 'pg_control')
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    const code = errnoCode(error)
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      fail('FileMissing', `unable to open missing file '${path}' for read`, {
        hint: `is '${dataDir}' a PostgreSQL data directory? pg1-path must point at the data directory`,
        cause: error,
      })
    }
    fail('FileOpen', `unable to open file '${path}' for read: ${(error as Error).message}`, { cause: error })
  }
  try {
    const buffer = Buffer.alloc(PG_CONTROL_FILE_SIZE)
    let length = 0
    // One read normally returns everything; loop anyway, short reads are allowed.
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) break
      length += bytesRead
    }
    return buffer.subarray(0, length)
  } catch (error) {
    fail('FileRead', `unable to read file '${path}': ${(error as Error).message}`, { cause: error })
  } finally {
    await handle.close()
  }
}

export interface PgControlFields {
  version: number
  systemId?: bigint
  catalogVersion?: number
  controlVersion?: number
  state?: number
  time?: number
  checkpointLsn?: bigint
  redoLsn?: bigint
  timeline?: number
  walSegmentSize?: number
  walBlockSize?: number
  blockSize?: number
  relSegmentSize?: number
  dataChecksumVersion?: number
}

/**
 * Writes an 8192-byte pg_control for `fields.version` with a valid CRC, using the same layout table as the parser;
 * for tests here and elsewhere in walden. Defaults describe a freshly initialized, shut-down cluster.
 */
export function pgControlBuild(fields: PgControlFields): Buffer {
  const info = pgMajorInfo(fields.version)
  const layout = info.controlLayout
  const data = Buffer.alloc(PG_CONTROL_FILE_SIZE)
  data.writeBigUInt64LE(fields.systemId ?? 7000000000000000001n, layout.systemId)
  data.writeUInt32LE(fields.controlVersion ?? info.controlVersion, layout.controlVersion)
  data.writeUInt32LE(fields.catalogVersion ?? info.catalogVersion, layout.catalogVersion)
  data.writeUInt32LE(fields.state ?? DB_STATE_SHUTDOWNED, layout.state)
  data.writeBigInt64LE(BigInt(fields.time ?? 1700000000), layout.time)
  data.writeBigUInt64LE(fields.checkpointLsn ?? 0x1000028n, layout.checkpointLsn)
  data.writeBigUInt64LE(fields.redoLsn ?? fields.checkpointLsn ?? 0x1000028n, layout.redoLsn)
  data.writeUInt32LE(fields.timeline ?? 1, layout.timeline)
  data.writeUInt32LE(fields.timeline ?? 1, layout.timeline + 4) // PrevTimeLineID follows ThisTimeLineID
  data.writeUInt32LE(fields.blockSize ?? 8192, layout.blockSize)
  data.writeUInt32LE(fields.relSegmentSize ?? 131072, layout.relSegmentSize)
  data.writeUInt32LE(fields.walBlockSize ?? 8192, layout.walBlockSize)
  data.writeUInt32LE(fields.walSegmentSize ?? 16 * 1024 * 1024, layout.walSegmentSize)
  data.writeUInt32LE(fields.dataChecksumVersion ?? 1, layout.dataChecksumVersion)
  data.writeUInt32LE(crc32c(data.subarray(0, layout.crc)), layout.crc)
  return data
}

function hex32(value: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(8, '0')}`
}
