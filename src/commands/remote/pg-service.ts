// What `walden remote --remote-type=pg` serves on a database host, to a walden on the backup host (pgN-host): the
// requests of PG_HOST_OPS (pg_control, the scan of the data folder, WAL and configuration files), the copy of a file
// read, checked, hashed and compressed here (backupRead: only compressed bytes cross the network), and a relay to a
// PostgreSQL socket of this host, which carries the backup's SQL.
//
// It runs as the cluster's owner, whom the backup host reaches by SSH key: that user can read the cluster whatever
// walden serves. What this service adds is nothing beyond reading: it writes no file, and relays only to a
// PostgreSQL socket (.s.PGSQL.<port> in a folder), never to another socket or address.

import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { fail, WaldenError } from '../../common/errors.js'
import type { CompressType } from '../../io/compress.js'
import { ProducedReply } from '../../protocol/server.js'
import type { ProtocolService } from '../../protocol/server.js'
import { backupRead } from '../backup/file.js'
import type { BackupFileSource } from '../backup/file.js'
import { PG_HOST_OPS } from '../pg-host-ops.js'
import type { PgHostOp } from '../pg-host-ops.js'

/** The service of a database host. */
export function pgService(): ProtocolService {
  return {
    description: 'database host',
    root: '',
    async call(op, args) {
      if (op === 'backupRead') {
        const source = backupSource(args)
        return new ProducedReply((send) => backupRead(source, send))
      }
      if (!Object.hasOwn(PG_HOST_OPS, op)) fail('Protocol', `protocol error: unknown request '${op}'`)
      return (PG_HOST_OPS[op as PgHostOp] as (args: unknown) => Promise<unknown>)(args)
    },
    openSocket: (args) => pgSocketConnect(args),
  }
}

/** The copy's arguments, checked: the client is another walden, but a malformed request must fail as one. */
function backupSource(args: Record<string, unknown>): BackupFileSource {
  const bad = (name: string): never => fail('Protocol', `protocol error: backupRead argument '${name}' is missing or invalid`)
  if (typeof args['source'] !== 'string' || !args['source'].startsWith('/')) bad('source')
  if (typeof args['offset'] !== 'number' || args['offset'] < 0) bad('offset')
  if (args['length'] !== undefined && (typeof args['length'] !== 'number' || args['length'] < 0)) bad('length')
  if (typeof args['compressType'] !== 'string') bad('compressType')
  if (typeof args['compressLevel'] !== 'number') bad('compressLevel')
  const pageCheck = args['pageCheck'] as BackupFileSource['pageCheck']
  return {
    source: args['source'] as string,
    offset: args['offset'] as number,
    ...(args['length'] !== undefined ? { length: args['length'] as number } : {}),
    compressType: args['compressType'] as CompressType,
    compressLevel: args['compressLevel'] as number,
    ...(pageCheck !== undefined ? { pageCheck } : {}),
    ...(args['xxh3'] === false ? { xxh3: false } : {}),
    syncEach: false,
  }
}

/** Connects to the PostgreSQL socket of a port in a folder (libpq's default folder when none is given). */
function pgSocketConnect(args: Record<string, unknown>): Promise<Socket> {
  const port = args['port']
  const folder = args['socketPath'] ?? process.env['PGHOST'] ?? '/var/run/postgresql'
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) fail('Protocol', 'protocol error: openSocket needs a port from 1 to 65535')
  if (typeof folder !== 'string' || !folder.startsWith('/')) fail('Protocol', 'protocol error: openSocket needs an absolute socket folder')
  const path = join(folder, `.s.PGSQL.${port}`)
  return new Promise((resolve, reject) => {
    const socket = connect({ path })
    socket.once('connect', () => {
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (error) => {
      reject(
        new WaldenError('DbConnect', `unable to connect to PostgreSQL at socket '${path}': ${error.message}`, {
          hint: 'check that the cluster runs on the database host, and pg1-port and pg1-socket-path as that host has them.',
        }),
      )
    })
  })
}
