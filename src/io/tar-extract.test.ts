import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { paxParse, tarExtract, tarExtractFile, tarLinkInside, tarNumber, tarSafeName } from './tar-extract.js'

let root: string

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'walden-tar-'))
})

after(async () => {
  await rm(root, { recursive: true, force: true })
})

/** Runs GNU tar (or another tool) in `cwd`; fails the test on a non-zero exit. */
function run(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' })
  assert.equal(result.status, 0, `${command} ${args.join(' ')}: ${result.stderr}`)
}

/** A source tree with what a data directory has: nested folders, empty files, a long name, modes, a link. */
async function sourceTree(name: string): Promise<string> {
  const source = join(root, name)
  await mkdir(join(source, 'base', '1'), { recursive: true, mode: 0o700 })
  await mkdir(join(source, 'pg_wal', 'archive_status'), { recursive: true })
  await writeFile(join(source, 'PG_VERSION'), '15\n', { mode: 0o600 })
  await writeFile(join(source, 'base', '1', 'empty'), '')
  // Larger than one chunk of a read stream, and not a multiple of 512, so padding and chunk borders are crossed.
  const big = Buffer.alloc(300_000 + 77)
  for (let index = 0; index < big.length; index++) big[index] = (index * 31 + 7) & 0xff
  await writeFile(join(source, 'base', '1', '16384'), big, { mode: 0o640 })
  const longFolder = join(source, 'x'.repeat(90), 'y'.repeat(90))
  await mkdir(longFolder, { recursive: true })
  await writeFile(join(longFolder, `${'z'.repeat(120)}.dat`), 'long name\n')
  await symlink('base/1', join(source, 'inside-link'))
  return source
}

/** Every entry below a folder: relative name → kind, mode, and content or link target. */
async function snapshot(folder: string): Promise<Map<string, string>> {
  const result = new Map<string, string>()
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(folder, relative), { withFileTypes: true })) {
      const name = relative === '' ? entry.name : `${relative}/${entry.name}`
      const path = join(folder, name)
      const info = await lstat(path)
      const mode = (info.mode & 0o777).toString(8)
      if (entry.isSymbolicLink()) result.set(name, `link ${await readlink(path)}`)
      else if (entry.isDirectory()) {
        result.set(name, `dir ${mode}`)
        await walk(name)
      } else result.set(name, `file ${mode} ${(await readFile(path)).toString('base64')}`)
    }
  }
  await walk('')
  return result
}

async function emptyFolder(name: string): Promise<string> {
  const folder = join(root, name)
  await mkdir(folder)
  return folder
}

describe('tar header fields', () => {
  test('octal and GNU base-256 sizes', () => {
    assert.equal(tarNumber(Buffer.from('00000001750\0', 'latin1')), 1000)
    assert.equal(tarNumber(Buffer.from('     17 \0', 'latin1')), 15)
    const base256 = Buffer.alloc(12)
    base256[0] = 0x80
    base256.writeUIntBE(9 * 1024 ** 3, 6, 6)
    assert.equal(tarNumber(base256), 9 * 1024 ** 3)
    assert.throws(() => tarNumber(Buffer.from('12x4\0', 'latin1')), /not an octal number/)
  })

  test('pax records, with multi-byte values and an equals sign in the value', () => {
    const record = (key: string, value: string): string => {
      const body = ` ${key}=${value}\n`
      let length = Buffer.byteLength(body) + 1
      if (String(length).length + Buffer.byteLength(body) !== length) length++
      return `${length}${body}`
    }
    const body = Buffer.from(record('path', 'dir/é=x') + record('size', '12'))
    assert.deepEqual([...paxParse(body)], [['path', 'dir/é=x'], ['size', '12']])
    assert.throws(() => paxParse(Buffer.from('99 path=x\n')), /malformed/)
  })

  test('names: normalized, and refused when absolute or climbing out', () => {
    assert.equal(tarSafeName('./base//1/'), 'base/1')
    assert.equal(tarSafeName('./'), '')
    assert.throws(() => tarSafeName('/etc/passwd'), /tar entry '\/etc\/passwd' has an absolute name/)
    assert.throws(() => tarSafeName('base/../../x'), /leads outside the target folder/)
  })

  test('links inside and outside', () => {
    assert.equal(tarLinkInside('a/b', '../c'), true)
    assert.equal(tarLinkInside('a/b', '.'), true)
    assert.equal(tarLinkInside('a', '../x'), false)
    assert.equal(tarLinkInside('a/b', '../../x'), false)
    assert.equal(tarLinkInside('a', '/etc'), false)
  })
})

