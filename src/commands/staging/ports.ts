// Whether a port is free for a staging copy or clone on this host. A port is taken when any server listens on it,
// walden's or not (the source may share the host): a TCP listener on the loopback address, or a PostgreSQL socket
// file .s.PGSQL.<port> in one of the usual socket folders, or when it is assigned to another staging copy or clone
// here (state.ts's ports.json: a stopped staging copy keeps its port).

import { stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import { portAssign, portsAssigned, portOwnerText } from './state.js'
import type { PortOwner } from './state.js'

/** Socket folders PostgreSQL servers use by default (upstream, Debian and Red Hat builds) and the configured one. */
export function socketFolders(cfg: Config): string[] {
  const folders = ['/tmp', '/var/run/postgresql', '/run/postgresql']
  const configured = cfg.string('pg1-socket-path')
  if (configured !== undefined) folders.unshift(configured)
  if (process.env.PGHOST?.startsWith('/')) folders.push(process.env.PGHOST)
  return [...new Set(folders)]
}

/** Whether something listens on `port` on `host` (a bind there fails with EADDRINUSE). */
function tcpInUse(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES'))
    // An address the host does not have (no IPv6) says nothing about the port.
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(false)))
  }).then((inUse) => inUse as boolean)
}

/** Why a port is in use by a running server, if it is: 'a server listens on 127.0.0.1:5432', or the socket file. */
export async function portListener(cfg: Config, port: number): Promise<string | undefined> {
  // Loopback first, for the clearest message; then any IPv4 address, then any IPv6 one (an address family the host
  // lacks fails with another error, which says nothing about the port).
  for (const host of ['127.0.0.1', '0.0.0.0', '::']) {
    if (await tcpInUse(port, host)) return `a server listens on ${host === '127.0.0.1' ? host : 'a TCP address'}:${port}`
  }
  for (const folder of socketFolders(cfg)) {
    const socket = join(folder, `.s.PGSQL.${port}`)
    const info = await stat(socket).catch(() => undefined)
    if (info?.isSocket() === true) return `a PostgreSQL server has its socket '${socket}'`
  }
  return undefined
}

/** Fails when the port is in use or assigned to someone other than `owner`; `option` names it in the error. */
export async function portCheck(cfg: Config, port: number, option: string, owner: PortOwner): Promise<void> {
  const assigned = (await portsAssigned(cfg)).get(port)
  if (assigned !== undefined && !(assigned.kind === owner.kind && assigned.stanza === owner.stanza && assigned.clone === owner.clone)) {
    fail('OptionInvalidValue', `${option} ${port} is assigned to ${portOwnerText(assigned)} on this host`, {
      hint: `choose another ${option}.`,
    })
  }
  const listener = await portListener(cfg, port)
  if (listener !== undefined) {
    fail('OptionInvalidValue', `${option} ${port} is in use: ${listener}`, { hint: `choose another ${option}; each server on a host needs its own port.` })
  }
}

/**
 * Assigns `port` to `owner` after checking no server listens on it, under the host-wide port lock, so two walden
 * processes cannot both take one port.
 */
export async function portReserve(cfg: Config, port: number, option: string, owner: PortOwner): Promise<void> {
  await portAssign(cfg, port, owner, async () => {
    const listener = await portListener(cfg, port)
    if (listener !== undefined) {
      fail('OptionInvalidValue', `${option} ${port} is in use: ${listener}`, { hint: `choose another ${option}; each server on a host needs its own port.` })
    }
  }, option)
}
