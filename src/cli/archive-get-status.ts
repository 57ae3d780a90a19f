// Which archive-get failures must abort recovery (exit 126) rather than keep their own code.
//
// PostgreSQL reads any restore_command status up to 125 as "this WAL file is not in the archive": recovery ends there
// and the server promotes, at a point that may be long before the end of the archived WAL, without a word. From 126
// on it aborts recovery instead; the operator fixes the cause and starts the server again, and recovery goes on from
// where it stopped. So whenever walden cannot say for sure that the file is not there, it must answer 126:
// - damaged or ambiguous data (a checksum or format error, a segment that is not whole, a file that fails authentication, both copies of archive.info damaged, a WAL file archived
//   twice with different content);
// - a repository written by a newer walden, which this one cannot read at all;
// - any error walden did not expect (a bug: a TypeError, an Assert). Answering Unhandled (124) there would be read as
//   "not found" and end recovery early; aborting costs a restart after the fix, ending early can cost data.
// Failures that are transient or a matter of setup (a repository that cannot be reached or read, a lock, an option)
// keep their own codes, all below 126, so a standby simply asks again later.

import { WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { RepoFormatNewerError } from '../repo/info-file.js'

// Unhandled too: a bug met on a worker thread, or in one repository of several, arrives as a WaldenError of that kind.
const ABORT_RECOVERY_KINDS: ReadonlySet<ErrorKind> = new Set<ErrorKind>(['Checksum', 'Format', 'ArchiveDuplicate', 'FileInvalid', 'Crypto', 'Assert', 'Unhandled'])

export function archiveGetAbortsRecovery(error: unknown): boolean {
  if (!(error instanceof WaldenError)) return true
  return error instanceof RepoFormatNewerError || ABORT_RECOVERY_KINDS.has(error.kind)
}
