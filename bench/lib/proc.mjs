// Running programs for the benchmark: as the `postgres` OS user when the bench runs as root (PostgreSQL refuses
// root, and both tools must run as the cluster's owner), measured through measure.py when timed.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)))
const MEASURE_PY = join(BENCH_DIR, 'lib', 'measure.py')

export const IS_ROOT = process.getuid?.() === 0
export const RUN_USER = 'postgres'

// ---------------------------------------------------------------------------------------------------------------
// Console

const started = Date.now()
function stamp() {
  const seconds = Math.round((Date.now() - started) / 1000)
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`
}

export function say(text) {
  process.stdout.write(`[${stamp()}] ${text}\n`)
}

export function heading(text) {
  process.stdout.write(`\n[${stamp()}] == ${text} ==\n`)
}

/** A failure the bench explains itself: printed without a stack. */
export class BenchError extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// Environment

/**
 * The environment every child gets: none of either tool's own variables, a C locale, a HOME postgres can use, and
 * none of Node.js's own variables, as in a service manager's environment for PostgreSQL. The shell the bench starts
 * from may carry NODE_EXTRA_CA_CERTS (set for npm behind a proxy, say), which makes every Node.js start read and
 * parse a CA bundle: on the reference machine `node -e 0` takes about 110 ms with it and 30 ms without, and
 * PostgreSQL starts walden once per WAL segment. bench/lib/benchmarks-intro.md says so.
 */
let childEnv = { ...process.env }
export function childEnvSet(home) {
  childEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('WALDEN_') && !key.startsWith('PGBACKREST_') && !key.startsWith('PG') && !key.startsWith('NODE_')),
  )
  childEnv.LC_ALL = 'C'
  childEnv.HOME = home
  return childEnv
}

/**
 * [file, args] to run as the cluster owner (or, with --repo-type=ssh, as `user`, the backup host's user): through
 * runuser when we are root.
 */
export function asOwner(file, args, user = RUN_USER) {
  return IS_ROOT ? ['runuser', ['-u', user, '--', file, ...args]] : [file, args]
}

// ---------------------------------------------------------------------------------------------------------------
// Running

/** Children started by run(), so an interrupted bench can end them. */
const live = new Set()
export function killLiveChildren() {
  for (const child of live) {
    try {
      child.kill('SIGTERM')
    } catch {
      // Already gone.
    }
  }
}

/**
 * Runs a program and collects its output. Throws BenchError on a non-zero exit unless allowFail.
 * options: { owner: run as postgres (default true), user: run as this user instead of postgres, cwd, timeoutMs,
 * allowFail, what, env, quiet }
 */
export function run(file, args, options = {}) {
  const owner = options.owner ?? true
  const [command, argv] = owner ? asOwner(file, args, options.user) : [file, args]
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      cwd: options.cwd ?? '/',
      env: { ...childEnv, ...(options.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    })
    live.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      if (stdout.length < 4_000_000) stdout += chunk
    })
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      if (stderr.length < 4_000_000) stderr += chunk
    })
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined
    child.on('error', (error) => {
      live.delete(child)
      if (timer) clearTimeout(timer)
      reject(new BenchError(`cannot run ${command}: ${error.message}`))
    })
    child.on('close', (code, signal) => {
      live.delete(child)
      if (timer) clearTimeout(timer)
      const result = { code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout, stderr }
      if (result.code !== 0 && !options.allowFail) {
        reject(new BenchError(`${options.what ?? `${file} ${args.join(' ')}`} failed with exit code ${result.code}\n${tail(stdout + stderr)}`))
        return
      }
      resolve(result)
    })
  })
}

export function tail(text, lines = 25) {
  return text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((line) => `    ${line}`)
    .join('\n')
}

/** Synchronous, for the exit handler. Never throws. */
export function runSyncQuiet(file, args, owner = true) {
  const [command, argv] = owner ? asOwner(file, args) : [file, args]
  try {
    spawnSync(command, argv, { env: childEnv, stdio: 'ignore', timeout: 60_000, cwd: '/' })
  } catch {
    // Nothing more to do while exiting.
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring

let measureSeq = 0
let measureDir = '/tmp'
let python = 'python3'
export function measureSetup(dir, pythonPath) {
  measureDir = dir
  python = pythonPath
}

/**
 * Runs a program as the cluster owner under measure.py. Resolves to
 * { code, stdout, stderr, wallS, wallAllS, cpuS, userS, sysS, rssBytes, rssTreeBytes, rssSingleBytes, toolRssBytes, mark }.
 * options: as run(), plus onStart(markFile) called once the program runs (to request a mark snapshot later by
 * creating markFile), and untilExit: end the measurement when the program exits, leaving running what it started
 * (a PostgreSQL server), whose CPU so far is counted.
 */
export async function measure(file, args, options = {}) {
  const out = join(measureDir, `m${String(++measureSeq).padStart(5, '0')}.json`)
  await rm(out, { force: true })
  await rm(`${out}.mark`, { force: true })
  const interval = String(options.intervalS ?? 0.02)
  const promise = run(python, [MEASURE_PY, out, interval, ...(options.untilExit ? ['--until-exit'] : []), '--', file, ...args], { ...options, allowFail: true })
  options.onStart?.(`${out}.mark`)
  const result = await promise
  let data
  try {
    data = JSON.parse(await readFile(out, 'utf8'))
  } catch {
    throw new BenchError(`${options.what ?? file}: measure.py wrote no result (exit code ${result.code})\n${tail(result.stdout + result.stderr)}`)
  }
  const measured = {
    code: data.exit_code,
    stdout: result.stdout,
    stderr: result.stderr,
    wallS: data.wall_s,
    wallAllS: data.wall_all_s,
    cpuS: data.cpu_s,
    userS: data.user_s,
    sysS: data.sys_s,
    rssBytes: data.peak_rss_bytes,
    rssTreeBytes: data.peak_tree_rss_bytes,
    rssSingleBytes: data.max_rss_single_bytes,
    toolRssBytes: data.peak_rss_tool_bytes,
    mark: data.mark,
  }
  if (measured.code !== 0 && !options.allowFail) {
    throw new BenchError(`${options.what ?? `${file} ${args.join(' ')}`} failed with exit code ${measured.code}\n${tail(result.stdout + result.stderr)}`)
  }
  return measured
}

/** Requests measure.py's mark snapshot. */
export async function requestMark(markFile) {
  await writeFile(markFile, '')
}

export function fileExists(path) {
  return existsSync(path)
}
