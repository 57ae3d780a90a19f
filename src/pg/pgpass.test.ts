import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgpassHost, pgpassLookup, pgpassUpsert, pgpassWrite } from './pgpass.js'

const key = { host: 'db1', port: '5432', database: 'replication', user: 'rep' }

describe('pgpassLookup', () => {
  test('takes the first matching line, with wildcards, skipping comments', () => {
    const text = ['# comment', 'other:5432:*:rep:no', 'db1:*:replication:rep:first', 'db1:5432:replication:rep:second'].join('\n')
    assert.equal(pgpassLookup(text, key), 'first')
    assert.equal(pgpassLookup(text, { ...key, user: 'nobody' }), undefined)
  })

  test('unescapes colons and backslashes', () => {
    assert.equal(pgpassLookup('db1:5432:replication:rep:a\\:b\\\\c', key), 'a:b\\c')
    // libpq ends the password at an unescaped colon, too.
    assert.equal(pgpassLookup('db1:5432:replication:rep:a:b', key), 'a')
    assert.equal(pgpassLookup('db1:5432:replication:rep:x\r', key), 'x')
  })

  test('an escaped star is a literal star, not a wildcard', () => {
    assert.equal(pgpassLookup('\\*:5432:replication:rep:star', key), undefined)
    assert.equal(pgpassLookup('\\*:5432:replication:rep:star', { ...key, host: '*' }), 'star')
    assert.equal(pgpassLookup('*:5432:replication:rep:any', key), 'any')
  })
})

describe('pgpassUpsert', () => {
  test('replaces the exact entry in place and keeps the other lines', () => {
    const text = 'a:1:*:x:keep\ndb1:5432:replication:rep:old\n*:*:*:*:fallback\n'
    assert.equal(pgpassUpsert(text, { ...key, password: 'new' }), 'a:1:*:x:keep\ndb1:5432:replication:rep:new\n*:*:*:*:fallback\n')
  })

  test('appends a new entry, escaping it, to an empty or unterminated file', () => {
    assert.equal(pgpassUpsert('', { ...key, password: 'p:w' }), 'db1:5432:replication:rep:p\\:w\n')
    assert.equal(pgpassUpsert('x:1:2:3:4', { ...key, password: 'p' }), 'x:1:2:3:4\ndb1:5432:replication:rep:p\n')
    assert.equal(pgpassLookup(pgpassUpsert('', { ...key, password: 'p:w\\' }), key), 'p:w\\')
  })

  test('a socket folder with colons and backslashes, a literal star, and line breaks refused', () => {
    const socket = { ...key, host: '/tmp/a:b\\c', user: '*' }
    const text = pgpassUpsert('', { ...socket, password: '*' })
    assert.equal(text, '/tmp/a\\:b\\\\c:5432:replication:\\*:\\*\n')
    assert.equal(pgpassLookup(text, socket), '*')
    assert.equal(pgpassLookup(text, { ...socket, user: 'rep' }), undefined)
    assert.throws(() => pgpassUpsert('', { ...key, password: 'a\nb' }), /the password for the password file contains a line break/)
  })

  test('with wildcards, a star key field is written and matched as a wildcard; the user still escaped', () => {
    const entry = { host: '*', port: '5432', database: '*', user: 'o\'ne:il\\', password: 'p$$"w' }
    const text = pgpassUpsert('', entry, { wildcards: true })
    assert.equal(text, "*:5432:*:o'ne\\:il\\\\:p$$\"w\n")
    assert.equal(pgpassLookup(text, { host: '10.0.0.1', port: '5432', database: 'replication', user: "o'ne:il\\" }), 'p$$"w')
    // Replaced in place on the next run, not appended again.
    assert.equal(pgpassUpsert(text, { ...entry, password: 'new' }, { wildcards: true }), "*:5432:*:o'ne\\:il\\\\:new\n")
    // Without wildcards the same line is a different (literal star) entry.
    assert.equal(pgpassUpsert(text, { ...entry, password: 'new' }).split('\n').length, 3)
  })

  test("a socket folder is itself, except the build's default one, which libpq looks up as localhost", () => {
    assert.equal(pgpassHost('/tmp/walden-x/pg.sock', '/var/run/postgresql'), '/tmp/walden-x/pg.sock')
    assert.equal(pgpassHost('/var/run/postgresql', '/var/run/postgresql'), 'localhost')
    assert.equal(pgpassHost('/run/postgresql', '/var/run/postgresql'), '/run/postgresql')
    assert.equal(pgpassHost('/tmp'), 'localhost')
    assert.equal(pgpassHost('/var/run/postgresql'), '/var/run/postgresql')
    assert.equal(pgpassHost(undefined, '/var/run/postgresql'), 'localhost')
    assert.equal(pgpassHost('', '/tmp'), 'localhost')
    assert.equal(pgpassHost('10.1.1.1'), '10.1.1.1')
  })
})

describe('pgpassWrite', () => {
  test('writes the file with mode 0600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'walden-pgpass-'))
    try {
      const path = join(dir, '.pgpass')
      await pgpassWrite(path, 'a:b:c:d:e\n')
      assert.equal((await stat(path)).mode & 0o777, 0o600)
      assert.equal(await readFile(path, 'utf8'), 'a:b:c:d:e\n')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
