// `npm run bench -- --staging` (issue #14): how long a staging copy takes to link in each of its three ways, to
// snapshot, and to give a usable clone, against a plain `walden restore` of the same snapshot; and whether walden's
// memory stays flat when the database grows.
//
// There is nothing to compare with side by side: Delphix is closed and not available here, and pgBackRest has no
// staging copies or clones. The comparison that means something to a DBA is the one made here: a clone against
// restoring the same backup by hand and starting it.
//
// Per scale, one source cluster (Debian's PostgreSQL 15, pgbench at that scale, wal_level replica) prepared as a DBA
// would for all three ways: a replication role with a SCRAM password (in a password file, never on a command line),
// a `host replication` line for loopback, and an archive_command copying each segment into a WAL folder. Then, run
// after run, for each way: the user's pg_basebackup (external ways; timed, but reported as the user's, not walden's),
// staging-link, the catch-up, staging-snapshot, staging-unlink; and from the last way's snapshot, clone-create and a
// plain restore + start, one after the other.

import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readdir, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { ownedFile, ownedFolder, runningServers, Server, sourceClusterCreate } from './cluster.mjs'
import { BenchError, heading, measure, run, say, tail } from './proc.mjs'
import { fmtMB, fmtRatio, fmtS, machineTable, sampleLine, summary } from './report.mjs'
import { shellQuote } from './tools.mjs'

const STANZA = 'bench'
const ROLE = 'walden_rep'
/** pgbench transactions (per client, two clients) written on the source between a staging copy's two snapshots. */
const NEXT_TRANSACTIONS = 2000
/** How long the bench waits for a staging copy to catch up, or a restored cluster to promote, before it gives up. */
const CATCH_UP_TIMEOUT_MS = 600_000

/**
 * The link cases, in the order each run goes through them. The last one's snapshot is the one cloned and restored;
 * it is way 1, which needs nothing from the user.
 */
export const LINK_CASES = [
  { id: 'external-wal-tar', method: 'external-wal', format: 'tar', title: '2. external backup (tar) + WAL folder' },
  { id: 'external-wal-plain', method: 'external-wal', format: 'plain', title: '2. external backup (plain) + WAL folder' },
  { id: 'external-streaming-tar', method: 'external-streaming', format: 'tar', title: '3. external backup (tar) + streaming' },
  { id: 'initiated', method: 'initiated', title: '1. walden-initiated (BASE_BACKUP) + streaming' },
]

/** A TCP port on loopback that nothing listens on now, chosen by the kernel. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------------
// The source, as a DBA prepares it

/**
 * Creates and starts the source of one scale: TCP on 127.0.0.1 for the replication connections, the role and its
 * password file, archive_command into the WAL folder (through a temporary name, so the WAL folder never holds half a
 * segment), pgbench data. Returns { server, walDir, passfile, conninfo }.
 */
