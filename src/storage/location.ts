// Where a repository's bytes are, as plain data. Commands resolve it from the configuration once and hand it to the
// workers that copy files (inline, on a thread, and later on a remote host), which open the storage themselves: a
// location crosses a thread boundary, a Storage object does not.

import type { SshTarget } from '../protocol/client.js'
import { posixStorage } from './posix.js'
import type { Storage } from './storage.js'

export interface PosixLocation {
  type: 'posix'
  path: string
}

export interface S3Location {
  type: 's3'
  bucket: string
  /** Host name, host:port or http(s)://host[:port], as configured. */
  endpoint: string
  region: string
  /** Key prefix inside the bucket: repoN-path, absolute like a folder ('/' means the bucket's root). */
  path: string
  keyType: 'shared' | 'auto'
  /** Credentials of keyType 'shared'. Secret: never logged, never in a message, never on a command line. */
  key?: string
  secret?: string
  token?: string
  uriStyle: 'host' | 'path'
  port?: number
  verifyTls: boolean
  caFile?: string
  kmsKeyId?: string
  /** Multipart part size in bytes. */
  uploadChunkSize: number
  /**
   * The stanza's number for this repository (repoN), when it is one: failures talking to S3 then start with `repoN: `
   * and their hints name its options, so a user with several repositories (or a bucket in PostgreSQL's log) knows
   * which one to fix.
   */
  repo?: number
}

/**
 * A repository on another host, served over SSH by a `walden remote` there (storage/remote.ts). Where the repository
 * is on that host comes from that host's config file, not from here.
 */
export interface RemoteLocation extends SshTarget {
  type: 'remote'
  /** The repository index the remote serves, in its own configuration. */
  index: number
  /** The stanza, so the remote reads its [stanza] sections. */
  stanza?: string
}

export type StorageLocation = PosixLocation | S3Location | RemoteLocation

/** A location as it may appear in a message: no credentials. */
export function locationDescribe(location: StorageLocation): string {
  if (location.type === 'posix') return `'${location.path}'`
  if (location.type === 'remote') return `repo${location.index} on '${location.host}'`
  return `'s3://${location.bucket}${location.path === '/' ? '' : location.path}' at ${location.endpoint}`
}

const opened = new Map<string, Promise<Storage>>()

/**
 * The storage of a location, one per location for the life of the process or thread (a posix storage remembers the
 * folders it made; an S3 storage keeps its connections). The S3 driver and its SDK load only when a repository is on
 * S3, so archive-push to a folder does not pay for them. A remote storage is one SSH session, opened on first use in
 * each thread (so one per worker) and reused for every file; a session that fails is forgotten, so a later open
 * starts a new one.
 */
export function storageOpen(location: StorageLocation): Promise<Storage> {
  if (location.type === 'posix') return Promise.resolve(posixStorage(location.path))
  const cacheKey = JSON.stringify(location)
  const known = opened.get(cacheKey)
  if (known) return known
  const storage: Promise<Storage> =
    location.type === 'remote'
      ? import('./remote.js').then(({ RemoteStorage }) => RemoteStorage.open(location, () => opened.delete(cacheKey)))
      : import('./s3.js').then(({ S3Storage }) => new S3Storage(location))
  opened.set(cacheKey, storage)
  return storage
}

/** Opens the storage of a location ahead of its first use (a worker's SSH session, say); storageOpen keeps it. */
export async function storageWarm(location: StorageLocation): Promise<void> {
  await storageOpen(location)
}
