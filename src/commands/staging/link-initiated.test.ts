import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { stagingTablespacePath } from './link-initiated.js'
import { sourceConninfo } from './source-replication.js'

describe('staging source over the replication protocol', () => {
  test('staging-source: a password or a logical replication= is refused, replication=true dropped', () => {
    assert.throws(() => sourceConninfo('host=db1 user=rep password=secret'), (error: Error) => {
      assert.match(error.message, /holds a password/)
      assert.doesNotMatch(error.message, /secret/)
      return true
    })
    assert.throws(() => sourceConninfo('host=db1 replication=database'), /physical replication connection/)
    assert.deepEqual([...sourceConninfo('host=db1 user=rep replication=true')], [['host', 'db1'], ['user', 'rep']])
  })

  test('tablespaces go beside the staging folder, as for ways 2 and 3', () => {
    assert.equal(stagingTablespacePath('/srv/staging/main', 16385), '/srv/staging/main.tablespaces/16385')
  })
})
