import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { WaldenError } from '../common/errors.js'
import { conninfoFormat, conninfoParse, conninfoRedact } from './conninfo.js'

describe('conninfoParse', () => {
  test('reads key=value pairs with quoting and escapes', () => {
    const info = conninfoParse(`host=10.0.0.1 port = 5433 user=rep password='it''s' application_name='my standby'`.replace("''", "\\'"))
    assert.deepEqual([...info], [
      ['host', '10.0.0.1'],
      ['port', '5433'],
      ['user', 'rep'],
      ['password', "it's"],
      ['application_name', 'my standby'],
    ])
  })

  test('reads a postgresql:// URI with an encoded password and parameters', () => {
    const info = conninfoParse('postgresql://rep:p%40ss@db1.example:6432/postgres?application_name=s1&sslmode=require')
    assert.equal(info.get('host'), 'db1.example')
    assert.equal(info.get('port'), '6432')
    assert.equal(info.get('user'), 'rep')
    assert.equal(info.get('password'), 'p@ss')
    assert.equal(info.get('dbname'), 'postgres')
    assert.equal(info.get('application_name'), 's1')
    assert.equal(info.get('sslmode'), 'require')
  })

  test('refuses an unknown keyword and a dangling pair, naming them', () => {
    assert.throws(() => conninfoParse('host=a prot=5432'), (error: unknown) => error instanceof WaldenError && /'prot'/.test(error.message))
    assert.throws(() => conninfoParse('host=a port'), WaldenError)
    assert.throws(() => conninfoParse("host='a"), /unterminated/)
  })

  test('formats what it parses back to the same settings', () => {
    const original = conninfoParse(`host=h user='a b' password='x\\'y\\\\z' port=1`)
    const again = conninfoParse(conninfoFormat(original))
    assert.deepEqual([...again], [...original])
    assert.equal(again.get('password'), "x'y\\z")
  })
})

describe('conninfoRedact', () => {
  test('hides passwords in both forms', () => {
    assert.equal(conninfoRedact("host=a password='s e' user=b"), 'host=a password=<redacted> user=b')
    assert.equal(conninfoRedact('host=a password=secret'), 'host=a password=<redacted>')
    assert.equal(conninfoRedact('postgresql://rep:secret@h/db'), 'postgresql://rep:<redacted>@h/db')
  })
})
