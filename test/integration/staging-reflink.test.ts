// Clones that share blocks through a snapshot image (staging/clone-image.ts), on PostgreSQL 15. The clones' folder is
// a loop-mounted XFS made with reflink=1 (the machine's /tmp is ext4, which has no reflinks); where no loop device can
// be mounted, the XFS test says so and is skipped, never passed. On ext4 clone-create is the full restore it always
// was, with no image.
//
// What each clone must equal is the source's pg_dump right before the snapshot. Shared blocks are seen with
// `filefrag -v`, which flags the extents of a file that other files share.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chown, mkdir, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Cluster, dumpDatabase } from '../harness/cluster.js'
import type { TestDir } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15

interface CloneJson {
  name: string
  image: { path: string; bytes: number } | null
}

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false)

function sh(command: string, args: readonly string[]): { ok: boolean; output: string } {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  return { ok: result.status === 0, output: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error?.message ?? ''}`.trim() }
}

describe(`clones sharing blocks through a snapshot image on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let snapshot: string
  let dumpAtSnapshot: string
  let relationFile: string
  let spaceOid: string
  let mountPoint: string | undefined
  let mountProblem = ''
  const handles: Cluster[] = []

  /** A TestDir for the XFS mount: clusters' folders and socket folders there, owned by postgres. */
  const mountDir = (path: string): TestDir => ({
    path,
    async mkdir(name: string): Promise<string> {
      const sub = join(path, name)
      await mkdir(sub, { recursive: true, mode: 0o700 })
      const owner = await stat(path)
      await chown(sub, owner.uid, owner.gid)
      return sub
    },
    async cleanup(): Promise<void> {},
  })
  const createArgs = (name: string, handle: Cluster): string[] => [
    'clone-create',
    `--clone=${name}`,
    `--clone-path=${handle.dataDir}`,
    `--clone-port=${handle.port}`,
    `--clone-setting=unix_socket_directories=${handle.socketDir}`,
  ]
  const cloneList = async (): Promise<CloneJson[]> => JSON.parse((await stanza.waldenOk(['clone-list', '--output=json'])).stdout) as CloneJson[]
  const imageNames = async (folder: string): Promise<string[]> => (await readdir(folder)).filter((name) => name.startsWith('.walden-image-'))

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: `reflink${MAJOR}` })
    const spool = await stanza.dir.mkdir('spool')
    await stanza.writeConfig([`spool-path=${spool}`])
    await stanza.cluster.query('create table events (id integer primary key, note text not null)')
    // About 30 MB, so that blocks shared or not are plain to see.
    await stanza.cluster.query("insert into events select g, repeat('x', 200) || g from generate_series(1, 120000) g")
    // A tablespace: each clone's goes beside it, reflinked from the image's.
    await stanza.cluster.query(`create tablespace space1 location '${await stanza.dir.mkdir('space1')}'`)
    await stanza.cluster.query("create table marker tablespace space1 as select g as id, repeat('m', 100) as note from generate_series(1, 5000) g")
    spaceOid = await stanza.cluster.psqlScalar("select oid::text from pg_tablespace where spcname = 'space1'")
    await stanza.waldenOk(['stanza-create'])
    relationFile = await stanza.cluster.psqlScalar("select pg_relation_filepath('events')")
    dumpAtSnapshot = await dumpDatabase(stanza.cluster)
    const result = await stanza.waldenOk(['backup', '--type=full', '--log-level-console=info'])
    snapshot = /backup begin: \w+ backup (\S+), start LSN/.exec(result.stderr)![1]!

    const image = join(stanza.dir.path, 'xfs.img')
    const point = await stanza.dir.mkdir('xfs')
    const steps: Array<[string, string[]]> = [
      ['truncate', ['-s', '2G', image]],
      ['mkfs.xfs', ['-q', '-m', 'reflink=1', image]],
      ['mount', ['-o', 'loop', image, point]],
    ]
    for (const [command, args] of steps) {
      const outcome = sh(command, args)
      if (!outcome.ok) {
        mountProblem = `${command} ${args.join(' ')}: ${outcome.output}`
        return
      }
    }
    mountPoint = point
    const owner = await stat(stanza.dir.path)
    await chown(point, owner.uid, owner.gid)
  })

  after(async () => {
    for (const handle of handles) await handle.stop().catch(() => {})
    if (mountPoint !== undefined) {
      const outcome = sh('umount', [mountPoint])
      if (!outcome.ok) console.log(`staging-reflink: umount ${mountPoint} failed: ${outcome.output}`)
    }
    await stanza?.dir.cleanup()
  })

  test('on ext4, clone-create is a full restore and makes no image', async () => {
    const handle = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'clone-plain' })
    handles.push(handle)
    await stanza.waldenOk(createArgs('plain', handle))
    assert.equal(await dumpDatabase(handle), dumpAtSnapshot)
    assert.equal(await handle.psqlScalar("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'space1'"), join(`${handle.dataDir}.tablespaces`, spaceOid))
    assert.deepEqual(await imageNames(stanza.dir.path), [], 'no image beside the clone')
    assert.equal((await cloneList()).find((clone) => clone.name === 'plain')?.image, null)
    await stanza.waldenOk(['clone-destroy', '--clone=plain'])

    // A clone-path named as images are would be taken for one (built into, removed with its last clone).
    const imageNamed = join(stanza.dir.path, `.walden-image-${stanza.name}-${snapshot}`)
    const refused = await stanza.walden(['clone-create', '--clone=named', `--clone-path=${imageNamed}`, `--clone-port=${handle.port}`])
    assert.equal(refused.code, 32, refused.stderr)
    assert.equal(refused.stderr.split('\n')[0], `P00  ERROR: [032]: clone path '${imageNamed}' is named as walden names its snapshot images`)
    assert.equal(await exists(imageNamed), false)
  })

  test('on XFS with reflinks, two clones of one snapshot share blocks with its image and are independent', async (t) => {
    if (mountPoint === undefined) {
      console.log(`staging-reflink: SKIPPED, no XFS to test reflinks on: ${mountProblem}`)
      t.skip(`no XFS mount: ${mountProblem}`)
      return
    }
    const dir = mountDir(mountPoint)
    const first = await Cluster.adopt({ major: MAJOR, dir, name: 'clone-a' })
    const second = await Cluster.adopt({ major: MAJOR, dir, name: 'clone-b' })
    handles.push(first, second)
    const imagePath = join(mountPoint, `.walden-image-${stanza.name}-${snapshot}`)

    const startedA = Date.now()
    await stanza.waldenOk(createArgs('a', first))
    const tookA = Date.now() - startedA
    assert.ok(await exists(join(imagePath, 'data', 'global', 'pg_control')), 'the first clone built the image')
    assert.equal((await stat(imagePath)).mode & 0o777, 0o700, 'the image is private')
    assert.ok(!(await exists(join(imagePath, 'data', 'postmaster.pid'))), 'the image was never started')
    assert.ok(!(await exists(join(imagePath, 'data', 'recovery.signal'))), 'the image has no recovery settings')
    const startedB = Date.now()
    await stanza.waldenOk(createArgs('b', second))
    console.log(`staging-reflink: clone-create took ${tookA} ms with the image's restore, ${Date.now() - startedB} ms from the image`)

    // Before anything reads the table (a read sets hint bits, which a checkpoint writes): the table's file in the
    // second clone shares its extents with the image and the first clone. filefrag -v lists one extent a line
    // (index, logical range, physical range, length in blocks, flags); nearly all its blocks must be in shared ones.
    const extents = sh('filefrag', ['-v', join(second.dataDir, relationFile)])
    assert.ok(extents.ok, extents.output)
    const lines = extents.output.split('\n').filter((line) => /^\s*\d+:/.test(line))
    const blocks = (line: string): number => Number(line.split(':')[3]?.trim() ?? 0)
    const total = lines.reduce((sum, line) => sum + blocks(line), 0)
    const shared = lines.filter((line) => /\bshared\b/.test(line)).reduce((sum, line) => sum + blocks(line), 0)
    const tableBytes = (await stat(join(second.dataDir, relationFile))).size
    assert.ok(tableBytes > 20_000_000, `the table is ${tableBytes} bytes`)
    assert.ok(total > 0 && shared >= total * 0.9, `${shared} of ${total} blocks of the table are shared:\n${extents.output}`)
    console.log(`staging-reflink: ${shared} of ${total} blocks of the second clone's ${tableBytes}-byte table are shared`)

    assert.equal(await dumpDatabase(first), dumpAtSnapshot)
    assert.equal(await dumpDatabase(second), dumpAtSnapshot)
    for (const clone of [first, second]) {
      assert.equal(await clone.psqlScalar("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'space1'"), join(`${clone.dataDir}.tablespaces`, spaceOid))
      assert.equal(await clone.psqlScalar('select count(*)::text from marker'), '5000')
      // The clone's own recovery, written into its copy: promoted, and never archiving into the stanza.
      assert.equal(await clone.psqlScalar('select pg_is_in_recovery()::text'), 'false')
      assert.equal(await clone.psqlScalar('show archive_mode'), 'off')
    }

    // Independent: a write in one is not seen in the other, nor in the image.
    await first.query("update events set note = 'changed in a' where id <= 1000")
    await first.query('checkpoint')
    assert.equal(await dumpDatabase(second), dumpAtSnapshot)
    assert.equal(await first.psqlScalar("select count(*)::text from events where note = 'changed in a'"), '1000')
    await second.query('delete from events where id > 100000')
    assert.equal(await first.psqlScalar('select count(*)::text from events'), '120000')

    const listed = await cloneList()
    for (const name of ['a', 'b']) {
      const image = listed.find((clone) => clone.name === name)?.image
      assert.equal(image?.path, imagePath)
      assert.ok((image?.bytes ?? 0) > tableBytes, `clone-list shows the space the image holds: ${image?.bytes}`)
    }

    // The image stays while a clone uses it, and goes with the last one.
    await stanza.waldenOk(['clone-destroy', '--clone=a'])
    assert.ok(await exists(imagePath), 'the image stays while clone b uses it')
    assert.equal(await dumpDatabase(second).then((dump) => dump.includes('changed in a')), false)
    await stanza.waldenOk(['clone-destroy', '--clone=b'])
    assert.deepEqual(await imageNames(mountPoint), [], 'the image went with the last clone')
    assert.deepEqual((await readdir(mountPoint)).sort(), ['clone-a.sock', 'clone-b.sock'], 'nothing else is left: folders, tablespaces, probe files')
  })
})
