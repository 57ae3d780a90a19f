// SCRAM-SHA-256 secrets as PostgreSQL stores them in pg_authid.rolpassword (src/common/scram-common.c, PG 17):
//   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>   (salt and keys in base64)
// walden computes the secret itself and hands PostgreSQL only that, as psql's \password does: the password never
// travels to the server, so it cannot reach the server log, pg_stat_activity or pg_stat_statements.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { fail } from '../common/errors.js'

/** PostgreSQL's default scram_iterations. */
const ITERATIONS = 4096
const SECRET = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/

/**
 * Why walden cannot compute a secret PostgreSQL would accept for this password, if it cannot. PostgreSQL runs a
 * password through SASLprep (Unicode normalisation) before hashing; for printable ASCII that changes nothing, so
 * walden takes those and nothing else rather than reimplement SASLprep.
 */
export function scramPasswordProblem(password: string): string | undefined {
  if (password === '') return 'it is empty'
  if (/[\r\n]/.test(password)) return 'it contains a line break'
  if (!/^[\x20-\x7e]+$/.test(password)) return 'it contains characters other than printable ASCII'
  return undefined
}

function keys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  }
}

/** A new secret for `password`, with a random salt. */
export function scramSecret(password: string): string {
  const problem = scramPasswordProblem(password)
  if (problem !== undefined) fail('OptionInvalidValue', `the replication password cannot be used: ${problem}`)
  const salt = randomBytes(16)
  const { storedKey, serverKey } = keys(password, salt, ITERATIONS)
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

/** Whether `secret` (a rolpassword) accepts `password`; false for an md5 or empty one. */
export function scramSecretMatches(secret: string | null, password: string): boolean {
  const match = secret === null ? null : SECRET.exec(secret)
  if (!match) return false
  const { storedKey, serverKey } = keys(password, Buffer.from(match[2]!, 'base64'), Number(match[1]))
  const wantStored = Buffer.from(match[3]!, 'base64')
  const wantServer = Buffer.from(match[4]!, 'base64')
  return wantStored.length === 32 && wantServer.length === 32 && timingSafeEqual(storedKey, wantStored) && timingSafeEqual(serverKey, wantServer)
}

/** A password for a new replication role: 32 random bytes, base64url (printable ASCII, no ':' or '\\'). */
export function scramPasswordNew(): string {
  return randomBytes(32).toString('base64url')
}
