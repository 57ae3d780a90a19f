import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { LSN_MAX, lsnFormat, lsnParse } from './lsn.js'

describe('lsnParse', () => {
  test('parses both halves', () => {
    assert.equal(lsnParse('16/B374D848'), 0x16b374d848n)
    assert.equal(lsnParse('0/3000028'), 0x3000028n)
    assert.equal(lsnParse('0/0'), 0n)
    assert.equal(lsnParse('FFFFFFFF/FFFFFFFF'), LSN_MAX)
    assert.equal(lsnParse('00000001/00000000'), 0x100000000n)
  })

  test('accepts lower case, as pg_lsn_in does', () => {
    assert.equal(lsnParse('16/b374d848'), 0x16b374d848n)
  })

  test('rejects anything else, naming the value', () => {
    for (const bad of ['', '16', '16/', '/1', '123456789/0', '0/123456789', ' 0/1', '0/1 ', 'G/0', '0x1/2', '-1/0', '1/2/3']) {
      assert.throws(() => lsnParse(bad), {
        kind: 'Format',
        message: `invalid lsn '${bad}'`,
        hint: "an lsn is two hex numbers of up to 8 digits, as in '16/B374D848'",
      })
    }
  })
})

describe('lsnFormat', () => {
  test('prints upper-case hex without padding, like PostgreSQL', () => {
    assert.equal(lsnFormat(0x16b374d848n), '16/B374D848')
    assert.equal(lsnFormat(0x3000028n), '0/3000028')
    assert.equal(lsnFormat(0n), '0/0')
    assert.equal(lsnFormat(0x100000000n), '1/0')
    assert.equal(lsnFormat(LSN_MAX), 'FFFFFFFF/FFFFFFFF')
  })

  test('round trips', () => {
    for (const text of ['0/1', 'A/B', '16/B374D848', 'FFFFFFFF/0']) assert.equal(lsnFormat(lsnParse(text)), text)
  })

  test('rejects values outside 64 bits', () => {
    assert.throws(() => lsnFormat(-1n), { kind: 'Format', message: "lsn '-1' is out of range" })
    assert.throws(() => lsnFormat(LSN_MAX + 1n), { kind: 'Format', message: "lsn '18446744073709551616' is out of range" })
  })
})
