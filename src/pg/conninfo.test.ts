import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { conninfoParse, conninfoRedact } from './conninfo.js'

test('conninfo: key=value pairs with quoting and escapes', () => {
  assert.deepEqual(conninfoParse("host=/tmp/sock port=5433 dbname='my db' user=o\\'brien", 'x'), {
    host: '/tmp/sock',
    port: 5433,
    database: 'my db',
    user: "o'brien",
  })
  assert.deepEqual(conninfoParse('postgres://u@h:1/d', 'x'), { connectionString: 'postgres://u@h:1/d' })
})

test('conninfo: mistakes name the option', () => {
  assert.throws(() => conninfoParse('host=/tmp nonsense', 'mirror-target'), (error: unknown) => {
    assert.ok(error instanceof WaldenError)
    assert.match(error.message, /^option 'mirror-target' is not a valid connection string: expected key=value/)
    return true
  })
  assert.throws(() => conninfoParse('port=99999', 'x'), /port '99999' is not a port number/)
  assert.throws(() => conninfoParse('dbnmae=x', 'x'), /unknown key 'dbnmae'/)
})

test('conninfo: passwords are hidden in messages', () => {
  assert.equal(conninfoRedact("host=h password='se cret' dbname=d"), 'host=h password=*** dbname=d')
  assert.equal(conninfoRedact('postgres://u:pw@h/d'), 'postgres://u:***@h/d')
})
