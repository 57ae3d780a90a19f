// Peak memory of a backup to S3 and a restore from it, on a real Ceph RADOS Gateway and PostgreSQL 15: the issue's
// bound is 256 MB of RSS at any database size. Both run at process-max 4 (four worker threads, each running two jobs),
// the setting that broke the bound (441 MB measured for a 300 MB table before the chunked copy wrote S3 uploads).
//
// Sizes: one table of random float8 values (zstd keeps ~80% of it, so 64 MiB jobs make multipart uploads of
// 16 MiB parts), first 300 MB, then 600 MB (one relation segment file of that size). Twice the data must not move
// the peak by more than noise: the copy holds buffers per job, never per byte copied. Both sizes keep every worker
// busy with a large upload (300 MB is 5 large jobs for 4 workers): a smaller first size would leave workers idle
// and compare two degrees of parallelism, not two sizes (measured: 100 MB peaked 30-40 MB below 300 MB for that
// reason). A 1 GiB segment would be the real case, but the gateway keeps every object in RAM (memstore), and the CI
// machine runs two test files beside each other on 2 cores.
//
// The peak is the process's own maxRSS (getrusage: every thread, native buffers included), written by a preloaded
// hook when walden exits.

import assert from 'node:assert/strict'
import { chmod, chown, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { s3Gateway } from '../harness/s3.js'
import type { S3Gateway } from '../harness/s3.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const MIB = 1024 * 1024
const BOUND = 256 * MIB
/** How far the peak may move when the database triples: garbage-collection timing, not data held. */
const FLAT_MARGIN = 32 * MIB

describe('memory of a backup to S3 and a restore from it (process-max 4)', () => {
  let gateway: S3Gateway
  let stanza: TestStanza
  let peakHook: string
  const peaks: string[] = []

  before(async () => {
    gateway = await s3Gateway()
    const bucket = await gateway.bucket('memory')
    stanza = await createTestStanza({ major: MAJOR, name: 'memory', processMax: 4 })
    // The stanza's repository is the bucket (repo1-path is the key prefix); PostgreSQL's archive_command reads the
    // key from the config file, so it is postgres's, mode 0600.
    await stanza.writeConfig([
      ...gateway.repoLines(1, { bucket }),
      'repo1-retention-full=1',
    ])
    const owner = await stat(stanza.repoPath)
    await chown(stanza.configPath, owner.uid, owner.gid)
    await chmod(stanza.configPath, 0o600)
    peakHook = join(stanza.dir.path, 'peak-rss.cjs')
    await writeFile(
      peakHook,
      "if (require('node:worker_threads').isMainThread) process.on('exit', () => require('node:fs').writeSync(2, `walden-peak-rss-kb ${process.resourceUsage().maxRSS}\\n`))\n",
    )
    await chmod(peakHook, 0o644)
    await stanza.waldenOk(['stanza-create'])
    await stanza.cluster.query('create table noise (a float8, b float8, c float8, d float8, e float8, f float8, g float8, h float8)')
  })
  after(async () => {
    if (peaks.length > 0) console.log(`# peak RSS: ${peaks.join('; ')}`)
    await stanza?.dir.cleanup()
  })

  /** Runs walden and returns its peak RSS in bytes; fails the test if it does not exit 0. */
  const peakOf = async (label: string, args: string[]): Promise<number> => {
    const result = await stanza.walden(args, { env: { NODE_OPTIONS: `--require=${peakHook}`, WALDEN_ARCHIVE_TIMEOUT: '120' }, timeoutMs: 600_000 })
    assert.equal(result.code, 0, `${label}: exit ${result.code}\n${result.stderr}`)
    const match = /walden-peak-rss-kb (\d+)/.exec(result.stderr)
    assert.ok(match, `${label}: no peak reported\n${result.stderr}`)
    const bytes = Number(match[1]) * 1024
    peaks.push(`${label} ${Math.round(bytes / MIB)} MB`)
    return bytes
  }

  /** Grows the table to about `megabytes` (96 bytes a row on disk). */
  const growTo = async (megabytes: number): Promise<number> => {
    const [{ size }] = await stanza.cluster.query<{ size: string }>(`select pg_relation_size('noise')::text as size`)
    const rows = Math.max(0, Math.round((megabytes * MIB - Number(size)) / 96))
    await stanza.cluster.query(
      `insert into noise select random(), random(), random(), random(), random(), random(), random(), random() from generate_series(1, ${rows})`,
    )
    const [{ now }] = await stanza.cluster.query<{ now: string }>(`select pg_relation_size('noise')::text as now`)
    return Number(now)
  }

  test('a full backup stays under 256 MB at 300 MB and at 600 MB of data, and the peak does not grow with the data', async () => {
    const small = await growTo(300)
    const first = await peakOf(`backup of ${Math.round(small / MIB)} MB`, ['backup', '--type=full'])
    const large = await growTo(600)
    assert.ok(large > 1.8 * small, `the table grew (${small} -> ${large} bytes)`)
    const second = await peakOf(`backup of ${Math.round(large / MIB)} MB`, ['backup', '--type=full'])
    assert.ok(first < BOUND, `backup of ${small} bytes peaked at ${first} bytes`)
    assert.ok(second < BOUND, `backup of ${large} bytes peaked at ${second} bytes`)
    assert.ok(second < first + FLAT_MARGIN, `the peak grew with the data: ${first} -> ${second} bytes`)
  })

  test('a restore of the 600 MB backup from S3 stays under 256 MB', async () => {
    const target = await stanza.dir.mkdir('restored')
    const peak = await peakOf('restore', [`--pg1-path=${target}`, 'restore'])
    assert.ok(peak < BOUND, `restore peaked at ${peak} bytes`)
    // Every file's SHA-256 was checked as it was written; the table's file is there at its size.
    const [{ path }] = await stanza.cluster.query<{ path: string }>(`select pg_relation_filepath('noise') as path`)
    assert.equal((await stat(join(target, path))).size, (await stat(join(stanza.cluster.dataDir, path))).size)
    await rm(target, { recursive: true, force: true })
  })
})
