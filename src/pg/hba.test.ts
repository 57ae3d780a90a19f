import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { WaldenError } from '../common/errors.js'
import { hbaAddress, hbaQuote, hbaReplicationLine, roleNameProblem } from './hba.js'

describe('hbaAddress()', () => {
  test('addresses become single-host networks; networks and host names pass as given', () => {
    assert.equal(hbaAddress('10.0.0.5'), '10.0.0.5/32')
    assert.equal(hbaAddress('fd00::5'), 'fd00::5/128')
    assert.equal(hbaAddress('10.0.0.0/24'), '10.0.0.0/24')
    assert.equal(hbaAddress('fd00::/64'), 'fd00::/64')
    assert.equal(hbaAddress('standby-1.example.com'), 'standby-1.example.com')
    assert.equal(hbaAddress('.example.com'), '.example.com')
  })

  test('anything that could change the line is refused, naming the value', () => {
    for (const [value, why] of [
      ['10.0.0.0/33', /\/33 is not a prefix length for IPv4/],
      ['10.0.0/24', /the part before \/ is not an IP address/],
      ['all', /is a pg_hba.conf keyword/],
      ['host trust', /is not an IP address, a network or a host name/],
      ['a,b', /is not an IP address/],
      ['h#x', /is not an IP address/],
      ['"quoted"', /is not an IP address/],
      ['line\nbreak', /"line\\nbreak" is not an IP address/],
      ['-dash.example.com', /is not an IP address/],
      ['', /is not an IP address/],
    ] as const) {
      assert.throws(() => hbaAddress(value), (error: unknown) => error instanceof WaldenError && why.test(error.message), value)
    }
  })
})

describe('roles in pg_hba.conf', () => {
  test('quoting doubles a double quote; the line names the role quoted', () => {
    assert.equal(hbaQuote('rep"li "" ca'), '"rep""li """" ca"')
    assert.equal(hbaReplicationLine('all', '10.0.0.5/32'), 'host    replication,postgres    "all"    10.0.0.5/32    scram-sha-256')
  })

  test('names that cannot be written safely are refused', () => {
    assert.equal(roleNameProblem(`o'neil "x" \\ $$ #,`), undefined)
    assert.match(roleNameProblem('a\nb')!, /control character/)
    assert.match(roleNameProblem('+group')!, /starts with/)
    assert.match(roleNameProblem('/regex')!, /starts with/)
    assert.match(roleNameProblem('x'.repeat(64))!, /longer than 63 bytes/)
    assert.match(roleNameProblem('')!, /empty/)
  })
})
