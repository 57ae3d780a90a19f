import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmod, chown, lchown, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { WaldenError } from './errors.js'
import { lockAcquire, lockForTest, lockHeld, lockHolders, stopFileCheck, stopFileCreate, stopFileRemove } from './lock.js'

const root = await mkdtemp(join(tmpdir(), 'walden-lock-'))
after(() => rm(root, { recursive: true, force: true }))

/** A pid that certainly is not running: a child that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!
}

/** The state letter of /proc/<pid>/stat: R, S, Z (zombie)...; undefined once the process is gone. */
function processState(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  for (const start = Date.now(); !check(); ) {
    if (Date.now() - start > timeoutMs) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// Another process holding a walden lock, taken with this lock.ts.
const holderScript = join(root, 'holder.mts')
await writeFile(
  holderScript,
  [
    `import { lockAcquire } from ${JSON.stringify(new URL('./lock.ts', import.meta.url).href)}`,
    'await lockAcquire(process.argv[2]!, process.argv[3]!)',
    'process.stdout.write(`locked ${process.pid}\\n`)',
    'setInterval(() => undefined, 1 << 30)',
  ].join('\n'),
)

interface Holder {
  /** The walden process that holds the lock. */
  pid: number
  /** Its parent: a shell that exec'd `sleep`, which never reaps a child, so a killed holder stays a zombie. */
  parent: ChildProcess
}

async function holderStart(lockPath: string, name: string): Promise<Holder> {
  const command = `'${process.execPath}' --import tsx '${holderScript}' '${lockPath}' '${name}' & exec sleep 1000`
  const parent = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  parent.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  await until('the holder to take its lock', () => /locked \d+\n/.test(output))
  return { pid: Number(/locked (\d+)/.exec(output)![1]), parent }
}

function holderEnd(holder: Holder): void {
  // The sleeping parent goes, init reaps the zombie; the holder itself may still be alive.
  try {
    process.kill(holder.pid, 'SIGKILL')
  } catch {
    // already dead
  }
  holder.parent.kill('SIGKILL')
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
    assert.equal(lockHeld(root, 'demo-backup'), true)
    assert.deepEqual(await lockHolders(root, 'demo'), [])
    lock.release()
    assert.equal(lockHeld(root, 'demo-backup'), false)
    ;(await lockAcquire(root, 'demo-backup')).release()
  })

  test('a lock file left by a dead process is taken: nobody holds its kernel lock', async () => {
    await writeFile(join(root, 'demo-backup.lock'), `${deadPid()}\n`)
    assert.equal(lockHeld(root, 'demo-backup'), false)
    const lock = await lockAcquire(root, 'demo-backup')
    assert.match(await readFile(join(root, 'demo-backup.lock'), 'utf8'), new RegExp(`^${process.pid}\\n$`))
    lock.release()
  })

  test('a lock file naming a live process that does not hold it is taken (the pid decides nothing)', async () => {
    await writeFile(join(root, 'demo-backup.lock'), `${process.ppid}\n`)
    ;(await lockAcquire(root, 'demo-backup')).release()
  })

  test('a live holder blocks; once it is SIGKILLed and kept a zombie by a parent that never reaps, it does not', async () => {
    const holder = await holderStart(root, 'demo-backup')
    try {
      await assert.rejects(lockAcquire(root, 'demo-backup'), {
        message: `unable to acquire lock 'demo-backup': held by walden process ${holder.pid}`,
      })
      assert.equal(lockHeld(root, 'demo-backup'), true)
      assert.deepEqual(await lockHolders(root, 'demo'), [holder.pid])
      assert.deepEqual(await lockHolders(root), [holder.pid])

      process.kill(holder.pid, 'SIGKILL')
      await until('the killed holder to be a zombie', () => processState(holder.pid) === 'Z')
      // Its main thread turns zombie first; the lock goes with the last of its threads, a moment later.
      await until('the kernel to release the lock', () => !lockHeld(root, 'demo-backup'), 5_000)
      const lock = await lockAcquire(root, 'demo-backup')
      assert.equal(processState(holder.pid), 'Z', 'still a zombie when the lock was taken')
      lock.release()
      assert.equal(lockHeld(root, 'demo-backup'), false)
      assert.deepEqual(await lockHolders(root, 'demo'), [])
    } finally {
      holderEnd(holder)
    }
  })

  test('without native/io no lock is taken or tested (no fall back to pid files, which kernel locks would not see)', async () => {
    lockForTest.hidden = true
    try {
      const missing = (error: unknown): boolean => {
        assert.ok(error instanceof WaldenError)
        assert.equal(error.kind, 'FileMissing')
        assert.match(error.message, /^walden's native part native\/io is not built/)
        return true
      }
      await assert.rejects(lockAcquire(root, 'demo-backup'), missing)
      assert.throws(() => lockHeld(root, 'demo-backup'), missing)
      await assert.rejects(lockHolders(root), missing)
      // Stop files need no kernel lock: `walden stop` works on such an install.
      assert.equal(await stopFileCreate(root, 'native'), true)
      assert.equal(await stopFileRemove(root, 'native'), true)
    } finally {
      lockForTest.hidden = false
    }
  })

  test('lockHolders matches exact stanza names', async () => {
    const holder = await holderStart(root, 'demo-2-backup')
    try {
      assert.deepEqual(await lockHolders(root, 'demo'), [])
      assert.deepEqual(await lockHolders(root, 'demo-2'), [holder.pid])
    } finally {
      holderEnd(holder)
    }
  })
})