describe('tarExtractFile', () => {
  for (const format of ['gnu', 'ustar', 'pax'] as const) {
    test(`a tree written by GNU tar --format=${format} comes back the same`, async () => {
      const source = await sourceTree(`src-${format}`)
      const file = join(root, `${format}.tar`)
      // ustar cannot hold a 120-character last component; it gets the rest of the tree.
      const members = format === 'ustar' ? ['PG_VERSION', 'base', 'pg_wal', 'inside-link'] : ['.']
      run('tar', [`--format=${format}`, '-cf', file, ...members], source)
      const target = await emptyFolder(`out-${format}`)
      const summary = await tarExtractFile(file, target)
      const expected = await snapshot(source)
      if (format === 'ustar') for (const name of [...expected.keys()]) if (name.startsWith('x')) expected.delete(name)
      assert.deepEqual(await snapshot(target), expected)
      assert.equal(summary.symlinks, 1)
      assert.ok(summary.files >= 3)
      // No temporary file is left anywhere.
      assert.deepEqual([...(await snapshot(target)).keys()].filter((name) => name.includes('.tmp-')), [])
    })
  }

  for (const [suffix, tool] of [['gz', 'gzip'], ['lz4', 'lz4'], ['zst', 'zstd']] as const) {
    test(`a ${tool}-compressed tar (base.tar.${suffix}, as pg_basebackup -Z names it)`, async () => {
      const source = await sourceTree(`src-${suffix}`)
      const file = join(root, `base-${suffix}.tar`)
      run('tar', ['-cf', file, '.'], source)
      run(tool, tool === 'lz4' ? ['-q', file, `${file}.lz4`] : ['-q', file], root)
      const target = await emptyFolder(`out-${suffix}`)
      await tarExtractFile(`${file}.${suffix}`, target)
      assert.deepEqual(await snapshot(target), await snapshot(source))
    })
  }

  test('a truncated archive fails with its name and leaves no temporary file', async () => {
    const source = await sourceTree('src-trunc')
    const file = join(root, 'trunc.tar')
    run('tar', ['-cf', file, 'base'], source)
    const whole = await readFile(file)
    await writeFile(file, whole.subarray(0, 512 * 3 + 100))
    const target = await emptyFolder('out-trunc')
    await assert.rejects(tarExtractFile(file, target), (error: unknown) => {
      assert.ok(error instanceof WaldenError)
      assert.equal(error.kind, 'Format')
      assert.match(error.message, /trunc\.tar: tar archive (ends inside file 'base\/1\/16384'|is truncated)/)
      return true
    })
    assert.deepEqual([...(await snapshot(target)).keys()].filter((name) => name.includes('.tmp-')), [])
  })

  test('a damaged header is a checksum error, not garbage on disk', async () => {
    const source = await sourceTree('src-damaged')
    const file = join(root, 'damaged.tar')
    run('tar', ['-cf', file, 'PG_VERSION'], source)
    const data = await readFile(file)
    data[10] = data[10]! ^ 0x20
    await writeFile(file, data)
    await assert.rejects(tarExtractFile(file, await emptyFolder('out-damaged')), /tar header checksum mismatch/)
  })

  test('absolute names, .. and links leading out are refused', async () => {
    const source = await emptyFolder('src-hostile')
    await writeFile(join(source, 'f'), 'x')
    await mkdir(join(source, 'sub'))
    const absolute = join(root, 'absolute.tar')
    run('tar', ['-P', '-cf', absolute, join(source, 'f')], source)
    await assert.rejects(tarExtractFile(absolute, await emptyFolder('out-abs')), /has an absolute name/)

    const climbing = join(root, 'climbing.tar')
    run('tar', ['-P', '-cf', climbing, '../f'], join(source, 'sub'))
    await assert.rejects(tarExtractFile(climbing, await emptyFolder('out-climb')), /'\.\.\/f' leads outside the target folder/)

    await symlink('/etc', join(source, 'sub', 'etc'))
    await symlink('../../..', join(source, 'sub', 'up'))
    for (const link of ['sub/etc', 'sub/up']) {
      const file = join(root, `link-${link.replace('/', '-')}.tar`)
      run('tar', ['-cf', file, link], source)
      const target = await emptyFolder(`out-${link.replace('/', '-')}`)
      await assert.rejects(tarExtractFile(file, target), /is a link to '.*', outside the target folder/)
    }
    // The caller may allow a link out (tablespace links point at absolute folders).
    const target = await emptyFolder('out-allowed')
    await tarExtractFile(join(root, 'link-sub-etc.tar'), target, { allowLinkOutside: (entry) => entry.linkTarget === '/etc' })
    assert.equal(await readlink(join(target, 'sub', 'etc')), '/etc')
  })

  test('hard links are refused', async () => {
    const source = await emptyFolder('src-hard')
    await writeFile(join(source, 'a'), 'x')
    run('ln', ['a', 'b'], source)
    const file = join(root, 'hard.tar')
    run('tar', ['-cf', file, 'a', 'b'], source)
    await assert.rejects(tarExtractFile(file, await emptyFolder('out-hard')), /tar entry 'b' is a hard link/)
  })
})

