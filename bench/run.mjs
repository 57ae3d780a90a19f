#!/usr/bin/env node
// `npm run bench`: walden and pgBackRest side by side on the same throwaway PostgreSQL cluster (issue #3).
//
//   node bench/run.mjs [--scale=100] [--runs=5] [--scenarios=1,2,3,4,5,6,7,8,9] [--keep] [--dir=/tmp] [--mirror-seconds=30]
//                      [--compress-type=lz4] [--memory-scales=10,SCALE] [--walden=worktree|head|dist] [--no-install]
//                      [--docs|--no-docs] [--repo-type=posix|s3|ssh]
//   node bench/run.mjs --staging [--scale=100] [--runs=3] [--memory-scales=10,SCALE] [--keep] [--dir=/tmp] [--walden=...]
//
// Builds a cluster (pgbench at --scale, data checksums on) archiving into both tools' repositories, then runs each
// scenario with both tools alternating, --runs times each, measuring wall time, CPU time and peak memory of the whole
// process tree (bench/lib/measure.py). Writes bench/results/<date>.json, bench/results/latest.md and, for a run of
// every scenario, docs/benchmarks.md. Everything temporary lives in one folder, removed at the end unless --keep.
//
// With --repo-type=s3 (issue #12) both tools keep their repositories in buckets of one local Ceph RADOS Gateway
// (test/harness/ceph-s3.sh, started here and destroyed at the end), reached over HTTPS; the scenarios are those that
// make sense there (1, 3, 5 and 10, walden's fan-out to two repositories), and the report goes to
// bench/results/latest-s3.md and the "S3 repository" section of docs/benchmarks.md.
//
// With --repo-type=ssh (issue #13) both tools are set up as pgBackRest's "dedicated repository host": one local
// sshd (bench/lib/sshd.mjs), the repositories owned by the backup host's user walden-repo, the cluster by postgres.
// Backups run on the backup host (pg1-host), restores and archive-push on the database host (repo1-host); the
// scenarios are 1, 3, 5 (one synchronous push) and 7 (memory of both ends at two scales), and the report goes to
// bench/results/latest-ssh.md and the "Backup host over SSH" section of docs/benchmarks.md.
//
// With --staging (issue #14) the bench measures staging copies instead (bench/lib/staging.mjs): staging-link in each
// of its three ways until the copy is ACTIVE and caught up, staging-snapshot, and clone-create until the clone accepts
// writes against a plain restore + start of the same snapshot, with peak memory at two scales; no pgBackRest. The
// report goes to bench/results/latest-staging.md and the "Staging copies and clones" section of docs/benchmarks.md.
//
// Run as root: PostgreSQL and both tools then run as the `postgres` user (PostgreSQL refuses root), and pgBackRest
// is installed with apt-get if missing. As another user everything runs as that user, and without pgBackRest only
// walden's figures are reported.

import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { archiverCatchUp, ownedFolder, pgbenchLoad, sourceClusterCreate, stopAllServersSync } from './lib/cluster.mjs'
import { BENCH_DIR, BenchError, childEnvSet, heading, IS_ROOT, killLiveChildren, measureSetup, run, RUN_USER, say } from './lib/proc.mjs'
import { machineInfo, markdownReport } from './lib/report.mjs'
import { mirrorMarkdown } from './lib/mirror.mjs'
import { S3_SCENARIOS, SCENARIOS, SSH_SCENARIOS } from './lib/scenarios.mjs'
import { S3_UPLOAD_CHUNK, sshStanzaCreate, sshToolsSetup, TOOL_LABEL, toolsSetup } from './lib/tools.mjs'
import { Gateway, gatewaysDestroy, gatewaysDestroySync } from './lib/gateway.mjs'
import { REPO_USER, SshHost, sshHostsStop } from './lib/sshd.mjs'
import { stagingMarkdown, stagingNotes, stagingScale } from './lib/staging.mjs'

const REPO_ROOT = resolve(BENCH_DIR, '..')
const PG_BIN_DEFAULT = '/usr/lib/postgresql/15/bin'
const POSIX_SCENARIOS = [1, 2, 3, 4, 5, 6, 7, 8, 9]
/** On S3, scenario 10 (fan-out) runs before 5: scenario 5 adds about 1 GB to the cluster, and 10 compares with 1. */
const S3_ORDER = (scenario) => (scenario === 10 ? 4.5 : scenario)

