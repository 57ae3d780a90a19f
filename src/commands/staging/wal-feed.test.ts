// walFeed() in-process, on real files in a temporary folder: a data folder with a built pg_control (no server, so no
// postmaster.pid: a break signals nothing) and a WAL folder of built segments.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import { pgControlBuild } from '../../pg/control.js'
import { walSegmentBuild } from '../../pg/wal-verify.js'
import type { StagingRecord } from './state.js'
import { walFeed } from './wal-feed.js'
import type { WalFeedOutcome } from './wal-feed.js'
import { WAL_SETTLE_MS } from './wal-chain.js'

const SEG = 16 * 1024 * 1024
const SYSTEM = 7300000000000000042n
const OTHER = 7300000000000000099n
const segment = (number: number, fields: { systemId?: bigint; timeline?: number } = {}): Buffer =>
  walSegmentBuild({ version: 15, systemId: fields.systemId ?? SYSTEM, timeline: fields.timeline ?? 1, pageAddress: BigInt(number) * BigInt(SEG) })

describe('walFeed()', () => {
  let root: string
  let dataDir: string
  let walPath: string
  let destination: string
  let record: StagingRecord
  let updates: StagingRecord[]

  const request = async (walName: string, now?: number): Promise<WalFeedOutcome> =>
    walFeed({
      record,
      walPath,
      walName,
      destination,
      update: async (change) => {
        const copy = structuredClone(record)
        change(copy)
        updates.push(copy)
        record = copy
      },
      ...(now !== undefined ? { now: () => now } : {}),
    })
  /** The record as the feed last wrote it (read through a function: the feed replaces it). */
  const state = (): StagingRecord => record
  const put = async (name: string, data: Buffer | string, ageMs = 60_000): Promise<void> => {
    await writeFile(join(walPath, name), data)
    const when = new Date(Date.now() - ageMs)
    await utimes(join(walPath, name), when, when)
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'walden-wal-feed-'))
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  const fresh = async (): Promise<void> => {
    const name = `case-${Math.random().toString(36).slice(2)}`
    dataDir = join(root, name, 'data')
    walPath = join(root, name, 'wal')
    destination = join(root, name, 'RECOVERYXLOG')
    await mkdir(join(dataDir, 'global'), { recursive: true })
    await mkdir(join(dataDir, 'pg_wal'), { recursive: true })
    await mkdir(walPath, { recursive: true })
    await writeFile(join(dataDir, 'global', 'pg_control'), pgControlBuild({ version: 15, systemId: SYSTEM, walSegmentSize: SEG, checkpointLsn: 0x2000060n }))
    record = { stanza: 'demo', method: 'external-wal', path: dataDir, port: 5999, walPath, settings: [], enabled: true, linkedAt: '2026-12-03T00:00:00Z' }
    updates = []
  }

  test('a valid segment is served byte for byte, and the next one recorded as expected', async () => {
    await fresh()
    const data = segment(3)
    await put('000000010000000000000003', data)
    assert.deepEqual(await request('000000010000000000000003'), { kind: 'served', file: '000000010000000000000003', expected: '000000010000000000000004' })
    assert.ok((await readFile(destination)).equals(data))
    assert.equal(state().expectedWal, '000000010000000000000004')
    assert.equal(state().fault, undefined)
  })

  test('a gzip-compressed copy is served decompressed', async () => {
    await fresh()
    const data = segment(3)
    await put('000000010000000000000003.gz', gzipSync(data))
    assert.equal((await request('000000010000000000000003')).kind, 'served')
    assert.ok((await readFile(destination)).equals(data))
  })

  test('absent with nothing later: a quiet wait, written to the record once', async () => {
    await fresh()
    await put('000000010000000000000003', segment(3))
    assert.equal((await request('000000010000000000000004')).kind, 'wait')
    assert.equal((await request('000000010000000000000004')).kind, 'wait')
    assert.equal(updates.length, 1)
    assert.equal(state().expectedWal, '000000010000000000000004')
    assert.equal(state().fault, undefined)
  })

  test('absent while a later segment is there: a break naming the expected file, recorded as the fault', async () => {
    await fresh()
    await put('000000010000000000000005', segment(5))
    const outcome = await request('000000010000000000000004')
    assert.deepEqual(outcome, {
      kind: 'break',
      expected: '000000010000000000000004',
      message: "WAL file '000000010000000000000004' is missing from the WAL folder, but later WAL file '000000010000000000000005' is there",
      shutdown: 'the staging cluster is not running (no postmaster.pid)',
    })
    assert.equal(state().fault?.expectedWal, '000000010000000000000004')
    assert.equal(state().fault?.message, (outcome as { message: string }).message)
  })

  test('absent from the folder but whole in pg_wal (a restart from an older restartpoint): a wait, not a break', async () => {
    await fresh()
    await put('000000010000000000000005', segment(5))
    await writeFile(join(dataDir, 'pg_wal', '000000010000000000000004'), segment(4))
    assert.equal((await request('000000010000000000000004')).kind, 'wait')
    assert.equal(state().fault, undefined)
  })

  test("another cluster's segment: a break once it has settled, never handed over", async () => {
    await fresh()
    await put('000000010000000000000003', segment(3, { systemId: OTHER }), 0)
    // Just written: it may still be being copied, so it is not judged yet.
    const early = await request('000000010000000000000003', Date.now())
    assert.equal(early.kind, 'wait')
    assert.equal(state().fault, undefined)
    const late = await request('000000010000000000000003', Date.now() + WAL_SETTLE_MS + 1000)
    assert.equal(late.kind, 'break')
    assert.equal(
      state().fault?.message,
      `WAL file '000000010000000000000003' in the WAL folder is not valid WAL of this cluster at this position: the file is WAL of system ${OTHER}, not of the staging cluster (system ${SYSTEM})`,
    )
    await assert.rejects(readFile(destination), { code: 'ENOENT' })
  })

  test('a segment at the wrong position and a truncated one: breaks that say why', async () => {
    await fresh()
    await put('000000010000000000000003', segment(7))
    const moved = await request('000000010000000000000003')
    assert.equal(moved.kind === 'break' && moved.message, "WAL file '000000010000000000000003' in the WAL folder is not valid WAL of this cluster at this position: the file holds WAL from 0/7000000, but its name says 0/3000000")
    await fresh()
    await put('000000010000000000000003', segment(3).subarray(0, SEG / 4))
    const cut = await request('000000010000000000000003')
    assert.equal(cut.kind === 'break' && cut.message, `WAL file '000000010000000000000003' in the WAL folder is not valid WAL of this cluster at this position: the file is ${SEG / 4} bytes, expected ${SEG}`)
    await assert.rejects(readFile(destination), { code: 'ENOENT' })
  })

  test('history files: served as they are; a probe for one not there is a wait; a damaged one a break', async () => {
    await fresh()
    assert.equal((await request('00000002.history')).kind, 'wait')
    await put('00000002.history', '1\t0/5000100\tno recovery target specified\n')
    assert.equal((await request('00000002.history')).kind, 'served')
    assert.equal(await readFile(destination, 'utf8'), '1\t0/5000100\tno recovery target specified\n')
    // With it there, segment 5 onwards belong to timeline 2: after segment 4 of timeline 1, '...20000000005' is expected.
    await put('000000010000000000000004', segment(4))
    assert.equal((await request('000000010000000000000004')).kind, 'served')
    assert.equal(state().expectedWal, '000000020000000000000005')
    await put('00000003.history', 'garbage\n')
    assert.equal((await request('00000003.history')).kind, 'break')
  })

  test('a later segment counts only once it is a regular file that has settled: one still arriving, or a FIFO, is a wait', async () => {
    await fresh()
    await put('000000010000000000000006', segment(6), 0)
    assert.equal((await request('000000010000000000000004', Date.now())).kind, 'wait', 'a later file still being written')
    execFileSync('mkfifo', [join(walPath, '000000010000000000000007')])
    assert.equal((await request('000000010000000000000004', Date.now() + WAL_SETTLE_MS + 1000)).kind, 'break', 'the regular file has settled')
    await fresh()
    execFileSync('mkfifo', [join(walPath, '000000010000000000000005')])
    assert.equal((await request('000000010000000000000004', Date.now() + WAL_SETTLE_MS + 1000)).kind, 'wait', 'a FIFO proves nothing')
    assert.equal(state().fault, undefined)
  })

  test('the attack: a FIFO or a symbolic link under the expected name is never read, and is judged without hanging', async () => {
    await fresh()
    const secret = join(root, 'secret-of-postgres')
    await writeFile(secret, '12345678 the first bytes of a file postgres can read')
    await symlink(secret, join(walPath, '000000010000000000000003'))
    const linked = await request('000000010000000000000003', Date.now() + 3_600_000)
    assert.equal(linked.kind, 'break')
    assert.match(state().fault!.message, /is a symbolic link; walden serves regular files only$/)
    assert.doesNotMatch(state().fault!.message, /0x3231|1234/, 'nothing of the target in the message')
    await assert.rejects(readFile(destination), { code: 'ENOENT' })

    await fresh()
    execFileSync('mkfifo', [join(walPath, '000000010000000000000003')])
    // No writer ever opens the FIFO: a blocking open would never return (the test would time out).
    const fifo = await request('000000010000000000000003', Date.now() + 3_600_000)
    assert.equal(fifo.kind, 'break')
    assert.match(state().fault!.message, /is not a regular file \(a FIFO, device or folder\); walden serves regular files only$/)
    execFileSync('mkfifo', [join(walPath, '00000002.history')])
    assert.equal((await request('00000002.history', Date.now() + 3_600_000)).kind, 'break', 'a history file too')
  })
})