async function sourceCreate({ pgBin, base, socketDir, scale }) {
  const dataDir = join(base, 'source')
  const walDir = await ownedFolder(join(base, 'wal-folder'), 0o700)
  const walTmp = await ownedFolder(join(base, 'wal-folder.tmp'), 0o700)
  const port = await freePort()
  const archive = `test ! -f ${walDir}/%f && cp %p ${walTmp}/%f && mv ${walTmp}/%f ${walDir}/%f`
  const server = await sourceClusterCreate({
    pgBin,
    dataDir,
    port,
    socketDir,
    logFile: join(base, 'source.log'),
    archiveCommand: archive,
    settings: ["listen_addresses = '127.0.0.1'", 'max_wal_senders = 10', 'max_replication_slots = 10', "password_encryption = 'scram-sha-256'"],
    // Local connections for the bench and the user's pg_basebackup; from the network only the replication role, with SCRAM.
    hba: ['local all all trust', 'local replication all trust', `host replication ${ROLE} 127.0.0.1/32 scram-sha-256`],
  })

  // The password goes through a file psql reads, never through an argument list.
  const password = randomBytes(18).toString('base64url')
  const sqlFile = await ownedFile(join(base, 'role.sql'), `create role ${ROLE} login replication password '${password}';\n`)
  await run(join(pgBin, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-f', sqlFile], { what: 'create role' })
  await rm(sqlFile)
  const passfile = await ownedFile(join(base, 'pgpass'), `127.0.0.1:${port}:replication:${ROLE}:${password}\n`, 0o600)

  say(`pgbench -i -s ${scale} (about ${Math.round(scale * 15)} MB)`)
  const t0 = Date.now()
  await run(join(pgBin, 'pgbench'), ['-i', '-s', String(scale), '-q', '-h', socketDir, '-p', String(port), '-U', 'postgres', 'postgres'], { what: 'pgbench -i' })
  await server.sql('VACUUM ANALYZE')
  await server.sql('CREATE TABLE bench_tick (at timestamptz)')
  await server.sql('CHECKPOINT')
  say(`pgbench data loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${await server.sql("select pg_size_pretty(pg_database_size('postgres'))")}`)
  // Every backup the bench takes starts after this point: the load's WAL is of no use to any staging copy.
  const last = await server.sql('select pg_walfile_name(pg_switch_wal())')
  for (let waited = 0; (await server.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver")) < last; waited += 200) {
    if (waited > CATCH_UP_TIMEOUT_MS) throw new BenchError(`the source's archiver did not reach ${last}; see ${server.logFile}`)
    await sleep(200)
  }
  await run('sh', ['-c', `rm -f ${walDir}/*`], { what: 'empty the WAL folder' })
  return { server, walDir, passfile, conninfo: `host=127.0.0.1 port=${port} user=${ROLE} passfile=${passfile}` }
}

// ---------------------------------------------------------------------------------------------------------------
// walden on the staging host

function waldenRunner(program, configPath) {
  const [node, fixed] = program
  const argv = (args) => [...fixed, `--config=${configPath}`, `--stanza=${STANZA}`, ...args]
  return {
    argv,
    shell: (args) => [node, ...argv(args)].map(shellQuote).join(' '),
    run: (args, options = {}) => run(node, argv(args), { what: `walden ${args[0]}`, ...options }),
    measure: (args, options = {}) => measure(node, argv(args), { what: `walden ${args.join(' ')}`, untilExit: true, ...options }),
  }
}

async function syncDisks() {
  await run('sync', [], { owner: false })
}

/** walden's exit code for a command that is not built yet (FeatureNotSupported). */
const NOT_BUILT = 67
/** Set once a walden without staging-status was seen: the report says the catch-up was judged by the LSN alone. */
export const statusSeen = { missing: false }

/** The staging copy's replay position has reached `lsn` and staging-status says ACTIVE. */
async function caughtUp(staging, walden, lsn) {
  const reached = await staging.sql(`select coalesce(pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn, false)`, { allowFail: true, timeoutMs: 10_000 }).catch(() => 'f')
  if (reached !== 't') return false
  if (statusSeen.missing) return true
  const status = await walden.run(['staging-status', '--output=json'], { allowFail: true })
  if (status.code === NOT_BUILT) {
    statusSeen.missing = true
    say('staging-status is not built in this walden: caught up is judged by the replay position alone')
    return true
  }
  try {
    return JSON.parse(status.stdout).status === 'ACTIVE'
  } catch {
    return false
  }
}

/** What a failed step leaves behind goes, so the next case starts clean: the staging copy, its folder, a slot. */
async function stagingClear({ walden, pgBin, stagingPath, source }) {
  await walden.run(['staging-unlink', '--delete-data', '--force'], { allowFail: true })
  if (existsSync(join(stagingPath, 'postmaster.pid'))) await run(join(pgBin, 'pg_ctl'), ['stop', '-D', stagingPath, '-m', 'immediate', '-w'], { allowFail: true })
  runningServers.delete(stagingPath)
  await rm(stagingPath, { recursive: true, force: true })
  await source.server.sql("select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active", { allowFail: true })
}

// ---------------------------------------------------------------------------------------------------------------
// One scale

/**
 * Runs every case `runs` times at `scale` on a source of its own. Returns { scale, runs, samples: { caseId: [sample] },
 * info, failures }; a sample is measure()'s figures plus what the case adds (catch-up, time to ACTIVE, snapshot size).
 */
export async function stagingScale(ctx, scale, runs) {
  const { root, pgBin, socketDir, waldenProgram } = ctx
  heading(`staging: source at scale ${scale}, ${runs} run(s)`)
  const base = await ownedFolder(join(root, `staging-${scale}`), 0o755)
  const source = await sourceCreate({ pgBin, base, socketDir, scale })
  const stagingPath = join(base, 'staging')
  const stagingPort = await freePort()
  const folders = {}
  for (const name of ['repo', 'log', 'lock', 'spool']) folders[name] = await ownedFolder(join(base, name))
  const configPath = await ownedFile(
    join(base, 'walden.conf'),
    [
      '[global]',
      `repo1-path=${folders.repo}`,
      `log-path=${folders.log}`,
      `lock-path=${folders.lock}`,
      `spool-path=${folders.spool}`,
      'start-fast=y',
      'compress-type=lz4',
      'process-max=2',
      // A way's two snapshots (the repository is emptied between ways).
      'repo1-retention-full=2',
      '',
      `[${STANZA}]`,
      `pg1-path=${stagingPath}`,
      `pg1-port=${stagingPort}`,
      `pg1-socket-path=${socketDir}`,
      '',
    ].join('\n'),
    0o644,
  )
  const walden = waldenRunner(waldenProgram, configPath)
  const staging = new Server({ pgBin, dataDir: stagingPath, port: stagingPort, socketDir, logFile: join(folders.log, 'unused.log') })
  const result = { scale, runs, samples: {}, info: { sourceSize: await source.server.sql("select pg_database_size('postgres')") }, failures: [] }
  const add = (id, sample) => (result.samples[id] ??= []).push(sample)

  try {
    for (let runIndex = 1; runIndex <= runs; runIndex++) {
      let snapshot
      for (const way of LINK_CASES) {
        heading(`scale ${scale}, run ${runIndex}/${runs}: ${way.title}`)
        try {
          snapshot = await linkCase({ ctx, way, base, source, walden, staging, stagingPath, stagingPort, add })
        } catch (error) {
          if (!(error instanceof BenchError)) throw error
          process.stderr.write(`\nbench: ${way.id} failed: ${error.message}\n`)
          result.failures.push(`scale ${scale}, run ${runIndex}, ${way.id}: ${error.message.split('\n')[0]}`)
          snapshot = undefined
        }
        // The last way's staging copy goes on: a second snapshot after some writes, and from it the clone and the
        // restore, while the copy still runs (as a DBA makes clones); the staging copy goes after.
        if (way === LINK_CASES.at(-1) && snapshot) {
          try {
            snapshot = await snapshotNext({ ctx, source, staging, walden, add })
            await snapshotWalArchived({ source, staging, walden, snapshot })
            await cloneAndRestore({ ctx, base, walden, snapshot, runIndex, add, scale })
          } catch (error) {
            if (!(error instanceof BenchError)) throw error
            process.stderr.write(`\nbench: clone or restore failed: ${error.message}\n`)
            result.failures.push(`scale ${scale}, run ${runIndex}, clone/restore: ${error.message.split('\n')[0]}`)
          }
        }
        await stagingClear({ walden, pgBin, stagingPath, source })
        // Each way's first snapshot is then the first of its stanza, a full backup, as after a first link.
        await run('sh', ['-c', `rm -rf ${folders.repo}/*`], { what: 'empty the repository' })
      }
    }
  } finally {
    await source.server.stop('fast')
    if (!ctx.opts.keep) await rm(base, { recursive: true, force: true })
  }
  return result
}

/**
 * One way: the user's backup (external ways), staging-link, the catch-up, staging-snapshot. Returns the snapshot's
 * label.
 */
async function linkCase({ ctx, way, base, source, walden, staging, stagingPath, stagingPort, add }) {
  const { pgBin, socketDir } = ctx
  const args = [
    'staging-link',
    `--staging-method=${way.method}`,
    `--staging-path=${stagingPath}`,
    `--staging-port=${stagingPort}`,
    `--staging-setting=unix_socket_directories=${socketDir}`,
  ]
  if (way.method !== 'external-wal') args.push(`--staging-source=${source.conninfo}`)
  if (way.method === 'external-wal') args.push(`--staging-wal-path=${source.walDir}`)

  if (way.format) {
    // The user's part: a pg_basebackup of the source, as the issue describes it (-F t -X stream, or plain).
    const backupPath = join(base, `basebackup-${way.format}`)
    await rm(backupPath, { recursive: true, force: true })
    await syncDisks()
    const taken = await measure(
      join(pgBin, 'pg_basebackup'),
      ['-h', socketDir, '-p', String(source.server.port), '-U', 'postgres', '-D', backupPath, '-F', way.format === 'tar' ? 't' : 'p', '-X', 'stream', '-c', 'fast'],
      { what: `pg_basebackup -F ${way.format}` },
    )
    say(`user's pg_basebackup -F ${way.format === 'tar' ? 't' : 'p'} -X stream: ${sampleLine(taken)}`)
    add(`basebackup-${way.id}`, taken)
    args.push(`--staging-backup-path=${backupPath}`)
  }

  // The data folder as a DBA prepares it: empty, owned by the PostgreSQL user.
  await ownedFolder(stagingPath)
  await syncDisks()
  runningServers.add(stagingPath)
  const linked = await walden.measure(args, { allowFail: true })
  if (linked.code !== 0) throw new BenchError(`walden staging-link --staging-method=${way.method} failed with exit code ${linked.code}\n${tail(linked.stdout + linked.stderr)}`)
  const catchUpS = await catchUp({ source, staging, walden, what: way.id, walFolder: way.method === 'external-wal' })
  const sample = { ...linked, catchUpS, readyS: linked.wallS + catchUpS }
  delete sample.stdout
  delete sample.stderr
  add(`link-${way.id}`, sample)
  say(`staging-link ${way.id}: ${sampleLine(linked)}, walden alone ${fmtMB(linked.toolRssBytes)} MB; caught up ${fmtS(catchUpS)} s later: ACTIVE after ${fmtS(sample.readyS)} s`)
  return snapshotTake({ walden, id: `snapshot-${way.id}`, add })
}

/**
 * Waits until the staging copy has caught up with the source: one row written on the source now (in WAL-folder mode
 * its segment switched out, so that the folder receives it), and the staging copy has replayed past it and says
 * ACTIVE. Returns the seconds it took.
 *
 * Streaming copies get no switch: a snapshot whose end is the end of a switched-out segment cannot be cloned with
 * recovery to its consistent point (PostgreSQL 15 reaches consistency only as the next segment is asked for, which
 * nobody has written, and fails with "recovery ended before configured recovery target was reached").
 */
async function catchUp({ source, staging, walden, what, walFolder }) {
  const started = Date.now()
  await source.server.sql('insert into bench_tick values (now())')
  const target = await source.server.sql('select pg_current_wal_lsn()')
  if (walFolder) await source.server.sql('select pg_switch_wal()')
  while (!(await caughtUp(staging, walden, target))) {
    if (Date.now() - started > CATCH_UP_TIMEOUT_MS) {
      const status = await walden.run(['staging-status'], { allowFail: true })
      throw new BenchError(`the staging copy (${what}) did not catch up to ${target} within ${CATCH_UP_TIMEOUT_MS / 1000} s\n${tail(status.stdout + status.stderr)}`)
    }
    await sleep(100)
  }
  return (Date.now() - started) / 1000
}

/** A timed staging-snapshot, recorded under `id`; returns its label. */
async function snapshotTake({ walden, id, add }) {
  await syncDisks()
  const snapped = await walden.measure(['staging-snapshot'], { allowFail: true })
  if (snapped.code !== 0) throw new BenchError(`walden staging-snapshot failed with exit code ${snapped.code}\n${tail(snapped.stdout + snapped.stderr)}`)
  const { stdout } = await walden.run(['info', '--output=json'])
  const last = JSON.parse(stdout).find((entry) => entry.name === STANZA)?.backup?.at(-1)
  if (!last) throw new BenchError('staging-snapshot succeeded but info lists no backup')
  add(id, { ...snapped, stdout: undefined, stderr: undefined, repoBytes: last.info?.repository?.delta ?? last.info?.repository?.size ?? null, type: last.type })
  say(`staging-snapshot (${last.label}, ${last.type}): ${sampleLine(snapped)}, walden alone ${fmtMB(snapped.toolRssBytes)} MB`)
  return last.label
}

/**
 * The next snapshot of the same staging copy, after the source has run a fixed number of pgbench transactions and a
 * checkpoint, and the copy has caught up: what a scheduled snapshot does. Returns its label.
 *
 * The checkpoint: a snapshot of a standby starts at the last checkpoint the standby has replayed. Without a new one
 * since the link, that is the checkpoint of the base backup the copy was loaded from, in a segment that came with the
 * backup and that the staging copy never archives, and clone-create refuses the snapshot ("the WAL of snapshot ... is
 * not all archived"). A source makes one every checkpoint_timeout; the bench's source makes none by itself (30 min).
 */
async function snapshotNext({ ctx, source, staging, walden, add }) {
  const { pgBin, socketDir } = ctx
  await run(join(pgBin, 'pgbench'), ['-n', '-c', '2', '-t', String(NEXT_TRANSACTIONS), '-h', socketDir, '-p', String(source.server.port), '-U', 'postgres', 'postgres'], { what: 'pgbench' })
  await source.server.sql('CHECKPOINT')
  await catchUp({ source, staging, walden, what: 'after pgbench' })
  return snapshotTake({ walden, id: 'snapshot-next', add })
}

/**
 * Waits, untimed, until the staging copy has archived the WAL segment holding `snapshot`'s stop point into the
 * repository. clone-create (and restore) need it there; on a quiet source the segment is complete, and archived by
 * the staging copy, only once the source switches it out, which the bench does here as archive_timeout would.
 */
async function snapshotWalArchived({ source, staging, walden, snapshot }) {
  const { stdout } = await walden.run(['info', '--output=json', `--set=${snapshot}`])
  const stop = JSON.parse(stdout).find((entry) => entry.name === STANZA)?.backup?.find((backup) => backup.label === snapshot)?.lsn?.stop
  if (!stop) throw new BenchError(`info --set=${snapshot} gives no stop LSN`)
  const segment = await source.server.sql(`select pg_walfile_name('${stop}')`)
  await source.server.sql('select pg_switch_wal()')
  const started = Date.now()
  while ((await staging.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver", { allowFail: true })) < segment) {
    if (Date.now() - started > CATCH_UP_TIMEOUT_MS) throw new BenchError(`the staging copy did not archive ${segment} (snapshot ${snapshot}) in time`)
    await sleep(100)
  }
  say(`the staging copy archived ${segment}, which holds the end of ${snapshot}, ${fmtS((Date.now() - started) / 1000)} s after the switch`)
}

/**
 * From one snapshot: clone-create until the clone accepts writes (it returns then), and a plain restore of the same
 * snapshot, as clone-create makes it (immediate, promote, archiving off), started with pg_ctl until it is out of
 * recovery and accepts writes. Each is checked to hold the pgbench data, then removed.
 */
async function cloneAndRestore({ ctx, base, walden, snapshot, runIndex, add, scale }) {
  const { pgBin, socketDir } = ctx
  // clone-create
  const clonePath = join(base, 'clone')
  const clonePort = await freePort()
  const clone = `bench-${runIndex}`
  await syncDisks()
  runningServers.add(clonePath)
  const cloned = await walden.measure(['clone-create', `--clone=${clone}`, `--clone-path=${clonePath}`, `--clone-port=${clonePort}`, `--set=${snapshot}`], { allowFail: true })
  if (cloned.code !== 0) throw new BenchError(`walden clone-create failed with exit code ${cloned.code}\n${tail(cloned.stdout + cloned.stderr)}`)
  try {
    const cloneServer = new Server({ pgBin, dataDir: clonePath, port: clonePort, socketDir, logFile: '' })
    await usableCheck(cloneServer, scale, 'the clone')
    add('clone-create', { ...cloned, stdout: undefined, stderr: undefined })
    say(`clone-create: ${sampleLine(cloned)}, walden alone ${fmtMB(cloned.toolRssBytes)} MB`)
  } finally {
    await walden.run(['clone-destroy', `--clone=${clone}`])
    runningServers.delete(clonePath)
  }

  // restore + start
  const restorePath = join(base, 'restored')
  const restorePort = await freePort()
  await rm(restorePath, { recursive: true, force: true })
  await ownedFolder(restorePath)
  const psql = [join(pgBin, 'psql'), '-X', '-A', '-t', '-h', socketDir, '-p', String(restorePort), '-U', 'postgres', '-d', 'postgres', '-c', 'select pg_is_in_recovery()'].map(shellQuote).join(' ')
  const script = [
    'set -e',
    walden.shell([
      'restore',
      `--set=${snapshot}`,
      `--pg1-path=${restorePath}`,
      `--pg1-port=${restorePort}`,
      '--type=immediate',
      '--target-action=promote',
      '--target-timeline=current',
      '--archive-mode=off',
    ]),
    `${shellQuote(join(pgBin, 'pg_ctl'))} start -D ${shellQuote(restorePath)} -l ${shellQuote(join(base, 'restored.log'))} -w -t 3600 >/dev/null`,
    // pg_ctl -w returns when a consistent standby accepts reads; usable means promoted, as clone-create waits for.
    `until [ "$(${psql} 2>/dev/null)" = f ]; do sleep 0.1; done`,
  ].join('\n')
  await syncDisks()
  runningServers.add(restorePath)
  const restored = await measure('sh', ['-c', script], { what: 'walden restore + pg_ctl start', untilExit: true, allowFail: true, timeoutMs: CATCH_UP_TIMEOUT_MS })
  if (restored.code !== 0) throw new BenchError(`walden restore + pg_ctl start failed with exit code ${restored.code}\n${tail(restored.stdout + restored.stderr)}`)
  const restoredServer = new Server({ pgBin, dataDir: restorePath, port: restorePort, socketDir, logFile: join(base, 'restored.log') })
  await usableCheck(restoredServer, scale, 'the restored cluster')
  add('restore-start', { ...restored, stdout: undefined, stderr: undefined })
  say(`restore + start: ${sampleLine(restored)}, walden alone ${fmtMB(restored.toolRssBytes)} MB`)
  await restoredServer.stop('fast')
  await rm(restorePath, { recursive: true, force: true })
}

/** The real outcome: the cluster accepts a write and holds the pgbench data of `scale`. */
async function usableCheck(server, scale, what) {
  const branches = await server.sql('select count(*) from pgbench_branches')
  await server.sql('create table bench_written (n int); drop table bench_written')
  if (branches !== String(scale)) throw new BenchError(`${what} holds ${branches} pgbench branches, not ${scale}`)
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const CASE_TITLE = Object.fromEntries(LINK_CASES.map((way) => [way.id, way.title]))

function cell(samples, key, fmt) {
  const s = summary((samples ?? []).map((sample) => sample[key]))
  if (!s) return '—'
  return s.n === 1 ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`
}

/** Per-pair ratios a/b of `key` over the i-th samples of two lists. */
function pairRatios(a = [], b = [], key = 'wallS') {
  const out = []
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (Number.isFinite(a[i][key]) && Number.isFinite(b[i][key])) out.push(a[i][key] / b[i][key])
  return out
}

/** The Markdown of a staging run: machine, settings, then one table per question of the issue. */
export function stagingMarkdown({ machine, commandLine, main, others, notes }) {
  const out = []
  const s = main.samples
  out.push(`Run ${machine.date} with \`${commandLine}\`: **scale ${main.scale}, ${main.runs} run(s)**${others.length ? `; memory also at scale ${others.map((o) => o.scale).join(', ')} (1 run)` : ''}.`)
  out.push('')
  out.push(...machineTable(machine, { postgresNote: ' (source, staging copy and clones)', pgbackrest: false }))
  out.push(
    `Source: pgbench at scale ${main.scale} (${fmtMB(Number(main.info.sourceSize))} MB database), quiet during the timed commands, ` +
      'wal_level replica, a replication role with a SCRAM password in a password file, `host replication` on loopback, ' +
      'archive_command copying into a WAL folder. walden: lz4, process-max 2, start-fast, the repository on the same disk. ' +
      '`sync` before each timed command. Figures are median (min–max) over the runs. *CPU* is user + system time of the ' +
      "command's whole process tree, the servers it starts included up to its exit; *walden RSS* is the peak resident " +
      "memory of that tree without PostgreSQL's own processes (walden and its workers, pg_ctl), sampled every 20 ms.",
  )
  out.push('')

  out.push('### Link, each way')
  out.push('')
  out.push(
    '*link* is `walden staging-link` from start to exit; *ACTIVE* adds the catch-up after it: a row written on the source ' +
      'once the link has returned (for way 2 its segment then switched out, so that the WAL folder receives it), until the staging ' +
      "copy's `pg_last_wal_replay_lsn()` is past it and `staging-status --output=json` says ACTIVE (polled every 0.1 s). " +
      "*user's backup* is the `pg_basebackup -X stream -c fast` the external ways load, taken by the user before the link: " +
      "not walden's time, shown so the whole can be added up.",
  )
  out.push('')
  out.push("| way | user's backup wall s | link wall s | link CPU s | walden RSS MB | catch-up s | **to ACTIVE s** |")
  out.push('|---|---|---|---|---|---|---|')
  for (const way of LINK_CASES) {
    const link = s[`link-${way.id}`]
    const backup = way.format ? cell(s[`basebackup-${way.id}`], 'wallS', fmtS) : '— (walden takes it)'
    out.push(`| ${way.title} | ${backup} | ${cell(link, 'wallS', fmtS)} | ${cell(link, 'cpuS', fmtS)} | ${cell(link, 'toolRssBytes', fmtMB)} | ${cell(link, 'catchUpS', fmtS)} | **${cell(link, 'readyS', fmtS)}** |`)
  }
  out.push('')

  out.push('### Snapshot')
  out.push('')
  out.push(
    "`walden staging-snapshot` right after each link had caught up: the staging copy's first snapshot, a full backup of " +
      "the staging standby into the stanza's repository (emptied between ways, so each is the first). Then, on way 1's " +
      `copy, the next snapshot after ${NEXT_TRANSACTIONS} pgbench transactions on each of two clients, a CHECKPOINT on the source and the catch-up, ` +
      'as a scheduled snapshot would be. *stored* is what the snapshot added to the repository (lz4).',
  )
  out.push('')
  out.push('| snapshot | type | wall s | CPU s | walden RSS MB | stored MB |')
  out.push('|---|---|---|---|---|---|')
  const types = (list) => [...new Set((list ?? []).map((sample) => sample.type))].join(', ') || '—'
  for (const [title, id] of [...LINK_CASES.map((way) => [`first, linked by ${way.title}`, `snapshot-${way.id}`]), ['next, way 1, after pgbench', 'snapshot-next']]) {
    const snap = s[id]
    out.push(`| ${title} | ${types(snap)} | ${cell(snap, 'wallS', fmtS)} | ${cell(snap, 'cpuS', fmtS)} | ${cell(snap, 'toolRssBytes', fmtMB)} | ${cell(snap, 'repoBytes', fmtMB)} |`)
  }
  out.push('')

  out.push('### Time to a usable clone, against a plain restore')
  out.push('')
  out.push(
    "From the next snapshot of way 1's copy, once the staging copy has archived the segment holding the snapshot's end " +
      '(untimed: a WAL switch on the source, as archive_timeout would make, and a wait for the archiver), in each run one after the other: ' +
      `\`walden clone-create --set=<snapshot>\` (restore, ` +
      'settings, start, until the clone is promoted and accepts writes, which is when it returns); and by hand, ' +
      '`walden restore --set=<snapshot> --type=immediate --target-action=promote --target-timeline=current ' +
      '--archive-mode=off` into an empty folder, `pg_ctl start -w`, then `psql` every 0.1 s until ' +
      '`pg_is_in_recovery()` is false (pg_ctl -w returns as soon as a consistent standby accepts reads). Both ' +
      'results are then checked to hold the pgbench data and take a write.',
  )
  out.push('')
  out.push('| case | wall s | CPU s | walden RSS MB |')
  out.push('|---|---|---|---|')
  out.push(`| clone-create | **${cell(s['clone-create'], 'wallS', fmtS)}** | ${cell(s['clone-create'], 'cpuS', fmtS)} | ${cell(s['clone-create'], 'toolRssBytes', fmtMB)} |`)
  out.push(`| restore + pg_ctl start, by hand | **${cell(s['restore-start'], 'wallS', fmtS)}** | ${cell(s['restore-start'], 'cpuS', fmtS)} | ${cell(s['restore-start'], 'toolRssBytes', fmtMB)} |`)
  const ratio = summary(pairRatios(s['clone-create'], s['restore-start']))
  if (ratio) out.push(`| *clone ÷ restore, per pair* | *${ratio.n === 1 ? fmtRatio(ratio.median) : `${fmtRatio(ratio.median)} (${fmtRatio(ratio.min)}–${fmtRatio(ratio.max)})`}* | | |`)
  out.push('')

  if (others.length > 0) {
    const scales = [...others, main].sort((a, b) => a.scale - b.scale)
    const smallest = scales[0]
    out.push('### Peak memory at two scales')
    out.push('')
    out.push(`walden's peak RSS (without PostgreSQL's processes), median at each scale, and its growth from scale ${smallest.scale}.`)
    out.push('')
    out.push(`| command | ${scales.map((x) => `scale ${x.scale} MB`).join(' | ')} | growth ${smallest.scale} → ${scales.at(-1).scale} |`)
    out.push(`|---|${scales.map(() => '---|').join('')}---|`)
    const rows = [
      ...LINK_CASES.map((way) => [`staging-link, ${way.title}`, `link-${way.id}`]),
      ...LINK_CASES.map((way) => [`first staging-snapshot after ${way.id}`, `snapshot-${way.id}`]),
      ['next staging-snapshot (way 1)', 'snapshot-next'],
      ['clone-create', 'clone-create'],
      ['restore + start', 'restore-start'],
    ]
    for (const [title, id] of rows) {
      const values = scales.map((x) => summary((x.samples[id] ?? []).map((sample) => sample.toolRssBytes))?.median)
      const growth = Number.isFinite(values[0]) && Number.isFinite(values.at(-1)) ? `×${(values.at(-1) / values[0]).toFixed(2)}` : '—'
      out.push(`| ${title} | ${values.map(fmtMB).join(' | ')} | ${growth} |`)
    }
    out.push('')
  }

  const allNotes = [...notes, ...[main, ...others].flatMap((x) => x.failures.map((f) => `failed: ${f}`))]
  if (allNotes.length > 0) {
    out.push('### Notes')
    out.push('')
    for (const note of allNotes) out.push(`- ${note}`)
    out.push('')
  }
  return out.join('\n')
}

/** The notes every staging report carries. */
export function stagingNotes({ machine, opts }) {
  const notes = [
    'No comparison with Delphix (closed, not available here) or pgBackRest (no staging copies or clones): the comparison is clone-create against restoring the same snapshot by hand.',
    'The source is quiet while a command is timed (pgbench runs only to load it), so runs do the same work; with a busy source, the catch-up and the snapshot take longer by what the source writes meanwhile.',
    'In WAL-folder mode the staging cluster asks for the next segment again only every wal_retrieve_retry_interval (PostgreSQL\'s default 5 s) after one was missing, which shows in its catch-up.',
  ]
  if (statusSeen.missing) notes.push('staging-status was not built in the walden measured (it exited "not built yet"): *to ACTIVE* is the time until the replay position was past the row, without its ACTIVE')
  if (opts.scale < 100 || opts.runs < 3) notes.push(`scale ${opts.scale} with ${opts.runs} run(s) is not the reference configuration (scale 100, 3 runs): fixed costs (Node.js start-up, the checkpoint of a backup, server start) weigh more at a small scale`)
  if (machine.cores <= 2) notes.push(`a ${machine.cores}-core machine shared with other work: walden, the source, the staging cluster and the clones share the same cores and disk`)
  return notes
}