// ---------------------------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: npm run bench -- [options]

  --scale=N            pgbench scale of the cluster (default 100, about 1.6 GB)
  --runs=N             runs per tool per case (default 5; 3 with --staging)
  --scenarios=LIST     which scenarios, e.g. 1,3,5 (default all: 1 full backup, 2 incremental, 3 restore,
                       4 delta restore, 5 archive-push, 6 archive-get and replay, 7 memory, 8 table mirroring,
                       9 encrypted against plain full backup (walden only);
                       8 alone, e.g. --scenarios=8, builds no backup cluster and needs no pgBackRest)
  --mirror-seconds=N   length of each pgbench phase of scenario 8 (default 30)
  --compress-type=T    compression for every scenario but 1, which runs lz4 and zst (default lz4)
  --memory-scales=LIST scales for scenario 7 (default 10 and --scale)
  --dir=PATH           where to create the temporary folder (default ${tmpdir()})
  --keep               keep the temporary folder (clusters stopped) for inspection
  --walden=SOURCE      which walden to measure, built into the temporary folder so the checkout is untouched:
                       worktree (default: src/ as it is now), head (the last commit), or dist (the checkout's
                       already built dist/, same as --no-build)
  --no-install         do not apt-get install pgBackRest when it is missing
  --docs / --no-docs   write docs/benchmarks.md (default: only when every scenario ran)
  --pg-bin=PATH        PostgreSQL binaries (default ${PG_BIN_DEFAULT})
  --repo-type=TYPE     posix (default): repositories in folders; s3: each tool's repository in its own bucket of one
                       local Ceph gateway over HTTPS (issue #12), scenarios 1 (full backup, --compress-type, process-max 2),
                       3, 5 (async 64 segments) and 10 (walden's backup --repo=all to the bucket and a folder against
                       the bucket alone); default all four; ssh: pgBackRest's dedicated repository host through one
                       local sshd, the repositories owned by the user walden-repo (issue #13), scenarios 1 (full backup
                       run on the backup host), 3 (restore on the database host), 5 (one synchronous archive-push, 20
                       per run) and 7 (peak memory of both ends at two scales); default all four
  --staging            staging copies and clones instead of the scenarios (issue #14, walden alone): staging-link in
                       each way (walden-initiated; external tar and plain backup + WAL folder; external tar backup +
                       streaming) until ACTIVE and caught up, the user's pg_basebackup timed apart, staging-snapshot,
                       clone-create until the clone accepts writes against walden restore + pg_ctl start of the same
                       snapshot; --runs (default 3) runs at --scale, one more at each other --memory-scales scale;
                       takes --scale, --runs, --memory-scales, --dir, --keep, --walden, --pg-bin, --docs/--no-docs
`

const REPO_TYPE_SCENARIOS = { posix: POSIX_SCENARIOS, s3: S3_SCENARIOS, ssh: SSH_SCENARIOS }

function parseArgs(argv) {
  const opts = { staging: false, scale: 100, runs: undefined, mirrorSeconds: 30, scenarios: undefined, keep: false, dir: tmpdir(), compressType: 'lz4', walden: 'worktree', install: true, docs: undefined, pgBin: PG_BIN_DEFAULT, memoryScales: undefined, repoType: 'posix' }
  const int = (name, value, min) => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min) throw new BenchError(`--${name} must be an integer ≥ ${min}, not '${value}'`)
    return n
  }
  for (const arg of argv) {
    const [, name, value] = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg) ?? []
    switch (name) {
      case 'scale': opts.scale = int(name, value, 1); break
      case 'runs': opts.runs = int(name, value, 1); break
      case 'mirror-seconds': opts.mirrorSeconds = int(name, value, 5); break
      case 'scenarios':
        opts.scenarios = [...new Set(String(value).split(',').map((s) => int(name, s.trim(), 1)))].sort((a, b) => a - b)
        for (const s of opts.scenarios) if (!SCENARIOS[s]) throw new BenchError(`--scenarios: there is no scenario ${s} (1 to 10)`)
        break
      case 'repo-type':
        if (!['posix', 's3', 'ssh'].includes(value)) throw new BenchError('--repo-type must be posix, s3 or ssh')
        opts.repoType = value
        break
      case 'memory-scales': opts.memoryScales = [...new Set(String(value).split(',').map((s) => int(name, s.trim(), 1)))]; break
      case 'compress-type':
        if (!['lz4', 'zst', 'gz', 'none'].includes(value)) throw new BenchError(`--compress-type must be lz4, zst, gz or none`)
        opts.compressType = value
        break
      case 'dir': opts.dir = resolve(value); break
      case 'pg-bin': opts.pgBin = resolve(value); break
      case 'keep': opts.keep = true; break
      case 'staging': opts.staging = true; break
      case 'walden':
        if (!['worktree', 'head', 'dist'].includes(value)) throw new BenchError('--walden must be worktree, head or dist')
        opts.walden = value
        break
      case 'no-build': opts.walden = 'dist'; break
      case 'no-install': opts.install = false; break
      case 'docs': opts.docs = true; break
      case 'no-docs': opts.docs = false; break
      case 'help':
        process.stdout.write(USAGE)
        process.exit(0)
      // falls through
      default:
        throw new BenchError(`unknown argument '${arg}'\n\n${USAGE}`)
    }
  }
  if (opts.staging) {
    if (opts.scenarios || opts.repoType !== 'posix') throw new BenchError('--staging runs its own cases: it takes neither --scenarios nor --repo-type')
    opts.runs ??= 3
    opts.scenarios = []
    opts.memoryScales ??= [...new Set([10, opts.scale])]
    opts.docs ??= true
    return opts
  }
  opts.runs ??= 5
  const all = REPO_TYPE_SCENARIOS[opts.repoType]
  opts.scenarios ??= all
  const misfits = opts.scenarios.filter((scenario) => !all.includes(scenario))
  if (misfits.length > 0) {
    throw new BenchError(`--scenarios: ${misfits.join(', ')} cannot run with --repo-type=${opts.repoType} (it runs ${all.join(', ')})`)
  }
  if (opts.repoType === 's3') opts.scenarios.sort((a, b) => S3_ORDER(a) - S3_ORDER(b))
  opts.memoryScales ??= [...new Set([10, opts.scale])]
  opts.docs ??= opts.scenarios.length === all.length
  return opts
}

// ---------------------------------------------------------------------------------------------------------------
// Clean-up: whatever ends the bench, servers stop and the temporary folder goes (unless --keep).

let root
let keep = false
let pgBin = PG_BIN_DEFAULT
let cleaned = false
let interrupted = false
let cleaning
/**
 * One clean-up, however many ask for it: a signal starts it, and main's failure (its cluster or gateway just went away
 * under it) asks again; both must wait for the same one to finish before the process exits.
 */
function cleanup() {
  cleaning ??= cleanupOnce()
  return cleaning
}
async function cleanupOnce() {
  cleaned = true
  killLiveChildren()
  stopAllServersSync(pgBin)
  sshHostsStop({ keep: keep && Boolean(root) })
  const restart = await gatewaysDestroy({ keep: keep && Boolean(root) }).catch(() => [])
  if (root && !keep) await rm(root, { recursive: true, force: true }).catch(() => undefined)
  else if (root) say(`kept ${root}`)
  for (const command of restart) say(`the S3 gateway is stopped with its data; start it again with: ${command}`)
}
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.on(signal, () => {
    interrupted = true
    process.stderr.write(`\nbench: interrupted (${signal}); stopping clusters and cleaning up\n`)
    void cleanup().finally(() => process.exit(128 + number))
  })
}
process.on('exit', () => {
  if (!cleaned) stopAllServersSync(pgBin)
  sshHostsStop({ keep })
  gatewaysDestroySync()
})

// ---------------------------------------------------------------------------------------------------------------
// Preflight

async function which(name) {
  const { code, stdout } = await run('sh', ['-c', `command -v ${name}`], { owner: false, allowFail: true })
  return code === 0 ? stdout.trim() : undefined
}

async function pgbackrestFind(opts) {
  let bin = await which('pgbackrest')
  if (bin) return bin
  if (!IS_ROOT || !opts.install || !(await which('apt-get'))) {
    say('pgBackRest is not installed' + (IS_ROOT ? '' : ' (run as root to have the bench install it)') + ': reporting walden alone')
    return undefined
  }
  say('installing pgBackRest: apt-get install -y pgbackrest')
  const env = { DEBIAN_FRONTEND: 'noninteractive' }
  let result = await run('apt-get', ['install', '-y', 'pgbackrest'], { owner: false, allowFail: true, env })
  if (result.code !== 0) {
    await run('apt-get', ['update'], { owner: false, allowFail: true, env })
    result = await run('apt-get', ['install', '-y', 'pgbackrest'], { owner: false, allowFail: true, env })
  }
  bin = await which('pgbackrest')
  if (!bin) say(`could not install pgBackRest (apt-get exit code ${result.code}): reporting walden alone`)
  return bin
}

/** Bytes the bench needs on disk, roughly: the cluster three times over (source, two restored copies), its WAL,
 * two repositories and the 64 collected segments. */
function diskNeeded(opts) {
  const cluster = opts.scale * 16e6 + 50e6
  // Staging: the source, its backup, the staging copy, two snapshots, a clone or a restored copy, and the WAL folder.
  if (opts.staging) return 6 * cluster + 2e9
  const memory = opts.memoryScales.filter((s) => s !== opts.scale).reduce((sum, s) => sum + 3 * (s * 16e6 + 50e6), 0)
  return 4.5 * cluster + 3.5e9 + memory
}

async function diskCheck(dir, opts) {
  const { stdout } = await run('df', ['-P', '-B1', dir], { owner: false })
  const avail = Number(stdout.trim().split('\n').at(-1).split(/\s+/)[3])
  const need = diskNeeded(opts)
  say(`disk: ${(avail / 1e9).toFixed(1)} GB free in ${dir}, about ${(need / 1e9).toFixed(1)} GB needed at scale ${opts.scale}`)
  if (avail < need) throw new BenchError(`not enough disk space in ${dir}: ${(avail / 1e9).toFixed(1)} GB free, about ${(need / 1e9).toFixed(1)} GB needed (use --dir or a smaller --scale)`)
}

/** A private copy of walden to benchmark, so a rebuild of the checkout during a long run changes nothing. */
async function waldenSnapshot(opts) {
  const dest = join(root, 'walden')
  await mkdir(join(dest, 'bin'), { recursive: true })
  await cp(join(REPO_ROOT, 'package.json'), join(dest, 'package.json'))
  await symlink(join(REPO_ROOT, 'node_modules'), join(dest, 'node_modules'))
  if (opts.walden === 'worktree' || opts.walden === 'head') {
    const entries = ['src', 'scripts', 'native', 'tsconfig.json']
    if (opts.walden === 'head') {
      say('building walden as committed (git archive HEAD, then scripts/build.mjs, in the temporary folder)')
      // git archive only reads the repository.
      await run('sh', ['-c', `git -C ${REPO_ROOT} archive --format=tar HEAD ${entries.join(' ')} | tar -x -C ${dest}`], { owner: false, what: 'git archive HEAD' })
    } else {
      say('building walden from the working tree (a copy of src/, then scripts/build.mjs, in the temporary folder)')
      for (const entry of entries) {
        // native/*/build is the checkout's own build output: the snapshot builds its addon afresh from the sources.
        const source = join(REPO_ROOT, entry)
        if (existsSync(source)) await cp(source, join(dest, entry), { recursive: true, filter: (path) => !/\/native\/[^/]+\/build(\/|$)/.test(path) })
      }
    }
    await run(process.execPath, [join(dest, 'scripts', 'build.mjs')], { owner: false, cwd: dest, what: 'walden build' })
  } else {
    if (!existsSync(join(REPO_ROOT, 'dist', 'cli.mjs'))) throw new BenchError('walden is not built: run `npm run build`, or drop --no-build')
    await cp(join(REPO_ROOT, 'dist'), join(dest, 'dist'), { recursive: true })
    for (const name of readdirSync(join(REPO_ROOT, 'native')).filter((entry) => existsSync(join(REPO_ROOT, 'native', entry, 'binding.gyp')))) {
      const addon = join('native', name, 'build', 'Release', `walden_${name}.node`)
      if (existsSync(join(REPO_ROOT, addon))) await cp(join(REPO_ROOT, addon), join(dest, addon), { recursive: true })
    }
  }
  await cp(join(REPO_ROOT, 'bin', 'walden'), join(dest, 'bin', 'walden'))
  await cp(join(REPO_ROOT, 'bin', 'walden-archive-push'), join(dest, 'bin', 'walden-archive-push'))
  await cp(join(REPO_ROOT, 'bin', 'walden-archive-get'), join(dest, 'bin', 'walden-archive-get'))
  await run('chmod', ['-R', 'a+rX', dest], { owner: false })
  const program = [process.execPath, [join(dest, 'bin', 'walden')]]
  const { stdout } = await run(program[0], [...program[1], 'version'], { what: 'walden version' })
  // Read-only git queries (no index refresh) describing what was measured.
  const git = async (args) => (await run('git', ['--no-optional-locks', '-C', REPO_ROOT, ...args], { owner: false, allowFail: true })).stdout.trim()
  const commit = await git(['rev-parse', '--short', 'HEAD'])
  const dirty = (await git(['status', '--porcelain', '--', 'src', 'scripts', 'native', 'package.json'])).split('\n').filter(Boolean).length
  const source =
    opts.walden === 'head'
      ? `commit ${commit}`
      : opts.walden === 'dist'
        ? `prebuilt dist/ of the checkout at ${commit}${dirty ? ` + ${dirty} uncommitted change(s)` : ''}`
        : `${commit || 'unknown commit'}${dirty ? ` + ${dirty} uncommitted change(s) in src/` : ''}`
  return { program, version: stdout.trim(), source }
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  keep = opts.keep
  pgBin = opts.pgBin
  const commandLine = ['npm run bench --', ...process.argv.slice(2)].join(' ')

  const s3 = opts.repoType === 's3'
  const ssh = opts.repoType === 'ssh'
  heading(`walden bench: scale ${opts.scale}, ${opts.runs} run(s), ${opts.staging ? 'staging copies and clones' : `scenarios ${opts.scenarios.join(',')}`}${s3 ? ', repositories in S3' : ssh ? ', repositories on a backup host over SSH' : ''}`)
  for (const tool of ['initdb', 'pg_ctl', 'postgres', 'pgbench', 'psql', ...(opts.staging ? ['pg_basebackup'] : [])]) {
    if (!existsSync(join(opts.pgBin, tool))) {
      throw new BenchError(`${join(opts.pgBin, tool)} is missing: the bench uses Debian's PostgreSQL 15 (apt-get install postgresql-15; see .ci/run), or give --pg-bin`)
    }
  }
  if (IS_ROOT) {
    const { code } = await run('id', ['-u', RUN_USER], { owner: false, allowFail: true })
    if (code !== 0) throw new BenchError(`running as root needs the '${RUN_USER}' user (PostgreSQL refuses root): install postgresql-15 or create the user (see .ci/run)`)
  }
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
  // Scenario 8 (table mirroring) has a cluster of its own and involves no backup tool.
  const backupScenarios = opts.scenarios.some((scenario) => scenario <= 7 || scenario >= 9)
  const pgbackrestBin = backupScenarios ? await pgbackrestFind(opts) : undefined
  if (pgbackrestBin) say(`pgBackRest: ${pgbackrestBin}`)

  await mkdir(opts.dir, { recursive: true })
  await diskCheck(opts.dir, opts)
  root = await mkdtemp(join(opts.dir, 'walden-bench-'))
  // Owned by the cluster owner, who writes server logs and scripts' output next to the data folders.
  await ownedFolder(root, 0o755)
  say(`temporary folder: ${root}${opts.keep ? ' (kept)' : ''}`)
  const home = await ownedFolder(join(root, 'home'))
  childEnvSet(home)
  measureSetup(await ownedFolder(join(root, 'measure'), 0o777), python)
  const { code: pyCode } = await run(python, ['-c', 'import ctypes, os; os.wait4'], { allowFail: true })
  if (pyCode !== 0) throw new BenchError(`${python} cannot be run as ${IS_ROOT ? RUN_USER : 'this user'}: the bench measures through bench/lib/measure.py`)
  // The cluster owner reads bench/lib/measure.py from the checkout.
  const waldenSnap = await waldenSnapshot(opts)
  say(`walden: ${waldenSnap.version} (${waldenSnap.source})`)

  const socketDir = await ownedFolder(join(root, 'sock'), 0o755)
  let portSeq = 0
  const basePort = 20000 + (process.pid % 20000)
  const nextPort = () => basePort + ++portSeq

  if (opts.staging) return stagingMain({ opts, commandLine, socketDir, waldenSnap })

  // The S3 gateway: in the temporary folder, destroyed by cleanup() however the bench ends.
  let gateway
  let buckets
  if (s3) {
    heading('S3: a local Ceph RADOS Gateway (ceph-s3.sh), one bucket per tool, HTTPS with a self-signed certificate')
    gateway = await Gateway.start(root)
    buckets = { walden: await gateway.bucketCreate('walden-bench'), pgbackrest: await gateway.bucketCreate('pgbackrest-bench') }
    say(`gateway: https://127.0.0.1:${gateway.tlsPort} (and http://127.0.0.1:${gateway.rgwPort} for the bench's own awscli), buckets ${Object.values(buckets).join(', ')}`)
  }

  // The SSH server: in the temporary folder, stopped by cleanup() however the bench ends.
  let sshd
  if (ssh) {
    heading(`SSH: a local sshd, the backup host's user ${REPO_USER} owning the repositories, postgres the cluster`)
    sshd = await SshHost.start(root)
    say(`sshd: 127.0.0.1:${sshd.port}, ssh client ${(await run('ssh', ['-V'], { owner: false, allowFail: true })).stderr.trim()}`)
  }

  let setup
  let server
  if (backupScenarios) {
    heading(`source cluster: PostgreSQL 15, pgbench scale ${opts.scale}, data checksums on`)
    const port = basePort
    const dataDir = join(root, 'pgdata')
    setup = await (ssh ? sshToolsSetup : toolsSetup)({
      root,
      name: 'main',
      stanza: 'bench',
      dataDir,
      port,
      socketDir,
      waldenProgram: waldenSnap.program,
      pgbackrestBin,
      compressType: opts.compressType,
      s3: s3 ? { gateway, buckets } : undefined,
      sshd,
    })
    server = await sourceClusterCreate({ pgBin: opts.pgBin, dataDir, port, socketDir, logFile: join(root, 'pgdata.log'), archiveCommand: setup.archiveCommand })
    for (const tool of Object.values(setup.tools)) {
      const where = ssh ? await sshStanzaCreate(tool) : (await tool.run('stanza-create'), undefined)
      say(`${tool.label}: stanza created in ${tool.bucket ? `s3://${tool.bucket}${tool.repoPath}` : tool.repoPath}${where ? ` (from ${where})` : ''}`)
      if (tool.backupPending) say(`${tool.label}: backups from the backup host pending: ${tool.backupPending}`)
    }
    await pgbenchLoad(server, opts.scale)
    await archiverCatchUp(server)
    // Warm the page cache with the whole cluster so run 1 reads from memory like every later run.
    await run('sh', ['-c', `find ${dataDir} -type f -exec cat {} + > /dev/null 2>&1`], { owner: false, allowFail: true })
  }

  const ctx = {
    opts,
    root,
    pgBin: opts.pgBin,
    socketDir,
    nextPort,
    pgbackrestBin,
    waldenProgram: waldenSnap.program,
    main: { ...setup, server },
    gateway,
    sshd,
    cases: [],
    notes: [],
    state: { full: {}, memoryCases: {} },
    label: (kind) => TOOL_LABEL[kind],
  }

  let failure
  const started = Date.now()
  for (const scenario of opts.scenarios) {
    try {
      await SCENARIOS[scenario](ctx)
    } catch (error) {
      if (!(error instanceof BenchError)) throw error
      // One scenario failing should not lose the others' figures.
      failure ??= error
      process.stderr.write(`\nbench: scenario ${scenario} failed: ${error.message}\n`)
      ctx.notes.push(`scenario ${scenario} failed: ${error.message.split('\n')[0]}`)
    }
  }

  if (server) {
    const archiverFailures = await server.sql('select failed_count from pg_stat_archiver')
    if (archiverFailures !== '0') ctx.notes.push(`the source cluster's archive_command failed ${archiverFailures} time(s) (see its log); PostgreSQL retried`)
    await server.stop('fast')
  }

  // Report.
  heading(`results (${((Date.now() - started) / 60000).toFixed(1)} min)`)
  const machine = await machineInfo({ dir: root, pgBin: opts.pgBin, pgbackrestBin, waldenVersion: waldenSnap.version, waldenSource: waldenSnap.source })
  if (s3) machine.gateway = (await run('radosgw', ['--version'], { owner: false, allowFail: true })).stdout.trim().replace(/^ceph version (\S+).*$/s, 'Ceph RGW $1')
  if (ssh) machine.ssh = `${(await run('ssh', ['-V'], { owner: false, allowFail: true })).stderr.trim()}; ${(await run('/usr/sbin/sshd', ['-V'], { owner: false, allowFail: true })).stderr.trim().split('\n')[0]}`
  if (!pgbackrestBin && backupScenarios) ctx.notes.push('pgBackRest was not installed: walden alone, no ratios')
  if (backupScenarios && (opts.scale < 100 || opts.runs < 5)) {
    ctx.notes.push(
      `scale ${opts.scale} with ${opts.runs} run(s) is not the reference configuration (scale 100, 5 runs): at a small scale fixed costs (process start-up, connecting, the checkpoint, waiting for the archive) dominate, and with few runs one slow moment of the machine decides a figure; read the targets accordingly`,
    )
  }
  if (backupScenarios && machine.cores <= 2) {
    ctx.notes.push(
      ssh
        ? `a ${machine.cores}-core machine: both hosts are this machine, so each tool's two ends, both ssh processes of every session and sshd's encryption share the same cores with PostgreSQL; figures are noisier than between two hosts, and a tool that keeps both ends busy at once pays for it here`
        : s3
        ? `a ${machine.cores}-core machine: with process-max 2 the tools compete with PostgreSQL, with the gateway (radosgw and its OSD run on the same cores and do the TLS, hashing and storing of every request) and with each other's leftovers; figures are noisier than on a larger host, and a faster tool also makes the gateway work faster`
        : `a ${machine.cores}-core machine: with process-max 2 the tools compete with PostgreSQL and with each other's leftovers (page cache writeback) for the same cores; figures are noisier than on a larger host`,
    )
  }
  const repoText = ssh
    ? `pgBackRest's dedicated repository host on one machine: one OpenSSH server on a loopback port (${machine.ssh}), the same ssh client, key and options for both tools (so the same cipher); the database host is the user postgres (cluster, restores, archive-push with repo1-host), the backup host the user ${REPO_USER} (repositories, mode 0750, and backups with pg1-host); a timed command runs its far ends under /usr/bin/time (repo1-host-cmd or pg1-host-cmd set to a wrapper), which adds one exec per session to both tools. The far-end columns are those processes (walden remote, pgBackRest's remote), one per SSH session: CPU is their user + system time, peak RSS the sum of each one's own peak (they run side by side, one per worker, so this bounds their peak together); the other columns are the command's side, its ssh clients included, and neither includes sshd's own encryption work`
    : s3
    ? `repositories in S3: one bucket per tool on one local Ceph RADOS Gateway (${machine.gateway ?? 'radosgw'}, OSD on memstore, so objects live in RAM) reached over HTTPS at 127.0.0.1 with a self-signed certificate (repo1-storage-verify-tls=n), path-style, region us-east-1, repo1-storage-upload-chunk-size=${S3_UPLOAD_CHUNK} for both (pgBackRest's own default is 5 MiB); the gateway's CPU is not in the tools' CPU figures (the case notes give it), the cluster on local disk`
    : 'repositories and cluster on the same disk'
  const commonText =
    `compression ${opts.compressType} level ${opts.compressType === 'zst' ? 3 : 1} and process-max 2 unless the case says otherwise (same explicit --compress-type/--compress-level/--process-max for both tools), ` +
    `start-fast, repo1-retention-full=2 (expiry runs after each backup, as both tools do by default), ${repoText}, page cache warm, \`sync\` before each timed command`
  const settings = { commandLine, scale: opts.scale, runs: opts.runs, scenarios: opts.scenarios, commonText, repoType: opts.repoType }
  const sections = ctx.mirror ? [mirrorMarkdown(ctx.mirror)] : []
  const layout = s3 ? { targetsTitle: 'Targets (issue #12)', titles: S3_TITLES } : ssh ? { targetsTitle: 'Targets (issue #13)', titles: SSH_TITLES } : {}
  const markdown = markdownReport({ machine, settings, cases: ctx.cases, notes: ctx.notes, hasPgbackrest: Boolean(pgbackrestBin), sections, ...layout })
  process.stdout.write(`\n${markdown}\n`)

  const resultsDir = join(BENCH_DIR, 'results')
  await mkdir(resultsDir, { recursive: true })
  const stamp = machine.date.replace(/[:.]/g, '-')
  const json = { machine, settings, cases: ctx.cases.map((c) => c.toJSON()), mirror: ctx.mirror, notes: ctx.notes }
  const suffix = s3 || ssh ? `-${opts.repoType}` : ''
  const jsonName = `${stamp}${suffix}.json`
  const latestName = `latest${suffix}.md`
  await writeFile(join(resultsDir, jsonName), JSON.stringify(json, null, 2) + '\n')
  await writeFile(join(resultsDir, latestName), `# walden vs pgBackRest: latest bench run${s3 ? ', repositories in S3' : ssh ? ', backup host over SSH' : ''}\n\n${markdown}\n`)
  say(`wrote bench/results/${jsonName} and bench/results/${latestName}`)
  if (opts.docs && !failure) {
    await docsWrite(markdown, opts.repoType)
    say(`wrote docs/benchmarks.md${s3 || ssh ? ` (section "${DOCS_SECTIONS[opts.repoType]}")` : ''}`)
  } else {
    const why = failure ? 'a scenario failed' : opts.scenarios.length < REPO_TYPE_SCENARIOS[opts.repoType].length ? 'not every scenario ran; --docs forces it' : '--no-docs'
    say(`docs/benchmarks.md not updated (${why})`)
  }
  if (failure) throw failure
}

