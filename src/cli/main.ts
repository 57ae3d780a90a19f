// walden's entry point: configuration -> logging -> stop check -> lock -> command -> exit status.
// The only place that catches every error and the only place that exits the process.

import { cipherConfigure } from '../repo/cipher.js'
import { join } from 'node:path'
import { COMMANDS } from '../config/commands.js'
import { configLoad } from '../config/config.js'
import type { Config } from '../config/config.js'
import { ERROR_CODES, errnoCode, fail, formatError, WaldenError } from '../common/errors.js'
import { log } from '../common/log.js'
import type { LogLevel } from '../common/log.js'
import { lockAcquire, stopFileCheck } from '../common/lock.js'
import { VERSION } from '../version.js'
import { archiveGetAbortsRecovery } from './archive-get-status.js'
import { DISPATCH } from './dispatch.js'

/** Commands that reach the cluster through pg1-host when it is set (the others run on the database host). */
const PG_HOST_COMMANDS: ReadonlySet<string> = new Set(['backup', 'check', 'stanza-create', 'stanza-delete'])

// Commands that still run while `walden stop` is in effect. They change nothing (info, repo-ls, repo-get,
// replication-status, verify, staging-status, clone-list and jobs only read, so monitoring keeps working), and archive-get must not fail:
// PostgreSQL would take the failure for the end of the archive and end recovery early; nor must staging-wal-get, which
// feeds a staging copy the same way. stanza-delete checks for the stop file itself: it requires one.
const RUN_WHEN_STOPPED = new Set([
  'help',
  'version',
  'info',
  'repo-ls',
  'repo-get',
  'replication-status',
  'archive-get',
  'start',
  'stop',
  'stanza-delete',
  'verify',
  'staging-status',
  'staging-wal-get',
  'clone-list',
  'jobs',
])

function configureLog(cfg: Config): void {
  const def = COMMANDS[cfg.command]
  const fileLevel = (cfg.string('log-level-file') ?? 'off') as LogLevel
  // Commands PostgreSQL runs per segment log to a file only when asked to explicitly. Their background processes
  // always do: nothing else would ever see what they did.
  const wantFile = def.logFile || cfg.role === 'async' || cfg.source('log-level-file') !== 'default'
  const stanza = cfg.string('stanza')
  const name = cfg.role === 'async' ? `${cfg.command}-async` : cfg.command
  log.configure({
    console: (cfg.string('log-level-console') ?? 'warn') as LogLevel,
    file: wantFile ? fileLevel : 'off',
    ...(wantFile && fileLevel !== 'off'
      ? { filePath: join(cfg.string('log-path') ?? '/var/log/walden', `${stanza ?? 'all'}-${name}.log`) }
      : {}),
  })
}

async function main(argv: readonly string[]): Promise<number> {
  let cfg: Config | undefined
  try {
    cfg = configLoad({ argv, env: process.env })
    // A command that never finishes must not answer "not in the archive" either (see the beforeExit handler).
    if (cfg.command === 'archive-get') unexpectedExitCode = ARCHIVE_GET_ABORT_RECOVERY
    configureLog(cfg)
    for (const warning of cfg.warnings) log.warn(warning)
    // Key files are read and checked before the command does anything; the stanza's record is checked against
    // this when its info files are read (repo/cipher.ts).
    cipherConfigure(cfg)
    const def = COMMANDS[cfg.command]
    const describe = cfg.describe()
    const name = cfg.role === 'async' ? `${cfg.command}:async` : cfg.command
    log.info(`${name} command begin ${VERSION}${describe ? `: ${describe}` : ''}`)

    // pg1-host makes this the backup host (pgBackRest's meaning): what changes the cluster itself runs where it is.
    if (cfg.has('pg1-host') && !PG_HOST_COMMANDS.has(cfg.command)) {
      fail('FeatureNotSupported', `${cfg.command} runs on the database host, not on the backup host: pg1-host is set, so this is the backup host`, {
        hint: `run ${cfg.command} on '${cfg.string('pg1-host')}', with repo1-host naming this host; for the TCP address of the SQL connection, which pg1-host meant before walden 0.2, use pg1-tcp-host.`,
      })
    }
    const lockPath = cfg.string('lock-path') ?? '/tmp/walden'
    if (!RUN_WHEN_STOPPED.has(cfg.command)) await stopFileCheck(lockPath, cfg.string('stanza'))
    const lock = def.lock === 'none' ? undefined : await lockAcquire(lockPath, `${cfg.stanza()}-${def.lock}`)

    const command = await DISPATCH[cfg.command](cfg)
    const code = await command.run(cfg)
    lock?.release()
    log.info(`${name} command end: ${code === 0 ? 'completed successfully' : `exit ${code}`}`)
    return code
  } catch (error) {
    return reportError(error, cfg)
  }
}

