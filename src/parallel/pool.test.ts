import assert from 'node:assert/strict'
import { test } from 'node:test'
import { JobPicker } from './pool.js'

test('jobs come in order, but one whose key is in flight waits while another key is available', () => {
  // Parts of a large file first (as restore orders its jobs, largest first), then small files.
  const jobs = ['big:0', 'big:1', 'big:2', 'mid:0', 'mid:1', 'a', 'b']
  const picker = new JobPicker(jobs, (job) => job.split(':')[0]!)
  const first = picker.next()
  const second = picker.next()
  const third = picker.next()
  assert.deepEqual([first, second, third], ['big:0', 'mid:0', 'a'])
  picker.done('mid:0')
  assert.equal(picker.next(), 'mid:1', 'mid is free again; big is still in flight')
  assert.equal(picker.next(), 'b')
  // Only big's parts are left and big is in flight: they are handed out anyway, in order.
  assert.equal(picker.next(), 'big:1')
  assert.equal(picker.next(), 'big:2')
  assert.equal(picker.next(), undefined)
})

test('without a key function, jobs come strictly in order', () => {
  const picker = new JobPicker(['x:0', 'x:1', 'y'])
  assert.deepEqual([picker.next(), picker.next(), picker.next(), picker.next()], ['x:0', 'x:1', 'y', undefined])
})