describe('lock-path is private', () => {
  /** Expects lockAcquire, stopFileCheck and stopFileCreate to refuse the folder with `message`. */
  async function refused(lockPath: string, message: RegExp): Promise<void> {
    const check = (error: unknown): boolean => {
      assert.ok(error instanceof WaldenError, String(error))
      assert.equal(error.kind, 'FileInvalid')
      assert.match(error.message, message)
      assert.match(error.hint ?? '', /must belong to the user that runs walden/)
      return true
    }
    await assert.rejects(lockAcquire(lockPath, 'demo-backup'), check)
    await assert.rejects(stopFileCheck(lockPath, 'demo'), check)
    await assert.rejects(stopFileCreate(lockPath), check)
    assert.throws(() => lockHeld(lockPath, 'demo-backup'), check)
  }

  test("a world-writable folder (mode 1777) or group-writable one of another user is refused, naming it, its owner and mode", async () => {
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim())
    for (const mode of [0o1777, 0o770]) {
      const path = join(root, `open-${mode.toString(8)}`)
      await mkdir(path)
      await chmod(path, mode)
      await chown(path, nobody, nobody)
      await refused(path, new RegExp(`^lock-path '${path}' cannot be trusted: others may write in it \\(mode ${mode.toString(8).padStart(4, '0')}, owner nobody\\)$`))
    }
  })

  test('our own folder left open to others is made private; a stop file or lock file another user left is refused', async () => {
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim())
    const path = join(root, 'ours-open')
    await mkdir(path)
    await chmod(path, 0o1777)
    await writeFile(join(path, 'all.stop'), '')
    await chown(join(path, 'all.stop'), nobody, nobody)
    await writeFile(join(path, 'demo-backup.lock'), '')
    await chown(join(path, 'demo-backup.lock'), nobody, nobody)
    await assert.rejects(stopFileCheck(path, 'demo'), new RegExp(`^FileInvalidError: stop file '${path}/all.stop' belongs to nobody, not to walden's user$`))
    assert.equal((await lstat(path)).mode & 0o7777, 0o750)
    await assert.rejects(lockAcquire(path, 'demo-backup'), /lock file '.*demo-backup\.lock' is not a plain file of walden's user/)
  })

  test('a symbolic link is refused, even to a good folder', async () => {
    const target = join(root, 'target')
    await mkdir(target, { mode: 0o700 })
    const link = join(root, 'link')
    await symlink(target, link)
    await refused(link, new RegExp(`^lock-path '${link}' cannot be trusted: it is a symbolic link$`))
  })

  test("a path through another user's symbolic link is refused; through one of root's it is fine", async () => {
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim())
    const real = join(root, 'real-parent')
    await mkdir(join(real, 'lock'), { recursive: true, mode: 0o750 })
    const link = join(root, 'nobody-link')
    await symlink(real, link)
    await lchown(link, nobody, nobody)
    await refused(join(link, 'lock'), new RegExp(`it is reached through the symbolic link '${link}' of nobody, who could point it elsewhere`))
    await lchown(link, 0, 0)
    await stopFileCheck(join(link, 'lock'), 'demo')
  })

  test('a folder inside a folder others may write (not sticky) is refused', async () => {
    const open = join(root, 'shared')
    await mkdir(open)
    await chmod(open, 0o777)
    const path = join(open, 'lock')
    await mkdir(path, { mode: 0o700 })
    await refused(path, new RegExp(`it is inside '${open}' \\(owner root, mode 0777\\), where another user could replace it`))
  })

  test('a new folder is 0750 and lock and stop files 0640, whatever the umask; in sticky /tmp-like folders too', async () => {
    const sticky = join(root, 'tmp')
    await mkdir(sticky)
    await chmod(sticky, 0o1777)
    for (const [index, umask] of [0o000, 0o077, 0o277].entries()) {
      const path = join(sticky, `walden-${index}`)
      const previous = process.umask(umask)
      try {
        const lock = await lockAcquire(path, 'demo-backup')
        assert.equal((await lstat(path)).mode & 0o7777, 0o750, `folder, umask ${umask.toString(8)}`)
        assert.equal((await stat(lock.path)).mode & 0o7777, 0o640, `lock file, umask ${umask.toString(8)}`)
        lock.release()
        assert.equal(await stopFileCreate(path, 'demo'), true)
        assert.equal((await stat(join(path, 'demo.stop'))).mode & 0o7777, 0o640, `stop file, umask ${umask.toString(8)}`)
      } finally {
        process.umask(previous)
      }
    }
  })

  test("root uses the service user's folder and makes its files that user's", async () => {
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim())
    const path = join(root, 'service')
    await mkdir(path, { mode: 0o750 })
    await chown(path, nobody, nobody)
    const lock = await lockAcquire(path, 'demo-backup')
    assert.equal((await stat(lock.path)).uid, nobody)
    lock.release()
    await stopFileCreate(path)
    assert.equal((await stat(join(path, 'all.stop'))).uid, nobody)
    await stopFileRemove(path)
  })

  test('a lock file that is a symbolic link or a hard link is refused, not written through', async () => {
    const path = join(root, 'links')
    await mkdir(path, { mode: 0o700 })
    const victim = join(root, 'victim')
    await writeFile(victim, 'precious\n')
    await symlink(victim, join(path, 'demo-backup.lock'))
    await assert.rejects(lockAcquire(path, 'demo-backup'), /unable to open lock file .*demo-backup\.lock/)
    await rm(join(path, 'demo-backup.lock'))
    spawnSync('ln', [victim, join(path, 'demo-backup.lock')])
    await assert.rejects(lockAcquire(path, 'demo-backup'), /is not a plain file of walden's user \(owner uid 0, 2 links\)/)
    assert.equal(await readFile(victim, 'utf8'), 'precious\n')
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
