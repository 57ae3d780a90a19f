// Backs up one file: read -> [page checksum check] -> SHA-256 -> compress -> repository, in one streaming pass.
// Runs in a worker thread or inline; takes plain data and returns plain data.

import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import type { Transform } from 'node:stream'
import { errnoCode, fail } from '../../common/errors.js'
import { codecFor } from '../../io/compress.js'
import type { CompressType } from '../../io/compress.js'
import { CountStream, HashStream, SHA256_EMPTY } from '../../io/hash.js'
import { PageVerifyStream } from '../../io/page-verify.js'
import { posixStorage } from '../../storage/posix.js'
import { streamInto } from '../../storage/stream-into.js'

export interface BackupFileInput {
  /** Absolute path of the file in the cluster. */
  source: string
  repoRoot: string
  /** Repository path of the stored copy, without the compression extension. */
  repoPath: string
  compressType: CompressType
  compressLevel: number
  /** Set for relation files of a cluster with data checksums. */
  pageCheck?: { firstBlock: number; blockSize: number; startLsn: string }
}

export interface BackupFileOutput {
  /** False when the file disappeared before it could be read (dropped by PostgreSQL during the backup). */
  copied: boolean
  size: number
  sha256: string
  repoSize: number
  badPages: number[]
}

export async function backupFile(input: BackupFileInput): Promise<BackupFileOutput> {
  let handle
  try {
    handle = await open(input.source, 'r')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return { copied: false, size: 0, sha256: SHA256_EMPTY, repoSize: 0, badPages: [] }
    fail('FileOpen', `unable to open '${input.source}' for read: ${(error as Error).message}`)
  }
  // An empty file is recorded but not stored. (One truncated after this check is stored as an empty stream.)
  if ((await handle.stat()).size === 0) {
    await handle.close()
    return { copied: true, size: 0, sha256: SHA256_EMPTY, repoSize: 0, badPages: [] }
  }
  const source = createReadStream(input.source, { fd: handle, highWaterMark: 1024 * 1024 })
  const hash = new HashStream()
  const pages = input.pageCheck
    ? new PageVerifyStream(input.pageCheck.blockSize, input.pageCheck.firstBlock, BigInt(input.pageCheck.startLsn))
    : undefined

  const codec = codecFor(input.compressType)
  const count = new CountStream()
  const repo = posixStorage(input.repoRoot)
  const stages: Transform[] = pages ? [pages, hash, codec.compress(input.compressLevel), count] : [hash, codec.compress(input.compressLevel), count]
  // In place, not atomic: the backup becomes valid only when its manifest is saved, after every folder is fsynced.
  await streamInto(source, stages, await repo.openWrite(`${input.repoPath}${codec.extension}`, { atomic: false }))
  return { copied: true, size: hash.size, sha256: hash.digest(), repoSize: count.size, badPages: pages?.badPages ?? [] }
}
