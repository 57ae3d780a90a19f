// What the two kinds of remote host (a backup host, repoN-host; a database host, pgN-host) share in their options.

import { dirname, resolve } from 'node:path'
import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import type { OptionName } from '../config/options.js'
import type { SshTarget } from '../protocol/client.js'

/** A host or user name ssh could read as an option ('-oProxyCommand=...') is refused. */
export function remoteNameCheck(option: string, value: string): void {
  if (value.startsWith('-') || /[\s\0]/.test(value)) {
    fail('OptionInvalidValue', `option '${option}' must be a host or user name, not '${value}'`, {
      hint: 'names start with a letter or digit and hold no spaces.',
    })
  }
}

/**
 * The path of this walden, the default of repoN-host-cmd (pgBackRest's default too): bin/walden, also when the bundle
 * was started directly.
 */
export function waldenPath(): string {
  const started = resolve(process.argv[1] ?? 'walden')
  return /\/dist\/(cli|wal)\.mjs$/.test(started) ? resolve(dirname(started), '..', 'bin', 'walden') : started
}

/** The SSH target named by `host` and its -user, -port, -cmd and -config options (`option('host-user')` names them). */
export function sshTargetOf(cfg: Config, host: string, option: (suffix: 'host' | 'host-user' | 'host-port' | 'host-cmd' | 'host-config') => OptionName): SshTarget {
  const user = cfg.string(option('host-user'))
  const port = cfg.number(option('host-port'))
  const config = cfg.string(option('host-config'))
  remoteNameCheck(option('host'), host)
  if (user !== undefined) remoteNameCheck(option('host-user'), user)
  return {
    host,
    ...(user !== undefined ? { user } : {}),
    ...(port !== undefined ? { port } : {}),
    cmd: cfg.string(option('host-cmd')) ?? waldenPath(),
    ...(config !== undefined ? { config } : {}),
    ssh: cfg.string('cmd-ssh') ?? 'ssh',
    timeoutSeconds: cfg.number('protocol-timeout') ?? 1830,
    deflateLevel: cfg.number('compress-level-network') ?? 0,
  }
}
