// Real PostgreSQL clusters for integration tests. Tests run as root but PostgreSQL refuses root, so everything that
// touches a data directory runs as the `postgres` user through runuser; the test process itself connects over the
// cluster's private unix socket as database user postgres (trust auth).
//
// Resource intent for the 2-core CI machine: at most 2 clusters at a time across the suite (the runner runs 2 files
// concurrently, so a file should not keep more than one cluster up unless it needs a primary/standby pair), each
// with 32MB of shared_buffers and 20 connections.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { accessSync, closeSync, constants, fchownSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs'
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after } from 'node:test'
import pg from 'pg'
import type { QueryResultRow } from 'pg'
import { pgBinDirs, pgBinFor, waldenPackageRoot } from '../../src/pg/binaries.js'

const OS_USER = 'postgres'
const DB_USER = 'postgres'

// ---------------------------------------------------------------------------------------------------------------
// Processes

export interface RunResult {
  /** Exit status; 128 + signal number when the process was killed (timeout included), like a shell reports it. */
  code: number
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

interface RunOptions {
  asUser?: string
  env?: NodeJS.ProcessEnv
  input?: string
  timeoutMs?: number
  cwd?: string
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }

/** Runs a command (as another user via runuser unless asUser is root); never throws on a non-zero exit. */
function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const asUser = options.asUser ?? OS_USER
  const [file, argv] = asUser === 'root' ? [command, [...args]] : ['runuser', ['-u', asUser, '--', command, ...args]]
  const spawnOptions: SpawnOptions = {
    // A cwd the target user can enter: initdb and pg_ctl complain when they cannot, and root's cwd may be /root.
    cwd: options.cwd ?? tmpdir(),
    env: { ...process.env, LC_ALL: 'C', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  }
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, argv, spawnOptions)
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer =
      options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error) // the command could not be started at all: that is a harness bug, not a result
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({ code: code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0), signal, stdout, stderr })
    })
    child.stdin?.on('error', () => {}) // the child may exit without reading its input
    child.stdin?.end(options.input ?? '')
  })
}

/** Runs one of the cluster's own programs (psql, pg_dump, pgbench) as root in `cwd`; never throws on a non-zero exit. */
export function runTool(cluster: Cluster, tool: string, args: readonly string[], options: { cwd: string; input?: string }): Promise<RunResult> {
  return run(join(cluster.binDir, tool), args, { asUser: 'root', cwd: options.cwd, ...(options.input !== undefined ? { input: options.input } : {}) })
}

async function runChecked(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.code}\n${result.stderr}${result.stdout}`)
  }
  return result.stdout
}

/** Shell-quotes one word for /bin/sh (PostgreSQL runs archive_command and restore_command through it). */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
}

/** Quotes a value for postgresql.conf. */
function confQuote(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

// ---------------------------------------------------------------------------------------------------------------
// walden itself

const repoRoot = waldenPackageRoot()

/** The command to put in archive_command / restore_command. Node by absolute path: the server's PATH is ours,
 * but nothing guarantees `#!/usr/bin/env node` finds the same Node as the test run. */
export function waldenCommand(bin = join(repoRoot, 'bin', 'walden')): string {
  return `${shellQuote(process.execPath)} ${shellQuote(bin)}`
}

/** Runs the walden CLI (bin/walden of this checkout, not whatever is on PATH), by default as postgres like the
 * server's archive_command would. Never throws on a non-zero exit; the default timeout is 2 minutes. */
