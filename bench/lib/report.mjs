// Statistics, targets and the Markdown report.

import { readFile } from 'node:fs/promises'
import { cpus, totalmem, release } from 'node:os'
import { run } from './proc.mjs'
import { PGBACKREST, TOOL_LABEL, WALDEN } from './tools.mjs'

export function median(values) {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

export function summary(values) {
  const finite = values.filter((value) => Number.isFinite(value))
  if (finite.length === 0) return undefined
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

/**
 * A case: one thing both tools do, measured `runs` times each in alternation.
 * samples[tool] = [{ wallS, cpuS, rssBytes, ...extra }]
 * ratio: 'time' (walden/pgBackRest of the per-pair value), 'throughput' (walden's rate / pgBackRest's rate), or
 * 'time-per' with a `per` field (time divided by a count, e.g. segments replayed).
 */
export class Case {
  constructor({ id, scenario, title, target, ratio = 'time', per, notes = [] }) {
    Object.assign(this, { id, scenario, title, target, ratio, per, notes })
    this.samples = { [WALDEN]: [], [PGBACKREST]: [] }
    this.info = {}
  }

  add(tool, sample) {
    this.samples[tool].push(sample)
  }

  /** Per-pair ratios of `metric` (pairs are the i-th run of each tool). */
  pairRatios(metric) {
    const a = this.samples[WALDEN]
    const b = this.samples[PGBACKREST]
    const ratios = []
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      let x = a[i][metric]
      let y = b[i][metric]
      if (x === null || y === null || x === undefined || y === undefined) continue
      if (metric === 'wallS' && this.ratio === 'time-per') {
        x /= a[i][this.per]
        y /= b[i][this.per]
      }
      ratios.push(metric === 'wallS' && this.ratio === 'throughput' ? y / x : x / y)
    }
    return ratios
  }

  toJSON() {
    const stats = {}
    for (const tool of [WALDEN, PGBACKREST]) {
      const list = this.samples[tool]
      if (list.length === 0) continue
      stats[tool] = {
        wallS: summary(list.map((s) => s.wallS)),
        cpuS: summary(list.map((s) => s.cpuS)),
        rssBytes: summary(list.map((s) => s.rssBytes)),
      }
    }
    const ratios = {}
    for (const metric of ['wallS', 'cpuS', 'rssBytes', 'remoteCpuS', 'remoteRssBytes']) {
      const r = summary(this.pairRatios(metric))
      if (r) ratios[metric] = r
    }
    return { id: this.id, scenario: this.scenario, title: this.title, target: this.target, ratioKind: this.ratio, per: this.per, notes: this.notes, info: this.info, samples: this.samples, stats, ratios, verdict: this.verdict() }
  }

  /** { met: boolean|undefined, measured: string } for the case's target. */
  verdict() {
    if (!this.target || !this.target.check) return undefined
    return this.target.check(this)
  }
}

/** A target on the median of the per-pair wall-time ratio. */
export function ratioTarget(text, limit, direction = '<=') {
  return {
    text,
    check(c) {
      const r = summary(c.pairRatios('wallS'))
      if (!r) return { met: undefined, measured: 'no pgBackRest figures' }
      const met = direction === '<=' ? r.median <= limit : r.median >= limit
      const unit = c.ratio === 'throughput' ? '× pgBackRest segments/s' : ''
      return { met, measured: `${fmtRatio(r.median)}${unit} (${fmtRatio(r.min)}–${fmtRatio(r.max)})` }
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

export const fmtS = (value) => (value === undefined || value === null || !Number.isFinite(value) ? '—' : value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2))
export const fmtMB = (bytes) => (bytes === undefined || bytes === null || !Number.isFinite(bytes) ? '—' : (bytes / 1048576).toFixed(bytes >= 100 * 1048576 ? 0 : 1))
export const fmtRatio = (value) => (Number.isFinite(value) ? value.toFixed(2) : '—')

function fmtSummary(s, fmt) {
  if (!s) return '—'
  if (s.n === 1) return fmt(s.median)
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`
}

/** One line of progress for a measured sample. */
export function sampleLine(sample) {
  const parts = [`wall ${fmtS(sample.wallS)} s`, `CPU ${fmtS(sample.cpuS)} s`]
  if (sample.rssBytes) parts.push(`peak RSS ${fmtMB(sample.rssBytes)} MB`)
  return parts.join(', ')
}

// ---------------------------------------------------------------------------------------------------------------
// Machine

export async function machineInfo({ dir, pgBin, pgbackrestBin, waldenVersion, waldenSource }) {
  const cpuInfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuInfo)?.[1] ?? cpus()[0]?.model ?? 'unknown'
  const df = await run('df', ['-P', '-T', dir], { owner: false, allowFail: true })
  const dfLine = df.stdout.trim().split('\n').at(-1)?.split(/\s+/) ?? []
  const device = dfLine[0] ?? '?'
  let diskModel = ''
  const blockName = /^\/dev\/([a-z]+)/.exec(device)?.[1]
  if (blockName) {
    const rotational = (await readFile(`/sys/block/${blockName}/queue/rotational`, 'utf8').catch(() => '')).trim()
    const model = (await readFile(`/sys/block/${blockName}/device/model`, 'utf8').catch(() => '')).trim()
    diskModel = [model, rotational === '0' ? 'non-rotational' : rotational === '1' ? 'rotational' : ''].filter(Boolean).join(', ')
  }
  const pgVersion = (await run(`${pgBin}/postgres`, ['--version'], { owner: false, allowFail: true })).stdout.trim()
  const pgbrVersion = pgbackrestBin ? (await run(pgbackrestBin, ['version'], { owner: false, allowFail: true })).stdout.trim() : 'not installed'
  return {
    date: new Date().toISOString(),
    cpu: model,
    cores: cpus().length,
    ramGiB: +(totalmem() / 1073741824).toFixed(1),
    disk: `${device} (${dfLine[1] ?? '?'}${diskModel ? `, ${diskModel}` : ''})`,
    kernel: release(),
    node: process.version,
    postgres: pgVersion,
    pgbackrest: pgbrVersion,
    walden: waldenVersion,
    waldenSource,
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

const SCENARIO_TITLES = {
  1: '1. Full backup',
  2: '2. Incremental backup after `pgbench -T 30`',
  3: '3. Restore into an empty folder',
  4: '4. Delta restore',
  5: '5. archive-push',
  6: '6. archive-get and recovery replay',
  7: '7. Peak memory of backup and restore',
}

/**
 * The report of one run. targetsTitle and titles (scenario number → section title, in the order to print) let the S3
 * run (issue #12) lay out its own scenarios; the defaults are the posix run's (issue #3).
 */
/**
 * The machine a run was measured on, as a Markdown table and a blank line; `postgresNote` follows the PostgreSQL
 * version, and pgBackRest's row is left out when `pgbackrest` is false.
 */
export function machineTable(machine, { postgresNote = '', pgbackrest = true } = {}) {
  return [
    '| machine | |',
    '|---|---|',
    `| CPU | ${machine.cpu}, ${machine.cores} cores |`,
    `| RAM | ${machine.ramGiB} GiB |`,
    `| disk | ${machine.disk} |`,
    `| kernel | ${machine.kernel} |`,
    `| Node.js | ${machine.node} |`,
    `| PostgreSQL | ${machine.postgres}${postgresNote} |`,
    ...(pgbackrest ? [`| pgBackRest | ${machine.pgbackrest} |`] : []),
    ...(machine.gateway ? [`| S3 gateway | ${machine.gateway} |`] : []),
    ...(machine.ssh ? [`| SSH | ${machine.ssh} |`] : []),
    `| walden | ${machine.walden} (${machine.waldenSource}) |`,
    '',
  ]
}

export function markdownReport({ machine, settings, cases, notes, hasPgbackrest, sections = [], targetsTitle = 'Targets (issue #3)', titles = SCENARIO_TITLES }) {
  const out = []
  out.push(`Run ${machine.date} with \`${settings.commandLine}\`: **scale ${settings.scale}, ${settings.runs} run(s) per tool per case**` + (settings.scenarios.length < 8 ? `, scenarios ${settings.scenarios.join(', ')}` : '') + '.')
  out.push('')
  out.push(...machineTable(machine))
  out.push(
    `Settings: ${settings.commonText}. Figures are median (min–max) over the runs; ratios are walden ÷ pgBackRest per ` +
      'pair of runs (A B A B …), so below 1 means walden is faster or smaller. CPU is user + system time of the whole ' +
      'process tree (worker threads, forked workers and detached async workers included); peak RSS is the largest sum ' +
      'of resident memory over the process tree, sampled every 20 ms, or the largest single process if higher.',
  )
  out.push('')

  // Targets first: the summary a reader wants.
  out.push(`### ${targetsTitle}`)
  out.push('')
  out.push('| scenario | target walden/pgBackRest | measured (median, min–max) | met |')
  out.push('|---|---|---|---|')
  for (const c of cases) {
    if (!c.target) continue
    const v = c.verdict()
    const met = v?.met === true ? 'met' : v?.met === false ? '**not met**' : 'n/a'
    out.push(`| ${c.targetTitle ?? c.title} | ${c.target.text} | ${v?.measured ?? '—'} | ${met} |`)
  }
  out.push('')

  for (const [scenario, title] of Object.entries(titles)) {
    const group = cases.filter((c) => c.scenario === Number(scenario) && !c.hidden)
    if (group.length === 0) continue
    out.push(`### ${title}`)
    out.push('')
    // Over SSH (issue #13) the far end of each session is measured too: two more columns.
    const farEnd = group.some((c) => [WALDEN, PGBACKREST].some((tool) => c.samples[tool].some((s) => s.remoteRssBytes !== undefined)))
    const farCells = (list, fmtRatioCells) => {
      if (!farEnd) return ''
      if (fmtRatioCells) return ` ${fmtRatioCells} |`
      const cpu = summary(list.map((s) => s.remoteCpuS))
      const rss = summary(list.map((s) => s.remoteRssBytes))
      return ` ${fmtSummary(cpu, fmtS)} | ${fmtSummary(rss, fmtMB)} |`
    }
    out.push(`| case | tool | wall s | CPU s | peak RSS MB |${farEnd ? ' far end CPU s | far end peak RSS MB |' : ''}`)
    out.push(`|---|---|---|---|---|${farEnd ? '---|---|' : ''}`)
    for (const c of group) {
      let first = true
      for (const tool of [WALDEN, PGBACKREST]) {
        const list = c.samples[tool]
        if (list.length === 0) continue
        const wall = summary(list.map((s) => s.wallS))
        const cpu = summary(list.map((s) => s.cpuS))
        const rss = summary(list.map((s) => s.rssBytes))
        out.push(`| ${first ? c.title : ''} | ${TOOL_LABEL[tool]}${c.toolNote?.[tool] ? ` ${c.toolNote[tool]}` : ''} | ${fmtSummary(wall, fmtS)} | ${fmtSummary(cpu, fmtS)} | ${fmtSummary(rss, fmtMB)} |${farCells(list)}`)
        first = false
      }
      if (hasPgbackrest && c.samples[WALDEN].length > 0 && c.samples[PGBACKREST].length > 0) {
        const wallLabel =
          c.ratio === 'throughput' ? "ratio (wall column: walden's segments/s ÷ pgBackRest's)" : c.ratio === 'time-per' ? `ratio (wall column: time per ${c.perLabel ?? 'unit'})` : 'ratio'
        const w = summary(c.pairRatios('wallS'))
        const cpu = summary(c.pairRatios('cpuS'))
        const rss = summary(c.pairRatios('rssBytes'))
        const far = farEnd ? farCells(undefined, `*${fmtSummary(summary(c.pairRatios('remoteCpuS')), fmtRatio)}* | *${fmtSummary(summary(c.pairRatios('remoteRssBytes')), fmtRatio)}*`) : ''
        out.push(`| | *${wallLabel}* | *${fmtSummary(w, fmtRatio)}* | *${fmtSummary(cpu, fmtRatio)}* | *${fmtSummary(rss, fmtRatio)}* |${far}`)
      }
    }
    out.push('')
    for (const c of group) for (const note of c.notes) out.push(`- ${c.title}: ${note}`)
    if (group.some((c) => c.notes.length > 0)) out.push('')
  }
  // Scenarios with a layout of their own (8, table mirroring), already in markdown.
  for (const section of sections) out.push(section)
  if (notes.length > 0) {
    out.push('### Notes')
    out.push('')
    for (const note of notes) out.push(`- ${note}`)
    out.push('')
  }
  return out.join('\n')
}
