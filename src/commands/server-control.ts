// pg_ctl for the commands that start, stop or restart a server on this host (setup --restart, standby-create
// --start and --stop-old). The server's own output goes to a file beside walden's logs: with logging_collector off,
// that file is the server's log, and pg_ctl needs one to detach the postmaster from walden's terminal.

import { spawn } from 'node:child_process'
import { access, constants, readFile, readlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fail } from '../common/errors.js'
import { log } from '../common/log.js'
import { privateFolder } from '../common/private-path.js'
import type { Config } from '../config/config.js'
import { pgBinFor } from '../pg/binaries.js'
import { shellQuote } from '../pg/conf-syntax.js'

/** The bin folder of the server running on `dataDirectory`: the postmaster's own executable, else the one for `major`. */
export async function serverBinDir(dataDirectory: string, major: number): Promise<string> {
  const pid = (await readFile(join(dataDirectory, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]
  const exe = pid ? await readlink(`/proc/${pid}/exe`).catch(() => undefined) : undefined
  return exe !== undefined ? dirname(exe) : pgBinFor(major)
}

/**
 * Where pg_ctl sends the server's output: <log-path>/<stanza>-postgresql-<data folder name>.log (a primary and its
 * standby on one host each get their own), checked writable before anything stops.
 */
async function serverLogPath(cfg: Config, action: string, dataDirectory: string): Promise<string> {
  const logPath = cfg.string('log-path') ?? '/var/log/walden'
  const serverLog = join(logPath, `${cfg.stanza()}-postgresql-${basename(dataDirectory)}.log`)
  try {
    await privateFolder(logPath)
    await access(logPath, constants.W_OK)
  } catch (error) {
    // Checked before stopping anything: pg_ctl restart would stop the server and then fail to start it.
    fail('FileWrite', `unable to write the server log '${serverLog}' for the ${action}: ${(error as Error).message}`, {
      hint: `set log-path to a folder the PostgreSQL OS user can write, or ${action} PostgreSQL yourself.`,
    })
  }
  return serverLog
}

/**
 * pg_ctl start and restart run the postmaster through `/bin/sh -c`, with the data folder and the log file inside
 * double quotes: in there `"`, `$`, a backquote and a backslash still mean something to sh, so a folder named with
 * one of them would run a command. Such a path is refused rather than handed to pg_ctl. `option` names where the
 * path came from, for the error.
 */
export function pgCtlPathCheck(path: string, option: string): void {
  const bad = /["$`\\\x00-\x1f\x7f]/.exec(path)
  if (bad === null) return
  const shown = bad[0] < ' ' || bad[0] === '\x7f' ? `a control character (0x${bad[0].charCodeAt(0).toString(16).padStart(2, '0')})` : `'${bad[0]}'`
  fail('OptionInvalidValue', `${option} '${path.replace(/[\x00-\x1f\x7f]/g, '?')}' contains ${shown}, which pg_ctl would hand to the shell`, {
    hint: 'use a folder name without ", $, `, \\ or control characters.',
  })
}

/**
 * Runs `pg_ctl <action>` on a data folder and waits for it (up to 300 s, pg_ctl's -t). A failure is a PgState error
 * naming the server log; pg_ctl's own message goes to walden's log, as it may be several lines.
 */
export async function serverControl(
  cfg: Config,
  action: 'start' | 'stop' | 'restart',
  dataDirectory: string,
  major: number,
  serverArgs: readonly string[] = [],
): Promise<void> {
  pgCtlPathCheck(dataDirectory, 'data folder')
  const pgCtl = join(await serverBinDir(dataDirectory, major), 'pg_ctl')
  const serverLog = action === 'stop' ? undefined : await serverLogPath(cfg, action, dataDirectory)
  if (serverLog !== undefined) pgCtlPathCheck(serverLog, 'server log file')
  // pg_ctl hands -o to the postmaster through sh, so each argument is quoted for it.
  const postgresOptions = serverArgs.length > 0 ? ['-o', serverArgs.map(shellQuote).join(' ')] : []
  const args = ['-D', dataDirectory, '-w', '-t', '300', ...(action === 'stop' ? [] : ['-l', serverLog!]), ...(action === 'start' ? [] : ['-m', 'fast']), ...postgresOptions, action]
  log.info(`${action === 'stop' ? 'stopping' : action === 'start' ? 'starting' : 'restarting'} PostgreSQL on '${dataDirectory}' with '${pgCtl}'${serverLog ? ` (server output to '${serverLog}')` : ''}`)
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolveExit, reject) => {
    const child = spawn(pgCtl, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let text = ''
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()))
    child.on('error', reject)
    child.on('close', (status) => resolveExit({ code: status ?? 1, stderr: text.trim() }))
  })
  if (code !== 0) {
    if (stderr !== '') log.error(`pg_ctl: ${stderr}`)
    fail('PgState', `pg_ctl ${action} failed with exit code ${code} on '${dataDirectory}'`, {
      hint: serverLog !== undefined ? `see '${serverLog}' and the PostgreSQL log; the server may be stopped.` : 'see the PostgreSQL log.',
    })
  }
}
