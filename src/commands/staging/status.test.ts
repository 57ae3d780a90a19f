// stagingStatusReport()'s reason for INACTIVE on records alone (no cluster runs: the data folder does not exist).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configLoad } from '../../config/config.js'
import { stagingRecordWrite } from './state.js'
import type { StagingRecord } from './state.js'
import { stagingStatusReport } from './status.js'

test('a copy whose initial load never finished says so, and what to run; a loaded one that is stopped says it is not running', async () => {
  const spool = await mkdtemp(join(tmpdir(), 'walden-status-'))
  try {
    const cfg = configLoad({ argv: ['staging-status', '--stanza=demo', `--spool-path=${spool}`], env: {}, readFile: () => undefined })
    const record: StagingRecord = {
      stanza: 'demo',
      method: 'external-wal',
      path: join(spool, 'never-made'),
      port: 5999,
      walPath: join(spool, 'wal'),
      settings: [],
      enabled: true,
      linkedAt: '2026-12-03T00:00:00Z',
    }
    await stagingRecordWrite(cfg, record)
    const interrupted = await stagingStatusReport(cfg, 'demo')
    assert.equal(interrupted.status, 'INACTIVE')
    assert.match(interrupted.reason ?? '', /^its initial load has not finished .*staging-resync, or staging-unlink\)$/)

    await stagingRecordWrite(cfg, { ...record, syncedAt: '2026-12-03T00:01:00Z' })
    const stopped = await stagingStatusReport(cfg, 'demo')
    assert.equal(stopped.reason, `the staging cluster on '${record.path}' is not running`)
  } finally {
    await rm(spool, { recursive: true, force: true })
  }
})