/** --staging (issue #14): every scale in turn, smallest first, then the report. */
async function stagingMain({ opts, commandLine, socketDir, waldenSnap }) {
  const ctx = { opts, root, pgBin: opts.pgBin, socketDir, waldenProgram: waldenSnap.program }
  const started = Date.now()
  const scales = [...new Set([...opts.memoryScales, opts.scale])].sort((a, b) => a - b)
  const results = []
  for (const scale of scales) results.push(await stagingScale(ctx, scale, scale === opts.scale ? opts.runs : 1))
  const main = results.find((result) => result.scale === opts.scale)
  const others = results.filter((result) => result !== main)

  heading(`results (${((Date.now() - started) / 60000).toFixed(1)} min)`)
  const machine = await machineInfo({ dir: root, pgBin: opts.pgBin, waldenVersion: waldenSnap.version, waldenSource: waldenSnap.source })
  const notes = stagingNotes({ machine, opts })
  const markdown = stagingMarkdown({ machine, commandLine, main, others, notes })
  process.stdout.write(`\n${markdown}\n`)

  const resultsDir = join(BENCH_DIR, 'results')
  await mkdir(resultsDir, { recursive: true })
  const jsonName = `${machine.date.replace(/[:.]/g, '-')}-staging.json`
  await writeFile(join(resultsDir, jsonName), JSON.stringify({ machine, commandLine, results, notes }, null, 2) + '\n')
  await writeFile(join(resultsDir, 'latest-staging.md'), `# walden staging copies and clones: latest bench run\n\n${markdown}\n`)
  say(`wrote bench/results/${jsonName} and bench/results/latest-staging.md`)
  const failed = results.some((result) => result.failures.length > 0)
  if (opts.docs && !failed) {
    await docsWrite(markdown, 'staging')
    say(`wrote docs/benchmarks.md (section "${DOCS_SECTIONS.staging}")`)
  } else {
    say(`docs/benchmarks.md not updated (${failed ? 'a case failed' : '--no-docs'})`)
  }
  if (failed) throw new BenchError(`${results.flatMap((result) => result.failures).length} case(s) failed; see the notes above`)
}

