import assert from 'node:assert/strict'
import { mkdtemp, mkdir, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { PosixStorage } from '../../storage/posix.js'
import { repoList, repoListFilter, repoListJson, repoListText } from './repo-list.js'

// A small repository on a real folder: the order and shapes below are what pgBackRest 2.45 printed for the same tree.
let root: string
let storage: PosixStorage
const TIME = 1767323045

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'walden-repo-list-'))
  await mkdir(join(root, 'archive/demo/15-1/0000000100000000'), { recursive: true })
  await mkdir(join(root, 'backup/demo/20261203-100000F'), { recursive: true })
  await writeFile(join(root, 'archive/demo/archive.info'), 'x\n')
  await writeFile(join(root, 'archive/demo/15-1/0000000100000000/000000010000000000000001-abc.gz'), 'hello\n')
  await writeFile(join(root, 'backup/demo/20261203-100000F/backup.manifest'), 'y\n')
  await symlink('20261203-100000F', join(root, 'backup/demo/latest'))
  for (const file of ['archive/demo/archive.info', 'archive/demo/15-1/0000000100000000/000000010000000000000001-abc.gz', 'backup/demo/20261203-100000F/backup.manifest']) {
    await utimes(join(root, file), TIME, TIME + 0.75)
  }
  storage = new PosixStorage(root)
})
after(async () => rm(root, { recursive: true, force: true }))

describe('repoList()', () => {
  test('one level: "." and the names, folders and files alike', async () => {
    const entries = await repoList(storage, '', { recurse: false, sort: 'asc' })
    assert.equal(repoListJson(entries), '{".":{"type":"path"},"archive":{"type":"path"},"backup":{"type":"path"}}\n')
    assert.equal(repoListText(entries), 'archive\nbackup\n')
  })

  test('recursion, ascending: each folder before what is in it; files with size and time in whole seconds; links with their destination', async () => {
    const entries = await repoList(storage, 'backup', { recurse: true, sort: 'asc' })
    assert.equal(
      repoListJson(entries),
      '{".":{"type":"path"},"demo":{"type":"path"},"demo/20261203-100000F":{"type":"path"},' +
        `"demo/20261203-100000F/backup.manifest":{"type":"file","size":2,"time":${TIME}},` +
        '"demo/latest":{"type":"link","destination":"20261203-100000F"}}\n',
    )
  })

  test('descending: the reverse order, each folder after what is in it, "." still first', async () => {
    const entries = await repoList(storage, 'archive', { recurse: true, sort: 'desc' })
    assert.equal(
      repoListText(entries),
      [
        'demo/archive.info',
        'demo/15-1/0000000100000000/000000010000000000000001-abc.gz',
        'demo/15-1/0000000100000000',
        'demo/15-1',
        'demo',
        '',
      ].join('\n'),
    )
    assert.equal(entries[0]!.name, '.')
  })

  test('a file lists as itself, named "."; a missing path as an empty folder', async () => {
    const file = await repoList(storage, 'archive/demo/archive.info', { recurse: true, sort: 'asc' })
    assert.equal(repoListJson(file), `{".":{"type":"file","size":2,"time":${TIME}}}\n`)
    assert.equal(repoListText(file), '.\n')
    const missing = await repoList(storage, 'nothere', { recurse: true, sort: 'asc' })
    assert.equal(repoListJson(missing), '{".":{"type":"path"}}\n')
    assert.equal(repoListText(missing), '')
  })

  test('the filter applies to the names printed, not to the folders walked', async () => {
    const entries = repoListFilter(await repoList(storage, '', { recurse: true, sort: 'asc' }), /\.gz$/)
    assert.deepEqual(
      entries.map((entry) => entry.name),
      ['archive/demo/15-1/0000000100000000/000000010000000000000001-abc.gz'],
    )
  })
})

test('repoListJson() keeps the listed order for names JavaScript would sort as array indexes', () => {
  const json = repoListJson([
    { name: '.', type: 'path' },
    { name: 'b', type: 'path' },
    { name: '1', type: 'file', size: 3, time: 7 },
    { name: 'a"\\', type: 'link' },
  ])
  assert.equal(json, '{".":{"type":"path"},"b":{"type":"path"},"1":{"type":"file","size":3,"time":7},"a\\"\\\\":{"type":"link"}}\n')
  assert.deepEqual(Object.keys(JSON.parse(json) as object), ['1', '.', 'b', 'a"\\'])
})
