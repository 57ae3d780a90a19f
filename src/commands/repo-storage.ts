// The repositories of a stanza, from the configuration: which indexes are configured, where each one is, and which
// ones this command works on. Kept apart from the PostgreSQL session helpers so that archive-push and archive-get,
// which PostgreSQL starts once per WAL segment, never load the PostgreSQL client library.

import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import { OPTIONS, REPO_MAX, repoOption } from '../config/options.js'
import type { OptionName, RepoIndex } from '../config/options.js'
import { cipherUse } from '../repo/cipher.js'
import { sshTargetOf } from './remote-host.js'
import { storageOpen } from '../storage/location.js'
import type { RemoteLocation, StorageLocation } from '../storage/location.js'
import type { Storage } from '../storage/storage.js'

const INDEXES: readonly RepoIndex[] = Array.from({ length: REPO_MAX }, (_, index) => (index + 1) as RepoIndex)
const REPO1_OPTIONS = (Object.keys(OPTIONS) as OptionName[]).filter((name) => name.startsWith('repo1-'))

/**
 * The repositories the configuration names, in order. repo1 always exists (its path has a default); repo2 and up
 * exist when any of their options is set. Two repositories at the same place would be one repository written twice
 * under two names (and expired by two policies), so that is refused, naming both.
 */
export function repoIndexes(cfg: Config): RepoIndex[] {
  const indexes = INDEXES.filter(
    (index) =>
      index === 1 ||
      REPO1_OPTIONS.some((name) => {
        const option = `repo${index}-${name.slice('repo1-'.length)}` as OptionName
        const source = cfg.source(option)
        return source !== undefined && source !== 'default'
      }),
  )
  const seen = new Map<string, RepoIndex>()
  for (const index of indexes) {
    const get = (suffix: Parameters<typeof repoOption>[1]): string => cfg.string(repoOption(index, suffix)) ?? ''
    const type = get('type') || 'posix'
    const path = get('path') || '/var/lib/walden'
    // A repository on a backup host is that host's repoN: two indexes are two repositories there.
    const place =
      get('host') !== '' ? `remote ${index}` : type === 'posix' ? `posix ${path}` : `s3 ${get('s3-endpoint')} ${get('s3-bucket')} ${path}`
    const other = seen.get(place)
    if (other !== undefined) {
      fail('OptionInvalidValue', `repo${other} and repo${index} are the same repository (${type === 'posix' ? `'${path}'` : `bucket '${get('s3-bucket')}', path '${path}'`})`, {
        hint: `give repo${index} a path of its own with repo${index}-path, or remove its options.`,
      })
    }
    seen.set(place, index)
  }
  return indexes
}

/**
 * The repositories this command works on: the one --repo names (which must be configured), or every configured one.
 * Commands that work on one repository by default (backup, expire) take the first of the list.
 */
export function repoSelected(cfg: Config): RepoIndex[] {
  const configured = repoIndexes(cfg)
  const chosen = cfg.has('repo') ? cfg.string('repo')! : undefined
  if (chosen === undefined) return configured
  if (chosen === 'all') return configured
  const list = chosen.split(',').map((item) => item.trim())
  const indexes: RepoIndex[] = []
  for (const item of list) {
    const index = /^[1-9]\d*$/.test(item) ? Number(item) : NaN
    if (!(index >= 1 && index <= REPO_MAX)) {
      fail('OptionInvalidValue', `option 'repo' must be a repository number from 1 to ${REPO_MAX}, a list such as 1,2, or all; not '${chosen}'`)
    }
    if (!configured.includes(index as RepoIndex)) {
      fail('OptionInvalidValue', `option 'repo' names repo${index}, which is not configured`, {
        hint: `configure it (e.g. repo${index}-path), or choose one of ${configured.map((item) => `repo${item}`).join(', ')}.`,
      })
    }
    if (!indexes.includes(index as RepoIndex)) indexes.push(index as RepoIndex)
  }
  return indexes
}

