import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WaldenError } from '../../common/errors.js'
import { configLoad } from '../../config/config.js'
import { jobList, jobRun, jobsRender } from './jobs.js'

async function withSpool(body: (spool: string) => Promise<void>): Promise<void> {
  const spool = await mkdtemp(join(tmpdir(), 'walden-jobs-'))
  try {
    await body(spool)
  } finally {
    await rm(spool, { recursive: true, force: true })
  }
}

const cfgFor = (spool: string) => configLoad({ argv: ['jobs', `--spool-path=${spool}`], env: {}, readFile: () => undefined })

describe('jobRun() and jobList()', () => {
  test('a job is recorded running, then ok or failed with its one-line error; the error is rethrown', async () => {
    await withSpool(async (spool) => {
      const cfg = cfgFor(spool)
      let seenRunning: string | undefined
      const value = await jobRun(cfg, 'DB_LINK', 'demo', async (handle) => {
        seenRunning = (await jobList(cfg))[0]?.result
        await handle.logAppend('hook said hello')
        return 42
      })
      assert.equal(value, 42)
      assert.equal(seenRunning, 'running')
      await assert.rejects(
        jobRun(cfg, 'DB_SYNC', 'demo', async () => {
          throw new WaldenError('PathNotEmpty', "staging-path '/x' is not empty", { hint: 'not in the journal' })
        }),
        /is not empty/,
      )
      await jobRun(cfg, 'SNAPSHOT', 'other', async () => undefined)
      const jobs = await jobList(cfg)
      assert.deepEqual(jobs.map((job) => [job.type, job.stanza, job.result, job.error]), [
        ['DB_LINK', 'demo', 'ok', undefined],
        ['DB_SYNC', 'demo', 'failed', "[040]: staging-path '/x' is not empty"],
        ['SNAPSHOT', 'other', 'ok', undefined],
      ])
      assert.deepEqual((await jobList(cfg, 'other')).map((job) => job.type), ['SNAPSHOT'])
      assert.equal(await readFile(jobs[0]!.log, 'utf8'), 'hook said hello\n')
      // The journal is private to walden's user.
      assert.equal((await stat(join(spool, 'staging'))).mode & 0o777, 0o700)
      assert.deepEqual((await readdir(join(spool, 'staging', 'jobs'))).filter((name) => name.endsWith('.tmp')), [])
    })
  })

  test('a job left running by a process that is gone is listed as failed (interrupted)', async () => {
    await withSpool(async (spool) => {
      const cfg = cfgFor(spool)
      const gone = spawnSync('true').pid!
      let id = ''
      await jobRun(cfg, 'RESYNC', 'demo', async (handle) => {
        id = handle.job.id
      })
      const file = join(spool, 'staging', 'jobs', `${id}.json`)
      const job = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
      await writeFile(file, JSON.stringify({ ...job, result: 'running', end: undefined, pid: gone }))
      const [listed] = await jobList(cfg)
      assert.equal(listed!.result, 'failed')
      assert.equal(listed!.error, `interrupted: walden process ${gone} ended before the job did`)
    })
  })
})

describe('jobsRender()', () => {
  const jobs = [
    { id: 'a', type: 'DB_LINK' as const, stanza: 'demo', start: '2026-12-03T10:00:00.000Z', end: '2026-12-03T10:00:01.000Z', result: 'ok' as const, pid: 1, log: '/l/a.log' },
    { id: 'b', type: 'DB_SYNC' as const, stanza: 'demo', start: '2026-12-03T10:00:01.000Z', result: 'running' as const, pid: 1, log: '/l/b.log' },
  ]

  test('text: a header and one job a line', () => {
    assert.equal(
      jobsRender(jobs, 'text'),
      'start                     end                       type     stanza  result   error\n' +
        '2026-12-03T10:00:00.000Z  2026-12-03T10:00:01.000Z  DB_LINK  demo    ok\n' +
        '2026-12-03T10:00:01.000Z  -                         DB_SYNC  demo    running\n',
    )
    assert.equal(jobsRender([], 'text'), 'no staging jobs\n')
  })

  test('json: type, start, end, result and error, null when absent', () => {
    const parsed = JSON.parse(jobsRender(jobs, 'json')) as Array<Record<string, unknown>>
    assert.deepEqual(parsed[1], { id: 'b', type: 'DB_SYNC', stanza: 'demo', start: '2026-12-03T10:00:01.000Z', end: null, result: 'running', error: null, log: '/l/b.log' })
  })
})
