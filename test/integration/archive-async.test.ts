// Asynchronous archiving (archive-async=y) on a real PostgreSQL 15 cluster: the background push archives everything
// PostgreSQL hands it and the cluster restores through the prefetching archive-get to the same dump; errors of the
// background push reach archive_command; a killed background process acknowledges nothing that is not in the
// repository; archive-push-queue-max drops WAL only past its limit, and says so; a segment missing once is delivered
// once archived; a damaged one still aborts recovery (exit 126). The sh fronts, bin/walden-archive-push and
// bin/walden-archive-get, settle what the background process has done without Node.js and hand the rest to walden.
//
// The error and crash cases use stand-in segments in a folder of their own (a page header with the stanza's system
// identifier, a switch record, padding after it), at positions the real cluster never reaches, so they run in a second and do not
// disturb the cluster's own archiving.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import { chown, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { lockAcquire, lockHeld } from '../../src/common/lock.js'
import { waldenPackageRoot } from '../../src/pg/binaries.js'
import { pgControlRead } from '../../src/pg/control.js'
import { walSegmentStartLsn } from '../../src/pg/wal.js'
import { walSegmentBuild } from '../../src/pg/wal-verify.js'
import { dumpDatabase, runWalden } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const SEGMENT_SIZE = 16 * 1024 * 1024
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Archived WAL in the repository: segment name -> checksums of its stored copies (from the file names). */
async function archived(repoPath: string): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>()
  const root = join(repoPath, 'archive')
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const match = /^([0-9A-F]{24})-([0-9a-f]{64})(\.[a-z0-9]+)?$/.exec(entry.name)
    if (!entry.isFile() || !match) continue
    result.set(match[1]!, [...(result.get(match[1]!) ?? []), match[2]!])
  }
  return result
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

