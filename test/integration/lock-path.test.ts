// lock-path belongs to the user that runs walden: the CLI, run as postgres, refuses a folder another user could
// change (a stop file there would halt archiving for every cluster, a removed lock would let two backups run), and
// creates its own private whatever the umask. root may use postgres's folder and leaves its files postgres's.

import assert from 'node:assert/strict'
import { chmod, chown, lstat, mkdir, stat, symlink, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { runWalden, testDir } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'

function uidOf(user: string): number {
  return Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim())
}

describe('lock-path is private to walden', { concurrency: false }, () => {
  let dir: TestDir
  const walden = (lockPath: string, args: readonly string[], asUser?: string): Promise<RunResult> =>
    runWalden(['--config=/dev/null', `--lock-path=${lockPath}`, '--log-level-file=off', ...args], asUser === undefined ? {} : { asUser })

  before(async () => {
    dir = await testDir('walden-lock-path')
  })
  after(() => dir?.cleanup())

  /** `stop` and `check` (which honours stop files) both refuse the folder; the message names it and the fix. */
  async function refused(lockPath: string, problem: RegExp): Promise<void> {
    for (const args of [['stop'], ['--stanza=demo', 'archive-push', '/nonexistent/pg_wal/000000010000000000000001']]) {
      const result = await walden(lockPath, args)
      assert.equal(result.code, 28, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, new RegExp(`ERROR: \\[028\\]: lock-path '${lockPath}' cannot be trusted: `))
      assert.match(result.stderr, problem)
      assert.match(result.stderr, /HINT: walden's lock folder must belong to the user that runs walden and be writable by no one else/)
    }
  }

  test('a folder owned by another user (root created it, chowned it to nobody) is refused', async () => {
    const path = join(dir.path, 'nobody')
    await mkdir(path, { mode: 0o755 })
    await chown(path, uidOf('nobody'), uidOf('nobody'))
    await refused(path, /it belongs to nobody, not to postgres that runs walden \(mode 0755\)/)
  })

  test('a world-writable folder (mode 1777) of another user is refused', async () => {
    const path = join(dir.path, 'open-nobody')
    await mkdir(path)
    await chmod(path, 0o1777)
    await chown(path, uidOf('nobody'), uidOf('nobody'))
    await refused(path, /it belongs to nobody, not to postgres that runs walden \(mode 1777\)/)
  })

  test("postgres's own folder left 1777 (as walden made it) is made private; a stop file planted by another user is refused", async () => {
    const path = join(dir.path, 'open')
    await mkdir(path)
    await chmod(path, 0o1777)
    await chown(path, uidOf('postgres'), uidOf('postgres'))
    // What another user could leave there to stop walden for every cluster.
    await writeFile(join(path, 'all.stop'), '')
    await chown(join(path, 'all.stop'), uidOf('nobody'), uidOf('nobody'))
    const push = ['--stanza=demo', 'archive-push', '/nonexistent/pg_wal/000000010000000000000001']
    const result = await walden(path, push)
    assert.equal(result.code, 28, result.stderr)
    assert.match(result.stderr, new RegExp(`WARN: lock-path '${path}' was open to others \\(mode 1777\\); walden made it private \\(mode 0750\\)`))
    assert.match(result.stderr, new RegExp(`ERROR: \\[028\\]: stop file '${path}/all.stop' belongs to nobody, not to walden's user`))
    assert.equal((await lstat(path)).mode & 0o7777, 0o750)
  })

  test('a symbolic link is refused', async () => {
    const target = await dir.mkdir('target')
    const link = join(dir.path, 'link')
    await symlink(target, link)
    await refused(link, /it is a symbolic link/)
  })

  test('a new folder is 0750 and a stop file 0640 even with umask 000', async () => {
    const path = join(dir.path, 'fresh', 'walden')
    const previous = process.umask(0)
    try {
      const result = await walden(path, ['stop'])
      assert.equal(result.code, 0, result.stderr)
    } finally {
      process.umask(previous)
    }
    const info = await lstat(path)
    assert.equal(info.mode & 0o7777, 0o750)
    assert.equal(info.uid, uidOf('postgres'))
    assert.equal((await stat(join(path, 'all.stop'))).mode & 0o7777, 0o640)
    assert.equal((await walden(path, ['start'])).code, 0)
  })

  test("root stops postgres's walden in postgres's folder; postgres starts it again", async () => {
    const path = await dir.mkdir('shared')
    const stopped = await walden(path, ['stop'], 'root')
    assert.equal(stopped.code, 0, stopped.stderr)
    assert.equal((await stat(join(path, 'all.stop'))).uid, uidOf('postgres'))
    const check = await walden(path, ['--stanza=demo', 'archive-push', '/nonexistent/pg_wal/000000010000000000000001'])
    assert.equal(check.code, 62, check.stderr)
    const started = await walden(path, ['start'])
    assert.equal(started.code, 0, started.stderr)
  })
})
