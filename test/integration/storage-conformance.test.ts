// One set of expectations for every storage driver: the same tests run against a posix folder, an S3 bucket on a
// real Ceph RADOS Gateway and a folder on a backup host over a real SSH server, so commands written against the
// Storage interface behave the same on each.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, describe, test } from 'node:test'
import { WaldenError } from '../../src/common/errors.js'
import { PosixStorage } from '../../src/storage/posix.js'
import { RemoteStorage } from '../../src/storage/remote.js'
import { S3Storage } from '../../src/storage/s3.js'
import type { Storage } from '../../src/storage/storage.js'
import { s3Gateway } from '../harness/s3.js'
import { PG_USER, REPO_USER, sshServer } from '../harness/ssh.js'

interface Driver {
  name: string
  /** A fresh, empty storage for one test. */
  open(): Promise<Storage>
}

const posixDirs: string[] = []
after(async () => {
  for (const dir of posixDirs) await rm(dir, { recursive: true, force: true })
})

const DRIVERS: Driver[] = [
  {
    name: 'posix',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'walden-conformance-'))
      posixDirs.push(dir)
      return new PosixStorage(join(dir, 'repo'))
    },
  },
  {
    name: 's3',
    async open() {
      const gateway = await s3Gateway()
      // A repository under a prefix, with a neighbour sharing the prefix's first letters: nothing may leak across.
      const bucket = await gateway.bucket('conformance')
      const neighbour = new S3Storage(gateway.location(bucket, { path: '/repository' }))
      await neighbour.write('archive/keep', 'not ours')
      return new S3Storage(gateway.location(bucket, { path: '/repo' }))
    },
  },
  {
    // A repository on a backup host: the posix storage of a folder walden-repo owns, served by `walden remote` through
    // the test sshd (the backup host's config file names the folder).
    name: 'remote',
    async open() {
      const ssh = await sshServer()
      const repoUser = { uid: Number(spawnSync('id', ['-u', REPO_USER], { encoding: 'utf8' }).stdout), gid: Number(spawnSync('id', ['-g', REPO_USER], { encoding: 'utf8' }).stdout) }
      const dir = await mkdtemp(join(tmpdir(), 'walden-conformance-remote-'))
      posixDirs.push(dir)
      await chmod(dir, 0o755)
      await chown(dir, repoUser.uid, repoUser.gid)
      await writeFile(join(dir, 'walden.conf'), `[global]\nrepo1-path=${join(dir, 'repo')}\nlock-path=${join(dir, 'lock')}\n`, { mode: 0o644 })
      return RemoteStorage.open(
        {
          type: 'remote',
          host: '127.0.0.1',
          user: REPO_USER,
          port: ssh.port,
          cmd: join(import.meta.dirname, '..', '..', 'bin', 'walden'),
          config: join(dir, 'walden.conf'),
          ssh: ssh.sshCommand(PG_USER),
          index: 1,
          timeoutSeconds: 60,
          deflateLevel: 0,
        },
        () => undefined,
      )
    },
  },
]

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

async function rejectsWith(promise: Promise<unknown>, kind: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof WaldenError, `not a WaldenError: ${String(error)}`)
    assert.equal(error.kind, kind, error.message)
    assert.match(error.message, message)
    return true
  })
}

