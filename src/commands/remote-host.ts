// What the two kinds of remote host (a backup host, repoN-host; a database host, pgN-host) share in their options.

import { dirname, resolve } from 'node:path'
import { fail } from '../common/errors.js'

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
