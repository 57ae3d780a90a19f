// A relation file larger than the backup's part size (64 MiB) is stored in parts; restore writes the parts of one
// file with every worker at once, each at its offset (issue #16, item 1). On a real cluster with page checksums:
// the parts of the large file are written by both workers at the same moment (the restore's own debug line, from
// when each part ran on which thread), the restored cluster equals the original, and a restore SIGKILLed while
// parts are being written, followed by `restore --delta --force`, still yields an exact cluster.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase, waldenCommand } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const PART_SIZE = 64 * 1024 * 1024
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe(`restore of a file stored in parts, on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let dump: string
  let relation: string
  let relationSize: number

  before(async () => {
    // lz4: the codec restore decodes synchronously and writes with O_DIRECT, where parts are shared out.
    stanza = await createTestStanza({ major: MAJOR, compressType: 'lz4', processMax: 2 })
    await stanza.cluster.query(
      `create table big (id int, payload text) with (autovacuum_enabled = off);
       insert into big select n, md5(n::text) || md5((n * 7)::text) from generate_series(1, 1800000) n;`,
    )
    await stanza.cluster.query('vacuum (freeze) big')
    // Frozen and read before the backup, so the WAL replayed after a restore holds no full-page image of the table
    // (with page checksums, the first hint bit set on a page after a checkpoint writes one): only the restored parts
    // make its pages right, and a part left unwritten shows.
    relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('big')`)
    dump = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    relationSize = (await stat(join(stanza.cluster.dataDir, relation))).size
    assert.ok(relationSize > 2 * PART_SIZE, `the table's file (${relationSize} bytes) is stored in three parts or more`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test("both workers write parts of the large file at the same time, and the cluster comes back equal", async () => {
    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    const result = await stanza.waldenOk(['restore', '--log-level-console=debug'])
    const line = new RegExp(`restored 'pg_data/${relation}' in (\\d+) parts, at most (\\d+) at once, on (\\d+) worker thread\\(s\\)`).exec(result.stderr)
    assert.ok(line, `the restore logs how the parts of pg_data/${relation} were written:\n${result.stderr.split('\n').filter((text) => /parts/.test(text)).join('\n')}`)
    assert.equal(Number(line[1]), Math.ceil(relationSize / PART_SIZE))
    assert.equal(Number(line[3]), 2, 'both worker threads wrote parts of the file')
    assert.equal(Number(line[2]), 2, 'two parts of the file were being written at the same moment')

    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    // pg_dump reads every page of the table; with page checksums on, a torn or misplaced part fails it.
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    await stanza.cluster.stop()
  })

  test('a restore killed while parts are being written, then restore --delta --force, yields an exact cluster', async () => {
    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    const bigFile = join(stanza.cluster.dataDir, relation)
    // Its own process group, so the kill takes walden (and its worker threads) with runuser, and nothing else.
    const child = spawn('runuser', ['-u', 'postgres', '--', ...waldenCommand().split(' '), `--config=${stanza.configPath}`, `--stanza=${stanza.name}`, 'restore'], {
      stdio: 'ignore',
      detached: true,
    })
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    // Killed once some of the large file's parts hold data: the file is made at its full size (a hole) before any
    // part is written into it, so allocated blocks mean parts are landing.
    let killedWith: number | undefined
    for (let attempt = 0; attempt < 6000 && killedWith === undefined; attempt++) {
      const info = await stat(bigFile).catch(() => undefined)
      if (info !== undefined && info.blocks > 0) {
        killedWith = info.blocks * 512
        process.kill(-child.pid!, 'SIGKILL')
      } else await sleep(5)
    }
    assert.ok(killedWith !== undefined, 'the restore began writing the large file')
    assert.equal(await exited, null, 'the restore was killed, not finished')
    // global/pg_control is written last: without it the killed restore is known unfinished (and the cluster would
    // not start), so --force is what a user would need.
    await assert.rejects(stat(join(stanza.cluster.dataDir, 'global', 'pg_control')), /ENOENT/)

    const result = await stanza.waldenOk(['restore', '--delta', '--force', '--log-level-console=info'])
    assert.match(result.stderr, /restore command end: completed successfully/)
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from big'), '1800000')
    await stanza.cluster.stop()
  })
})
