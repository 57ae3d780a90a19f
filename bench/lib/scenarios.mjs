// The seven scenarios of issue #3. Each runs both tools on the same data with the same settings, alternating
// (walden, pgBackRest, walden, pgBackRest, ...), and records one sample per run in a Case.

import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { link, open, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { ownedFile, ownedFolder, pgbenchLoad, restoredConfAppend, Server, sourceClusterCreate } from './cluster.mjs'
import { BenchError, heading, measure, run, say } from './proc.mjs'
import { Case, fmtMB, fmtS, median, ratioTarget, sampleLine, summary } from './report.mjs'
import { scenarioMirror } from './mirror.mjs'
import { gatewayDelta } from './gateway.mjs'
import { PGBACKREST, sshRepoConfigFresh, sshStanzaCreate, sshToolsSetup, Tool, toolsSetup, toolWith, WALDEN } from './tools.mjs'

const COMPRESS_LEVEL = { lz4: 1, zst: 3, gz: 6, none: 0 }
const SEGMENT_BYTES = 16 * 1024 * 1024
const PAGE = 8192

// ---------------------------------------------------------------------------------------------------------------
// Helpers

function toolList(ctx, stack = ctx.main) {
  return [stack.tools.walden, stack.tools.pgbackrest].filter(Boolean)
}

async function sync() {
  await run('sync', [], { owner: false })
}

async function sha256File(path) {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk)
  return hash.digest('hex')
}

function addCase(ctx, options) {
  const c = new Case(options)
  ctx.cases.push(c)
  return c
}

const GATEWAY_FIELDS = ['gwRequests', 'gwPuts', 'gwGets', 'gwPutBytes', 'gwGetBytes', 'gwCpuS']
const REMOTE_FIELDS = ['remoteProcesses', 'remoteRssBytes', 'remoteRssSingleBytes', 'remoteCpuS']
const SAMPLE_FIELDS = ['wallS', 'wallAllS', 'cpuS', 'userS', 'sysS', 'rssBytes', 'rssTreeBytes', 'rssSingleBytes', 'markWallS', 'segments', 'segmentsPerS', 'copiedBytes', 'detected', ...GATEWAY_FIELDS, ...REMOTE_FIELDS]

function record(c, tool, measured, run, runs, extra = '') {
  const sample = Object.fromEntries(SAMPLE_FIELDS.filter((key) => measured[key] !== undefined).map((key) => [key, measured[key]]))
  c.add(tool.kind, sample)
  const gateway = sample.gwRequests !== undefined ? `; gateway: ${sample.gwRequests} requests (${sample.gwPuts} PUT, ${sample.gwGets} GET), CPU ${fmtS(sample.gwCpuS)} s` : ''
  const farEnd =
    sample.remoteProcesses !== undefined
      ? `; far end: ${sample.remoteProcesses} process(es), CPU ${fmtS(sample.remoteCpuS)} s, peak RSS ${fmtMB(sample.remoteRssBytes)} MB (largest ${fmtMB(sample.remoteRssSingleBytes)} MB)`
      : ''
  say(`  ${c.title} · run ${run + 1}/${runs} · ${tool.label}: ${sampleLine(sample)}${extra}${gateway}${farEnd}`)
}

/** True when the repositories are on a backup host reached over SSH (--repo-type=ssh). */
function overSsh(ctx) {
  return Boolean(ctx.sshd)
}

/**
 * The tool that takes backups: over SSH the one on the backup host (pg1-host). A walden without pgN-host has none;
 * it then backs up from the database host through repo1-host (untimed backups other scenarios need).
 */
function backupTool(tool) {
  return tool.backupHost ?? tool
}

/** A target that cannot be checked yet because walden cannot run the case (over SSH, before pgN-host). */
function pendingTarget(text, why) {
  return { text, check: () => ({ met: undefined, measured: `walden pending: ${why}` }) }
}

/** True when the tools' repositories are S3 buckets (--repo-type=s3). */
function onS3(ctx) {
  return Boolean(ctx.gateway)
}

/**
 * A timed command; with the repositories in S3 also what it cost the gateway (requests, bytes, CPU of its daemons),
 * read just before and after, outside the timed span. The gateway's CPU is not in the tool's CPU figure.
 */
async function measureTimed(ctx, measureIt) {
  if (!ctx.gateway) return measureIt()
  const before = await ctx.gateway.counters()
  const measured = await measureIt()
  return Object.assign(measured, gatewayDelta(before, await ctx.gateway.counters()))
}

/** A case note with each tool's median gateway cost per command (S3 only). */
function gatewayNote(c) {
  const parts = []
  for (const [kind, list] of Object.entries(c.samples)) {
    if (list.length === 0 || list[0].gwRequests === undefined) continue
    const med = (key) => median(list.map((sample) => sample[key]))
    parts.push(
      `${kind === WALDEN ? 'walden' : 'pgBackRest'} ${med('gwRequests').toFixed(0)} requests (${med('gwPuts').toFixed(0)} PUT, ${med('gwGets').toFixed(0)} GET; ` +
        `${fmtMB(med('gwPutBytes'))} MB up, ${fmtMB(med('gwGetBytes'))} MB down), gateway CPU ${fmtS(med('gwCpuS'))} s`,
    )
  }
  if (parts.length > 0) c.notes.push(`gateway per command (medians; radosgw's counters, CPU of its three daemons): ${parts.join('; ')}`)
}

function compressArgs(ct) {
  return [`--compress-type=${ct}`, `--compress-level=${COMPRESS_LEVEL[ct]}`]
}

/** A full backup with the common settings, taken (untimed) unless this bench already has one that still exists. */
async function ensureFull(ctx, tool) {
  const known = ctx.state.full[tool.kind]
  if (known && (await tool.backups()).some((backup) => backup.label === known)) return known
  say(`  taking a full backup with ${tool.label} (untimed, needed by this scenario)`)
  await ctx.main.server.sql('CHECKPOINT')
  await backupTool(tool).run('backup', ['--type=full', ...compressArgs(ctx.opts.compressType), '--process-max=2'])
  const label = (await tool.lastBackup()).label
  ctx.state.full[tool.kind] = label
  return label
}

/** Stored size of a backup (bytes in the repository for this backup alone), from `info --output=json`. */
async function backupStoredBytes(tool, label) {
  const backup = (await tool.backups()).find((entry) => entry.label === label)
  return backup?.info?.repository?.delta ?? backup?.info?.repository?.size
}

/** An empty folder for a restore, owned by the cluster owner. */
async function emptyFolder(path) {
  await rm(path, { recursive: true, force: true })
  return ownedFolder(path)
}

/** Restore arguments for restoring `label` into `dir`. */
function restoreArgs(dir, label, extra = []) {
  return [`--pg1-path=${dir}`, `--set=${label}`, '--process-max=2', ...extra]
}