describe(`asynchronous archiving on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let spoolPath: string
  let logPath: string
  let systemId: bigint

  // A stand-in data folder: pg_wal with archive_status, as the archiver leaves it, owned by postgres.
  let fake: string
  // A switch record first, the rest `fill`: a whole segment that archive-push's checks accept.
  const segment = (name: string, fill = 0, system = systemId): Buffer =>
    walSegmentBuild({ version: MAJOR, systemId: system, pageAddress: walSegmentStartLsn(name, SEGMENT_SIZE), fill })
  let owner = { uid: 0, gid: 0 } // of the repository: postgres
  async function ready(name: string, data: Buffer): Promise<void> {
    const path = join(fake, 'pg_wal', name)
    await writeFile(path, data)
    await chown(path, owner.uid, owner.gid)
    const status = join(fake, 'pg_wal', 'archive_status', `${name}.ready`)
    await writeFile(status, '')
    await chown(status, owner.uid, owner.gid)
  }
  /** archive-push as the archiver runs it: in the data folder, %p relative. */
  const push = (name: string, extra: string[] = []): Promise<RunResult> =>
    runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, ...extra, 'archive-push', `pg_wal/${name}`], { cwd: fake })
  /** archive-get as recovery runs it: in the data folder of the cluster (its pg_control names segment size and system). */
  const get = (name: string, destination: string): Promise<RunResult> =>
    runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, '--log-level-console=info', 'archive-get', name, destination], {
      cwd: stanza.cluster.dataDir,
    })
  // No background process: nobody holds the lock (a SIGKILLed one held it only while it lived; its lock file stays,
  // naming it, but the kernel let go of its lock).
  const asyncIdle = (lock: string): Promise<void> => waitFor(`${lock} to end`, async () => !lockHeld(stanza.lockPath, `${stanza.name}-${lock}`))

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'async' })
    spoolPath = await stanza.dir.mkdir('spool')
    logPath = join(stanza.dir.path, 'log')
    // archive-get's foreground logs to a file too, so a test can count how often recovery started Node.js.
    await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`, '[global:archive-get]', 'log-level-file=info'])
    await stanza.waldenOk(['stanza-create'])
    systemId = (await pgControlRead(stanza.cluster.dataDir)).systemId
    const repoStat = await stat(stanza.repoPath)
    owner = { uid: repoStat.uid, gid: repoStat.gid }
    fake = await stanza.dir.mkdir('fake')
    for (const sub of ['pg_wal', 'pg_wal/archive_status']) {
      await mkdir(join(fake, sub), { recursive: true })
      await chown(join(fake, sub), owner.uid, owner.gid)
    }
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('the cluster archives through the background process and restores through the queue to the same dump', async () => {
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.cluster.query('create table t (id int, note text)')
    // A dozen segments, more than the queue holds (128 MiB = 8 segments), so recovery refills it.
    for (let round = 0; round < 12; round++) {
      await stanza.cluster.query(`insert into t select n, 'round ${round} row ' || n from generate_series(1, 2000) n`)
      await stanza.cluster.query('select pg_switch_wal()')
    }
    await stanza.waldenOk(['check'])
    const dump = await dumpDatabase(stanza.cluster)
    const pushLog = await readFile(join(logPath, 'async-archive-push-async.log'), 'utf8')
    assert.match(pushLog, /pushed WAL file '[0-9A-F]{24}' to the archive/)
    const archiver = await stanza.cluster.query<{ failed_count: string }>('select failed_count::text from pg_stat_archiver')
    assert.equal(archiver[0]!.failed_count, '0')
    await stanza.cluster.stop()

    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    await stanza.waldenOk(['restore'])
    // restore_command goes through the sh front, which reads the stanza and spool path from its command line.
    const autoConf = await readFile(join(stanza.cluster.dataDir, 'postgresql.auto.conf'), 'utf8')
    const front = join(waldenPackageRoot(), 'bin', 'walden-archive-get')
    assert.ok(autoConf.includes(`restore_command = '${front} ${process.execPath} `), autoConf)
    assert.ok(autoConf.includes(`--stanza=${stanza.name} --spool-path=${spoolPath} %f "%p"'`), autoConf)
    await stanza.cluster.start()
    await stanza.cluster.waitWritable(60_000)
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    const getLog = await readFile(join(logPath, 'async-archive-get-async.log'), 'utf8')
    assert.match(getLog, /queued WAL file '[0-9A-F]{24}' from the archive/)
    const serverLog = await readFile(stanza.cluster.logFile, 'utf8')
    const restored = (serverLog.match(/restored log file "[0-9A-F]{24}" from archive/g) ?? []).length
    assert.ok(restored >= 12, 'recovery replayed the archived segments')
    // Fewer Node.js starts than segments restored: the front delivered queued ones itself.
    const foreground = await readFile(join(logPath, 'async-archive-get.log'), 'utf8')
    const started = (foreground.match(/ archive-get command begin /g) ?? []).length
    assert.ok(started > 0 && started < restored, `${started} archive-get processes for ${restored} restored segments`)
    // A background process that has ended leaves an empty list, so the front waits for nothing.
    await asyncIdle('archive-get')
    assert.equal(await readFile(join(spoolPath, 'archive', stanza.name, 'in', 'queue.list'), 'utf8').catch(() => ''), '\n')
  })

  test("a segment of another cluster fails archive_command with the background process's error", async () => {
    const name = '000000010000000A00000001'
    const foreign = segment(name, 0, systemId + 1n)
    await ready(name, foreign)
    const result = await push(name)
    assert.equal(result.code, 44, result.stderr)
    assert.match(result.stderr, /ERROR: \[044\]: WAL file '000000010000000A00000001' .*system/i)
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
    assert.equal((await archived(stanza.repoPath)).has(name), false)
    // Asked again, it is pushed again (and fails again): an error is never the answer to a later call.
    assert.equal((await push(name)).code, 44)
    await rm(join(fake, 'pg_wal', 'archive_status', `${name}.ready`))
    await rm(join(fake, 'pg_wal', name))
  })

  test('an unwritable repository fails archive_command with the message; once writable, the segment is pushed', async () => {
    const name = '000000010000000A00000002'
    const data = segment(name, 0)
    await ready(name, data)
    const archiveRoot = join(stanza.repoPath, 'archive', stanza.name)
    const [archiveId] = (await readdir(archiveRoot)).filter((entry) => /^\d+-\d+$/.test(entry))
    const folder = join(archiveRoot, archiveId!, name.slice(0, 16))
    await mkdir(folder, { recursive: true })
    await chown(folder, owner.uid, owner.gid)
    await import('node:fs/promises').then((fs) => fs.chmod(folder, 0o500))
    try {
      const result = await push(name)
      assert.equal(result.code, 41, result.stderr)
      assert.match(result.stderr, /ERROR: \[041\]: unable to open for write '.*000000010000000A00000002.*': permission denied/)
    } finally {
      await import('node:fs/promises').then((fs) => fs.chmod(folder, 0o750))
    }
    const retry = await push(name)
    assert.equal(retry.code, 0, retry.stderr)
    assert.deepEqual((await archived(stanza.repoPath)).get(name), [sha256(data)])
    await rm(join(fake, 'pg_wal', 'archive_status', `${name}.ready`)) // as the archiver does after success
  })

  test('a killed background process leaves no acknowledgement without its segment, and the next call recovers', async () => {
    await asyncIdle('archive')
    const names = Array.from({ length: 8 }, (_, index) => `000000010000000A0000001${index}`)
    const contents = new Map(names.map((name, index) => [name, segment(name, index + 1)]))
    for (const [name, data] of contents) await ready(name, data)
    // The foreground of the last segment starts the background process; kill it while it works.
    const waiting = push(names.at(-1)!)
    const lockFile = join(stanza.lockPath, `${stanza.name}-archive.lock`)
    await waitFor('the background process', async () => lockHeld(stanza.lockPath, `${stanza.name}-archive`), 10_000)
    const out = join(spoolPath, 'archive', stanza.name, 'out')
    const acked = async (): Promise<boolean> => (await readdir(out).catch(() => [])).some((entry) => entry.endsWith('.ok') && contents.has(entry.slice(0, 24)))
    await waitFor('a first acknowledgement', acked, 30_000)
    const pid = Number((await readFile(lockFile, 'utf8')).split(' ')[0])
    process.kill(pid, 'SIGKILL')
    await waiting // finished one way or the other; a new background process may have been started by it

    const inRepo = await archived(stanza.repoPath)
    for (const entry of await readdir(out)) {
      if (!entry.endsWith('.ok') || !contents.has(entry.slice(0, 24))) continue
      const name = entry.slice(0, 24)
      assert.deepEqual(inRepo.get(name), [sha256(contents.get(name)!)], `${name} acknowledged but not in the repository`)
    }
    for (const name of names) {
      const result = await push(name)
      assert.equal(result.code, 0, result.stderr)
    }
    const after = await archived(stanza.repoPath)
    for (const [name, data] of contents) assert.deepEqual(after.get(name), [sha256(data)], name)
    for (const name of names) await rm(join(fake, 'pg_wal', 'archive_status', `${name}.ready`))
  })

  test("a background process serving another cluster's pg_wal does not hold this cluster's segments up", async () => {
    await asyncIdle('archive')
    const name = '000000010000000A00000030'
    const data = segment(name, 0x30)
    await ready(name, data)
    // A live process holds the stanza's archive lock, serving another folder (the test runner stands in for it).
    const out = join(spoolPath, 'archive', stanza.name, 'out')
    const lock = await lockAcquire(stanza.lockPath, `${stanza.name}-archive`)
    await writeFile(join(out, 'background'), '/elsewhere/pg_wal\n')
    try {
      const result = await push(name, ['--log-level-console=info'])
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stderr, /the background process serves another pg_wal folder; pushing '000000010000000A00000030' here/)
      assert.deepEqual((await archived(stanza.repoPath)).get(name), [sha256(data)])
    } finally {
      lock.release()
      await rm(join(fake, 'pg_wal', 'archive_status', `${name}.ready`))
    }
  })

  test('archive-push-queue-max: past it a segment is dropped, loudly, in both modes; below it, archived', async () => {
    await asyncIdle('archive')
    const names = Array.from({ length: 3 }, (_, index) => `000000010000000A0000002${index}`)
    for (const [index, name] of names.entries()) await ready(name, segment(name, 0x20 + index))
    // Three ready segments of 16 MiB: 48 MiB wait for the archive.
    for (const mode of ['--no-archive-async', '--archive-async']) {
      const dropped = await push(names[0]!, [mode, '--archive-push-queue-max=32MiB'])
      assert.equal(dropped.code, 0, dropped.stderr)
      assert.match(dropped.stderr, /WARN: WAL file '000000010000000A00000020' DROPPED, NOT ARCHIVED: 3 segments \(50331648 bytes\)/)
      assert.match(dropped.stderr, /point-in-time recovery across this WAL is no longer possible/)
      assert.equal((await archived(stanza.repoPath)).has(names[0]!), false)
    }
    const pushed = await push(names[0]!, ['--archive-push-queue-max=64MiB'])
    assert.equal(pushed.code, 0, pushed.stderr)
    assert.doesNotMatch(pushed.stderr, /DROPPED/)
    assert.equal((await archived(stanza.repoPath)).has(names[0]!), true)
    for (const name of names) await rm(join(fake, 'pg_wal', 'archive_status', `${name}.ready`))
  })

  test('archive-get: a segment missing once is delivered once archived; a damaged one aborts recovery (126)', async () => {
    await asyncIdle('archive')
    const destination = join(stanza.dir.path, 'restored')
    const names = Array.from({ length: 5 }, (_, index) => `000000010000000B0000000${index}`)
    const contents = new Map(names.map((name, index) => [name, segment(name, 0x40 + index)]))
    // Archived synchronously (no .ready file): the first three only.
    for (const name of names.slice(0, 3)) {
      await writeFile(join(fake, 'pg_wal', name), contents.get(name)!)
      const result = await push(name)
      assert.equal(result.code, 0, result.stderr)
    }
    const getLog = (): Promise<string> => readFile(join(logPath, 'async-archive-get-async.log'), 'utf8').catch(() => '')
    const check = async (name: string): Promise<void> => {
      assert.equal(sha256(await readFile(destination)), sha256(contents.get(name)!), name)
      await rm(destination)
    }

    // The first is fetched by the foreground itself and starts the prefetch of the next ones.
    const first = await get(names[0]!, destination)
    assert.equal(first.code, 0, first.stderr)
    await check(names[0]!)
    await waitFor('the prefetch', async () => (await getLog()).includes(`queued WAL file '${names[2]}'`))
    await asyncIdle('archive-get')
    for (const name of names.slice(1, 3)) {
      const result = await get(name, destination)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stderr, new RegExp(`found WAL file '${name}' in the queue`))
      await check(name)
    }

    // Not archived yet: "not found". Then it is archived, and the next one is archived but damaged in the repository.
    const missing = await get(names[3]!, destination)
    assert.equal(missing.code, 1, missing.stderr)
    assert.equal(await exists(destination), false)
    for (const name of names.slice(3)) {
      await writeFile(join(fake, 'pg_wal', name), contents.get(name)!)
      assert.equal((await push(name)).code, 0)
    }
    const stored = (await readdir(join(stanza.repoPath, 'archive'), { recursive: true })).find((path) => path.includes(`${names[4]}-`))!
    const storedPath = join(stanza.repoPath, 'archive', stored)
    const bytes = await readFile(storedPath)
    for (let index = 8; index < 16; index++) bytes[index] = bytes[index]! ^ 0xff
    await writeFile(storedPath, bytes)

    // Delivered, not a remembered "not found"; its prefetch of the damaged one fails in the background.
    await asyncIdle('archive-get')
    const found = await get(names[3]!, destination)
    assert.equal(found.code, 0, found.stderr)
    await check(names[3]!)
    const damagedLine = new RegExp(`ERROR: \\[026\\]: archived WAL file '.*${names[4]}-`)
    await waitFor('the failed prefetch', async () => damagedLine.test(await getLog()))
    await asyncIdle('archive-get')

    // The foreground fetches it itself and gives PostgreSQL the answer that aborts recovery.
    const damaged = await get(names[4]!, destination)
    assert.equal(damaged.code, 126, damaged.stderr)
    assert.match(damaged.stderr, /ERROR: \[026\]: archived WAL file '.*' (is damaged|has checksum)/)
    assert.equal(await exists(destination), false)
  })

  test('bin/walden-archive-push exits at once for a segment the background pushed, and hands anything else to walden', async () => {
    const front = join(waldenPackageRoot(), 'bin', 'walden-archive-push')
    const name = '0000000100000000000000E0'
    await ready(name, segment(name, 3))
    /** The front as the archiver runs it, in the data folder; `node` is what it would start for walden. */
    const frontRun = (node: string, extra: string[] = [`--spool-path=${spoolPath}`]) =>
      spawnSync('runuser', ['-u', 'postgres', '--', front, node, join(waldenPackageRoot(), 'bin', 'walden'), `--config=${stanza.configPath}`, `--stanza=${stanza.name}`, ...extra, `pg_wal/${name}`], {
        cwd: fake,
        encoding: 'utf8',
      })
    // No acknowledgement yet: walden itself runs (async, as configured), pushes, and the background acknowledges.
    const first = frontRun(process.execPath)
    assert.equal(first.status, 0, first.stderr)
    assert.ok((await archived(stanza.repoPath)).has(name))
    await asyncIdle('archive')
    // Acknowledged for this very file: done without starting anything (/bin/false would fail).
    assert.equal(frontRun('/bin/false').status, 0)
    // Without --spool-path on its command line the front cannot look, so walden runs.
    assert.equal(frontRun('/bin/false', []).status, 1)
    // The same name, another file (new mtime): the acknowledgement is not for it, so walden runs.
    const later = new Date(Date.now() + 5000)
    await utimes(join(fake, 'pg_wal', name), later, later)
    assert.equal(frontRun('/bin/false').status, 1)
    const again = frontRun(process.execPath)
    assert.equal(again.status, 0, again.stderr)
    await asyncIdle('archive')
    assert.equal(frontRun('/bin/false').status, 0)

    // While acknowledgements are fresh (a background process at work), the front waits a moment for its own.
    const out = join(spoolPath, 'archive', stanza.name, 'out')
    const next = '0000000100000000000000E1'
    await ready(next, segment(next, 4))
    const nextRun = (node: string) =>
      spawn('runuser', ['-u', 'postgres', '--', front, node, join(waldenPackageRoot(), 'bin', 'walden'), `--config=${stanza.configPath}`, `--stanza=${stanza.name}`, `--spool-path=${spoolPath}`, `pg_wal/${next}`], { cwd: fake, stdio: 'ignore' })
    const exitOf = (child: ReturnType<typeof spawn>): Promise<number | null> => new Promise((resolve) => child.once('close', resolve))
    const now = new Date()
    await utimes(join(out, `${name}.ok`), now, now)
    const waiting = exitOf(nextRun('/bin/false'))
    await sleep(300)
    const info = await stat(join(fake, 'pg_wal', next), { bigint: true })
    const identity = { dev: String(info.dev), ino: String(info.ino), size: String(info.size), mtimeNs: String(info.mtimeNs) }
    await writeFile(join(out, `${next}.ok.tmp`), JSON.stringify(identity) + '\n')
    await rename(join(out, `${next}.ok.tmp`), join(out, `${next}.ok`))
    assert.equal(await waiting, 0, 'the front found the acknowledgement that arrived while it waited')
    // With no recent acknowledgement it does not wait: no record for this file, so walden runs (here /bin/false).
    await rm(join(out, `${next}.ok`))
    const old = new Date(Date.now() - 60_000)
    for (const entry of await readdir(out)) if (entry.endsWith('.ok')) await utimes(join(out, entry), old, old)
    assert.equal(await exitOf(nextRun('/bin/false')), 1)
  })

  test('bin/walden-archive-get delivers a queued segment without Node.js, and hands anything else to walden', async () => {
    await asyncIdle('archive-get')
    const front = join(waldenPackageRoot(), 'bin', 'walden-archive-get')
    const queue = join(spoolPath, 'archive', stanza.name, 'in')
    await mkdir(queue, { recursive: true })
    await chown(queue, owner.uid, owner.gid)
    const name = '0000000100000000000000F0'
    const destination = join(stanza.dir.path, 'front-restored')
    const queued = join(queue, name)
    const enqueue = async (data: Buffer): Promise<void> => {
      await writeFile(queued, data)
      await chown(queued, owner.uid, owner.gid)
    }
    /** The front as recovery runs it: in the data folder, %f and %p last; `node` is what it starts for walden. */
    const frontRun = (node: string, options: { args?: string[]; cwd?: string; to?: string } = {}) =>
      spawnSync(
        'runuser',
        ['-u', 'postgres', '--', front, node, join(waldenPackageRoot(), 'bin', 'walden'), `--config=${stanza.configPath}`, ...(options.args ?? [`--stanza=${stanza.name}`, `--spool-path=${spoolPath}`]), name, options.to ?? destination],
        { cwd: options.cwd ?? stanza.cluster.dataDir, encoding: 'utf8' },
      )

    // Queued and this cluster's: moved to the destination whole, without starting anything (/bin/false would fail).
    const data = segment(name, 0xf0)
    await enqueue(data)
    const delivered = frontRun('/bin/false')
    assert.equal(delivered.status, 0, delivered.stderr)
    assert.equal(sha256(await readFile(destination)), sha256(data))
    assert.equal(await exists(queued), false)
    await rm(destination)

    // Nothing queued: walden runs (here /bin/false), which alone may say "not found".
    assert.equal(frontRun('/bin/false').status, 1)
    assert.equal(await exists(destination), false)

    // Not queued yet, but on the list of what the background process is fetching: the front waits for it.
    const list = join(queue, 'queue.list')
    await writeFile(list, `0000000100000000000000EF\n${name}\n`)
    await writeFile(`${queued}.later`, data)
    await chown(`${queued}.later`, owner.uid, owner.gid)
    const arriving = spawn('sh', ['-c', `sleep 0.5; mv '${queued}.later' '${queued}'`])
    const waited = frontRun('/bin/false')
    await new Promise((resolve) => arriving.once('exit', resolve))
    assert.equal(waited.status, 0, waited.stderr)
    assert.equal(sha256(await readFile(destination)), sha256(data))
    await rm(destination)
    // Listed but never arriving (a background process that died): it hands over to walden after two seconds.
    const since = Date.now()
    assert.equal(frontRun('/bin/false').status, 1)
    assert.ok(Date.now() - since >= 1900, `gave up after ${Date.now() - since} ms`)
    await writeFile(list, '')

    // Queued files that are not this cluster's whole segment at this position stay for walden to judge.
    const foreign = segment(name, 0xf0, systemId + 1n)
    const elsewhere = segment('0000000100000000000000F1', 0xf0)
    for (const [what, bad] of [
      ['another system identifier', foreign],
      ['another position', elsewhere],
      ['part of a segment', data.subarray(0, SEGMENT_SIZE / 2)],
    ] as const) {
      await enqueue(bad)
      assert.equal(frontRun('/bin/false').status, 1, what)
      assert.equal(await exists(destination), false, what)
      assert.equal(sha256(await readFile(queued)), sha256(bad), what)
    }
    // walden itself removes the foreign file and, as the segment is not in the archive, answers "not found".
    await enqueue(foreign)
    const judged = frontRun(process.execPath, { args: [`--stanza=${stanza.name}`, `--spool-path=${spoolPath}`, '--log-level-console=warn'] })
    assert.equal(judged.status, 1, judged.stderr)
    assert.match(judged.stdout + judged.stderr, /queued WAL file '.*0000000100000000000000F0' is not this cluster's segment/)
    assert.equal(await exists(queued), false)

    // Without the stanza or spool path on its command line, or run outside a data folder, the front cannot check.
    await enqueue(data)
    assert.equal(frontRun('/bin/false', { args: [`--stanza=${stanza.name}`] }).status, 1)
    assert.equal(frontRun('/bin/false', { args: [`--spool-path=${spoolPath}`] }).status, 1)
    assert.equal(frontRun('/bin/false', { cwd: fake }).status, 1)
    assert.equal(await exists(queued), true)
    assert.equal(await exists(destination), false)

    // A destination on another file system: copied beside it under a temporary name, then renamed.
    const otherFs = `/dev/shm/walden-front-${process.pid}`
    await mkdir(otherFs)
    try {
      await chown(otherFs, owner.uid, owner.gid)
      const copied = frontRun('/bin/false', { to: join(otherFs, 'RECOVERYXLOG') })
      assert.equal(copied.status, 0, copied.stderr)
      assert.equal(sha256(await readFile(join(otherFs, 'RECOVERYXLOG'))), sha256(data))
      assert.deepEqual(await readdir(otherFs), ['RECOVERYXLOG'])
      assert.equal(await exists(queued), false)
    } finally {
      await rm(otherFs, { recursive: true, force: true })
    }
  })
})
