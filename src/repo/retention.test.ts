import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { backupsToExpire, walKeepPredicate } from './retention.js'
import type { BackupRecord } from './stanza-info.js'

function record(label: string, type: BackupRecord['type'], prior: string | null, walStart: string, walStop: string, stop = 0): BackupRecord {
  return {
    label, type, prior, reference: prior ? [prior] : [], timestampStart: stop - 10, timestampStop: stop,
    lsnStart: '0/0', lsnStop: '0/0', walStart, walStop, timeline: 1, size: 0, delta: 0, repoSize: 0, repoDelta: 0,
    dbId: 1, compressType: 'zst', pageErrors: 0,
  }
}
const seg = (n: number): string => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`

const F1 = record('20260101-000000F', 'full', null, seg(2), seg(2), 1000)
const D1 = record('20260101-000000F_20260102-000000D', 'diff', F1.label, seg(4), seg(4), 2000)
const I1 = record('20260101-000000F_20260102-010000I', 'incr', D1.label, seg(5), seg(5), 3000)
const F2 = record('20260103-000000F', 'full', null, seg(8), seg(8), 4000)
const F3 = record('20260104-000000F', 'full', null, seg(10), seg(11), 5000)

describe('backupsToExpire', () => {
  test('count keeps the newest N full backups; dependants go with their full', () => {
    assert.deepEqual([...backupsToExpire([F1, D1, I1, F2, F3], { full: 2, fullType: 'count' }, 0)].sort(), [F1.label, D1.label, I1.label].sort())
    assert.equal(backupsToExpire([F1, D1, I1, F2, F3], { full: 3, fullType: 'count' }, 0).size, 0)
  })
  test('diff retention expires older diffs and the incrs built on them', () => {
    const D2 = record('20260103-000000F_20260103-100000D', 'diff', F2.label, seg(9), seg(9), 4500)
    assert.deepEqual([...backupsToExpire([F1, D1, I1, F2, D2], { diff: 1, fullType: 'count' }, 0)].sort(), [D1.label, I1.label].sort())
  })
  test('time keeps the newest full older than the window and everything after it', () => {
    // now = 5000 + 1 day; window 1 day -> cutoff 5000: F3 (stop 5000) is old enough and anchors; F1, F2 expire.
    const expired = backupsToExpire([F1, D1, I1, F2, F3], { full: 1, fullType: 'time' }, 5000 + 86400)
    assert.deepEqual([...expired].sort(), [F1.label, D1.label, I1.label, F2.label].sort())
    // Nothing old enough: nothing expires.
    assert.equal(backupsToExpire([F1, F2], { full: 1, fullType: 'time' }, 100).size, 0)
  })
})

describe('walKeepPredicate', () => {
  test('keeps everything from the oldest kept backup on', () => {
    const keep = walKeepPredicate([F2, F3], undefined)
    assert.equal(keep(seg(7)), false)
    assert.equal(keep(seg(8)), true)
    assert.equal(keep(seg(9)), true)
    assert.equal(keep('00000002.history'), true)
    assert.equal(keep(`${seg(7)}.00000028.backup`), false)
  })
  test('with archive retention, older backups keep only their own range', () => {
    const keep = walKeepPredicate([F1, F2, F3], 1)
    assert.equal(keep(seg(2)), true) // F1's own range
    assert.equal(keep(seg(3)), false)
    assert.equal(keep(seg(8)), true) // F2's range
    assert.equal(keep(seg(9)), false)
    assert.equal(keep(seg(10)), true) // from F3 on: everything
    assert.equal(keep(seg(99)), true)
  })

  test('after a point-in-time recovery, a newer backup on a new timeline starting earlier in the WAL keeps its WAL', () => {
    // F1a (expired) on timeline 1 at 0x10, F1b at 0x90; a PITR of F1a to 0x30 started timeline 2, where F2 starts at 0x40.
    const f1b = record('20260102-000000F', 'full', null, seg(0x90), seg(0x90))
    const tl2 = (n: number): string => `00000002${seg(n).slice(8)}`
    const f2 = { ...record('20260103-000000F', 'full', null, tl2(0x40), tl2(0x40)), timeline: 2 }
    const keep = walKeepPredicate([f1b, f2], undefined)
    for (const n of [0x40, 0x41, 0x60, 0x8f, 0x90]) assert.equal(keep(tl2(n)), true, `timeline 2 segment ${n.toString(16)}`)
    assert.equal(keep(seg(0x3f)), false)
  })
})
