// PostgreSQL major versions walden supports, and the constants that identify each one on disk. Everything
// version-specific in src/pg is driven by PG_MAJORS below: supporting a new major means adding one row (and, when
// pg_control.h changed, one new ControlLayout).
import { fail } from '../common/errors.js'

/**
 * Byte offsets of the ControlFileData fields walden reads from global/pg_control, for a 64-bit little-endian build
 * (the only kind walden supports). Offsets follow the C struct rules: int64/XLogRecPtr/double are 8-aligned, uint32,
 * int and enums 4-aligned, bool 1 byte.
 */
export interface ControlLayout {
  readonly systemId: number // uint64 system_identifier
  readonly controlVersion: number // uint32 pg_control_version
  readonly catalogVersion: number // uint32 catalog_version_no
  readonly state: number // DBState state (enum, 4 bytes)
  readonly time: number // pg_time_t time of the last pg_control update (int64 seconds)
  readonly checkpointLsn: number // XLogRecPtr checkPoint
  readonly redoLsn: number // checkPointCopy.redo
  readonly timeline: number // checkPointCopy.ThisTimeLineID
  readonly blockSize: number // uint32 blcksz
  readonly relSegmentSize: number // uint32 relseg_size (blocks per relation segment file)
  readonly walBlockSize: number // uint32 xlog_blcksz
  readonly walSegmentSize: number // uint32 xlog_seg_size
  readonly dataChecksumVersion: number // uint32 data_checksum_version
  readonly crc: number // pg_crc32c crc: the CRC-32C of every byte before it
}

// PG_CONTROL_VERSION 1300: PostgreSQL 13, 14, 15 and 16 (src/include/catalog/pg_control.h of REL_13_STABLE through
// REL_16_STABLE; the struct is identical in all four, which is why the version number never moved).
//
//   0 system_identifier   8 pg_control_version   12 catalog_version_no   16 state   24 time   32 checkPoint
//  40 checkPointCopy (CheckPoint, 88 bytes):
//       +0 redo  +8 ThisTimeLineID  +12 PrevTimeLineID  +16 fullPageWrites  +24 nextXid (FullTransactionId)
//       +32 nextOid  +36 nextMulti  +40 nextMultiOffset  +44 oldestXid  +48 oldestXidDB  +52 oldestMulti
//       +56 oldestMultiDB  +64 time  +72 oldestCommitTsXid  +76 newestCommitTsXid  +80 oldestActiveXid
// 128 unloggedLSN  136 minRecoveryPoint  144 minRecoveryPointTLI  152 backupStartPoint  160 backupEndPoint
// 168 backupEndRequired  172 wal_level  176 wal_log_hints  180 MaxConnections  184 max_worker_processes
// 188 max_wal_senders  192 max_prepared_xacts  196 max_locks_per_xact  200 track_commit_timestamp  204 maxAlign
// 208 floatFormat  216 blcksz  220 relseg_size  224 xlog_blcksz  228 xlog_seg_size  232 nameDataLen
// 236 indexMaxKeys  240 toast_max_chunk_size  244 loblksize  248 float8ByVal  252 data_checksum_version
// 256 mock_authentication_nonce[32]  288 crc
const CONTROL_LAYOUT_1300: ControlLayout = {
  systemId: 0,
  controlVersion: 8,
  catalogVersion: 12,
  state: 16,
  time: 24,
  checkpointLsn: 32,
  redoLsn: 40,
  timeline: 48,
  blockSize: 216,
  relSegmentSize: 220,
  walBlockSize: 224,
  walSegmentSize: 228,
  dataChecksumVersion: 252,
  crc: 288,
}

// PG_CONTROL_VERSION 1700: PostgreSQL 17 (REL_17_STABLE pg_control.h). CheckPoint gained `int wal_level` right after
// fullPageWrites; it lands in what was padding before the 8-aligned nextXid (checkPointCopy+20), so no offset walden
// reads moved. The version was bumped because the content changed, not the layout.
const CONTROL_LAYOUT_1700: ControlLayout = CONTROL_LAYOUT_1300

