import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import type { BackupRecord } from '../../repo/stanza-info.js'
import { backupSelect, targetCheck, targetTimeParse } from './target.js'
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
    assert.equal(targetTimeParse('2026-11-22T11:00:00.250+00'), Date.UTC(2026, 10, 22, 11) + 250)
    assert.equal(targetTimeParse('2026-11-22 11:00:00+05:30:15'), Date.UTC(2026, 10, 22, 5, 29, 45))
    assert.equal(targetTimeParse('2026-11-22 06:00:00-0500'), Date.UTC(2026, 10, 22, 11))
  })
  test('bad times are clear errors', () => {
    for (const bad of ['yesterday', '']) {
      assert.throws(() => targetTimeParse(bad), (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && error.message === `target time '${bad}' is not a valid time`)
    }
  })
  test('dates that do not exist and times out of range are refused, not moved', () => {
    const cases: Array<[string, string]> = [
      ['2027-02-29 10:00:00+00', '2027-02 has 28 days'],
      ['2026-02-30 10:00:00+00', '2026-02 has 28 days'],
      ['2100-02-29 10:00:00+00', '2100-02 has 28 days'],
      ['2026-04-31 10:00:00+00', '2026-04 has 30 days'],
      ['2026-11-00 10:00:00+00', '2026-11 has 30 days'],
      ['2026-13-01 00:00:00+00', 'there is no month 13'],
      ['0000-01-01 00:00:00+00', 'there is no year 0'],
      ['2026-11-22 25:00:00+00', 'the time of day is out of range'],
      ['2026-11-22 24:00:01+00', 'the time of day is out of range'],
      ['2026-11-22 10:60:00+00', 'the time of day is out of range'],
      ['2026-11-22 10:00:61+00', 'the time of day is out of range'],
      ['2026-11-22 10:00:00+16', 'the time zone offset +16 is out of range'],
      ['2026-11-22 10:00:00+05:60', 'the time zone offset +05:60 is out of range'],
      ['2026-11-22 10:00:00Z', "'Z' is not a time zone name PostgreSQL reads here"],
      ['2026-11-22 10:00:00 PST', "'PST' is not a time zone name PostgreSQL reads here"],
      ['2026-11-22 10:00:00 Mars/Olympus', "'Mars/Olympus' is not a time zone name PostgreSQL reads here"],
    ]
    for (const [bad, why] of cases) {
      assert.throws(
        () => targetTimeParse(bad),
        (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && error.message === `target time '${bad}' is not a valid time: ${why}`,
        bad,
      )
    }
  })
  test('zone names, daylight saving included', () => {
    assert.equal(targetTimeParse('2026-07-01 12:00:00 Europe/Paris'), Date.UTC(2026, 6, 1, 10))
    assert.equal(targetTimeParse('2026-12-01 12:00:00 Europe/Paris'), Date.UTC(2026, 11, 1, 11))
    assert.equal(targetTimeParse('2026-03-29 03:30:00 Europe/Paris'), Date.UTC(2026, 2, 29, 1, 30))
    assert.equal(targetTimeParse('2026-11-22 11:00:00 America/New_York'), Date.UTC(2026, 10, 22, 16))
  })
  test('leap days, 24:00:00 and leap seconds as PostgreSQL reads them', () => {
    assert.equal(targetTimeParse('2028-02-29 10:00:00+00'), Date.UTC(2028, 1, 29, 10))
    assert.equal(targetTimeParse('2000-02-29 10:00:00 UTC'), Date.UTC(2000, 1, 29, 10))
    assert.equal(targetTimeParse('2026-12-31 24:00:00+00'), Date.UTC(2027, 0, 1))
    assert.equal(targetTimeParse('2026-12-31 23:59:60 GMT'), Date.UTC(2027, 0, 1))
    assert.equal(new Date(targetTimeParse('0099-06-01 00:00:00+00')).toISOString(), '0099-06-01T00:00:00.000Z')
  })
})

describe('targetCheck', () => {
  const refused = (type: string, target: string, message: RegExp): void => {
    assert.throws(() => targetCheck(type, target), (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && message.test(error.message), `${type} ${target}`)
  }
  test('xid: decimal, unsigned 64-bit, a normal transaction', () => {
    for (const good of ['3', '12345', '4294967295', String((5n << 32n) + 1234n), '18446744073709551615']) targetCheck('xid', good)
    refused('xid', '18446744073709551616', /^target xid '18446744073709551616' is out of range: a transaction id is at most 18446744073709551615 \(64 bits\)$/)
    refused('xid', '99999999999999999999999', /out of range/)
    for (const bad of ['0123', '0x10', '-1', '1e5', '12 ', 'abc', '']) refused('xid', bad, /is not a transaction id: expected a decimal number without leading zeros$/)
    for (const special of ['0', '1', '2', String(1n << 32n)]) refused('xid', special, /is not the id of a transaction that can commit$/)
  })
  test('lsn: X/X, each part at most 8 hex digits', () => {
    for (const good of ['0/0', '0/3000028', 'FFFFFFFF/FFFFFFFF', 'a/b']) targetCheck('lsn', good)
    for (const bad of ['1FFFFFFFF/0', '0/123456789', '0/', '/1', '0/3000028 ', 'g/1', '0x1/2']) refused('lsn', bad, /is not an LSN$/)
  })
  test('name: 1 to 63 bytes, counted in UTF-8', () => {
    targetCheck('name', 'x'.repeat(63))
    targetCheck('name', 'é'.repeat(31))
    refused('name', 'x'.repeat(64), /is 64 bytes long; a restore point name is 1 to 63 bytes$/)
    refused('name', 'é'.repeat(32), /is 64 bytes long/)
    refused('name', '', /is 0 bytes long/)
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
