// Verifies one stored file (a backup file, one part of one, or an archived WAL file) without restoring it: read
// through, decompressed, into nothing, and compared with the size and SHA-256 recorded for it. Runs in a worker
// thread or inline; takes plain data and returns plain data. A problem is a result, not an error, so one bad file
// never stops the others from being checked.

import { WaldenError } from '../../common/errors.js'
import { isWalSegmentSizeValid } from '../../pg/wal.js'
import { cipherJobUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { storedFileDigest } from '../../repo/stored-file.js'
import { digestAlgorithmOf } from '../../io/hash.js'
import { storageOpen } from '../../storage/location.js'
import type { StorageLocation } from '../../storage/location.js'

/** What can be wrong with one stored file. */
export type FileProblemKind = 'missing' | 'damaged' | 'size' | 'checksum' | 'read'

export interface VerifyFileInput {
  repo: StorageLocation
  /** Repository path with extension. */
  repoPath: string
  sha256: string
  /** Decompressed size recorded for the file; for an archived segment, the stanza's wal_segment_size if known. */
  size?: number
  /** An archived WAL segment whose size is not known: it must be a valid wal_segment_size. */
  walSegment?: boolean
  /** The caller's keys, for an encrypted repository (repo/cipher.ts). */
  cipher?: CipherState
}

export interface VerifyFileOutput {
  /** Decompressed bytes read (0 when the file could not be read). */
  size: number
  problem?: { kind: FileProblemKind; message: string }
}

export async function verifyFile(input: VerifyFileInput): Promise<VerifyFileOutput> {
  cipherJobUse(input.cipher)
  const repo = await storageOpen(input.repo)
  const what = `repository file '${repo.describe(input.repoPath)}'`
  let digest: { size: number; sha256: string }
  try {
    digest = await storedFileDigest(repo, input.repoPath, what, digestAlgorithmOf(input.sha256))
  } catch (error) {
    if (!(error instanceof WaldenError)) throw error
    // A file that fails authentication is damaged like one that fails to decompress; a missing key never gets here
    // (the stanza's info files are read first, and say what key they need).
    const kind: FileProblemKind = error.kind === 'FileMissing' ? 'missing' : error.kind === 'Checksum' || error.kind === 'Crypto' ? 'damaged' : 'read'
    return { size: 0, problem: { kind, message: error.message } }
  }
  // Size first: a truncated file fails both, and its size says what happened.
  if (input.size !== undefined && digest.size !== input.size) {
    return { size: digest.size, problem: { kind: 'size', message: `${what} has size ${digest.size}, expected ${input.size}` } }
  }
  if (input.walSegment && input.size === undefined && !isWalSegmentSizeValid(digest.size)) {
    return { size: digest.size, problem: { kind: 'size', message: `${what} has size ${digest.size}, not a WAL segment size` } }
  }
  if (digest.sha256 !== input.sha256) {
    return { size: digest.size, problem: { kind: 'checksum', message: `${what} has checksum ${digest.sha256}, expected ${input.sha256}` } }
  }
  return { size: digest.size }
}