// PG_CONTROL_VERSION 1800: PostgreSQL 18 (REL_18_STABLE pg_control.h). `bool default_char_signedness` was added after
// data_checksum_version, at 256; mock_authentication_nonce moves to 257..288 and the crc, 4-aligned, to 292.
const CONTROL_LAYOUT_1800: ControlLayout = { ...CONTROL_LAYOUT_1300, crc: 292 }

export interface PgMajorInfo {
  /** Major version number, as PostgreSQL 10+ counts them. */
  readonly major: number
  /** PG_CONTROL_VERSION, src/include/catalog/pg_control.h. */
  readonly controlVersion: number
  /** CATALOG_VERSION_NO as released, src/include/catalog/catversion.h of REL_<major>_STABLE. */
  readonly catalogVersion: number
  /** XLOG_PAGE_MAGIC, src/include/access/xlog_internal.h: the first two bytes of every WAL page. */
  readonly walMagic: number
  /** Where pg_control keeps its fields for this major. */
  readonly controlLayout: ControlLayout
}

/** The supported majors, oldest first. catversion and WAL magic were checked against real initdb output. */
export const PG_MAJORS: readonly PgMajorInfo[] = [
  { major: 13, controlVersion: 1300, catalogVersion: 202007201, walMagic: 0xd106, controlLayout: CONTROL_LAYOUT_1300 },
  { major: 14, controlVersion: 1300, catalogVersion: 202107181, walMagic: 0xd10d, controlLayout: CONTROL_LAYOUT_1300 },
  { major: 15, controlVersion: 1300, catalogVersion: 202209061, walMagic: 0xd110, controlLayout: CONTROL_LAYOUT_1300 },
  { major: 16, controlVersion: 1300, catalogVersion: 202307071, walMagic: 0xd113, controlLayout: CONTROL_LAYOUT_1300 },
  { major: 17, controlVersion: 1700, catalogVersion: 202406281, walMagic: 0xd116, controlLayout: CONTROL_LAYOUT_1700 },
  { major: 18, controlVersion: 1800, catalogVersion: 202506291, walMagic: 0xd118, controlLayout: CONTROL_LAYOUT_1800 },
]

/**
 * CATALOG_VERSION_NO of the newest major walden does not support (PostgreSQL 12). A catversion above it and up to
 * 13's belongs to 13 or one of its betas; anything at or below it is too old.
 */
const CATALOG_VERSION_BEFORE_OLDEST = 201909212

/** Supported major numbers, oldest first: [13, 14, 15, 16, 17, 18]. */
export const PG_SUPPORTED_MAJORS: readonly number[] = PG_MAJORS.map((info) => info.major)

const SUPPORTED_HINT = `walden supports PostgreSQL ${PG_SUPPORTED_MAJORS.join(', ')}`

/** The table row for a supported major; 'VersionNotSupported' otherwise. */
export function pgMajorInfo(major: number): PgMajorInfo {
  const info = PG_MAJORS.find((row) => row.major === major)
  if (info === undefined) fail('VersionNotSupported', `postgresql version '${major}' is not supported`, { hint: SUPPORTED_HINT })
  return info
}

/** True when walden supports this major. */
export function pgVersionSupported(major: number): boolean {
  return PG_MAJORS.some((row) => row.major === major)
}

/**
 * Major version from server_version_num (150004 -> 15). Since PostgreSQL 10 the number is major * 10000 + minor;
 * older servers (90624) are reported as unsupported rather than misread.
 */
