// Logging: pgBackRest's levels and line format. The console sink writes to stderr so that stdout carries only
// command output (info's text or JSON), whatever the level. The file sink appends to <log-path>/<stanza>-<command>.log.

import { appendFileSync, closeSync, fchmodSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { PRIVATE_FILE_MODE, privateFolderSync } from './private-path.js'

export const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const rank = (level: LogLevel): number => LOG_LEVELS.indexOf(level)

export interface LogSinks {
  console: LogLevel
  file: LogLevel
  filePath?: string
  /** Process number shown as Pnn: 0 is the main process, 1..n are workers. */
  processId?: number
}

function timestamp(date: Date): string {
  const pad = (value: number, width = 2): string => String(value).padStart(width, '0')
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  )
}

export class Logger {
  #sinks: LogSinks = { console: 'warn', file: 'off' }
  #fileReady = false

  configure(sinks: LogSinks): void {
    this.#sinks = sinks
    this.#fileReady = false
  }

  /** True when a message at this level would reach any sink; lets callers skip building costly messages. */
  enabled(level: LogLevel): boolean {
    return rank(level) <= Math.max(rank(this.#sinks.console), this.#sinks.filePath ? rank(this.#sinks.file) : 0)
  }

  error(message: string): void {
    this.write('error', message)
  }
  warn(message: string): void {
    this.write('warn', message)
  }
  info(message: string): void {
    this.write('info', message)
  }
  detail(message: string): void {
    this.write('detail', message)
  }
  debug(message: string): void {
    this.write('debug', message)
  }

  write(level: LogLevel, message: string): void {
    const process_ = `P${String(this.#sinks.processId ?? 0).padStart(2, '0')}`
    const line = `${process_} ${level.toUpperCase().padStart(6)}: ${message}\n`
    if (rank(level) <= rank(this.#sinks.console)) process.stderr.write(line)
    if (this.#sinks.filePath && rank(level) <= rank(this.#sinks.file)) this.#writeFile(`${timestamp(new Date())} ${line}`)
  }

  #writeFile(text: string): void {
    const path = this.#sinks.filePath as string
    try {
      if (!this.#fileReady) {
        // Log lines name databases, tables and hosts: 0640 in 0750 folders (private-path.ts). A log an older walden
        // left world-readable is closed too; one another user owns keeps its mode (fchmod fails, harmlessly).
        privateFolderSync(dirname(path))
        const fd = openSync(path, 'a', PRIVATE_FILE_MODE)
        try {
          fchmodSync(fd, PRIVATE_FILE_MODE)
        } catch {
          // Not ours to change.
        } finally {
          closeSync(fd)
        }
        this.#fileReady = true
      }
      // Synchronous append: a command may exit right after logging and must not lose the line.
      appendFileSync(path, text, { mode: PRIVATE_FILE_MODE })
    } catch (error) {
      // A log file that cannot be written must not turn a good backup into a failed one; say so once on the console.
      this.#sinks = { ...this.#sinks, filePath: undefined }
      process.stderr.write(`P00   WARN: unable to write log file '${path}': ${(error as Error).message}\n`)
    }
  }
}

/** The process-wide logger; configured once by the CLI from the log-* options. */
export const log = new Logger()
