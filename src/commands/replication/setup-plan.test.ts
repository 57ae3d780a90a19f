import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { isWaldenArchiveCommand, setupPlan, sizeInMb, timeInSeconds } from './setup-plan.js'
import type { SettingState } from './setup-plan.js'

const WALDEN = "/usr/bin/node /opt/walden/bin/walden --config=/etc/walden.conf --stanza=main archive-push %p"

function states(values: Record<string, string | [running: string, configured: string]>): Map<string, SettingState> {
  const context: Record<string, string> = { wal_level: 'postmaster', archive_mode: 'postmaster', max_wal_senders: 'postmaster', archive_command: 'sighup', wal_keep_size: 'sighup' }
  return new Map(
    Object.entries(values).map(([name, value]) => {
      const [running, configured] = typeof value === 'string' ? [value, value] : value
      return [name, { name, running, configured, unit: name === 'wal_keep_size' ? 'MB' : null, context: context[name]! }]
    }),
  )
}

const ready = { wal_level: 'replica', archive_mode: 'on', archive_command: WALDEN, max_wal_senders: '10', wal_keep_size: '512' }

describe('setupPlan', () => {
  test('a fresh cluster gets every setting, and the postmaster ones need a restart', () => {
    const plan = setupPlan(states({ wal_level: 'minimal', archive_mode: 'off', archive_command: '', max_wal_senders: '0', wal_keep_size: '0' }), 'main', WALDEN, false)
    assert.deepEqual(
      plan.changes.map((change) => [change.name, change.to, change.restart]),
      [
        ['wal_level', 'replica', true],
        ['archive_mode', 'on', true],
        ['archive_command', WALDEN, false],
        ['max_wal_senders', '10', true],
        ['wal_keep_size', '512MB', false],
      ],
    )
    assert.equal(plan.refusal, undefined)
  })

  test('a ready cluster needs nothing; higher values and logical or always are kept', () => {
    assert.deepEqual(setupPlan(states(ready), 'main', WALDEN, false), { changes: [], pendingRestart: [] })
    const plan = setupPlan(states({ ...ready, wal_level: 'logical', archive_mode: 'always', max_wal_senders: '20', wal_keep_size: '2GB' }), 'main', WALDEN, false)
    assert.deepEqual(plan.changes, [])
  })

  test('configured but not yet running is a pending restart, not a change', () => {
    const plan = setupPlan(states({ ...ready, wal_level: ['minimal', 'replica'], archive_mode: ['off', 'true'] }), 'main', WALDEN, false)
    assert.deepEqual(plan.changes, [])
    assert.deepEqual(plan.pendingRestart, ['wal_level', 'archive_mode'])
  })

  test("another tool's archive_command is refused unless forced; walden's own for this stanza is kept unless forced", () => {
    const foreign = setupPlan(states({ ...ready, archive_command: 'cp %p /mnt/wal/%f' }), 'main', WALDEN, false)
    assert.match(foreign.refusal ?? '', /cp %p/)
    assert.equal(setupPlan(states({ ...ready, archive_command: 'cp %p /mnt/wal/%f' }), 'main', WALDEN, true).refusal, undefined)
    const front = "/opt/walden/bin/walden-archive-push /usr/bin/node /opt/walden/bin/walden --stanza=main --archive-async --spool-path=/var/spool/walden %p"
    const tuned = setupPlan(states({ ...ready, archive_command: front }), 'main', WALDEN, false)
    assert.deepEqual(tuned, { changes: [], pendingRestart: [] })
    const forced = setupPlan(states({ ...ready, archive_command: front }), 'main', WALDEN, true)
    assert.deepEqual(forced.changes.map((change) => [change.name, change.to]), [['archive_command', WALDEN]])
    assert.match(setupPlan(states({ ...ready, archive_command: 'walden --stanza=other archive-push %p' }), 'main', WALDEN, false).refusal ?? '', /does not call walden/)
  })
})

describe('sizeInMb and isWaldenArchiveCommand', () => {
  test('sizes with and without units', () => {
    assert.equal(sizeInMb('512', 'MB'), 512)
    assert.equal(sizeInMb('1GB', 'MB'), 1024)
    assert.equal(sizeInMb('2048kB', 'MB'), 2)
    assert.ok(Number.isNaN(sizeInMb('lots', 'MB')))
  })

  test('recognises walden for the stanza, quoted or not', () => {
    assert.equal(isWaldenArchiveCommand(WALDEN, 'main'), true)
    assert.equal(isWaldenArchiveCommand("walden '--stanza=main' archive-push %p", 'main'), true)
    assert.equal(isWaldenArchiveCommand(WALDEN, 'mai'), false)
    assert.equal(isWaldenArchiveCommand('walden --stanza=main archive-get %f %p', 'main'), false)
  })

  test('archive_timeout: a default only replaces off; an explicit value replaces any other; the same value is no change', () => {
    const timeout = (configured: string, seconds: number, explicit: boolean) =>
      setupPlan(new Map([['archive_timeout', { name: 'archive_timeout', running: configured, configured, unit: 's', context: 'sighup' }]]), 'main', WALDEN, false, { seconds, explicit }).changes.map((change) => change.to)
    assert.deepEqual(timeout('0', 60, false), ['60s'])
    assert.deepEqual(timeout('300', 60, false), [])
    assert.deepEqual(timeout('5min', 60, true), ['60s'])
    assert.deepEqual(timeout('1min', 60, true), [])
    assert.deepEqual(timeout('60', 60, true), [])
    assert.deepEqual(timeout('60', 0, true), ['0s'])
    assert.equal(timeInSeconds('1500ms', 's'), 1.5)
  })
})