/** Starts a restored cluster beside the source, waits for promotion, checks pgbench_accounts, stops it. */
async function verifyRestored(ctx, dir, what, checks = {}) {
  const port = ctx.nextPort()
  await restoredConfAppend(dir, port, ctx.socketDir)
  const server = new Server({ pgBin: ctx.pgBin, dataDir: dir, port, socketDir: ctx.socketDir, logFile: `${dir}.log` })
  await server.start()
  try {
    await server.waitPromoted(3_600_000, 100)
    const rows = Number(await server.sql('select count(*) from pgbench_accounts'))
    const expected = (checks.scale ?? ctx.opts.scale) * 100000
    if (rows !== expected) throw new BenchError(`${what}: pgbench_accounts has ${rows} rows, expected ${expected}`)
    let extra = ''
    if (checks.walloadRows !== undefined) {
      const loaded = Number(await server.sql('select count(*) from walload'))
      if (loaded !== checks.walloadRows) throw new BenchError(`${what}: walload has ${loaded} rows, expected ${checks.walloadRows} (not all archived WAL was replayed)`)
      extra = `, walload ${loaded} rows`
    }
    say(`  verified ${what}: started, promoted, pgbench_accounts ${rows} rows${extra}`)
  } finally {
    await server.stop('fast')
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Full backup

export async function scenarioFull(ctx) {
  if (overSsh(ctx)) return scenarioFullSsh(ctx)
  const common = ctx.opts.compressType
  // On S3 the one setting issue #12 sets a target for: the common compression, process-max 2.
  heading(onS3(ctx) ? `1. full backup into S3: ${common}, process-max 2` : '1. full backup: lz4 and zst, process-max 1 and 2')
  // The common setting last, so its backup is the newest full (retention keeps two) and later scenarios reuse it.
  const types = onS3(ctx) ? [common] : ['lz4', 'zst'].sort((a, b) => (a === common) - (b === common))
  for (const ct of types) {
    for (const pm of onS3(ctx) ? [2] : [1, 2]) {
      const target = onS3(ctx)
        ? ratioTarget('≤ 0.80', 0.8)
        : pm === 2 && ct === 'lz4' ? ratioTarget('≤ 0.65', 0.65) : pm === 2 && ct === 'zst' ? ratioTarget('≤ 0.70', 0.7) : undefined
      const c = addCase(ctx, { id: `full-${ct}-pm${pm}`, scenario: 1, title: `full backup ${ct}, process-max ${pm}`, target })
      const stored = {}
      for (let r = 0; r < ctx.opts.runs; r++) {
        for (const tool of toolList(ctx)) {
          await ctx.main.server.sql('CHECKPOINT')
          await sync()
          const m = await measureTimed(ctx, () => tool.measure('backup', ['--type=full', ...compressArgs(ct), `--process-max=${pm}`]))
          const label = (await tool.lastBackup()).label
          stored[tool.kind] = await backupStoredBytes(tool, label)
          record(c, tool, m, r, ctx.opts.runs)
          if (ct === common && pm === 2) ctx.state.full[tool.kind] = label
        }
      }
      c.notes.push(`stored size of one backup: ${Object.entries(stored).map(([kind, bytes]) => `${ctx.label(kind)} ${fmtMB(bytes)} MB`).join(', ')}`)
      gatewayNote(c)
      if (ct === common && pm === 2) ctx.state.memoryCases.backup = c
    }
  }
}

/**
 * Over SSH (issue #13): the full backup run on the backup host, reading the cluster through pg1-host, with the common
 * compression and process-max 2. While walden cannot do that yet, its case is pending and, for information, its
 * backup pushed from the database host through repo1-host is timed instead (pgBackRest runs backups only on the
 * repository host, so that case has no pgBackRest figures).
 */
async function scenarioFullSsh(ctx) {
  const ct = ctx.opts.compressType
  heading(`1. full backup run on the backup host (pg1-host over SSH): ${ct}, process-max 2`)
  const args = ['--type=full', ...compressArgs(ct), '--process-max=2']
  const walden = ctx.main.tools.walden
  const c = addCase(ctx, {
    id: `full-${ct}-pm2`,
    scenario: 1,
    title: `full backup ${ct}, process-max 2, run on the backup host`,
    target: walden.backupPending ? pendingTarget('≤ 0.80', walden.backupPending) : ratioTarget('≤ 0.80', 0.8),
  })
  c.notes.push(
    'run as the backup host\'s user with pg1-host naming the database host: files are read there by the far end and stream through SSH into the repository; CPU and peak RSS are the backup host\'s command (its ssh clients included), the far-end columns the processes sshd started for it on the database host',
  )
  const pushed = walden.backupPending
    ? addCase(ctx, { id: `full-${ct}-pm2-from-db`, scenario: 1, title: `full backup ${ct}, process-max 2, pushed from the database host (repo1-host; walden only, for information)` })
    : undefined
  if (pushed) {
    pushed.notes.push(`walden cannot back up from the backup host yet (${walden.backupPending}); this is its backup run on the database host instead, writing through repo1-host. pgBackRest backs up only on the repository host, so there is no pair`)
  }
  const stored = {}
  for (let r = 0; r < ctx.opts.runs; r++) {
    for (const tool of toolList(ctx)) {
      const [theCase, runner] = tool.backupHost ? [c, tool.backupHost] : pushed && tool.kind === WALDEN ? [pushed, tool] : []
      if (!runner) continue
      await ctx.main.server.sql('CHECKPOINT')
      await sync()
      const m = await runner.measure('backup', args)
      const label = (await tool.lastBackup()).label
      stored[tool.kind] = await backupStoredBytes(tool, label)
      record(theCase, tool, m, r, ctx.opts.runs)
      ctx.state.full[tool.kind] = label
    }
  }
  c.notes.push(`stored size of one backup: ${Object.entries(stored).map(([kind, bytes]) => `${ctx.label(kind)} ${fmtMB(bytes)} MB`).join(', ')}`)
  ctx.state.memoryCases.backup = c
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Incremental backup after pgbench -T 30

export async function scenarioIncr(ctx) {
  heading('2. incremental backup after pgbench -T 30')
  const ct = ctx.opts.compressType
  for (const tool of toolList(ctx)) await ensureFull(ctx, tool)
  const c = addCase(ctx, { id: 'incr', scenario: 2, title: 'incremental after pgbench -T 30', target: ratioTarget('≤ 0.75', 0.75) })
  c.notes.push(
    'each run: `pgbench -T 30` (untimed), CHECKPOINT, then one incremental backup per tool, each against its own previous backup (the full before run 1), so every incremental covers the same 30 s of changes',
  )
  const stored = {}
  for (let r = 0; r < ctx.opts.runs; r++) {
    const s = ctx.main.server
    const { stdout } = await run(ctx.pgBin + '/pgbench', ['-T', '30', '-h', ctx.socketDir, '-p', String(s.port), '-U', 'postgres', 'postgres'], { what: 'pgbench -T 30' })
    const tps = /tps = ([\d.]+)/.exec(stdout)?.[1]
    say(`  pgbench -T 30: ${tps ?? '?'} tps`)
    await s.sql('CHECKPOINT')
    for (const tool of toolList(ctx)) {
      await sync()
      const m = await tool.measure('backup', ['--type=incr', ...compressArgs(ct), '--process-max=2'])
      const last = await tool.lastBackup()
      if (last.type !== 'incr') throw new BenchError(`${tool.label} made a ${last.type} backup, not an incremental`)
      stored[tool.kind] = last.info?.repository?.delta
      m.copiedBytes = last.info?.delta
      record(c, tool, m, r, ctx.opts.runs, `, copied ${fmtMB(last.info?.delta)} MB`)
    }
  }
  c.notes.push(
    `copied (changed data read) in the last run: ${toolList(ctx).map((tool) => `${tool.label} ${fmtMB(c.samples[tool.kind].at(-1)?.copiedBytes)} MB`).join(', ')}; stored: ${Object.entries(stored).map(([kind, bytes]) => `${ctx.label(kind)} ${fmtMB(bytes)} MB`).join(', ')}`,
  )
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Restore into an empty folder

export async function scenarioRestore(ctx) {
  heading('3. restore of the full backup into an empty folder, process-max 2')
  const labels = {}
  for (const tool of toolList(ctx)) labels[tool.kind] = await ensureFull(ctx, tool)
  const c = addCase(ctx, { id: 'restore', scenario: 3, title: 'restore', target: onS3(ctx) ? ratioTarget('≤ 0.80', 0.8) : ratioTarget('≤ 0.90', 0.9) })
  c.notes.push('`restore --type=immediate --target-action=promote --process-max=2` into an empty folder; every restored cluster was started, promoted and its pgbench_accounts rows counted (untimed)')
  if (overSsh(ctx)) {
    c.notes.push(
      'run on the database host as postgres, reading the repository through repo1-host (the far ends run on the backup host as its user); the restored cluster\'s restore_command fetches WAL through SSH too',
    )
  }
  for (let r = 0; r < ctx.opts.runs; r++) {
    for (const tool of toolList(ctx)) {
      const dir = await emptyFolder(join(ctx.root, `restore-${tool.kind}`))
      await sync()
      const m = await measureTimed(ctx, () => tool.measure('restore', restoreArgs(dir, labels[tool.kind], ['--type=immediate', '--target-action=promote'])))
      record(c, tool, m, r, ctx.opts.runs)
      await verifyRestored(ctx, dir, `${tool.label} restore`)
      await rm(dir, { recursive: true, force: true })
    }
  }
  gatewayNote(c)
  ctx.state.memoryCases.restore = c
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Delta restore

/** Changes one 8 KiB page in place, keeping the file's size and timestamps. */
async function pageChange(path, block) {
  const before = await stat(path, { bigint: true })
  const handle = await open(path, 'r+')
  try {
    const page = Buffer.alloc(PAGE)
    await handle.read(page, 0, PAGE, block * PAGE)
    // Flip 64 bytes in the middle of the page: tuple data changes and the page checksum no longer matches.
    for (let i = 4096; i < 4160; i++) page[i] ^= 0xff
    await handle.write(page, 0, PAGE, block * PAGE)
    await handle.sync()
  } finally {
    await handle.close()
  }
  // Back to the old timestamps (nanoseconds, as seconds with a fraction), so a tool trusting size and time sees
  // nothing.
  await utimes(path, Number(before.atimeNs) / 1e9, Number(before.mtimeNs) / 1e9)
  const after = await stat(path, { bigint: true })
  return { sameSize: after.size === before.size, sameMtime: after.mtimeMs === before.mtimeMs }
}

export async function scenarioDelta(ctx) {
  heading('4. delta restore: nothing changed, and one 8 KiB page of pgbench_accounts changed')
  const labels = {}
  for (const tool of toolList(ctx)) labels[tool.kind] = await ensureFull(ctx, tool)
  const relPath = await ctx.main.server.sql("select pg_relation_filepath('pgbench_accounts')")
  const deltaArgs = (tool, dir) => restoreArgs(dir, labels[tool.kind], ['--delta', '--type=immediate', '--target-action=promote'])

  const dirs = {}
  const files = {}
  const original = {}
  let block
  for (const tool of toolList(ctx)) {
    dirs[tool.kind] = await emptyFolder(join(ctx.root, `delta-${tool.kind}`))
    say(`  restoring ${tool.label}'s full backup into ${dirs[tool.kind]} (untimed)`)
    await tool.run('restore', restoreArgs(dirs[tool.kind], labels[tool.kind], ['--type=immediate', '--target-action=promote']))
    files[tool.kind] = join(dirs[tool.kind], relPath)
    const size = (await stat(files[tool.kind])).size
    block ??= Math.floor(size / PAGE / 2)
    original[tool.kind] = await sha256File(files[tool.kind])
  }
  const fileSize = (await stat(files[WALDEN])).size
  say(`  page to change: block ${block} of ${relPath} (${fmtMB(fileSize)} MB${fileSize === 1073741824 ? ', a full 1 GiB segment' : ''})`)

  const nothing = addCase(ctx, { id: 'delta-nothing', scenario: 4, title: 'delta restore, nothing changed', target: ratioTarget('≤ 1.0', 1.0) })
  const onePage = addCase(ctx, { id: 'delta-page', scenario: 4, title: 'delta restore, one page changed', target: ratioTarget('≤ 0.35', 0.35) })
  onePage.notes.push(
    `block ${block} of ${relPath} (${fmtMB(fileSize)} MB) changed in place in each tool's restored copy, same size, mtime set back; then \`restore --delta\` (pgBackRest: checksum delta, no --force)`,
  )
  const detected = {}
  for (let r = 0; r < ctx.opts.runs; r++) {
    for (const tool of toolList(ctx)) {
      await sync()
      const m = await tool.measure('restore', deltaArgs(tool, dirs[tool.kind]))
      record(nothing, tool, m, r, ctx.opts.runs)
    }
    for (const tool of toolList(ctx)) {
      const kept = await pageChange(files[tool.kind], block)
      if (!kept.sameSize || !kept.sameMtime) say(`  WARNING: could not keep size and mtime of ${files[tool.kind]}`)
    }
    for (const tool of toolList(ctx)) {
      await sync()
      const m = await tool.measure('restore', deltaArgs(tool, dirs[tool.kind]))
      const repaired = (await sha256File(files[tool.kind])) === original[tool.kind]
      m.detected = repaired
      detected[tool.kind] = (detected[tool.kind] ?? true) && repaired
      record(onePage, tool, m, r, ctx.opts.runs, repaired ? ', page repaired' : ', CHANGED PAGE NOT REPAIRED')
      if (!repaired) {
        // Put it right for the next run (and the start-up check): a plain restore into an empty folder.
        await emptyFolder(dirs[tool.kind])
        await tool.run('restore', restoreArgs(dirs[tool.kind], labels[tool.kind], ['--type=immediate', '--target-action=promote']))
      }
    }
  }
  for (const tool of toolList(ctx)) {
    onePage.notes.push(`${tool.label} \`restore --delta\` ${detected[tool.kind] ? 'found and repaired the changed page in every run' : '**missed the changed page** (file left different from the backup)'}`)
  }

  // For the record: pgBackRest's --delta --force trusts size and timestamp.
  if (ctx.main.tools.pgbackrest) {
    const tool = ctx.main.tools.pgbackrest
    await pageChange(files[tool.kind], block)
    await tool.run('restore', [...deltaArgs(tool, dirs[tool.kind]), '--force'])
    const repaired = (await sha256File(files[tool.kind])) === original[tool.kind]
    onePage.notes.push(`pgBackRest \`restore --delta --force\` (size + timestamp) ${repaired ? 'also repaired the page' : '**did not notice the changed page** (as designed: same size and mtime); not timed'}`)
    say(`  pgBackRest --delta --force: ${repaired ? 'repaired the page' : 'did not notice the changed page'}`)
    if (!repaired) await tool.run('restore', deltaArgs(tool, dirs[tool.kind]))
  }
  for (const tool of toolList(ctx)) {
    await verifyRestored(ctx, dirs[tool.kind], `${tool.label} delta-restored copy`)
    await rm(dirs[tool.kind], { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// WAL for scenarios 5 and 6: full backups first (for the replay), then at least 66 segments of real WAL, archived
// into both repositories and copied aside by the archive_command wrapper.

export async function walPhase(ctx) {
  if (ctx.state.wal) return ctx.state.wal
  const server = ctx.main.server
  heading('WAL: full backups for the replay, then about 1.1 GB of real WAL')
  const fulls = {}
  if (ctx.opts.scenarios.includes(6)) {
    for (const tool of toolList(ctx)) {
      await server.sql('CHECKPOINT')
      say(`  full backup with ${tool.label} (untimed): the replay restores it and fetches all WAL written after it`)
      await tool.run('backup', ['--type=full', ...compressArgs(ctx.opts.compressType), '--process-max=2'])
      const last = await tool.lastBackup()
      fulls[tool.kind] = { label: last.label, startLsn: last.lsn?.start }
    }
  }
  const collect = await ownedFolder(ctx.main.collectDir, 0o755)
  await server.sql('CREATE TABLE IF NOT EXISTS walload (id bigint, payload text, at timestamptz)')
  const lsn0 = await server.sql('select pg_current_wal_lsn()')
  // 65 segments' worth from the middle of one: 66 or more segments touched, 64 of them whole.
  const need = 65 * SEGMENT_BYTES
  let written = 0
  let rows = Number(await server.sql('select count(*) from walload'))
  const accounts = ctx.opts.scale * 100000
  const t0 = Date.now()
  for (let i = 0; written < need; i++) {
    // Inserts of hashed text (compresses about 2:1) and updates scattered over pgbench_accounts (full-page images
    // after the checkpoint, then ordinary heap updates): WAL that looks like a busy OLTP system's.
    const step = Math.max(1, Math.round(accounts / 20000))
    await server.sql(
      `BEGIN; INSERT INTO walload SELECT g, md5(g::text) || md5((g * 7)::text), clock_timestamp() FROM generate_series(${rows + 1}, ${rows + 75000}) g; ` +
        `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % ${step} = ${i % step}; COMMIT;`,
    )
    rows += 75000
    written = Number(await server.sql(`select pg_current_wal_lsn() - '${lsn0}'::pg_lsn`))
  }
  const last = await server.sql('select pg_walfile_name(pg_switch_wal())')
  say(`  wrote ${fmtMB(written)} MB of WAL in ${((Date.now() - t0) / 1000).toFixed(0)} s; waiting for the archiver to reach ${last}`)
  for (let waited = 0; ; waited++) {
    const archived = await server.sql('select last_archived_wal from pg_stat_archiver')
    if (archived >= last && archived.length === last.length) break
    if (waited > 6000) throw new BenchError(`the archiver did not reach ${last} (at ${archived}); see ${server.logFile}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const failed = await server.sql('select failed_count from pg_stat_archiver')
  // Stop collecting: the wrapper copies only while the folder exists.
  const collected = `${collect}-done`
  await rename(collect, collected)
  const names = (await readdir(collected)).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort()
  // The first may hold WAL from before the load and the last was cut short by pg_switch_wal: keep the middle.
  const segments = names.slice(1, -1).slice(0, 64).map((name) => join(collected, name))
  if (segments.length < 64) throw new BenchError(`only ${segments.length} full segments were collected (${names.length} in ${collected})`)
  say(`  ${names.length} segments archived into both repositories (archiver failures: ${failed}); using ${segments.at(0).slice(-24)}..${segments.at(-1).slice(-24)}`)
  ctx.state.wal = { fulls, segments, walloadRows: rows }
  return ctx.state.wal
}

/**
 * Samples per tool of a single archive-push or archive-get. One such command takes a tenth of a second, so one slow
 * start (the scheduler, page-cache writeback of an earlier scenario) moves a median of five by a third; fifteen
 * cost a few seconds and hold still.
 */
const SINGLE_COMMAND_SAMPLES = 15

// ---------------------------------------------------------------------------------------------------------------
// 5. archive-push

export async function scenarioArchivePush(ctx) {
  const wal = await walPhase(ctx)
  heading('5. archive-push: one synchronous segment, and 64 segments in a row')
  const ct = ctx.opts.compressType
  const base = await ownedFolder(join(ctx.root, 'push'), 0o755)
  // A stand-in data folder: pgBackRest reads pg_control from pg1-path and, when asynchronous, the .ready files in
  // pg_wal/archive_status; the segments are hard links to the real ones collected above.
  const fake = await ownedFolder(join(base, 'pgdata'))
  await ownedFolder(join(fake, 'global'))
  await ownedFolder(join(fake, 'pg_wal'))
  await ownedFolder(join(fake, 'pg_wal', 'archive_status'))
  for (const name of ['global/pg_control', 'PG_VERSION']) await ownedFile(join(fake, name), await readFile(join(ctx.main.server.dataDir, name)))
  const segNames = wal.segments.map((path) => path.slice(-24))
  for (const path of wal.segments) await link(path, join(fake, 'pg_wal', path.slice(-24))).catch(() => undefined)

  /**
   * A fresh repository with the stanza created, for one tool (so every push is a new segment for it): a folder, or on
   * S3 a new key prefix in the tool's bucket.
   */
  let repoSeq = 0
  async function freshRepo(tool) {
    let repo
    if (onS3(ctx)) {
      repo = `/push-${tool.kind}-${++repoSeq}`
    } else {
      repo = join(base, `repo-${tool.kind}-${++repoSeq}`)
      await rm(repo, { recursive: true, force: true })
      await ownedFolder(repo)
    }
    await tool.run('stanza-create', [`--repo1-path=${repo}`])
    return repo
  }
  async function repoRemove(tool, repo) {
    if (onS3(ctx)) await ctx.gateway.prefixRemove(tool.bucket, repo)
    else await rm(repo, { recursive: true, force: true })
  }
  const pushArgs = (tool, repo, extra = []) => [`--repo1-path=${repo}`, `--pg1-path=${fake}`, ...compressArgs(ct), ...extra]
  const syncExtra = (tool) => (tool.kind === PGBACKREST ? ['--no-archive-async'] : [])
  if (overSsh(ctx)) {
    await archivePushSsh(ctx, { fake, segNames, compress: compressArgs(ct), syncExtra })
    await rm(base, { recursive: true, force: true })
    return
  }

  // One segment, synchronous, as PostgreSQL's archiver calls it (cwd = data folder, %p = pg_wal/NAME).
  // Issue #12 sets no target for a single push to S3.
  const single = addCase(ctx, { id: 'push-one', scenario: 5, title: 'archive-push one synchronous segment', target: onS3(ctx) ? undefined : ratioTarget('≤ 2.0', 2.0) })
  const pushes = Math.max(ctx.opts.runs, SINGLE_COMMAND_SAMPLES)
  single.notes.push(`${pushes} pushes per tool, each of a different real segment into a fresh stanza; pgBackRest with --no-archive-async`)
  const repos = {}
  for (const tool of toolList(ctx)) repos[tool.kind] = await freshRepo(tool)
  for (let i = 0; i < pushes; i++) {
    for (const tool of toolList(ctx)) {
      const m = await measureTimed(ctx, () => tool.measure('archive-push', [...pushArgs(tool, repos[tool.kind], syncExtra(tool)), `pg_wal/${segNames[i]}`], { cwd: fake }))
      record(single, tool, m, i, pushes)
    }
  }
  gatewayNote(single)
  for (const tool of toolList(ctx)) await repoRemove(tool, repos[tool.kind])

  // 64 segments in a row.
  const count = 64
  async function loopScript(tool, repo, extra) {
    const script = join(base, `push-loop-${tool.kind}.sh`)
    const lines = ['#!/bin/sh', 'set -e', `cd ${fake}`]
    for (const name of segNames.slice(0, count)) {
      const args = [...pushArgs(tool, repo, extra), `pg_wal/${name}`]
      lines.push(tool.kind === WALDEN && extra.includes('--archive-async') ? tool.frontShell(args) : tool.shell('archive-push', args))
      lines.push(`mv pg_wal/archive_status/${name}.ready pg_wal/archive_status/${name}.done`)
    }
    await ownedFile(script, lines.join('\n') + '\n', 0o755)
    return script
  }
  async function readyAll() {
    const status = join(fake, 'pg_wal', 'archive_status')
    for (const name of await readdir(status)) await rm(join(status, name), { force: true })
    for (const name of segNames.slice(0, count)) await ownedFile(join(status, `${name}.ready`), '', 0o600)
  }
  async function archivedCount(tool, repo) {
    let paths
    if (onS3(ctx)) {
      paths = await ctx.gateway.keys(tool.bucket, repo)
    } else {
      const { stdout } = await run('find', [repo, '-type', 'f', '-name', '0000*'], { owner: false })
      paths = stdout.split('\n').filter(Boolean)
    }
    return new Set(paths.map((path) => path.split('/').at(-1).slice(0, 24)).filter((name) => segNames.includes(name))).size
  }

  const sustained = addCase(ctx, { id: 'push-64', scenario: 5, title: 'archive-push 64 segments, async', target: ratioTarget('≥ 1.2× pgBackRest\'s segments/s', 1.2, '>='), ratio: 'throughput' })
  sustained.toolNote = { [WALDEN]: '(async, process-max 2)', [PGBACKREST]: '(async, process-max 2)' }
  sustained.notes.push(
    '64 real segments pushed one after another as the archiver does (a .ready file for each, renamed .done after each successful push). ' +
      'Both tools run `--archive-async --process-max=2` with a fresh spool; their detached background processes are included in CPU and memory. ' +
      'walden runs through its sh front, bin/walden-archive-push, as its documentation tells a DBA to configure archive_command. ' +
      'Wall time is until the 64th archive-push returns; the speed ratio is walden\'s segments/s ÷ pgBackRest\'s.',
  )
  // On S3 only the case issue #12 sets a target for: the sequential reference would cost as long again.
  const sequential = onS3(ctx) ? undefined : addCase(ctx, { id: 'push-64-sync', scenario: 5, title: 'archive-push 64 segments, both sequential (sync)', ratio: 'throughput' })
  sequential?.notes.push('for reference, both tools synchronous: 64 archive-push commands one after another')
  for (const [c, asynchronous] of [[sustained, true], [sequential, false]]) {
    if (!c) continue
    for (let r = 0; r < ctx.opts.runs; r++) {
      for (const tool of toolList(ctx)) {
        const repo = await freshRepo(tool)
        let extra = syncExtra(tool)
        if (asynchronous) {
          const spool = join(base, 'spool')
          await rm(spool, { recursive: true, force: true })
          await ownedFolder(spool)
          extra = ['--archive-async', `--spool-path=${spool}`, '--process-max=2']
        }
        await readyAll()
        const script = await loopScript(tool, repo, extra)
        await sync()
        const m = await measureTimed(ctx, () => measureScript(ctx, script))
        m.segments = count
        m.segmentsPerS = count / m.wallS
        const archived = await archivedCount(tool, repo)
        if (archived !== count) throw new BenchError(`${tool.label}: ${archived} of ${count} segments are in the repository after the run`)
        record(c, tool, m, r, ctx.opts.runs, `, ${m.segmentsPerS.toFixed(1)} segments/s${m.wallAllS > m.wallS + 0.05 ? ` (last worker exited after ${fmtS(m.wallAllS)} s)` : ''}`)
        await repoRemove(tool, repo)
      }
    }
    gatewayNote(c)
  }
  await rm(base, { recursive: true, force: true })
}

/** Pushes per run over SSH: one synchronous push takes a fraction of a second, so a median needs many. */
const SSH_PUSHES_PER_RUN = 20

/**
 * Over SSH (issue #13): one synchronous archive-push through repo1-host, as PostgreSQL's archiver runs it on the
 * database host. Each run gives each tool a fresh repository on the backup host (a copy of its backup host config
 * naming a new repo1-path, stanza created there, untimed), then alternates 20 pushes of different real segments.
 */
async function archivePushSsh(ctx, { fake, segNames, compress, syncExtra }) {
  const single = addCase(ctx, { id: 'push-one', scenario: 5, title: 'archive-push one synchronous segment through SSH', target: ratioTarget('≤ 1.5', 1.5) })
  const perRun = SSH_PUSHES_PER_RUN
  single.notes.push(
    `${perRun} pushes per tool per run (${perRun * ctx.opts.runs} each), alternating, each of a different real segment into a repository made fresh for the run on the backup host; pgBackRest with --no-archive-async; ` +
      'every push starts its ssh session and far end, as PostgreSQL\'s archive_command does',
  )
  for (let r = 0; r < ctx.opts.runs; r++) {
    const repos = {}
    for (const tool of toolList(ctx)) {
      const fresh = await sshRepoConfigFresh(tool, ctx.sshd, `push-${r + 1}`)
      // stanza-create where the tool can run it: pgBackRest only on the backup host.
      if (tool.backupHost) await toolWith(tool.backupHost, { configPath: fresh.conf }).run('stanza-create')
      else await tool.run('stanza-create', [`--repo1-host-config=${fresh.conf}`])
      repos[tool.kind] = fresh
    }
    for (let i = 0; i < perRun; i++) {
      const name = segNames[(r * perRun + i) % segNames.length]
      for (const tool of toolList(ctx)) {
        const args = [`--repo1-host-config=${repos[tool.kind].conf}`, `--pg1-path=${fake}`, ...compress, ...syncExtra(tool), `pg_wal/${name}`]
        const m = await tool.measure('archive-push', args, { cwd: fake })
        record(single, tool, m, r * perRun + i, perRun * ctx.opts.runs)
      }
    }
    // Every push must have stored its segment on the backup host.
    for (const tool of toolList(ctx)) {
      const { stdout } = await run('find', [repos[tool.kind].repo, '-type', 'f', '-name', '0000*'], { owner: false })
      const stored = new Set(stdout.split('\n').filter(Boolean).map((path) => path.split('/').at(-1).slice(0, 24)))
      if (stored.size !== perRun) throw new BenchError(`${tool.label}: ${stored.size} of ${perRun} pushed segments are in ${repos[tool.kind].repo}`)
      await rm(repos[tool.kind].repo, { recursive: true, force: true })
    }
  }
}

function measureScript(ctx, script) {
  return measure('/bin/sh', [script], { what: script })
}

// ---------------------------------------------------------------------------------------------------------------
// 6. archive-get and recovery replay

export async function scenarioArchiveGet(ctx) {
  const wal = await walPhase(ctx)
  heading('6. archive-get of one segment, and recovery replay through restore_command')
  const dest = await ownedFolder(join(ctx.root, 'get'), 0o700)
  const gets = Math.max(ctx.opts.runs, SINGLE_COMMAND_SAMPLES)
  const single = addCase(ctx, { id: 'get-one', scenario: 6, title: 'archive-get one segment' })
  single.notes.push(`${gets} gets per tool of different segments from the source cluster's repositories; both with --no-archive-async`)
  for (let i = 0; i < gets; i++) {
    const segment = wal.segments[i]
    const name = segment.slice(-24)
    const expected = await sha256File(segment)
    for (const tool of toolList(ctx)) {
      const target = join(dest, `${tool.kind}-${name}`)
      // Both configs turn asynchronous archive-get on for the replay below.
      const extra = ['--no-archive-async']
      const m = await tool.measure('archive-get', [...extra, name, target])
      if ((await sha256File(target)) !== expected) throw new BenchError(`${tool.label} archive-get ${name}: the file differs from the archived segment`)
      record(single, tool, m, i, gets)
      await rm(target, { force: true })
    }
  }

  if (!ctx.opts.scenarios.includes(6) || Object.keys(wal.fulls).length === 0) return
  const replay = addCase(ctx, { id: 'replay', scenario: 6, title: 'recovery replay of 64 segments', target: ratioTarget('≤ 1.0', 1.0), ratio: 'time-per', per: 'segments' })
  replay.perLabel = 'segment'
  replay.toolNote = { [WALDEN]: '(async get, queue 128 MiB, process-max 2)', [PGBACKREST]: '(async get, queue 128 MiB, process-max 2)' }
  replay.notes.push(
    'the full backup taken just before the WAL was written is restored (untimed), then the server is started and timed until it is out of recovery (end of the archive, then promotion). ' +
      'CPU is the server\'s and everything it ran (restore_command included) up to that point, so replay work common to both is in both figures. ' +
      'Both tools run archive-get asynchronously (archive-async=y, archive-get-queue-max=128MiB, process-max=2), each with an emptied spool. ' +
      "Each tool's restore writes restore_command itself; walden's goes through its sh front, bin/walden-archive-get, which moves a segment the background process has queued into place without starting Node.js. " +
      'The two fulls start a segment or two apart, so the ratio is of time per segment fetched.',
  )
  for (let r = 0; r < ctx.opts.runs; r++) {
    for (const tool of toolList(ctx)) {
      const dir = await emptyFolder(join(ctx.root, `replay-${tool.kind}`))
      await tool.run('restore', restoreArgs(dir, wal.fulls[tool.kind].label))
      if (tool.kind === WALDEN && !(await readFile(join(dir, 'postgresql.auto.conf'), 'utf8')).includes('/walden-archive-get ')) {
        throw new BenchError("walden's restore did not write restore_command through bin/walden-archive-get")
      }
      const port = ctx.nextPort()
      await restoredConfAppend(dir, port, ctx.socketDir)
      if (tool.spoolPath) await rm(join(tool.spoolPath, 'archive'), { recursive: true, force: true })
      const server = new Server({ pgBin: ctx.pgBin, dataDir: dir, port, socketDir: ctx.socketDir, logFile: `${dir}.log` })
      await sync()
      const m = await server.timeRecovery()
      const log = await readFile(server.logFile, 'utf8')
      m.segments = (log.match(/restored log file "[0-9A-F]{24}" from archive/g) ?? []).length
      if (m.segments < 60) throw new BenchError(`${tool.label}: recovery fetched only ${m.segments} segments\n${await server.logTail()}`)
      record(replay, tool, m, r, ctx.opts.runs, `, ${m.segments} segments fetched, ${(m.segments / m.wallS).toFixed(1)} segments/s`)
      // Check the replay reached the end of the archive: start it again and count.
      await verifyRestored(ctx, dir, `${tool.label} replayed cluster`, { walloadRows: wal.walloadRows })
      await rm(dir, { recursive: true, force: true })
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Memory

export async function scenarioMemory(ctx) {
  heading(`7. peak memory of backup and restore at scale ${ctx.opts.memoryScales.join(' and ')}`)
  const ct = ctx.opts.compressType
  const byScale = {}
  for (const scale of ctx.opts.memoryScales) {
    const backup = new Case({ id: `mem-backup-${scale}`, scenario: 7, title: `full backup, scale ${scale}` })
    const restore = new Case({ id: `mem-restore-${scale}`, scenario: 7, title: `restore, scale ${scale}` })
    byScale[scale] = { backup, restore }
    if (scale === ctx.opts.scale && ctx.state.memoryCases.backup && ctx.state.memoryCases.restore) {
      // Already measured by scenarios 1 and 3 with the same settings.
      for (const [c, from] of [[backup, ctx.state.memoryCases.backup], [restore, ctx.state.memoryCases.restore]]) {
        for (const tool of [WALDEN, PGBACKREST]) for (const s of from.samples[tool]) c.add(tool, s)
        c.notes.push(`the ${from.title} runs of scenario ${from.scenario} (same settings)`)
      }
      say(`  scale ${scale}: using the measurements of scenarios 1 and 3`)
      continue
    }
    let stack = ctx.main
    let created
    // The source cluster serves only while it still holds just the pgbench data (scenarios 5 and 6 add 1 GB).
    if (scale !== ctx.opts.scale || ctx.state.wal) {
      created = await memoryCluster(ctx, scale)
      stack = created
    }
    for (let r = 0; r < ctx.opts.runs; r++) {
      for (const tool of toolList(ctx, stack)) {
        // Over SSH a walden without pgN-host has no backup on the backup host to measure (scenario 1 says so).
        if (overSsh(ctx) && !tool.backupHost) {
          await ensureUntimedFull(stack, tool, ct)
          continue
        }
        await stack.server.sql('CHECKPOINT')
        await sync()
        const m = await backupTool(tool).measure('backup', ['--type=full', ...compressArgs(ct), '--process-max=2'])
        record(backup, tool, m, r, ctx.opts.runs)
      }
      for (const tool of toolList(ctx, stack)) {
        const label = (await tool.backups()).filter((b) => b.type === 'full').at(-1).label
        const dir = await emptyFolder(join(ctx.root, `mem-restore-${tool.kind}`))
        await sync()
        const m = await tool.measure('restore', restoreArgs(dir, label, ['--type=immediate', '--target-action=promote']))
        record(restore, tool, m, r, ctx.opts.runs)
        if (r === 0) await verifyRestored(ctx, dir, `${tool.label} restore at scale ${scale}`, { scale })
        await rm(dir, { recursive: true, force: true })
      }
    }
    if (created) {
      await created.server.stop('fast')
      await rm(created.base, { recursive: true, force: true })
    }
  }

  // Targets: walden's peak RSS at the largest scale, absolute and relative to scale 10.
  const scales = [...ctx.opts.memoryScales].sort((a, b) => a - b)
  if (overSsh(ctx)) return memoryTargetsSsh(ctx, byScale, scales)
  const small = scales[0]
  const large = scales.at(-1)
  for (const kind of ['backup', 'restore']) {
    for (const scale of scales) {
      const c = byScale[scale][kind]
      ctx.cases.push(c)
    }
    const big = byScale[large][kind]
    const little = byScale[small][kind]
    big.target = {
      text: `walden ≤ 256 MB at scale 100${large !== 100 ? ` (measured at scale ${large})` : ''}, and ≤ 1.2× its scale-${small} value`,
      check() {
        const a = median(big.samples[WALDEN].map((s) => s.rssBytes))
        const b = median(little.samples[WALDEN].map((s) => s.rssBytes))
        const growth = a / b
        const met = a <= 256 * 1048576 && (large === small || growth <= 1.2)
        return { met, measured: `${fmtMB(a)} MB at scale ${large}, ${fmtMB(b)} MB at scale ${small} (×${growth.toFixed(2)})` }
      },
    }
    big.targetTitle = `peak RSS, ${kind}`
  }
}

/** A full backup for the restore to measure when the backup itself is not measured (walden pending over SSH). */
async function ensureUntimedFull(stack, tool, ct) {
  stack.untimedFull ??= new Set()
  if (stack.untimedFull.has(tool.kind)) return
  await stack.server.sql('CHECKPOINT')
  await backupTool(tool).run('backup', ['--type=full', ...compressArgs(ct), '--process-max=2'])
  stack.untimedFull.add(tool.kind)
}

/**
 * Over SSH (issue #13) the target is that the memory of both ends stays flat as the database grows: walden's peak RSS
 * at the largest scale, on the command's side and on the far end (the sum over its sessions), each ≤ 1.2× its value
 * at the smallest scale. pgBackRest's growth is in the note for comparison.
 */
function memoryTargetsSsh(ctx, byScale, scales) {
  const small = scales[0]
  const large = scales.at(-1)
  for (const kind of ['backup', 'restore']) {
    for (const scale of scales) ctx.cases.push(byScale[scale][kind])
    const big = byScale[large][kind]
    const little = byScale[small][kind]
    const growth = (tool, field) => {
      const a = median(big.samples[tool].map((sample) => sample[field]))
      const b = median(little.samples[tool].map((sample) => sample[field]))
      return { a, b, ratio: a / b }
    }
    big.targetTitle = `peak RSS of both ends, ${kind}`
    const walden = ctx.main.tools.walden
    const pending = kind === 'backup' && walden.backupPending
    const text = `walden, each end: ≤ 1.2× its scale-${small} value at scale ${large}`
    big.target = pending
      ? pendingTarget(text, walden.backupPending)
      : {
          text,
          check() {
            const local = growth(WALDEN, 'rssBytes')
            const far = growth(WALDEN, 'remoteRssBytes')
            const met = large === small || (local.ratio <= 1.2 && far.ratio <= 1.2)
            const part = (g) => `${fmtMB(g.b)} → ${fmtMB(g.a)} MB (×${g.ratio.toFixed(2)})`
            return { met, measured: `command's end ${part(local)}, far end ${part(far)}` }
          },
        }
    if (big.samples[PGBACKREST].length > 0 && little.samples[PGBACKREST].length > 0) {
      const local = growth(PGBACKREST, 'rssBytes')
      const far = growth(PGBACKREST, 'remoteRssBytes')
      big.notes.push(`pgBackRest from scale ${small} to ${large}: command's end ×${local.ratio.toFixed(2)}, far end ×${far.ratio.toFixed(2)}`)
    }
  }
}

async function memoryCluster(ctx, scale) {
  say(`  building a scale-${scale} cluster for the memory figures`)
  const name = `mem${scale}`
  const port = ctx.nextPort()
  const dataDir = join(ctx.root, name, 'pgdata')
  await ownedFolder(join(ctx.root, name), 0o755)
  const setup = await (overSsh(ctx) ? sshToolsSetup : toolsSetup)({
    root: ctx.root,
    name: `${name}`,
    stanza: name,
    dataDir,
    port,
    socketDir: ctx.socketDir,
    waldenProgram: ctx.waldenProgram,
    pgbackrestBin: ctx.pgbackrestBin,
    compressType: ctx.opts.compressType,
    sshd: ctx.sshd,
  })
  const server = await sourceClusterCreate({ pgBin: ctx.pgBin, dataDir, port, socketDir: ctx.socketDir, logFile: join(ctx.root, name, 'pgdata.log'), archiveCommand: setup.archiveCommand })
  for (const tool of Object.values(setup.tools)) {
    if (overSsh(ctx)) await sshStanzaCreate(tool)
    else await tool.run('stanza-create')
  }
  await pgbenchLoad(server, scale)
  await run('sh', ['-c', `find ${dataDir} -type f -exec cat {} + > /dev/null 2>&1`], { owner: false, allowFail: true })
  return { ...setup, server }
}

// ---------------------------------------------------------------------------------------------------------------
// 9. The cost of encryption: walden's full backup into an aes-256-gcm repository against its plain one

export async function scenarioEncrypted(ctx) {
  heading('9. full backup, encrypted (repo1-cipher-type=aes-256-gcm) against plain, process-max 2')
  const plain = ctx.main.tools.walden
  // A second repository, encrypted from its stanza-create on; the passphrase in a 0600 config file, as a user would.
  const base = await ownedFolder(join(ctx.root, 'main', 'walden-aes'), 0o755)
  const repo = await ownedFolder(join(base, 'repo'))
  const conf = (await readFile(plain.configPath, 'utf8'))
    .replace(`repo1-path=${plain.repoPath}`, `repo1-path=${repo}\nrepo1-cipher-type=aes-256-gcm\nrepo1-cipher-pass=${randomBytes(32).toString('base64')}`)
    .replace(/^(log|lock)-path=(.*)$/gm, (_line, key, path) => `${key}-path=${path}-aes`)
  for (const folder of conf.match(/^(?:log|lock)-path=(.*)$/gm).map((line) => line.split('=')[1])) await ownedFolder(folder)
  const encrypted = new Tool({ kind: WALDEN, program: plain.program, configPath: await ownedFile(join(base, 'walden.conf'), conf, 0o600), repoPath: repo, stanza: plain.stanza, spoolPath: plain.spoolPath })
  await encrypted.run('stanza-create')
  const ct = ctx.opts.compressType
  // No WAL reaches the encrypted repository (archive_command pushes to the plain one), so neither waits for WAL.
  const args = ['--type=full', ...compressArgs(ct), '--process-max=2', '--no-archive-check', '--repo1-retention-full=1']
  const cases = {
    plain: addCase(ctx, { id: `full-${ct}-plain`, scenario: 9, title: `full backup ${ct}, plain (for scenario 9)` }),
    aes: addCase(ctx, { id: `full-${ct}-aes`, scenario: 9, title: `full backup ${ct}, aes-256-gcm` }),
  }
  for (let r = 0; r < ctx.opts.runs; r++) {
    // Alternating, each after a checkpoint and a sync, so neither side gets a quieter disk.
    for (const [name, tool] of r % 2 === 0 ? [['plain', plain], ['aes', encrypted]] : [['aes', encrypted], ['plain', plain]]) {
      await ctx.main.server.sql('CHECKPOINT')
      await sync()
      record(cases[name], tool, await tool.measure('backup', args), r, ctx.opts.runs)
    }
  }
  const wall = (c) => median(c.samples[WALDEN].map((sample) => sample.wallS))
  const cpu = (c) => median(c.samples[WALDEN].map((sample) => sample.cpuS))
  const note = `encrypted / plain, medians: wall ${(wall(cases.aes) / wall(cases.plain)).toFixed(3)}, CPU ${(cpu(cases.aes) / cpu(cases.plain)).toFixed(3)} (target: wall ≤ 1.10)`
  cases.aes.notes.push(note)
  say(`  ${note}`)
}

// ---------------------------------------------------------------------------------------------------------------
// 10. walden's one-pass fan-out (issue #12): backup --repo=all to the bucket and a folder, against the bucket alone

/**
 * Two repositories of one stanza: repo1 a fresh prefix in walden's bucket, repo2 a folder on the bench's disk. This
 * is the pair issue #12 describes (a nearby disk for fast restores, object storage for disasters), and the one where
 * fan-out pays: two buckets on the same local gateway would double the gateway's own work on the same two cores, so
 * their ratio would measure the gateway, not the single read and compression of each file. The baseline is the
 * backup to the bucket alone, the slower of the two repositories.
 */
export async function scenarioFanOut(ctx) {
  heading('10. fan-out: backup --repo=all (the bucket + a folder) against backup to the bucket alone, process-max 2')
  if (!onS3(ctx)) throw new BenchError('scenario 10 needs --repo-type=s3')
  const main = ctx.main.tools.walden
  const base = await ownedFolder(join(ctx.root, 'main', 'walden-fanout'), 0o755)
  const folder = await ownedFolder(join(base, 'repo'))
  const prefix = '/fanout'
  // Retention 1 in both: each backup expires the previous one, so the gateway holds one copy at a time.
  const conf = (await readFile(main.configPath, 'utf8'))
    .replace(/^repo1-path=.*$/m, `repo1-path=${prefix}`)
    .replace(/^repo1-retention-full=.*$/m, ['repo1-retention-full=1', 'repo2-type=posix', `repo2-path=${folder}`, 'repo2-retention-full=1'].join('\n'))
    .replace(/^(log|lock)-path=(.*)$/gm, (_line, key, path) => `${key}-path=${path}-fanout`)
  for (const path of conf.match(/^(?:log|lock)-path=(.*)$/gm).map((line) => line.split('=')[1])) await ownedFolder(path)
  const tool = new Tool({ kind: WALDEN, program: main.program, configPath: await ownedFile(join(base, 'walden.conf'), conf, 0o600), repoPath: prefix, stanza: main.stanza, spoolPath: main.spoolPath, bucket: main.bucket })
  await tool.run('stanza-create')
  const ct = ctx.opts.compressType
  // No WAL reaches these repositories (archive_command pushes to the main ones), so neither backup waits for WAL.
  const args = ['--type=full', ...compressArgs(ct), '--process-max=2', '--no-archive-check']
  const one = addCase(ctx, { id: 'fanout-one', scenario: 10, title: `full backup ${ct} to the bucket (--repo=1)` })
  const all = addCase(ctx, { id: 'fanout-all', scenario: 10, title: `full backup ${ct} to the bucket and a folder (--repo=all)` })
  all.targetTitle = 'fan-out to two repositories (walden)'
  all.target = {
    text: 'walden --repo=all ≤ 1.15× walden to one repository',
    check() {
      const ratios = []
      for (let i = 0; i < Math.min(one.samples[WALDEN].length, all.samples[WALDEN].length); i++) ratios.push(all.samples[WALDEN][i].wallS / one.samples[WALDEN][i].wallS)
      const r = summary(ratios)
      if (!r) return { met: undefined, measured: 'no figures' }
      return { met: r.median <= 1.15, measured: `${r.median.toFixed(2)} (${r.min.toFixed(2)}–${r.max.toFixed(2)})` }
    },
  }
  for (let r = 0; r < ctx.opts.runs; r++) {
    // Alternating which goes first, each after a checkpoint and a sync, so neither gets a quieter machine.
    for (const [c, repo] of r % 2 === 0 ? [[one, '1'], [all, 'all']] : [[all, 'all'], [one, '1']]) {
      await ctx.main.server.sql('CHECKPOINT')
      await sync()
      record(c, tool, await measureTimed(ctx, () => tool.measure('backup', [...args, `--repo=${repo}`])), r, ctx.opts.runs)
    }
  }
  // The fan-out must have written the folder too: its last backup is there with a manifest.
  const stanzaDir = join(folder, 'backup', main.stanza)
  const labels = (await readdir(stanzaDir)).filter((name) => /^\d{8}-\d{6}F$/.test(name))
  if (labels.length === 0) throw new BenchError(`the --repo=all backups left no full backup in ${stanzaDir}`)
  const wall = (c) => median(c.samples[WALDEN].map((sample) => sample.wallS))
  const cpu = (c) => median(c.samples[WALDEN].map((sample) => sample.cpuS))
  all.notes.push(
    `both with --no-archive-check (no WAL is archived into these two repositories); repo1 a fresh prefix of walden's bucket, repo2 a folder on the bench's disk, retention 1 in each. ` +
      `--repo=all / --repo=1, medians: wall ${(wall(all) / wall(one)).toFixed(3)}, CPU ${(cpu(all) / cpu(one)).toFixed(3)}`,
  )
  gatewayNote(one)
  gatewayNote(all)
  await ctx.gateway.prefixRemove(main.bucket, prefix)
  await rm(base, { recursive: true, force: true })
}

export const SCENARIOS = {
  1: scenarioFull,
  2: scenarioIncr,
  3: scenarioRestore,
  4: scenarioDelta,
  5: scenarioArchivePush,
  6: scenarioArchiveGet,
  7: scenarioMemory,
  8: scenarioMirror,
  9: scenarioEncrypted,
  10: scenarioFanOut,
}

/** The scenarios that make sense with the repositories in S3, and their default. */
export const S3_SCENARIOS = [1, 3, 5, 10]

/** The scenarios of a run through SSH (--repo-type=ssh, issue #13), and their default. */
export const SSH_SCENARIOS = [1, 3, 5, 7]

export { summary }