/**
 * archive-get's exit status for damaged or ambiguous WAL, and for any failure after which walden cannot say the file
 * is not archived (which ones: archive-get-status.ts). PostgreSQL reads any restore_command status up to 125 as "not in the
 * archive" and ends recovery there, promoting at the wrong point without a word; from 126 on it aborts recovery
 * instead, which is the only safe answer to a damaged segment. Transient failures (a repository not reachable)
 * keep their ordinary codes, so a standby simply retries.
 */
export const ARCHIVE_GET_ABORT_RECOVERY = 126

function reportError(error: unknown, cfg: Config | undefined): number {
  if (error instanceof WaldenError) {
    log.error(formatError(error))
    // Without a configured logger (a config error) the console default is warn, so the line above reached stderr.
    if (error.kind === 'Assert') log.error(error.stack ?? '')
    if (cfg) log.info(`${cfg.command} command end: aborted with exception [${String(error.code).padStart(3, '0')}]`)
    if (cfg?.command === 'archive-get' && archiveGetAbortsRecovery(error)) return archiveGetAbort()
    return error.code
  }
  // Anything else is a bug: say so plainly and keep the stack for the report.
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
  log.error(`[${ERROR_CODES.Unhandled}]: unexpected error: ${message}`)
  log.error('HINT: this is a bug in walden; please report it with the lines above.')
  // For archive-get, 124 would read as "not in the archive" and end recovery early: abort it (archive-get-status.ts).
  if (cfg?.command === 'archive-get') return archiveGetAbort()
  return ERROR_CODES.Unhandled
}

function archiveGetAbort(): number {
  log.error(`exit ${ARCHIVE_GET_ABORT_RECOVERY}: PostgreSQL must abort recovery rather than end it before this WAL file`)
  return ARCHIVE_GET_ABORT_RECOVERY
}

// A signal ends walden with the Term code; locks are released by the exit handler and an open backup session
// dies with the process, which ends the server's backup mode.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    log.error(`[${ERROR_CODES.Term}]: terminated on signal ${signal}`)
    process.exit(ERROR_CODES.Term)
  })
}

// If a command's promise never settles (a stream that stalls), Node would exit 0 on an empty event loop: for
// archive-push that would tell PostgreSQL a segment is safe when it is not. Exit with Unhandled instead.
// archive-get sets 126 instead once its configuration is read: 124 would tell PostgreSQL the file is not archived.
let unexpectedExitCode: number = ERROR_CODES.Unhandled
process.exitCode = ERROR_CODES.Unhandled
process.on('beforeExit', () => {
  log.error(`[${ERROR_CODES.Unhandled}]: walden ended before the command finished`)
  log.error('HINT: this is a bug in walden; please report it.')
  process.exit(unexpectedExitCode)
})

// A reader that stops early (`walden repo-get FILE | head`) closes the pipe: what is left cannot be written, and that
// is no failure of walden's. Exit at once and quietly, as a program ended by SIGPIPE does, not with a stack trace.
process.stdout.on('error', (error) => {
  if (errnoCode(error) === 'EPIPE') process.exit(0)
})

const code = await main(process.argv.slice(2))
// Exit once stdout has drained (a large JSON info piped into jq), whatever handles a library left open.
process.stdout.write('', () => process.exit(code))