const S3_TITLES = {
  1: '1. Full backup into S3',
  3: '3. Restore from S3 into an empty folder',
  5: '5. archive-push into S3',
  10: '10. Fan-out: one backup into two repositories (walden only)',
}
const SSH_TITLES = {
  1: '1. Full backup run on the backup host (pg1-host)',
  3: '3. Restore on the database host (repo1-host) into an empty folder',
  5: '5. One synchronous archive-push through SSH',
  7: '7. Peak memory of both ends of backup and restore',
}

/** docs/benchmarks.md's section of each kind of run, in the order they appear. */
const DOCS_SECTIONS = { posix: 'Latest results', s3: 'S3 repository', ssh: 'Backup host over SSH', staging: 'Staging copies and clones' }

/**
 * docs/benchmarks.md: the fixed explanation, then the latest results of a posix run ("Latest results"), of an S3 run
 * ("S3 repository") and of an SSH run ("Backup host over SSH"). A run replaces only its own section and keeps the
 * others as they were.
 */
async function docsWrite(markdown, repoType) {
  const path = join(REPO_ROOT, 'docs', 'benchmarks.md')
  const intro = (await readFile(join(BENCH_DIR, 'lib', 'benchmarks-intro.md'), 'utf8')).trimEnd()
  const old = await readFile(path, 'utf8').catch(() => '')
  // Each section runs from its heading to the next known heading (or the end).
  const starts = Object.entries(DOCS_SECTIONS)
    .map(([type, title]) => ({ type, at: old.indexOf(`\n## ${title}\n`) }))
    .filter((entry) => entry.at >= 0)
    .sort((a, b) => a.at - b.at)
  const parts = Object.keys(DOCS_SECTIONS).map((type) => {
    if (type === repoType) return `## ${DOCS_SECTIONS[type]}\n\n${markdown.trimEnd()}`
    const index = starts.findIndex((entry) => entry.type === type)
    if (index < 0) return undefined
    return old.slice(starts[index].at + 1, starts[index + 1]?.at).trimEnd()
  })
  await writeFile(path, [intro, ...parts].filter(Boolean).join('\n\n') + '\n')
}

main()
  .then(async () => {
    await cleanup()
    process.exit(0)
  })
  .catch(async (error) => {
    // After a signal, what failed is whatever the clean-up stopped under the bench: the signal handler exits.
    if (!interrupted) process.stderr.write(`\nbench: ${error instanceof BenchError ? error.message : error.stack}\n`)
    await cleanup()
    if (!interrupted) process.exit(1)
  })
