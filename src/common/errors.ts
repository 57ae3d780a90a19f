// Error table: every failure walden reports has a kind, a stable numeric code and that code is the process exit
// status. Codes follow pgBackRest's numbering where the meaning matches, so scripts and monitoring written for it
// keep working, and none exceeds 125: PostgreSQL treats a restore_command exit status above 125 as fatal to recovery.

export const ERROR_CODES = {
  Assert: 25, // a bug in walden
  Checksum: 26, // data does not match its recorded checksum
  Config: 27, // the configuration file cannot be used
  FileInvalid: 28, // a file is not what it should be (wrong kind, wrong content)
  Format: 29, // a file or value cannot be parsed
  OptionInvalid: 31, // unknown option, or an option not valid for this command or section
  OptionInvalidValue: 32, // an option value of the wrong type, out of range, or not allowed
  OptionRequired: 37, // a required option is missing
  PgRunning: 38, // PostgreSQL is running where it must not be
  Protocol: 39, // the remote protocol broke: a malformed frame, no answer in protocol-timeout, a version mismatch
  PathNotEmpty: 40, // a folder that must be empty is not
  FileOpen: 41,
  FileRead: 42,
  ParamRequired: 43, // a command parameter is missing
  ArchiveMismatch: 44, // WAL or cluster does not match the stanza
  ArchiveDuplicate: 45, // a different file with the same name is already archived
  VersionNotSupported: 46,
  HostConnect: 49, // a remote host cannot be reached over SSH, or the session to it was lost
  LockAcquire: 50, // another walden process holds the lock
  BackupMismatch: 51, // the backup set does not fit the request
  PathMissing: 54,
  FileMissing: 55,
  DbConnect: 56,
  DbQuery: 57,
  DbMismatch: 58, // the database is not the one the configuration says
  Stop: 62, // `walden stop` is in effect
  Term: 63, // terminated by a signal
  FileWrite: 64,
  FeatureNotSupported: 67, // an option asks for something this walden cannot do yet
  ParamInvalid: 69, // a command parameter is wrong
  ArchiveTimeout: 82,
  ReplicationLag: 90, // a replication lag limit is exceeded (replication-status as a monitoring check)
  SplitBrain: 91, // promote refused: the primary is still writable
  PgState: 92, // the server is not in the state the command needs (promote on a primary)
  VerifyFailed: 93, // verify found a problem in the repository (damaged or missing files, WAL gaps); the report says which
  StagingInactive: 94, // staging-status: the staging copy is not in sync (disabled, stopped, or a fault stands)
  Crypto: 95, // a key is missing or wrong, or encrypted data failed authentication
  RepoInvalid: 103, // the repository is missing or damaged
  CommandInvalid: 104, // unknown command
  Unhandled: 124, // an error walden did not expect; always a bug worth reporting
} as const

export type ErrorKind = keyof typeof ERROR_CODES

/** An error meant for the user: one line of message, an optional hint, and an exit code. */
export class WaldenError extends Error {
  readonly kind: ErrorKind
  readonly code: number
  readonly hint?: string

  constructor(kind: ErrorKind, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = `${kind}Error`
    this.kind = kind
    this.code = ERROR_CODES[kind]
    if (options.hint !== undefined) this.hint = options.hint
  }
}

/** Throws a WaldenError; reads better in guard clauses than `throw new`. */
export function fail(kind: ErrorKind, message: string, options?: { hint?: string; cause?: unknown }): never {
  throw new WaldenError(kind, message, options)
}

/** Internal consistency check: a failure here is a walden bug, not a user mistake. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new WaldenError('Assert', message)
}

/** The code of a Node.js system error (ENOENT, EEXIST, ...), or undefined for anything else. */
export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined
}

/** Formats an error the way the CLI prints it: `[055]: message` plus an optional HINT line. */
export function formatError(error: WaldenError): string {
  const code = String(error.code).padStart(3, '0')
  return `[${code}]: ${error.message}${error.hint ? `\nHINT: ${error.hint}` : ''}`
}
