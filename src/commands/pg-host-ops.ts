// What a command asks of the host of a cluster (PG_HOST_OPS), and a worker thread's session to a database host. Apart
// from pg-host.ts, whose PgHost also holds the SQL session, so that what runs on a database host (`walden remote
// --remote-type=pg`) and in the worker threads that copy its files loads no PostgreSQL driver: measured, the driver
// and what it loads (tls, undici, http2) were half the start-up of each such process.

import { realpath } from 'node:fs/promises'
import { pgControlReadRaw } from '../pg/control.js'
import { pgRunning } from '../pg/data-dir.js'
import { ProtocolClient } from '../protocol/client.js'
import type { RemoteArguments, RemoteHost } from '../protocol/client.js'
import type { ManifestConfigFile } from '../repo/manifest.js'
import { configFileRead } from './backup/config-files.js'
import { scanCluster, walFilesList } from './backup/scan.js'
import type { ClusterScan, ScannedFile } from './backup/scan.js'

/** A database host over SSH, as plain data a worker thread can take: where, and what the remote walden is told. */
export interface PgRemote {
  target: RemoteHost
  args: RemoteArguments
}

/** What a command asks of the host of a cluster. Each runs where the cluster is. */
export const PG_HOST_OPS = {
  /** pg_control of a data folder, as its bytes (parsed where it is used, so its 64-bit fields stay exact). */
  async control(args: { path: string }): Promise<string> {
    return (await pgControlReadRaw(args.path)).toString('base64')
  },
  /** A path with its links resolved; the path itself when it cannot be. */
  async realpath(args: { path: string }): Promise<string> {
    return realpath(args.path).catch(() => args.path)
  },
  async scan(args: { path: string; tablespaces: Array<[number, string]> }): Promise<ClusterScan> {
    return scanCluster(args.path, new Map(args.tablespaces))
  },
  async walFiles(args: { path: string; timeline: number; start: string; last: string; segmentSize: number }): Promise<ScannedFile[]> {
    return walFilesList(args.path, args.timeline, BigInt(args.start), BigInt(args.last), args.segmentSize)
  },
  /** Whether a postmaster runs on the data folder (its postmaster.pid names a live process). */
  async running(args: { path: string }): Promise<boolean> {
    return pgRunning(args.path)
  },
  async configFile(args: { path: string; kind: ManifestConfigFile['kind'] }): Promise<ManifestConfigFile | null> {
    return (await configFileRead(args.path, args.kind)) ?? null
  },
} as const

export type PgHostOp = keyof typeof PG_HOST_OPS
export type OpArgs<K extends PgHostOp> = Parameters<(typeof PG_HOST_OPS)[K]>[0]
export type OpResult<K extends PgHostOp> = Awaited<ReturnType<(typeof PG_HOST_OPS)[K]>>

// A worker thread's sessions to database hosts: one per host for the thread's life, reused for every file it copies;
// one that failed is replaced on next use.
const threadClients = new Map<string, ProtocolClient>()

/** The session of this thread to a database host. */
export function pgHostClient(remote: PgRemote): ProtocolClient {
  const key = JSON.stringify(remote)
  const known = threadClients.get(key)
  if (known && !known.failed) return known
  const client = new ProtocolClient(remote.target, remote.args)
  threadClients.set(key, client)
  return client
}

/** Opens this thread's session to a database host ahead of its first file (a worker job, see backup's poolWarmEarly). */
export async function pgHostWarm(remote: PgRemote): Promise<void> {
  await pgHostClient(remote).ready()
}
