import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RepeatFilter } from './repeat-filter.js'

test('repeat filter: once, then every n-th; a new message or a reset starts over', () => {
  const filter = new RepeatFilter(3)
  const reported = Array.from({ length: 7 }, () => filter.report('boom'))
  assert.deepEqual(reported, [1, undefined, 3, undefined, undefined, 6, undefined])
  assert.equal(filter.report('other'), 1)
  assert.equal(filter.report('other'), undefined)
  filter.reset()
  assert.equal(filter.report('other'), 1)
})