export function pgVersionFromNum(versionNum: number): number {
  if (!Number.isSafeInteger(versionNum) || versionNum < 10000) {
    fail('Format', `invalid postgresql version number '${versionNum}'`)
  }
  if (versionNum < 100000) {
    const old = `${Math.floor(versionNum / 10000)}.${Math.floor(versionNum / 100) % 100}`
    fail('VersionNotSupported', `postgresql version '${old}' is not supported`, { hint: SUPPORTED_HINT })
  }
  return pgMajorInfo(Math.floor(versionNum / 10000)).major
}

// Accepts what PostgreSQL and its packagers print: '15', '15.4', '16beta2', '18rc1', '17devel' (PG_VERSION file,
// server_version, `postgres --version` without the program name), optionally followed by ' (Debian 15.4-1)'.
const VERSION_STRING = /^(\d+)(?:\.(\d+))?(?:\.\d+)?(?:(?:alpha|beta|rc)\d+|devel)?(?:\s.*)?$/s

/** Major version from a version string ('15', '15.4', '18beta1', '15.4 (Debian 15.4-1.pgdg120+1)'). */
export function pgVersionFromString(text: string): number {
  const match = VERSION_STRING.exec(text.trim())
  if (match === null) fail('Format', `invalid postgresql version '${text.trim()}'`)
  const first = Number(match[1])
  // Before 10 the major was two numbers (9.6); report it as such.
  if (first < 10) {
    const old = match[2] === undefined ? String(first) : `${first}.${match[2]}`
    fail('VersionNotSupported', `postgresql version '${old}' is not supported`, { hint: SUPPORTED_HINT })
  }
  return pgMajorInfo(first).major
}

/**
 * Major version of a cluster from the two version numbers in its pg_control.
 *
 * The catalog version decides the major: a stable branch keeps the catversion it was released with, and during a
 * major's development (betas, release candidates) it only grows, so any catversion above the previous major's
 * release value and up to this major's release value belongs to this major (a beta cluster maps to the major it is
 * a beta of). The pg_control version then has to be the one that major uses, because it is what fixes the layout.
 */
export function pgVersionFromControl(controlVersion: number, catalogVersion: number): number {
  const newest = PG_MAJORS[PG_MAJORS.length - 1]!
  if (!PG_MAJORS.some((row) => row.controlVersion === controlVersion)) {
    // PostgreSQL's own check (ReadControlFile): a value that is a known version byte-swapped means the file was
    // written by a machine of the other endianness.
    const swapped = swap32(controlVersion)
    const otherEndian = PG_MAJORS.some((row) => row.controlVersion === swapped)
    fail('VersionNotSupported', `pg_control version '${controlVersion}' is not supported`, {
      hint: otherEndian
        ? 'the cluster was created on a machine of different byte order'
        : controlVersion > newest.controlVersion
          ? `${SUPPORTED_HINT}; a newer PostgreSQL needs a newer walden`
          : SUPPORTED_HINT,
    })
  }
  if (catalogVersion > newest.catalogVersion) {
    fail('VersionNotSupported', `catalog version '${catalogVersion}' is newer than postgresql ${newest.major}`, {
      hint: `${SUPPORTED_HINT}; a newer PostgreSQL needs a newer walden`,
    })
  }
  if (catalogVersion <= CATALOG_VERSION_BEFORE_OLDEST) {
    fail('VersionNotSupported', `catalog version '${catalogVersion}' is older than postgresql ${PG_MAJORS[0]!.major}`, {
      hint: SUPPORTED_HINT,
    })
  }
  const info = PG_MAJORS.find((row) => catalogVersion <= row.catalogVersion)!
  if (info.controlVersion !== controlVersion) {
    fail(
      'VersionNotSupported',
      `pg_control version '${controlVersion}' does not match catalog version '${catalogVersion}' of postgresql ${info.major}`,
      { hint: `postgresql ${info.major} uses pg_control version '${info.controlVersion}'; is this a development build?` },
    )
  }
  return info.major
}

function swap32(value: number): number {
  return (((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >>> 8) & 0xff00) | (value >>> 24)) >>> 0
}
