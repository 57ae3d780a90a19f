// Never archive or serve a damaged WAL segment (issue #11): on a real cluster, a truncated, empty or altered copy of a
// real segment is refused by archive-push (synchronous and archive-async) with nothing stored, after which the real
// segment is accepted; a short segment already in a repository (stored before walden checked) is refused by
// archive-get with exit 126, synchronous and asynchronous, and a short file in the async queue is never served. And on
// every PostgreSQL major installed, a cluster's own WAL (switches, a checkpoint, a record larger than a segment)
// still archives and restores.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { waldenPackageRoot } from '../../src/pg/binaries.js'
import { availableMajors, dumpDatabase, runWalden } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const SEGMENT_SIZE = 16 * 1024 * 1024
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** Archived copies of `walName` under `repoPath` (file names), whatever the archive id. */
async function storedCopies(repoPath: string, walName: string): Promise<string[]> {
  const root = join(repoPath, 'archive')
  const entries = await readdir(root, { recursive: true }).catch(() => [] as string[])
  return entries.filter((entry) => entry.split('/').at(-1)!.startsWith(`${walName}-`)).sort()
}

/** Exit code and the ERROR line, and no stack trace. */
function assertRefused(result: RunResult, code: number, error: RegExp): void {
  assert.equal(result.code, code, `exit ${result.code}\n${result.stderr}`)
  assert.match(result.stderr, error)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe(`damaged WAL segments on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let owner = { uid: 0, gid: 0 }
  /** A real archived segment of the cluster, and its content. */
  let walName: string
  let real: Buffer
  let work: string

  /** Writes a file owned by postgres (walden runs as postgres, as PostgreSQL's commands do). */
  const put = async (path: string, data: Buffer): Promise<string> => {
    await writeFile(path, data)
    await chown(path, owner.uid, owner.gid)
    return path
  }
  /** A fresh repository with the stanza created, for pushes and gets that must start from nothing. */
  const freshRepo = async (name: string): Promise<string> => {
    const repo = await stanza.dir.mkdir(name)
    await stanza.waldenOk([`--repo1-path=${repo}`, 'stanza-create'])
    return repo
  }

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'integrity' })
    await stanza.waldenOk(['stanza-create'])
    await stanza.cluster.query(`create table t (id int, note text); insert into t select n, 'row ' || n from generate_series(1, 30000) n`)
    // check switches WAL and returns once the segment is in the repository, which can be before the archiver updates
    // pg_stat_archiver: the segment comes from check's own report.
    const checked = await stanza.waldenOk(['check'])
    const found = /WAL segment ([0-9A-F]{24}) archived/.exec(checked.stdout)
    assert.ok(found, `check names the segment it archived:\n${checked.stdout}`)
    walName = found[1]!
    const repoStat = await stat(stanza.repoPath)
    owner = { uid: repoStat.uid, gid: repoStat.gid }
    work = await stanza.dir.mkdir('work')
    // The real segment, as archive-get returns it.
    const copy = join(work, 'real', walName)
    await mkdir(join(work, 'real'))
    await chown(join(work, 'real'), owner.uid, owner.gid)
    await stanza.waldenOk(['archive-get', walName, copy])
    real = await readFile(copy)
    assert.equal(real.length, SEGMENT_SIZE)
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('a truncated copy is refused by archive-push, synchronous and async, nothing stored; the real one is then accepted', async () => {
    const repo = await freshRepo('repo-push')
    const folder = await stanza.dir.mkdir('truncated')
    const truncated = await put(join(folder, walName), real.subarray(0, SEGMENT_SIZE / 2))
    const sizeLine = new RegExp(`ERROR: \\[028\\]: WAL file '${escape(truncated)}' is 8388608 bytes, expected 16777216`)

    assertRefused(await stanza.walden([`--repo1-path=${repo}`, 'archive-push', truncated]), 28, sizeLine)
    assert.deepEqual(await storedCopies(repo, walName), [])

    // archive-async: the background process refuses it and archive_command gets its error.
    const spool = await stanza.dir.mkdir('spool-push')
    const fake = await stanza.dir.mkdir('fake')
    for (const sub of ['pg_wal', 'pg_wal/archive_status']) {
      await mkdir(join(fake, sub), { recursive: true })
      await chown(join(fake, sub), owner.uid, owner.gid)
    }
    const queued = await put(join(fake, 'pg_wal', walName), real.subarray(0, SEGMENT_SIZE / 2))
    await put(join(fake, 'pg_wal', 'archive_status', `${walName}.ready`), Buffer.alloc(0))
    const asyncPush = (): Promise<RunResult> =>
      runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, `--repo1-path=${repo}`, '--archive-async', `--spool-path=${spool}`, 'archive-push', queued], { cwd: fake })
    assertRefused(await asyncPush(), 28, new RegExp(`ERROR: \\[028\\]: WAL file '${escape(queued)}' is 8388608 bytes, expected 16777216`))
    assert.deepEqual(await storedCopies(repo, walName), [])

    // PostgreSQL retries with the complete segment (here: the file is replaced): accepted, both ways.
    await put(queued, real)
    const accepted = await asyncPush()
    assert.equal(accepted.code, 0, accepted.stderr)
    const [stored] = await storedCopies(repo, walName)
    assert.ok(stored?.includes(sha256(real)), `stored as the real segment: ${stored}`)
    const again = await stanza.walden([`--repo1-path=${repo}`, 'archive-push', join(work, 'real', walName)])
    assert.equal(again.code, 0, again.stderr)

    // And archive-get serves exactly it.
    const back = join(folder, 'back')
    await stanza.waldenOk([`--repo1-path=${repo}`, 'archive-get', walName, back])
    assert.equal(sha256(await readFile(back)), sha256(real))
  })

  test('an empty file is refused naming its size and the segment size', async () => {
    const folder = await stanza.dir.mkdir('empty')
    const empty = await put(join(folder, walName), Buffer.alloc(0))
    // PostgreSQL runs archive_command in its data folder, whose pg_control gives the segment size.
    const result = await runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, 'archive-push', empty], { cwd: stanza.cluster.dataDir })
    assertRefused(result, 28, new RegExp(`ERROR: \\[028\\]: WAL file '${escape(empty)}' is empty \\(0 bytes\\), expected 16777216$`, 'm'))
    assert.doesNotMatch(result.stderr, /not supported/)
  })

  test('a copy with one changed byte in a record is refused as damaged, nothing stored', async () => {
    const repo = await freshRepo('repo-damaged')
    const folder = await stanza.dir.mkdir('damaged')
    const altered = Buffer.from(real)
    // In the header (xl_xid) of the first record that starts in the segment, after the rest of one continued from the
    // segment before (xlp_rem_len bytes): a record whose CRC can be checked here.
    const firstRecord = (40 + real.readUInt32LE(16) + 7) & ~7
    assert.ok(firstRecord < 8000, `first record at ${firstRecord}`)
    altered[firstRecord + 5] ^= 0x01
    const path = await put(join(folder, walName), altered)
    const result = await stanza.walden([`--repo1-path=${repo}`, 'archive-push', path])
    assertRefused(result, 28, new RegExp(`ERROR: \\[028\\]: WAL file '${escape(path)}' is damaged: record at [0-9A-F]+/[0-9A-F]+ \\(offset \\d+\\) has CRC 0x[0-9A-F]{8}, expected 0x[0-9A-F]{8}`))
    assert.deepEqual(await storedCopies(repo, walName), [])
  })

  /** A repository holding a short copy of the segment, as walden stored them before it checked (uncompressed). */
  const plantShort = async (name: string): Promise<{ repo: string; planted: string }> => {
    const repo = await freshRepo(name)
    // A new stanza's archive id: the major, and history id 1.
    const archiveId = join(repo, 'archive', stanza.name, `${MAJOR}-1`)
    const folder = join(archiveId, walName.slice(0, 16))
    await mkdir(folder, { recursive: true })
    for (const dir of [archiveId, folder]) await chown(dir, owner.uid, owner.gid)
    const short = real.subarray(0, SEGMENT_SIZE / 2)
    const planted = await put(join(folder, `${walName}-${sha256(short)}`), short)
    return { repo, planted }
  }

  test('archive-get refuses a short segment in the repository with exit 126 and writes nothing', async () => {
    const { repo, planted } = await plantShort('repo-short')
    const destination = await stanza.dir.mkdir('get-short')
    const result = await stanza.walden([`--repo1-path=${repo}`, 'archive-get', walName, join(destination, walName)])
    assertRefused(result, 126, new RegExp(`ERROR: \\[028\\]: archived WAL file '${escape(planted)}' is 8388608 bytes, expected 16777216`))
    assert.match(result.stderr, /exit 126: PostgreSQL must abort recovery/)
    assert.deepEqual(await readdir(destination), [], 'nothing at the destination, not even a temporary file')

    // The complete segment, pushed to that repository, is refused naming the short copy to remove; then it is stored.
    const push = (): Promise<RunResult> => stanza.walden([`--repo1-path=${repo}`, 'archive-push', join(work, 'real', walName)])
    assertRefused(await push(), 45, new RegExp(`ERROR: \\[045\\]: WAL file '${walName}' is archived as a short copy of 8388608 bytes, not the 16777216 of a whole segment: '${escape(planted)}'`))
    await rm(planted)
    const pushed = await push()
    assert.equal(pushed.code, 0, pushed.stderr)
    await stanza.waldenOk([`--repo1-path=${repo}`, 'archive-get', walName, join(destination, walName)])
    assert.equal(sha256(await readFile(join(destination, walName))), sha256(real))
  })

  test('archive-get with archive-async: a short segment is never queued, and the answer is still 126', async () => {
    const { repo, planted } = await plantShort('repo-short-async')
    const spool = await stanza.dir.mkdir('spool-get-short')
    const destination = await stanza.dir.mkdir('get-short-async')
    const result = await runWalden(
      [`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, `--repo1-path=${repo}`, '--archive-async', `--spool-path=${spool}`, 'archive-get', walName, join(destination, walName)],
      { cwd: stanza.cluster.dataDir },
    )
    assertRefused(result, 126, new RegExp(`ERROR: \\[028\\]: archived WAL file '${escape(planted)}' is 8388608 bytes, expected 16777216`))
    assert.deepEqual(await readdir(destination), [])
    const queue = join(spool, 'archive', stanza.name, 'in')
    assert.deepEqual((await readdir(queue).catch(() => [] as string[])).filter((entry) => entry.startsWith(walName)), [])
  })

  test('a short file in the async queue is not served, by walden or by bin/walden-archive-get: the archive is asked', async () => {
    const spool = await stanza.dir.mkdir('spool-queue')
    const queue = join(spool, 'archive', stanza.name, 'in')
    await mkdir(queue, { recursive: true })
    for (const dir of [join(spool, 'archive'), join(spool, 'archive', stanza.name), queue]) await chown(dir, owner.uid, owner.gid)
    const destination = await stanza.dir.mkdir('get-queue')
    const args = [`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, '--archive-async', `--spool-path=${spool}`]

    // walden's own foreground (archive-get-queued.ts).
    await put(join(queue, walName), real.subarray(0, SEGMENT_SIZE / 2))
    const result = await runWalden([...args, 'archive-get', walName, join(destination, 'by-walden')], { cwd: stanza.cluster.dataDir })
    assert.equal(result.code, 0, result.stderr)
    assert.equal(sha256(await readFile(join(destination, 'by-walden'))), sha256(real))

    // The sh front, which checks the same things before it hands a queued file over.
    await put(join(queue, walName), real.subarray(0, SEGMENT_SIZE / 2))
    const front = spawnSync(
      'runuser',
      ['-u', 'postgres', '--', join(waldenPackageRoot(), 'bin', 'walden-archive-get'), process.execPath, join(waldenPackageRoot(), 'bin', 'walden'), ...args, walName, join(destination, 'by-front')],
      { cwd: stanza.cluster.dataDir, encoding: 'utf8' },
    )
    assert.equal(front.status, 0, front.stderr)
    assert.equal(sha256(await readFile(join(destination, 'by-front'))), sha256(real))
  })
})

const MATRIX = [13, 14, 15, 16, 17, 18]
const majors = await availableMajors()

describe("a cluster's own WAL still archives and restores", () => {
  for (const major of MATRIX) {
    const skip = majors.includes(major) ? false : `PostgreSQL ${major} binaries not installed`
    test(`PostgreSQL ${major}: switches, a checkpoint, a record larger than a segment`, { skip }, async () => {
      const stanza = await createTestStanza({ major, name: `wal${major}`, compressType: 'lz4', processMax: 1 })
      try {
        await stanza.waldenOk(['stanza-create'])
        await stanza.waldenOk(['backup', '--type=full'])
        const cluster = stanza.cluster
        await cluster.query(`create table t (id int, note text); insert into t select n, repeat('x', 80) || n from generate_series(1, 60000) n`)
        await cluster.query('checkpoint')
        // Full-page images after the checkpoint, then a switch mid-segment.
        await cluster.query(`update t set note = 'updated ' || id where id % 5 = 0`)
        await cluster.query('select pg_switch_wal()')
        // One record of 20 MB: it starts in one segment, fills the next whole, and ends in a third.
        await cluster.query(`select pg_logical_emit_message(false, 'walden', repeat('m', 20 * 1024 * 1024))`)
        await cluster.query(`insert into t select n, 'after' from generate_series(60001, 61000) n`)
        await stanza.waldenOk(['check'])
        const archiver = await cluster.query<{ failed: string; last: string }>('select failed_count::text as failed, last_archived_wal as last from pg_stat_archiver')
        assert.equal(archiver[0]!.failed, '0', `archive_command failed:\n${await cluster.logTail()}`)
        assert.ok(Number.parseInt(archiver[0]!.last.slice(16), 16) >= 5, `archived up to ${archiver[0]!.last}`)
        const expected = await dumpDatabase(cluster)
        await cluster.stop()

        await rm(cluster.dataDir, { recursive: true, force: true })
        await stanza.waldenOk(['restore'])
        await cluster.start()
        await cluster.waitWritable(60_000)
        assert.equal(await dumpDatabase(cluster), expected)
      } finally {
        await stanza.dir.cleanup()
      }
    })
  }
})
