import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { PosixStorage } from '../storage/posix.js'
import { stanzaTemporaryClean } from './temporary.js'

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries.map((entry) => relative(root, join(entry.parentPath, entry.name))).sort()
}

describe('stanzaTemporaryClean', () => {
  let root: string
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'walden-temporary-'))
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  test("removes walden's own temporary files from the metadata folders only", async () => {
    const keep = [
      'archive/demo/archive.info',
      'archive/demo/archive.info.copy',
      // archive-push writes here without the backup lock: possibly a push in progress.
      'archive/demo/15-1/0000000100000000/000000010000000000000003.tmp-77-0123abcd',
      'archive/demo/15-1/00000002.history.tmp-77-0123abcd',
      'backup/demo/backup.info',
      'backup/demo/backup.info.copy',
      // Not walden's pattern.
      'backup/demo/backup.info.tmp-old',
      'backup/demo/notes.tmp-1-XYZ12345',
      'backup/demo/20261122-013000F/backup.manifest',
      // Below a backup's top level: a killed backup's folder is removed whole by the next backup.
      'backup/demo/20261122-013000F/pg_data/base/1/1234.tmp-77-0123abcd',
      // Another stanza's files are not this stanza's to clean.
      'backup/demo2/backup.info.tmp-77-0123abcd',
    ]
    const remove = [
      'archive/demo/archive.info.tmp-4242-1a2b3c4d',
      'archive/demo/archive.info.copy.tmp-4242-1a2b3c4d',
      'backup/demo/backup.info.tmp-4242-00000000',
      'backup/demo/backup.info.copy.tmp-31337-deadbeef',
      'backup/demo/20261122-013000F/backup.manifest.copy.tmp-4242-ffffffff',
      'backup/demo/20261122-013000F_20261123-013000I/backup.manifest.tmp-9-abcdef01',
    ]
    for (const file of [...keep, ...remove]) {
      await mkdir(join(root, file, '..'), { recursive: true })
      await writeFile(join(root, file), 'x')
    }
    // A folder named like a temporary file is left alone.
    await mkdir(join(root, 'backup/demo/odd.tmp-1-00000000'))

    const removed = await stanzaTemporaryClean(new PosixStorage(root), 'demo')
    assert.deepEqual(removed.sort(), [...remove].sort())
    const left = (await filesUnder(root)).filter((path) => keep.includes(path) || remove.includes(path))
    assert.deepEqual(left, [...keep].sort())
    assert.equal(await stanzaTemporaryClean(new PosixStorage(root), 'demo').then((again) => again.length), 0)
  })

  test('a stanza without folders has nothing to clean', async () => {
    assert.deepEqual(await stanzaTemporaryClean(new PosixStorage(root), 'none'), [])
  })
})
