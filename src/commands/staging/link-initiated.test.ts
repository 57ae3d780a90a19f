import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { stagingTablespacePath } from './link-initiated.js'
import { passfileModeCheck, sourceConninfo } from './source-replication.js'

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

describe('passfileModeCheck', () => {
  test('0600 passes, a missing file passes (trust needs none), group or world access is refused', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'walden-passfile-'))
    try {
      const path = join(folder, 'pgpass')
      await passfileModeCheck(path)
      await writeFile(path, '*:*:replication:rep:pw\n', { mode: 0o600 })
      await passfileModeCheck(path)
      await chmod(path, 0o640)
      await assert.rejects(passfileModeCheck(path), /password file '.*pgpass' has mode 0640: libpq ignores a password file that group or others may access/)
    } finally {
      await rm(folder, { recursive: true, force: true })
    }
  })
})
