// Scenario 8: table mirroring (issue #5). walden alone (pgBackRest has no such feature), on a cluster of its own so the
// backup scenarios' archiving does not disturb it:
//   - master throughput with and without the capture trigger: pgbench with a custom script, 5 row changes per
//     transaction on a mirrored table, runs alternating without and with the trigger;
//   - apply rate: a backlog built with the trigger on and nothing applying, then one `mirror-run --once`, timed;
//   - steady state: the master held at 500 transactions/s (pgbench -R) while a mirror-run daemon applies to a host
//     database; lag sampled every 0.5 s as the age of the oldest transaction the host does not have yet.
// Afterwards the host's table must equal the master's, or the scenario fails.

import { spawn } from 'node:child_process'
import { appendFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { ownedFile, ownedFolder, ownerIdsGet, runningServers, Server } from './cluster.mjs'
import { BenchError, heading, measure, run, say } from './proc.mjs'
import { median } from './report.mjs'

const ROWS = 100_000
const TARGET_TPS = 500
const TARGET_LAG_S = 5
const TARGET_OVERHEAD = 0.3

// Five updates per transaction, each in its own fifth of the table: every transaction takes its row locks in the same
// order, so concurrent clients wait for each other (the order then matters to the mirror) but never deadlock.
const SCRIPT = `
\\set r1 random(1, ${ROWS / 5})
\\set r2 random(${ROWS / 5 + 1}, ${(2 * ROWS) / 5})
\\set r3 random(${(2 * ROWS) / 5 + 1}, ${(3 * ROWS) / 5})
\\set r4 random(${(3 * ROWS) / 5 + 1}, ${(4 * ROWS) / 5})
\\set r5 random(${(4 * ROWS) / 5 + 1}, ${ROWS})
BEGIN;
UPDATE mirror_bench SET counter = counter + 1, touched_at = now() WHERE id = :r1;
UPDATE mirror_bench SET counter = counter + 1, touched_at = now() WHERE id = :r2;
UPDATE mirror_bench SET counter = counter + 1, touched_at = now() WHERE id = :r3;
UPDATE mirror_bench SET counter = counter + 1, touched_at = now() WHERE id = :r4;
UPDATE mirror_bench SET counter = counter + 1, touched_at = now() WHERE id = :r5;
END;
`

const TABLE_DDL = `CREATE TABLE mirror_bench (id int PRIMARY KEY, counter bigint NOT NULL, payload text, touched_at timestamptz)`

async function clusterCreate(ctx) {
  const dataDir = join(ctx.root, 'mirror-pgdata')
  await rm(dataDir, { recursive: true, force: true })
  await ownedFolder(dataDir)
  await run(join(ctx.pgBin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C'], { what: 'initdb (mirror)' })
  const port = ctx.nextPort()
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    ['', '# walden bench: table mirroring', `port = ${port}`, "listen_addresses = ''", `unix_socket_directories = '${ctx.socketDir}'`,
      'shared_buffers = 256MB', 'max_wal_size = 2GB', 'checkpoint_timeout = 30min', "log_line_prefix = '%m [%p] '", ''].join('\n'),
  )
  const server = new Server({ pgBin: ctx.pgBin, dataDir, port, socketDir: ctx.socketDir, logFile: join(ctx.root, 'mirror-pgdata.log') })
  await server.start()
  return server
}

function pgbenchArgs(server, script, seconds, extra = []) {
  return ['-n', '-h', server.socketDir, '-p', String(server.port), '-U', 'postgres', '-c', '4', '-j', '2', '-T', String(seconds), '-f', script, ...extra, 'master']
}

function pgbenchFigures(stdout) {
  const tps = Number(/^tps = ([\d.]+)/m.exec(stdout)?.[1])
  const transactions = Number(/^number of transactions actually processed: (\d+)/m.exec(stdout)?.[1])
  if (!Number.isFinite(tps) || !Number.isFinite(transactions)) throw new BenchError(`cannot read pgbench's output:\n${stdout}`)
  return { tps, transactions }
}

async function pgbench(ctx, server, script, seconds, extra = []) {
  const { stdout } = await run(join(ctx.pgBin, 'pgbench'), pgbenchArgs(server, script, seconds, extra), { what: 'pgbench (mirror)' })
  return pgbenchFigures(stdout)
}

function fmt(value, digits = 0) {
  return Number.isFinite(value) ? value.toFixed(digits) : '—'
}

export async function scenarioMirror(ctx) {
  heading('8. table mirroring: trigger cost, apply rate, steady-state lag')
  const seconds = ctx.opts.mirrorSeconds
  const runs = Math.min(ctx.opts.runs, 3)
  const server = await clusterCreate(ctx)
  try {
    const conninfo = (db) => `host=${server.socketDir} port=${server.port} dbname=${db} user=postgres`
    const [node, fixed] = ctx.waldenProgram
    const logPath = await ownedFolder(join(ctx.root, 'mirror-log'))
    const common = [`--mirror-master=${conninfo('master')}`, `--log-path=${logPath}`, `--lock-path=${logPath}`, '--log-level-file=off']
    const walden = (command, args = []) => run(node, [...fixed, command, ...args, ...common], { what: `walden ${command}` })
    for (const db of ['master', 'host']) {
      await server.sql(`CREATE DATABASE ${db}`)
      await server.sql(TABLE_DDL, { db })
    }
    await server.sql(`INSERT INTO mirror_bench SELECT n, 0, repeat('x', 80), now() FROM generate_series(1, ${ROWS}) n`, { db: 'master' })
    await server.sql('VACUUM ANALYZE mirror_bench', { db: 'master' })
    const script = await ownedFile(join(ctx.root, 'mirror.pgbench'), SCRIPT, 0o644)
    await walden('mirror-setup')

    // Throughput without and with the capture trigger, alternating.
    const without = []
    const withTrigger = []
    for (let i = 0; i < runs; i++) {
      await server.sql('CHECKPOINT')
      without.push((await pgbench(ctx, server, script, seconds)).tps)
      await walden('mirror-add-table', ['--table=public.mirror_bench'])
      await server.sql('CHECKPOINT')
      withTrigger.push((await pgbench(ctx, server, script, seconds)).tps)
      await walden('mirror-remove-table', ['--table=public.mirror_bench'])
      // No host yet: the queue is purged whole.
      await walden('mirror-clean')
      say(`  run ${i + 1}/${runs}: ${fmt(without.at(-1))} tps without the trigger, ${fmt(withTrigger.at(-1))} tps with it`)
    }
    const tpsWithout = median(without)
    const tpsWith = median(withTrigger)
    const overhead = 1 - tpsWith / tpsWithout

    // A host from a snapshot copy, then a backlog for it, applied in one go.
    await walden('mirror-add-table', ['--table=public.mirror_bench'])
    await walden('mirror-add-host', ['--mirror-host=bench'])
    await walden('mirror-init-host', ['--mirror-host=bench', `--mirror-target=${conninfo('host')}`])
    await server.sql('CHECKPOINT')
    const backlog = await pgbench(ctx, server, script, seconds)
    const applied = await measure(node, [...fixed, 'mirror-run', '--mirror-host=bench', `--mirror-target=${conninfo('host')}`, '--once', ...common], {
      what: 'walden mirror-run --once',
    })
    const applyRate = backlog.transactions / applied.wallS
    say(`  backlog of ${backlog.transactions} transactions applied in ${fmt(applied.wallS, 1)} s: ${fmt(applyRate)} transactions/s, mirror-run CPU ${fmt(applied.cpuS, 1)} s`)

    // Steady state at TARGET_TPS with the daemon applying.
    const { uid, gid } = await ownerIdsGet()
    const daemon = spawn(node, [...fixed, 'mirror-run', '--mirror-host=bench', `--mirror-target=${conninfo('host')}`, '--mirror-interval=1', ...common], {
      uid,
      gid,
      cwd: '/',
      stdio: 'ignore',
    })
    const lags = []
    let steady
    const client = new pg.Client({ host: server.socketDir, port: server.port, user: 'postgres', database: 'master' })
    await client.connect()
    try {
      const lagNow = async () => {
        const { rows } = await client.query(
          `SELECT coalesce(extract(epoch FROM now() - min(c.captured_at)), 0)::float AS lag
             FROM walden_mirror.change c JOIN walden_mirror.host h ON h.name = 'bench'
             LEFT JOIN walden_mirror.txn t ON t.xid = c.xid
            WHERE t.xid IS NULL OR (t.tick, t.last_seq_id) > (h.pos_tick, h.pos_seq)`,
        )
        return rows[0].lag
      }
      const load = run(join(ctx.pgBin, 'pgbench'), pgbenchArgs(server, script, seconds, ['-R', String(TARGET_TPS)]), { what: 'pgbench -R (mirror)' })
      let done = false
      void load.finally(() => (done = true))
      while (!done) {
        lags.push(await lagNow())
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
      steady = pgbenchFigures((await load).stdout)
      const deadline = Date.now() + 120_000
      while ((await lagNow()) > 0) {
        if (Date.now() > deadline) throw new BenchError('the mirror host did not catch up within 2 minutes after the load ended')
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    } finally {
      await client.end().catch(() => undefined)
      daemon.kill('SIGTERM')
      if (daemon.exitCode === null) await new Promise((resolve) => daemon.once('close', resolve))
    }
    const checksum = (db) => server.sql("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM mirror_bench t", { db })
    if ((await checksum('master')) !== (await checksum('host'))) throw new BenchError('the mirror host differs from the master after the bench')
    const sorted = [...lags].sort((a, b) => a - b)
    const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]
    const lagMax = sorted.at(-1)

    ctx.mirror = {
      seconds,
      runs,
      tpsWithout: without,
      tpsWith: withTrigger,
      overhead,
      backlog: backlog.transactions,
      applyWallS: applied.wallS,
      applyCpuS: applied.cpuS,
      applyRate,
      steadyTps: steady.tps,
      lagMedian: median(lags),
      lagP95: p95,
      lagMax,
      targets: {
        overhead: { text: `< ${TARGET_OVERHEAD * 100}%`, measured: `${fmt(overhead * 100, 1)}%`, met: overhead < TARGET_OVERHEAD },
        lag: {
          text: `< ${TARGET_LAG_S} s at ${TARGET_TPS} tps`,
          measured: `max ${fmt(lagMax, 1)} s at ${fmt(steady.tps)} tps`,
          met: lagMax < TARGET_LAG_S && steady.tps >= TARGET_TPS * 0.95,
        },
      },
    }
    say(`  steady state: ${fmt(steady.tps)} tps, lag median ${fmt(median(lags), 2)} s, p95 ${fmt(p95, 2)} s, max ${fmt(lagMax, 2)} s; host equals master`)
  } finally {
    await server.stop('fast')
    runningServers.delete(server.dataDir)
  }
}

/** The markdown section of scenario 8. */
export function mirrorMarkdown(m) {
  const out = []
  out.push('### 8. Table mirroring (walden only)')
  out.push('')
  out.push(
    `One cluster, master and host databases on it; table of ${ROWS.toLocaleString('en')} rows; pgbench, 4 clients, 2 threads, ` +
      `${m.seconds} s per phase, each transaction updating 5 rows. Throughput runs alternate without and with the capture trigger (${m.runs} each).`,
  )
  out.push('')
  out.push('| measure | value | target | met |')
  out.push('|---|---|---|---|')
  out.push(`| master tps without the trigger | ${m.tpsWithout.map((v) => fmt(v)).join(', ')} (median ${fmt(median(m.tpsWithout))}) | | |`)
  out.push(`| master tps with the trigger | ${m.tpsWith.map((v) => fmt(v)).join(', ')} (median ${fmt(median(m.tpsWith))}) | | |`)
  out.push(`| trigger cost (1 − with ÷ without, medians) | ${m.targets.overhead.measured} | ${m.targets.overhead.text} | ${m.targets.overhead.met ? 'met' : '**not met**'} |`)
  out.push(`| apply rate, one host, backlog of ${m.backlog} transactions | ${fmt(m.applyRate)} transactions/s (${fmt(m.applyWallS, 1)} s wall, ${fmt(m.applyCpuS, 1)} s CPU of mirror-run) | | |`)
  out.push(`| steady-state lag, master at ${TARGET_TPS} tps (achieved ${fmt(m.steadyTps)}) | median ${fmt(m.lagMedian, 2)} s, p95 ${fmt(m.lagP95, 2)} s, ${m.targets.lag.measured} | ${m.targets.lag.text} | ${m.targets.lag.met ? 'met' : '**not met**'} |`)
  out.push('')
  out.push('- Lag is the age of the oldest transaction the host does not have yet, measured from its first captured change, sampled every 0.5 s; the host was compared with the master afterwards (equal).')
  out.push('')
  return out.join('\n')
}
