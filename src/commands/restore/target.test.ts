import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import type { BackupRecord } from '../../repo/stanza-info.js'
import { backupSelect, targetTimeParse } from './target.js'
import { timelineReaches } from './timeline.js'

function record(label: string, stop: number, lsnStop: string, timeline = 1): BackupRecord {
  return {
    label, type: 'full', prior: null, reference: [], timestampStart: stop - 5, timestampStop: stop, lsnStart: '0/1000000',
    lsnStop, walStart: '', walStop: '', timeline, size: 0, delta: 0, repoSize: 0, repoDelta: 0, dbId: 1,
    compressType: 'zst', pageErrors: 0,
  }
}
const A = record('20261122-100000F', Date.UTC(2026, 10, 22, 10, 0, 5) / 1000, '0/3000000')
const B = record('20261122-120000F', Date.UTC(2026, 10, 22, 12, 0, 5) / 1000, '0/5000000')

describe('targetTimeParse', () => {
  test('with zones', () => {
    assert.equal(targetTimeParse('2026-11-22 11:00:00+00'), Date.UTC(2026, 10, 22, 11))
    assert.equal(targetTimeParse('2026-11-22 12:00:00+01:00'), Date.UTC(2026, 10, 22, 11))
    assert.equal(targetTimeParse('2026-11-22T11:00:00.250Z'), Date.UTC(2026, 10, 22, 11) + 250)
    assert.equal(targetTimeParse('2026-11-22 06:00:00-0500'), Date.UTC(2026, 10, 22, 11))
  })
  test('bad times are clear errors', () => {
    for (const bad of ['yesterday', '2026-13-01 00:00:00', '2026-11-22 25:00:00', '']) {
      assert.throws(() => targetTimeParse(bad), (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && error.message === `target time '${bad}' is not a valid time`)
    }
  })
})

describe('backupSelect', () => {
  test('newest backup without a target', () => assert.equal(backupSelect([A, B], 'default', undefined, undefined), B))
  test('newest backup that ended before a time or lsn target', () => {
    assert.equal(backupSelect([A, B], 'time', '2026-11-22 11:00:00+00', undefined), A)
    assert.equal(backupSelect([A, B], 'time', '2026-11-22 13:00:00+00', undefined), B)
    assert.equal(backupSelect([A, B], 'lsn', '0/4000000', undefined), A)
  })
  test('--set that ended after the target is refused, naming the backups that would work', () => {
    assert.throws(
      () => backupSelect([A, B], 'time', '2026-11-22 11:00:00+00', B.label),
      (error: unknown) =>
        error instanceof WaldenError &&
        error.kind === 'BackupMismatch' &&
        error.message === `backup set '${B.label}' ended after the recovery target '2026-11-22 11:00:00+00', so recovery from it cannot stop there` &&
        error.hint === `backups that ended before the target: ${A.label}.`,
    )
  })
  test('no backup early enough, unknown set, no backups', () => {
    assert.throws(() => backupSelect([A, B], 'time', '2026-11-22 09:00:00+00', undefined), /no backup ended before the recovery target/)
    assert.throws(() => backupSelect([A, B], 'default', undefined, 'nope'), /backup set 'nope' does not exist/)
    assert.throws(() => backupSelect([], 'default', undefined, undefined), /the stanza has no backups to restore/)
  })
})

describe('backupSelect along a timeline', () => {
  // Timeline 2 branched from 1 at 0/4000000 (a failover). C is the old primary's backup after the split, D the new one's.
  const C = record('20261122-130000F', Date.UTC(2026, 10, 22, 13, 0, 5) / 1000, '0/6000000', 1)
  const D = record('20261122-140000F', Date.UTC(2026, 10, 22, 14, 0, 5) / 1000, '0/7000000', 2)
  const toTwo = timelineReaches(2, [{ timeline: 1, switchLsn: 0x4000000n, reason: '' }])

  test('a backup the old primary took after the split is never chosen for the new timeline', () => {
    assert.equal(backupSelect([A, B, C], 'default', undefined, undefined, toTwo), A)
    assert.equal(backupSelect([A, B, C, D], 'default', undefined, undefined, toTwo), D)
    assert.equal(backupSelect([A, B, C, D], 'time', '2026-11-22 13:30:00+00', undefined, toTwo), A)
  })

  test('--set of such a backup is refused, and so is having none that reaches', () => {
    assert.throws(() => backupSelect([A, C], 'default', undefined, C.label, toTwo), /backup set '20261122-130000F' \(timeline 1\) cannot recover along timeline 2/)
    assert.throws(() => backupSelect([C], 'default', undefined, undefined, toTwo), /no backup can recover along timeline 2/)
  })

  test('timeline 1 itself takes only its own backups', () => {
    assert.equal(backupSelect([A, C, D], 'default', undefined, undefined, timelineReaches(1, [])), C)
  })
})