/** Where repository `index` is. Checks that an S3 repository has what it needs, naming the missing option. */
export function repoLocation(cfg: Config, index: RepoIndex = 1): StorageLocation {
  const get = (suffix: Parameters<typeof repoOption>[1]): string | undefined => cfg.string(repoOption(index, suffix))
  const path = get('path') ?? '/var/lib/walden'
  const host = get('host')
  if (host !== undefined) return remoteLocation(cfg, index, host)
  if ((get('type') ?? 'posix') === 'posix') return { type: 'posix', path }

  const need = (suffix: Parameters<typeof repoOption>[1], why: string): string => {
    const value = get(suffix)
    if (value === undefined) {
      const name = repoOption(index, suffix)
      fail('OptionRequired', `repo${index}-type=s3 requires option '${name}' (${why})`, {
        hint: `set ${name} in the config file, or WALDEN_${name.toUpperCase().replaceAll('-', '_')}.`,
      })
    }
    return value
  }
  const keyType = (get('s3-key-type') ?? 'shared') as 'shared' | 'auto'
  const port = cfg.number(repoOption(index, 'storage-port'))
  const token = get('s3-token')
  const caFile = get('storage-ca-file')
  const kmsKeyId = get('s3-kms-key-id')
  return {
    type: 's3',
    bucket: need('s3-bucket', 'the bucket'),
    endpoint: need('s3-endpoint', 'the S3 endpoint, e.g. s3.eu-west-1.amazonaws.com or http://127.0.0.1:7480'),
    region: need('s3-region', 'the region requests are signed for, e.g. us-east-1'),
    path,
    keyType,
    ...(keyType === 'shared'
      ? { key: need('s3-key', 'the access key id'), secret: need('s3-key-secret', 'the secret access key') }
      : {}),
    ...(token !== undefined ? { token } : {}),
    uriStyle: (get('s3-uri-style') ?? 'host') as 'host' | 'path',
    ...(port !== undefined ? { port } : {}),
    verifyTls: cfg.boolean(repoOption(index, 'storage-verify-tls')),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(kmsKeyId !== undefined ? { kmsKeyId } : {}),
    uploadChunkSize: cfg.number(repoOption(index, 'storage-upload-chunk-size')) ?? 8 * 1024 * 1024,
    repo: index,
  }
}

/**
 * Repository `index` on a backup host. Only how to reach it is configured here: what and where it is (repoN-path,
 * repoN-type) is the backup host's own configuration, so those options set here would mislead and are refused.
 */
function remoteLocation(cfg: Config, index: RepoIndex, host: string): RemoteLocation {
  for (const suffix of ['type', 'path'] as const) {
    const name = repoOption(index, suffix)
    const source = cfg.source(name)
    if (source !== undefined && source !== 'default') {
      fail('OptionInvalid', `option '${name}' cannot be set with repo${index}-host: the repository's ${suffix} is set in the backup host's own config file`, {
        hint: `remove ${name} here and set it in repo${index}-host-config on '${host}'.`,
      })
    }
  }
  const stanza = cfg.string('stanza')
  return {
    type: 'remote',
    ...sshTargetOf(cfg, host, (suffix) => repoOption(index, suffix)),
    index,
    ...(stanza !== undefined ? { stanza } : {}),
  }
}

/** The storage of repository `index` (default: the first selected). */
export function repoStorage(cfg: Config, index: RepoIndex = repoSelected(cfg)[0] ?? 1): Promise<Storage> {
  return storageOpen(repoLocation(cfg, index))
}

/** A repository a command works on: its number, where it is, and its storage. */
export interface Repo {
  index: RepoIndex
  location: StorageLocation
  storage: Storage
}

/**
 * Opens repository `index` (default: the first selected) and makes its encryption settings the ones this thread
 * uses (repo/cipher.ts), so everything read or written next is sealed or opened with that repository's keys.
 */
export async function repoOpen(cfg: Config, index: RepoIndex = repoSelected(cfg)[0] ?? 1): Promise<Repo> {
  const location = repoLocation(cfg, index)
  const storage = await storageOpen(location)
  cipherUse(index)
  return { index, location, storage }
}