describe('tarExtract (streams)', () => {
  test('a stream without end blocks (as BASE_BACKUP sends) needs allowMissingTrailer', async () => {
    const source = await sourceTree('src-stream')
    const file = join(root, 'stream.tar')
    run('tar', ['-cf', file, 'PG_VERSION', 'base'], source)
    const whole = await readFile(file)
    // Cut the archive at the first of its end blocks: every entry is whole, the end marker is missing.
    let end = 0
    for (let offset = 0; offset < whole.length; offset += 512) {
      if (whole.subarray(offset, offset + 512).every((byte) => byte === 0)) {
        end = offset
        break
      }
    }
    const cut = whole.subarray(0, end)
    await assert.rejects(tarExtract(Readable.from([cut]), await emptyFolder('out-cut1')), /tar archive is truncated/)
    const target = await emptyFolder('out-cut2')
    await tarExtract(Readable.from([cut]), target, { allowMissingTrailer: true })
    assert.equal(await readFile(join(target, 'PG_VERSION'), 'utf8'), '15\n')
  })

  test('small pieces (one byte, then 509 bytes), and a file diverted to the caller, another skipped', async () => {
    const source = await sourceTree('src-bytes')
    const file = join(root, 'bytes.tar')
    run('tar', ['-cf', file, 'PG_VERSION', 'base'], source)
    const whole = await readFile(file)
    const diverted: Buffer[] = []
    const target = await emptyFolder('out-bytes')
    await tarExtract(Readable.from((function* () {
      let index = 0
      for (; index < 4096; index++) yield whole.subarray(index, index + 1)
      for (; index < whole.length; index += 509) yield whole.subarray(index, index + 509)
    })()), target, {
      onEntry: (entry) => {
        if (entry.name === 'PG_VERSION') {
          return new Writable({ write: (chunk: Buffer, _encoding, callback) => { diverted.push(chunk); callback() } })
        }
        return entry.name === 'base/1/empty' ? 'skip' : undefined
      },
    })
    assert.equal(Buffer.concat(diverted).toString(), '15\n')
    await assert.rejects(stat(join(target, 'PG_VERSION')), { code: 'ENOENT' })
    await assert.rejects(stat(join(target, 'base', '1', 'empty')), { code: 'ENOENT' })
    assert.deepEqual(await readFile(join(target, 'base', '1', '16384')), await readFile(join(source, 'base', '1', '16384')))
  })

  test('read stream of a real file with per-file fsync', async () => {
    const source = await sourceTree('src-each')
    const file = join(root, 'each.tar')
    run('tar', ['-cf', file, '.'], source)
    const target = await emptyFolder('out-each')
    await tarExtract(createReadStream(file), target, { sync: 'each' })
    assert.deepEqual(await snapshot(target), await snapshot(source))
  })
})

describe('createTarget', () => {
  test('makes a missing target, and refuses one that holds files', async () => {
    const source = await sourceTree('src-create')
    const file = join(root, 'create.tar')
    run('tar', ['-cf', file, 'base'], source)
    const missing = join(root, 'made', 'deeper')
    await tarExtractFile(file, missing, { createTarget: true })
    assert.equal((await stat(missing)).mode & 0o777, 0o700)
    assert.deepEqual(await readFile(join(missing, 'base', '1', '16384')), await readFile(join(source, 'base', '1', '16384')))
    const occupied = await emptyFolder('occupied')
    await writeFile(join(occupied, 'keep'), 'user data')
    await assert.rejects(tarExtractFile(file, occupied, { createTarget: true }), /folder '.*occupied' is not empty/)
    assert.deepEqual(await readdir(occupied), ['keep'])
  })
})
