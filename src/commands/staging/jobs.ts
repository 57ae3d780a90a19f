// The jobs journal: every staging operation (DB_LINK, DB_SYNC, SNAPSHOT, ENABLE, DISABLE, RESYNC, UNLINK, CLONE,
// CLONE_DESTROY) is a job with a start, an end, a result and an error, kept in SPOOL-PATH/staging/jobs across
// restarts. One file per job, written atomically at its start and again at its end, so a journal is never torn and a
// job whose process was killed still shows (as running, which `walden jobs` reports as interrupted once its process
// is gone). Each job also has a log file beside it, where hooks write their output.

import { randomBytes } from 'node:crypto'
import { appendFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import { pidAlive } from '../../common/lock.js'
import type { Config } from '../../config/config.js'
import type { Command } from '../command.js'
import { stagingRoot, stateRead, stateWrite } from './state.js'

export const JOB_TYPES = ['DB_LINK', 'DB_SYNC', 'SNAPSHOT', 'ENABLE', 'DISABLE', 'RESYNC', 'UNLINK', 'CLONE', 'CLONE_DESTROY'] as const
export type JobType = (typeof JOB_TYPES)[number]

export type JobResult = 'running' | 'ok' | 'failed'

export interface Job {
  id: string
  type: JobType
  stanza: string
  /** The clone a CLONE or CLONE_DESTROY job is about. */
  clone?: string
  start: string
  end?: string
  result: JobResult
  /** One line: the error's message (and its code), for a failed job. */
  error?: string
  /** The walden process running it, to tell a running job from an interrupted one. */
  pid: number
  /** Log file of the job: hook output. */
  log: string
}

/** What a job's body gets: the job, and a way to add lines to its log file. */
export interface JobHandle {
  readonly job: Job
  /** Appends text to the job's log file (hook output, notices). */
  logAppend(text: string): Promise<void>
}

function jobsFolder(cfg: Config): string {
  return join(stagingRoot(cfg), 'jobs')
}

/** A job id that sorts by start time: 20261203T134500123Z-a1b2c3. */
function jobId(now: Date): string {
  return `${now.toISOString().replaceAll(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`
}

async function jobWrite(cfg: Config, job: Job): Promise<void> {
  await stateWrite(join(jobsFolder(cfg), `${job.id}.json`), `${JSON.stringify(job, null, 2)}\n`)
}

/** The one-line error a job records: `[code]: message`, without the hint (that is for the console). */
export function jobErrorText(error: unknown): string {
  if (error instanceof WaldenError) return `[${String(error.code).padStart(3, '0')}]: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}

/**
 * Runs `body` as a job of `type` for `stanza`: recorded as running before it starts, then as ok or failed (with the
 * error) when it ends. The error is rethrown, so the command still exits with its code.
 */
export async function jobRun<T>(
  cfg: Config,
  type: JobType,
  stanza: string,
  body: (handle: JobHandle) => Promise<T>,
  options: { clone?: string } = {},
): Promise<T> {
  const now = new Date()
  const id = jobId(now)
  const job: Job = {
    id,
    type,
    stanza,
    ...(options.clone !== undefined ? { clone: options.clone } : {}),
    start: now.toISOString(),
    result: 'running',
    pid: process.pid,
    log: join(jobsFolder(cfg), `${id}.log`),
  }
  await jobWrite(cfg, job)
  log.info(`job ${type} ${id} started`)
  const handle: JobHandle = {
    job,
    logAppend: async (text) => appendFile(job.log, text.endsWith('\n') ? text : `${text}\n`, { mode: 0o600 }),
  }
  try {
    const value = await body(handle)
    await jobWrite(cfg, { ...job, end: new Date().toISOString(), result: 'ok' })
    log.info(`job ${type} ${id} ended: ok`)
    return value
  } catch (error) {
    const text = jobErrorText(error)
    // The journal write must not hide the error that failed the job.
    await jobWrite(cfg, { ...job, end: new Date().toISOString(), result: 'failed', error: text }).catch((writeError: unknown) =>
      log.warn(`unable to record the end of job ${type} ${id}: ${jobErrorText(writeError)}`),
    )
    log.info(`job ${type} ${id} ended: failed`)
    throw error
  }
}

/** Every job in the journal, oldest first; with `stanza`, only that stanza's. A running job whose process is gone is failed. */
export async function jobList(cfg: Config, stanza?: string): Promise<Job[]> {
  const folder = jobsFolder(cfg)
  const names = await readdir(folder).catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? [] : Promise.reject(error)))
  const jobs: Job[] = []
  for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
    const job = await stateRead<Job>(join(folder, name))
    if (job === undefined || (stanza !== undefined && job.stanza !== stanza)) continue
    if (job.result === 'running' && job.pid !== process.pid && !pidAlive(job.pid)) {
      jobs.push({ ...job, result: 'failed', error: `interrupted: walden process ${job.pid} ended before the job did` })
    } else {
      jobs.push(job)
    }
  }
  return jobs
}

/** The journal as `walden jobs` prints it: one job a line, or --output=json. */
export function jobsRender(jobs: readonly Job[], output: string): string {
  if (output === 'json') {
    return `${JSON.stringify(
      jobs.map((job) => ({
        id: job.id,
        type: job.type,
        stanza: job.stanza,
        ...(job.clone !== undefined ? { clone: job.clone } : {}),
        start: job.start,
        end: job.end ?? null,
        result: job.result,
        error: job.error ?? null,
        log: job.log,
      })),
      null,
      2,
    )}\n`
  }
  if (jobs.length === 0) return 'no staging jobs\n'
  const rows = jobs.map((job) => [
    job.start,
    job.end ?? '-',
    job.type,
    job.clone !== undefined ? `${job.stanza}/${job.clone}` : job.stanza,
    job.result,
    job.error ?? '',
  ])
  const header = ['start', 'end', 'type', 'stanza', 'result', 'error']
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd()
  return `${[line(header), ...rows.map(line)].join('\n')}\n`
}

export const jobs: Command = {
  async run(cfg) {
    const list = await jobList(cfg, cfg.string('stanza'))
    process.stdout.write(jobsRender(list, cfg.string('output') ?? 'text'))
    return 0
  },
}
