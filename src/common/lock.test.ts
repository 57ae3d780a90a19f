import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { WaldenError } from './errors.js'
import { lockAcquire, lockHolders, stopFileCheck, stopFileCreate, stopFileRemove } from './lock.js'

const root = await mkdtemp(join(tmpdir(), 'walden-lock-'))
after(() => rm(root, { recursive: true, force: true }))

/** A pid that certainly is not running: a child that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!
}

describe('lockAcquire', () => {
  test('one holder at a time; the error names the holder', async () => {
    const lock = await lockAcquire(root, 'demo-backup')
    await assert.rejects(lockAcquire(root, 'demo-backup'), (error: unknown) => {
      assert.ok(error instanceof WaldenError)
      assert.equal(error.kind, 'LockAcquire')
      assert.equal(error.message, `unable to acquire lock 'demo-backup': held by walden process ${process.pid}`)
      return true
    })
    assert.deepEqual(await lockHolders(root, 'demo'), [])
    lock.release()
    ;(await lockAcquire(root, 'demo-backup')).release()
  })

  test('a lock left by a dead process is taken over', async () => {
    await writeFile(join(root, 'demo-backup.lock'), `${deadPid()} 12345\n`)
    const lock = await lockAcquire(root, 'demo-backup')
    assert.match(await readFile(join(root, 'demo-backup.lock'), 'utf8'), new RegExp(`^${process.pid} \\d+\\n$`))
    lock.release()
  })

  test('a lock whose pid was reused by another process (different start time) is taken over', async () => {
    await writeFile(join(root, 'demo-backup.lock'), `${process.pid} 1\n`)
    ;(await lockAcquire(root, 'demo-backup')).release()
  })

  test('lockHolders matches exact stanza names', async () => {
    await writeFile(join(root, 'demo-2-backup.lock'), `${process.ppid}\n`)
    assert.deepEqual(await lockHolders(root, 'demo'), [])
    assert.deepEqual(await lockHolders(root, 'demo-2'), [process.ppid])
    await rm(join(root, 'demo-2-backup.lock'))
  })
})

test('stop files: per stanza and for all', async () => {
  await stopFileCheck(root, 'demo')
  assert.equal(await stopFileCreate(root, 'demo'), true)
  assert.equal(await stopFileCreate(root, 'demo'), false)
  await assert.rejects(stopFileCheck(root, 'demo'), /stop file exists for stanza 'demo'/)
  await stopFileCheck(root, 'other')
  await stopFileCreate(root)
  await assert.rejects(stopFileCheck(root, 'other'), /stop file exists for all stanzas/)
  assert.equal(await stopFileRemove(root), true)
  assert.equal(await stopFileRemove(root, 'demo'), true)
  assert.equal(await stopFileRemove(root, 'demo'), false)
})
