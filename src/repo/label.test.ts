import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backupLabelNew, backupLabelParse, isBackupLabel } from './label.js'

test('labels follow the full/diff/incr convention and always sort after the previous one', () => {
  const date = new Date(2026, 10, 22, 1, 30, 0)
  const full = backupLabelNew('full', undefined, date)
  assert.equal(full, '20261122-013000F')
  assert.equal(backupLabelNew('diff', full, date, full), '20261122-013000F_20261122-013001D')
  assert.equal(backupLabelNew('incr', full, new Date(2026, 10, 22, 2, 0, 0), full), '20261122-013000F_20261122-020000I')
  assert.deepEqual(backupLabelParse('20261122-013000F_20261122-020000I'), { type: 'incr', fullLabel: full })
  assert.deepEqual(backupLabelParse(full), { type: 'full', fullLabel: full })
  assert.equal(isBackupLabel('20261122-013000F.tmp'), false)
  // A clock that moved back still yields a later label.
  assert.equal(backupLabelNew('full', undefined, new Date(2026, 10, 22, 1, 0, 0), full), '20261122-013001F')
})