export function runWalden(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; asUser?: string; input?: string; timeoutMs?: number; cwd?: string; bin?: string } = {},
): Promise<RunResult> {
  const { bin, ...runOptions } = options
  return run(process.execPath, [bin ?? join(repoRoot, 'bin', 'walden'), ...args], {
    ...runOptions,
    timeoutMs: options.timeoutMs ?? 120_000,
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Temporary folders

export interface TestDir {
  readonly path: string
  /** Creates a subfolder owned by postgres, mode 0700 (e.g. a repository walden writes as postgres). */
  mkdir(name: string): Promise<string>
  /** Stops clusters living in this folder, then removes it. Idempotent. */
  cleanup(): Promise<void>
}

const liveDirs = new Set<string>()
const keepDirs = process.env['WALDEN_TEST_KEEP'] === '1' // keep folders for post-mortem debugging

let postgresIds: { uid: number; gid: number } | undefined
function postgresUser(): { uid: number; gid: number } {
  if (postgresIds) return postgresIds
  const uid = spawnSync('id', ['-u', OS_USER], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', OS_USER], { encoding: 'utf8' })
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error(`the OS user ${OS_USER} does not exist; create it (.ci/run does) to run integration tests`)
  }
  postgresIds = { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  return postgresIds
}

/** Fails early, with a useful message, when postgres could not reach a folder because a parent is not searchable. */
function assertTraversable(path: string): void {
  for (let dir = path; ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      throw new Error(`${dir} is not searchable by others (o+x), so the postgres user cannot reach ${path}`)
    }
    if (dirname(dir) === dir) return
  }
}

/** Pids of processes (not this one) whose command line or working folder lies inside `path`. */
function processesUsing(path: string): number[] {
  const found: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return found
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      let cwd = ''
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`)
      } catch {
        // a process of another user, or gone: its command line decides
      }
      if (cmdline.includes(`${path}/`) || cmdline.includes(`${path}\0`) || cwd === path || cwd.startsWith(`${path}/`)) {
        found.push(Number(entry))
      }
    } catch {
      // the process ended while we looked
    }
  }
  return found
}

/**
 * Removes a test folder. A background walden process (archive-async, a detached spool worker) may still be writing
 * into it when a test ends, which made rm fail with ENOTEMPTY; so wait a while for such processes to finish, then
 * remove with retries.
 */
async function removeTree(path: string): Promise<void> {
  for (let waited = 0; waited < 15_000 && processesUsing(path).length > 0; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await rm(path, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
}

/** A fresh folder under the OS temp dir, owned by postgres with mode 0700. Removed by cleanup(), or at exit. */
export async function testDir(prefix = 'walden-test'): Promise<TestDir> {
  const { uid, gid } = postgresUser()
  const base = tmpdir()
  assertTraversable(base)
  const path = await mkdtemp(join(base, `${prefix}-`))
  await chown(path, uid, gid)
  await chmod(path, 0o700)
  liveDirs.add(path)
  return {
    path,
    async mkdir(name: string): Promise<string> {
      const sub = join(path, name)
      await mkdir(sub, { recursive: true, mode: 0o700 })
      await chown(sub, uid, gid)
      return sub
    },
    async cleanup(): Promise<void> {
      for (const cluster of [...runningClusters]) if (cluster.dataDir.startsWith(`${path}/`)) await cluster.stop()
      liveDirs.delete(path)
      if (!keepDirs) await removeTree(path)
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Clusters

export interface ClusterOptions {
  major: number
  /** initdb --data-checksums; default true (walden verifies page checksums during backup). */
  checksums?: boolean
  /** initdb --wal-segsize in MB; PostgreSQL's default (16) when omitted. */
  walSegSizeMb?: number
  /** Extra postgresql.conf settings, quoted by the harness, written after the harness's own. */
  settings?: Record<string, string>
  /**
   * fsync setting; default false. A kill9() crash kills processes, not the kernel: everything PostgreSQL wrote
   * survives in the page cache, so crash recovery sees exactly what a durable server would. fsync only matters for
   * a real power loss, which no test can simulate, so off is safe and spares the CI disk. Set true to measure.
   */
  fsync?: boolean
  /** Folder (owned by postgres) to create the cluster in; default a fresh testDir() owned by the cluster. */
  dir?: TestDir
  /** Name of the cluster's subfolders in dir (data dir, socket dir, log file); default 'pg'. */
  name?: string
}

const runningClusters = new Set<Cluster>()

/** A free loopback port: the kernel's pick for port 0. Another process may grab it before the server binds it;
 * start() retries with a new port when the log says so. */
function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolvePromise(port))
    })
  })
}

/** Whether a pid is a live (non-zombie) process. Zombies matter: in containers PID 1 may never reap a killed
 * postmaster, and `kill(pid, 0)` succeeds on a zombie. */
function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

function childPids(parent: number): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === parent) pids.push(Number(entry))
    } catch {
      // The process exited while we looked.
    }
  }
  return pids
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export class Cluster {
  readonly major: number
  readonly binDir: string
  readonly dataDir: string
  readonly socketDir: string
  readonly logFile: string
  /** The folder the cluster lives in; removed with the cluster only when the cluster created it. */
  readonly dir: TestDir
  #port: number
  readonly #ownsDir: boolean
  #client: pg.Client | undefined
  /**
   * Extra arguments for the postmaster, e.g. ['-c', 'config_file=/etc/...'] for a cluster whose configuration lives
   * outside its data folder (Debian's layout).
   */
  serverArgs: string[] = []
  /** The postmaster this process spawned, if any. */
  #postmaster: { child: ChildProcess; exit: Promise<void> } | undefined

  private constructor(major: number, binDir: string, dir: TestDir, ownsDir: boolean, name: string, port: number) {
    this.major = major
    this.binDir = binDir
    this.dir = dir
    this.#ownsDir = ownsDir
    this.dataDir = join(dir.path, name)
    this.socketDir = join(dir.path, `${name}.sock`)
    this.logFile = join(dir.path, `${name}.log`)
    this.#port = port
  }

  get port(): number {
    return this.#port
  }

  /** initdb only; call start() next. */
  static async create(options: ClusterOptions): Promise<Cluster> {
    const binDir = await pgBinFor(options.major)
    const ownsDir = options.dir === undefined
    const dir = options.dir ?? (await testDir(`walden-pg${options.major}`))
    const cluster = new Cluster(options.major, binDir, dir, ownsDir, options.name ?? 'pg', await freePort())
    await dir.mkdir(`${options.name ?? 'pg'}.sock`)
    const args = ['-D', cluster.dataDir, '-A', 'trust', '-U', DB_USER, '--no-sync', '--encoding=UTF8', '--locale=C']
    if (options.checksums ?? true) args.push('--data-checksums')
    if (options.walSegSizeMb !== undefined) args.push(`--wal-segsize=${options.walSegSizeMb}`)
    await runChecked(join(binDir, 'initdb'), args, { cwd: dir.path })
    await cluster.configure({
      port: String(cluster.port),
      listen_addresses: '127.0.0.1',
      unix_socket_directories: cluster.socketDir,
      shared_buffers: '32MB',
      max_connections: '20',
      fsync: options.fsync === true ? 'on' : 'off',
      // Deterministic output for dumps and log parsing.
      timezone: 'UTC',
      log_timezone: 'UTC',
      lc_messages: 'C',
      ...options.settings,
    })
    return cluster
  }

  /**
   * A cluster whose data folder something else makes, such as a restore into `dir/name`: nothing is created but
   * its socket folder, and it gets a free port for the restore to give the server (restore --pg1-port).
   */
  static async adopt(options: { major: number; dir: TestDir; name: string }): Promise<Cluster> {
    const cluster = new Cluster(options.major, await pgBinFor(options.major), options.dir, false, options.name, await freePort())
    await options.dir.mkdir(`${options.name}.sock`)
    return cluster
  }

  /** Appends raw lines to postgresql.conf; later lines win. Takes effect on (re)start or reload. */
  async appendConf(lines: string | readonly string[]): Promise<void> {
    const text = typeof lines === 'string' ? lines : lines.join('\n')
    await appendFile(join(this.dataDir, 'postgresql.conf'), `\n${text}\n`)
  }

  /** Appends settings to postgresql.conf, quoting each value. */
  async configure(settings: Record<string, string>): Promise<void> {
    await this.appendConf(Object.entries(settings).map(([key, value]) => `${key} = ${confQuote(value)}`))
  }

  #pgCtl(args: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
    return run(join(this.binDir, 'pg_ctl'), ['-D', this.dataDir, ...args], { cwd: this.dir.path, timeoutMs })
  }

  /**
   * Starts the server and, unless wait is false, waits until it accepts connections (or, for a standby without
   * hot_standby, is up). The postmaster is spawned directly as this process's child with postgres's uid/gid rather
   * than through `pg_ctl start`: pg_ctl orphans it to PID 1, and where PID 1 does not reap (containers) a postmaster
   * killed by kill9() stays a zombie whose pid in postmaster.pid still looks alive, so the next start refuses.
   */
  async start(options: { wait?: boolean; timeoutMs?: number } = {}): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const failure = await this.#startOnce(options.wait ?? true, options.timeoutMs ?? 120_000)
      if (failure === undefined) return
      const log = await this.logTail()
      if (attempt < 4 && /could not bind IPv4 address.*Address already in use/.test(log)) {
        // Lost the race for the port with another process: take a fresh one.
        this.#port = await freePort()
        await this.configure({ port: String(this.#port) })
        continue
      }
      throw new Error(
        `PostgreSQL ${this.major} failed to start in ${this.dataDir}: ${failure}\n--- tail of ${this.logFile} ---\n${log}`,
      )
    }
  }

  /** One start attempt; returns why it failed, or undefined. */
  async #startOnce(wait: boolean, timeoutMs: number): Promise<string | undefined> {
    const { uid, gid } = postgresUser()
    const log = openSync(this.logFile, 'a')
    fchownSync(log, uid, gid)
    let child: ChildProcess
    try {
      child = spawn(join(this.binDir, 'postgres'), ['-D', this.dataDir, ...this.serverArgs], {
        uid,
        gid,
        cwd: this.dir.path,
        env: { ...process.env, HOME: this.dir.path, USER: OS_USER, LOGNAME: OS_USER, LC_ALL: 'C' },
        stdio: ['ignore', log, log],
        detached: true, // own session: a ^C meant for the test run must not reach the server first
      })
    } finally {
      closeSync(log)
    }
    child.unref() // a running server must not keep the test process alive; cleanupAll() stops it
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined
    const exit = new Promise<void>((resolveExit) => {
      child.on('exit', (code, signal) => {
        exited = { code, signal }
        resolveExit()
      })
      child.on('error', () => {
        // spawn itself failed (e.g. binary missing): reported like an exit, the log tail tells the rest.
        exited = { code: null, signal: null }
        resolveExit()
      })
    })
    this.#postmaster = { child, exit }
    runningClusters.add(this)
    if (!wait) return undefined
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(25)) {
      if (exited !== undefined) {
        runningClusters.delete(this)
        return `postgres exited with ${exited.signal ?? exited.code}`
      }
      const lines = await readFile(join(this.dataDir, 'postmaster.pid'), 'utf8').then((t) => t.split('\n'), () => [])
      // Line 1 is the pid (a stale file from a killed server names another), line 8 the status (PostgreSQL >= 10).
      if (Number(lines[0]) === child.pid && ['ready', 'standby'].includes(lines[7]?.trim() ?? '')) return undefined
    }
    return `not ready after ${timeoutMs} ms`
  }

  async stop(mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.#closeClient()
    if (!this.isRunning()) {
      runningClusters.delete(this)
      return
    }
    const result = await this.#pgCtl(['-m', mode, '-w', '-t', '120', 'stop'])
    if (result.code !== 0) {
      throw new Error(`pg_ctl stop -m ${mode} failed (${result.code}): ${result.stderr}\n${await this.logTail()}`)
    }
    runningClusters.delete(this)
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.start()
  }

  /**
   * Simulates a crash: SIGKILL to the postmaster and its direct children at once (had only the postmaster died,
   * orphaned backends would keep the shared memory attached and the next start would refuse). Returns once they
   * are gone, so start() can run crash recovery right away. Grandchildren such as a running archive_command are
   * left to finish, as they would after a real postmaster crash.
   */
  async kill9(): Promise<void> {
    const pid = this.#postmasterPid()
    await this.#closeClient()
    runningClusters.delete(this)
    if (pid === undefined || !processAlive(pid)) return
    const children = childPids(pid)
    for (const target of [pid, ...children]) {
      try {
        process.kill(target, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    // Our own child is reaped by Node; wait for that so its pid is truly gone before the next start.
    if (this.#postmaster?.child.pid === pid) {
      this.#postmaster.child.ref() // unref'd since start: without this, waiting for it would not keep Node alive
      await this.#postmaster.exit
    }
    for (let waited = 0; [pid, ...children].some(processAlive); waited += 20) {
      if (waited > 10_000) throw new Error(`processes of the killed postmaster ${pid} did not exit`)
      await sleep(20)
    }
  }

  #postmasterPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
      return Number.isInteger(pid) && pid > 0 ? pid : undefined
    } catch {
      return undefined
    }
  }

  /** True when postmaster.pid names a live process (a stale file after kill9() does not count). */
  isRunning(): boolean {
    const pid = this.#postmasterPid()
    return pid !== undefined && processAlive(pid)
  }

  /** A new client to a database of this cluster; the caller ends it. */
  async connect(database = 'postgres'): Promise<pg.Client> {
    const client = new pg.Client({ host: this.socketDir, port: this.port, user: DB_USER, database })
    // Without a listener, the server going away (stop, kill9) would crash the test process with an 'error' event.
    client.on('error', () => {})
    await client.connect()
    return client
  }

  async #sharedClient(): Promise<pg.Client> {
    if (this.#client === undefined) {
      const client = await this.connect()
      client.on('error', () => {
        if (this.#client === client) this.#client = undefined
      })
      client.on('end', () => {
        if (this.#client === client) this.#client = undefined
      })
      this.#client = client
    }
    return this.#client
  }

  async #closeClient(): Promise<void> {
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => {})
  }

  /** Runs SQL on database postgres through one shared connection; for several statements, the last one's rows. */
  async query<Row extends QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]> {
    const client = await this.#sharedClient()
    const result = (await client.query<Row>(sql, params)) as pg.QueryResult<Row> | pg.QueryResult<Row>[]
    return Array.isArray(result) ? (result.at(-1)?.rows ?? []) : result.rows
  }

  /** Waits until recovery has finished and the server accepts writes (after a restore that promotes). */
  async waitWritable(timeoutMs = 30_000): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
      if ((await this.psqlScalar('select pg_is_in_recovery()::text')) === 'false') return
      await sleep(100)
    }
    throw new Error(`recovery did not finish within ${timeoutMs} ms\n${await this.logTail()}`)
  }

  /** First column of the first row in PostgreSQL's text form, like `psql -tAc`: '' for NULL or no row. */
  async psqlScalar(sql: string, params?: unknown[]): Promise<string> {
    const client = await this.#sharedClient()
    const result = await client.query<unknown[]>({
      text: sql,
      values: params,
      rowMode: 'array',
      types: { getTypeParser: () => (value: string) => value },
    })
    const value = result.rows[0]?.[0]
    return value === null || value === undefined ? '' : String(value)
  }

  /** The last lines of the server log, for error messages. */
  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '(no log file)\n')
    return text.split('\n').slice(-lines - 1).join('\n')
  }

  /** Stops the cluster and removes its folder if the cluster created it. */
  async destroy(): Promise<void> {
    await this.stop()
    if (this.#ownsDir) await this.dir.cleanup()
  }

  /** Last-resort synchronous stop for process exit. */
  stopImmediateSync(): void {
    this.#client = undefined
    if (!this.isRunning()) return
    spawnSync('runuser', ['-u', OS_USER, '--', join(this.binDir, 'pg_ctl'), '-D', this.dataDir, '-m', 'immediate', '-w', 'stop'], {
      cwd: tmpdir(),
      stdio: 'ignore',
      timeout: 60_000,
    })
  }
}

/** initdb a cluster (not started). */
export function createCluster(options: ClusterOptions): Promise<Cluster> {
  return Cluster.create(options)
}

/** Majors whose server binaries were found, ascending. */
export async function availableMajors(): Promise<number[]> {
  return [...(await pgBinDirs()).keys()]
}

// ---------------------------------------------------------------------------------------------------------------
// Comparable snapshots

/** A pg_dump able to dump this server: pg_dump refuses servers newer than itself. */
async function pgDumpFor(major: number): Promise<string | undefined> {
  for (const [dumpMajor, dir] of await pgBinDirs()) {
    const pgDump = join(dir, 'pg_dump')
    if (dumpMajor < major) continue
    try {
      accessSync(pgDump, constants.X_OK)
      return pgDump
    } catch {
      // This bin folder has no client tools (the npm-shipped servers don't).
    }
  }
  return undefined
}

/**
 * A text snapshot of a database, equal for equal contents. Two paths, chosen per server:
 * - pg_dump when one of at least the server's major exists (here Debian's 15, so servers 13..15): the reference
 *   tool, covering every object kind. pg_dump >= 15.14 writes `\restrict <random key>` / `\unrestrict <key>`
 *   lines, which are dropped so two dumps of the same data compare equal.
 * - otherwise (servers 16+ here: the npm packages ship no pg_dump) a catalog query: user schemas, relations,
 *   columns and types, indexes, view definitions, each table's rows ordered by their text form, and sequences'
 *   last_value.
 * Sequences can legitimately jump ahead after crash recovery (the server logs them 32 values ahead), in both paths.
 */
export async function dumpDatabase(cluster: Cluster, db = 'postgres'): Promise<string> {
  const pgDump = await pgDumpFor(cluster.major)
  if (pgDump !== undefined) {
    const out = await runChecked(pgDump, ['-h', cluster.socketDir, '-p', String(cluster.port), '-U', DB_USER, '-d', db], {
      asUser: 'root',
      timeoutMs: 300_000,
    })
    return out
      .split('\n')
      .filter((line) => !line.startsWith('\\restrict') && !line.startsWith('\\unrestrict'))
      .join('\n')
  }
  return sqlDump(cluster, db)
}

const USER_NAMESPACES = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'`

async function sqlDump(cluster: Cluster, db: string): Promise<string> {
  const client = await cluster.connect(db)
  try {
    const lines: string[] = []
    // Everything as text, so the output does not depend on pg's type parsers.
    const rows = async (sql: string): Promise<string[][]> =>
      (
        await client.query<string[]>({ text: sql, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } })
      ).rows
    const section = async (title: string, sql: string): Promise<void> => {
      lines.push(`-- ${title}`)
      for (const row of await rows(sql)) lines.push(row.map((v) => (v === null ? '\\N' : v)).join('\t'))
    }
    await section('schemas', `SELECT n.nspname FROM pg_namespace n WHERE ${USER_NAMESPACES} ORDER BY 1`)
    await section(
      'relations',
      `SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE ${USER_NAMESPACES} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') ORDER BY 1, 2`,
    )
    await section(
      'columns',
      `SELECT n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(d.adbin, d.adrelid)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE ${USER_NAMESPACES} AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY 1, 2, 3`,
    )
    await section('indexes', `SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes n
       WHERE ${USER_NAMESPACES.replaceAll('n.nspname', 'n.schemaname')} ORDER BY 1, 2, 3`)
    await section('views', `SELECT schemaname, viewname, definition FROM pg_views n
       WHERE ${USER_NAMESPACES.replaceAll('n.nspname', 'n.schemaname')} ORDER BY 1, 2`)
    await section('sequences', `SELECT schemaname, sequencename, last_value FROM pg_sequences n
       WHERE ${USER_NAMESPACES.replaceAll('n.nspname', 'n.schemaname')} ORDER BY 1, 2`)
    // Plain and materialized tables; a partitioned parent has no rows of its own (ONLY skips its partitions,
    // which are listed themselves).
    const tables = await rows(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_NAMESPACES} AND c.relkind IN ('r', 'm') ORDER BY 1`,
    )
    for (const [table] of tables) {
      // Ordering by the row's text form works for every column type (json, point, ... have no btree ordering)
      // and, with the C collation, does not depend on the database locale.
      await section(`data ${table}`, `SELECT t::text FROM ONLY ${table} t ORDER BY t::text COLLATE "C"`)
    }
    return `${lines.join('\n')}\n`
  } finally {
    await client.end().catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Clean-up

/** Stops every cluster and removes every temp folder this process created. */
export async function cleanupAll(): Promise<void> {
  for (const cluster of [...runningClusters]) await cluster.stop().catch(() => cluster.stopImmediateSync())
  for (const path of [...liveDirs]) {
    liveDirs.delete(path)
    if (!keepDirs) await removeTree(path)
  }
}

// Registered once per test file that imports the harness: runs after all of the file's tests, passed or failed,
// so a forgotten stop() neither leaks a server nor keeps the file's process alive through an open client.
after(cleanupAll)

// Last resort when the process ends some other way (uncaught error, process.exit): only synchronous work runs here.
process.on('exit', () => {
  for (const cluster of runningClusters) cluster.stopImmediateSync()
  if (!keepDirs) for (const path of liveDirs) rmSync(path, { recursive: true, force: true })
})
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  // Signals skip 'exit' handlers by default; turn them into an exit so the clusters still stop.
  process.once(signal, () => process.exit(128 + number))
}