for (const driver of DRIVERS) {
  describe(`storage conformance: ${driver.name}`, () => {
    test('write, read, info and exists of files and folders', async () => {
      const storage = await driver.open()
      await storage.write('archive/demo/archive.info', 'info file\n')
      await storage.write('archive/demo/16-1/0000000100000000/segment', Buffer.from([0, 1, 2, 255]))
      assert.equal((await storage.read('archive/demo/archive.info')).toString(), 'info file\n')
      assert.deepEqual([...(await storage.read('archive/demo/16-1/0000000100000000/segment'))], [0, 1, 2, 255])

      const file = await storage.info('archive/demo/archive.info')
      assert.equal(file?.type, 'file')
      assert.equal(file?.size, 10)
      assert.ok(Math.abs(file!.mtimeMs - Date.now()) < 60_000, `mtime ${file!.mtimeMs} is not about now`)
      assert.equal((await storage.info('archive/demo'))?.type, 'path')
      assert.equal((await storage.info('archive/demo/16-1/'))?.type, 'path')
      assert.equal(await storage.info('archive/demo/missing'), undefined)
      assert.equal(await storage.info('archive/dem'), undefined, 'a prefix of a folder name is not a folder')
      assert.equal(await storage.exists('archive/demo/archive.info'), true)
      assert.equal(await storage.exists('archive'), true)
      assert.equal(await storage.exists('backup'), false)
      // Paths are normalised as a file system would.
      assert.equal((await storage.read('./archive//demo/../demo/archive.info')).toString(), 'info file\n')

      // Overwriting replaces the whole content.
      await storage.write('archive/demo/archive.info', 'v2')
      assert.equal((await storage.read('archive/demo/archive.info')).toString(), 'v2')
    })

    test('list gives file and folder names, sorted; a missing folder is empty', async () => {
      const storage = await driver.open()
      for (const name of ['b', 'a', 'sub/x', 'sub/deeper/y', 'Z', 'a.gz', 'é', 'with space']) await storage.write(`dir/${name}`, name)
      assert.deepEqual(await storage.list('dir'), ['Z', 'a', 'a.gz', 'b', 'sub', 'with space', 'é'])
      assert.deepEqual(await storage.list('dir/sub'), ['deeper', 'x'])
      assert.deepEqual(await storage.list('dir/sub/'), ['deeper', 'x'])
      assert.deepEqual(await storage.list('.'), ['dir'])
      assert.deepEqual(await storage.list(''), ['dir'])
      assert.deepEqual(await storage.list('nothing/here'), [])
    })

    test('names with spaces, UTF-8 and URL-special characters round-trip', async () => {
      const storage = await driver.open()
      const names = ['a b', 'ünïcødé €', 'plus+and%percent', 'amp&<lt>"q\'', 'tab\tname', '日本語', 'semi;colon=eq?q#hash', 'emoji 😀']
      for (const name of names) await storage.write(`odd/${name}/file ${name}`, `content of ${name}`)
      assert.deepEqual(await storage.list('odd'), [...names].sort())
      for (const name of names) {
        assert.deepEqual(await storage.list(`odd/${name}`), [`file ${name}`])
        assert.equal((await storage.read(`odd/${name}/file ${name}`)).toString(), `content of ${name}`)
        assert.equal((await storage.info(`odd/${name}/file ${name}`))?.size, Buffer.byteLength(`content of ${name}`))
      }
      await storage.move(`odd/${names[1]}/file ${names[1]}`, `odd/${names[2]}/moved ${names[3]}`)
      assert.deepEqual(await storage.list(`odd/${names[2]}`), [`file ${names[2]}`, `moved ${names[3]}`])
      await storage.removePath('odd')
      assert.deepEqual(await storage.list('odd'), [])
    })

    test('a missing file: FileMissing from read and openRead, undefined with missingOk', async () => {
      const storage = await driver.open()
      const expected = new RegExp(`^unable to open missing file '${storage.describe('no/such/file').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' for read$`)
      await rejectsWith(storage.read('no/such/file'), 'FileMissing', expected)
      await rejectsWith(storage.openRead('no/such/file'), 'FileMissing', expected)
      await rejectsWith(storage.openRead('no/such/file', { offset: 10, length: 5 }), 'FileMissing', expected)
      await rejectsWith(storage.openRead('no/such/file', { offset: 0, length: 0 }), 'FileMissing', expected)
      assert.equal(await storage.read('no/such/file', { missingOk: true }), undefined)
    })

    test('openWrite streams a file that appears only when finished; openRead streams it back, whole or in part', async () => {
      const storage = await driver.open()
      const data = randomBytes(3 * 1024 * 1024 + 17)
      const writer = await storage.openWrite('backup/demo/base/1/16384')
      writer.write(data.subarray(0, 1000))
      assert.equal(await storage.exists('backup/demo/base/1/16384'), false, 'visible before the stream finished')
      await pipeline(Readable.from([data.subarray(1000, 2_000_000), data.subarray(2_000_000)]), writer)
      assert.equal((await storage.info('backup/demo/base/1/16384'))?.size, data.length)
      assert.ok((await readAll(await storage.openRead('backup/demo/base/1/16384'))).equals(data))

      const part = async (offset: number, length?: number) =>
        readAll(await storage.openRead('backup/demo/base/1/16384', length === undefined ? { offset } : { offset, length }))
      assert.ok((await part(5, 100)).equals(data.subarray(5, 105)))
      assert.ok((await part(2_000_000)).equals(data.subarray(2_000_000)))
      assert.ok((await part(data.length - 3, 100)).equals(data.subarray(data.length - 3)), 'a range running past the end stops at it')
      assert.equal((await part(data.length + 5, 10)).length, 0, 'a range past the end reads nothing')
      assert.equal((await part(7, 0)).length, 0)

      // An empty file through openWrite.
      await pipeline(Readable.from([]), await storage.openWrite('empty'))
      assert.equal((await storage.info('empty'))?.size, 0)
      assert.equal((await storage.read('empty')).length, 0)
      assert.equal((await readAll(await storage.openRead('empty'))).length, 0)
    })

    test('an empty file written whole is listed and reads back empty: a checksum record of the archive', async () => {
      const storage = await driver.open()
      const record = `00000002.history.sha256-${'e3'.repeat(32)}`
      await storage.write(`archive/demo/15-1/00000002.history`, '1\t0/3000000\tno recovery target specified\n')
      await storage.write(`archive/demo/15-1/${record}`, '')
      assert.deepEqual(await storage.list('archive/demo/15-1'), ['00000002.history', record])
      assert.equal((await storage.info(`archive/demo/15-1/${record}`))?.size, 0)
      assert.equal((await storage.read(`archive/demo/15-1/${record}`)).length, 0)
      await storage.remove(`archive/demo/15-1/${record}`)
      assert.deepEqual(await storage.list('archive/demo/15-1'), ['00000002.history'])
    })

    test('an openWrite destroyed by an error leaves nothing under the name, and the old file intact', async () => {
      const storage = await driver.open()
      await storage.write('kept', 'old content')
      const writer = await storage.openWrite('kept')
      const failing = new Readable({
        read() {
          this.push(randomBytes(256 * 1024))
        },
      })
      let sent = 0
      failing.on('data', (chunk: Buffer) => {
        sent += chunk.length
        if (sent > 6 * 1024 * 1024) failing.destroy(new Error('source failed'))
      })
      await assert.rejects(pipeline(failing, writer), /source failed/)
      if (!writer.closed) await new Promise((resolve) => writer.once('close', resolve))
      assert.equal((await storage.read('kept')).toString(), 'old content')

      const fresh = await storage.openWrite('never')
      const failed = new Promise((resolve) => fresh.once('error', resolve))
      fresh.write(randomBytes(1000))
      fresh.destroy(new Error('given up'))
      assert.match(String(await failed), /given up/)
      if (!fresh.closed) await new Promise((resolve) => fresh.once('close', resolve))
      assert.equal(await storage.exists('never'), false)
      assert.deepEqual(await storage.list(''), ['kept'])
    })

    test('move replaces the target and removes the source; remove and removePath', async () => {
      const storage = await driver.open()
      await storage.write('a/from', 'moving')
      await storage.write('b/to', 'replaced')
      await storage.move('a/from', 'b/to')
      assert.equal((await storage.read('b/to')).toString(), 'moving')
      assert.equal(await storage.exists('a/from'), false)
      await assert.rejects(storage.move('a/from', 'b/other'), (error: unknown) => error instanceof WaldenError)

      await storage.remove('b/to')
      assert.equal(await storage.exists('b/to'), false)
      await storage.remove('b/to') // a missing file is fine

      for (const name of ['t/x', 't/sub/y', 't/sub/deeper/z', 'tt/keep', 't2']) await storage.write(`r/${name}`, name)
      await storage.removePath('r/t')
      assert.deepEqual(await storage.list('r'), ['t2', 'tt'])
      assert.equal(await storage.exists('r/t'), false)
      assert.equal((await storage.read('r/tt/keep')).toString(), 'tt/keep', 'a sibling sharing the prefix survives')
      await storage.removePath('r/t') // a missing folder is fine
      await storage.removeEmptyPath('r/tt') // not empty: kept
      assert.equal(await storage.exists('r/tt/keep'), true)
      await storage.syncPath('r/tt')
    })

    test('more than 1000 entries in one folder are all listed, and removePath removes them all', async () => {
      const storage = await driver.open()
      const names = Array.from({ length: 1205 }, (_, index) => `0000000100000000000000${index.toString(16).toUpperCase().padStart(2, '0')}`)
      // Files and sub-folders both count toward a listing page.
      const folders = Array.from({ length: 30 }, (_, index) => `folder-${String(index).padStart(2, '0')}`)
      const work = [...names.map((name) => `many/${name}`), ...folders.map((name) => `many/${name}/inner`)]
      for (let start = 0; start < work.length; start += 32) {
        await Promise.all(work.slice(start, start + 32).map((path) => storage.write(path, path)))
      }
      const listed = await storage.list('many')
      assert.equal(listed.length, names.length + folders.length)
      assert.deepEqual(listed, [...names, ...folders].sort())
      assert.equal(new Set(listed).size, listed.length)
      await storage.removePath('many')
      assert.deepEqual(await storage.list('many'), [])
    })

    test('what write stores, read returns byte for byte (SHA-256)', async () => {
      const storage = await driver.open()
      const data = randomBytes(1024 * 1024 + 3)
      await storage.write('bin', data)
      const digest = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')
      assert.equal(digest(await storage.read('bin')), digest(data))
      assert.equal(digest(await readAll(await storage.openRead('bin'))), digest(data))
    })
  })
}
