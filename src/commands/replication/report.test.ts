import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { replicationCheck, replicationRenderText } from './report.js'
import type { PrimaryReport, StandbyReport } from './report.js'

const standby = (name: string, lagBytes: number | null, lagSeconds: number | null, state = 'streaming') => ({
  applicationName: name,
  client: '10.0.0.2',
  state,
  sentLsn: '0/5000000',
  writeLsn: '0/5000000',
  flushLsn: '0/5000000',
  replayLsn: '0/4000000',
  lagBytes,
  lagSeconds,
  syncState: 'async',
})

const primary = (over: Partial<PrimaryReport> = {}): PrimaryReport => ({
  role: 'primary',
  version: 15,
  currentLsn: '0/5000000',
  standbys: [standby('s1', 1000, 0.5)],
  slots: [{ name: 's1', type: 'physical', active: true, restartLsn: '0/4FFF000', retainedBytes: 4096, walStatus: 'reserved' }],
  ...over,
})

const onStandby = (over: Partial<StandbyReport> = {}): StandbyReport => ({
  role: 'standby',
  version: 15,
  receiver: { status: 'streaming', senderHost: '10.0.0.1', senderPort: 5432, slotName: 's1', flushedLsn: '0/5000000', primaryLsn: '0/5000000', lastMessageTime: null },
  replayLsn: '0/5000000',
  replayPaused: false,
  lastReplayedTransactionTime: '2026-11-22 10:00:00+00',
  lagBytes: 0,
  lagSeconds: 0,
  ...over,
})

describe('replicationCheck on a primary', () => {
  test('no limits, no check', () => {
    assert.equal(replicationCheck(primary({ standbys: [] }), {}), undefined)
  })

  test('within the limits passes; over either limit names the standby', () => {
    assert.equal(replicationCheck(primary(), { maxBytes: 1_000_000, maxSeconds: 10 }), undefined)
    assert.match(replicationCheck(primary(), { maxBytes: 999 }) ?? '', /standby 's1' is 1000B behind \(limit 999B\)/)
    assert.match(replicationCheck(primary(), { maxSeconds: 0.1 }) ?? '', /standby 's1' replays 0\.5 s behind/)
  })

  test('a stopped standby: nobody connected, and its slot retaining WAL over the limit', () => {
    const report = primary({ standbys: [], slots: [{ name: 's1', type: 'physical', active: false, restartLsn: '0/1000000', retainedBytes: 64 << 20, walStatus: 'extended' }] })
    assert.equal(replicationCheck(report, { maxBytes: 16 << 20 }), "no standby is connected; slot 's1' (inactive) retains 64.0MB of WAL (limit 16.0MB)")
    assert.equal(replicationCheck(report, { maxSeconds: 60 }), 'no standby is connected')
  })

  test('a standby that is not streaming fails the check', () => {
    assert.match(replicationCheck(primary({ standbys: [standby('s1', 0, 0, 'catchup')] }), { maxBytes: 1 << 30 }) ?? '', /is catchup, not streaming/)
  })
})

describe('replicationCheck on a standby', () => {
  test('streaming and caught up passes', () => {
    assert.equal(replicationCheck(onStandby(), { maxBytes: 0, maxSeconds: 0 }), undefined)
  })

  test('unknown lag fails a check that asks for it', () => {
    assert.match(replicationCheck(onStandby({ receiver: null, lagBytes: null }), { maxBytes: 1 }) ?? '', /no WAL receiver/)
    assert.match(replicationCheck(onStandby({ lagSeconds: null }), { maxSeconds: 1 }) ?? '', /no transaction has been replayed/)
    assert.equal(replicationCheck(onStandby({ receiver: null, lagBytes: null }), { maxSeconds: 5 }), undefined)
  })

  test('over a limit says by how much', () => {
    assert.equal(replicationCheck(onStandby({ lagBytes: 2048, lagSeconds: 12.34 }), { maxBytes: 1024, maxSeconds: 10 }), 'this standby is 2.0KB behind its primary (limit 1.0KB); this standby replays 12.3 s behind (limit 10 s)')
  })
})

describe('replicationRenderText', () => {
  test('a primary lists standbys and slots', () => {
    const text = replicationRenderText(primary())
    assert.match(text, /^primary, PostgreSQL 15, WAL written up to 0\/5000000$/m)
    assert.match(text, /^ {2}s1 from 10\.0\.0\.2: streaming, async; .* replay 0\/4000000; lag 1000B, 0\.5 s$/m)
    assert.match(text, /^ {2}s1: physical, active, restart 0\/4FFF000, retains 4\.0KB \(reserved\)$/m)
  })

  test('a standby fed from the archive says so', () => {
    assert.match(replicationRenderText(onStandby({ receiver: null, lagBytes: null })), /WAL receiver: not running/)
  })
})
