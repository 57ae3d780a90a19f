// How many S3 requests archive-push makes per segment (issue #12), counted by a real Ceph RADOS Gateway (its rgw.req
// perf counter), through the CLI as PostgreSQL runs it: the background process of archive-async loads archive.info
// once and lists each WAL folder once per batch, so a segment costs its upload; a synchronous push costs archive.info,
// one listing and the upload, and nothing after it. What was stored in memory on the way is read back whole with
// archive-get, and a retry with the same content or another one still behaves as before.
//
// Stand-in segments (a page header with the stanza's system identifier, a switch record, padding) in a data folder of
// their own; the cluster only provides pg_control and does not archive, so nothing else talks to the gateway.

import assert from 'node:assert/strict'
import { chown, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { lockHeld } from '../../src/common/lock.js'
import { pgControlRead } from '../../src/pg/control.js'
import { walSegmentStartLsn } from '../../src/pg/wal.js'
import { walSegmentBuild } from '../../src/pg/wal-verify.js'
import { runWalden } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { s3Gateway } from '../harness/s3.js'
import type { S3Gateway } from '../harness/s3.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const SEGMENT_SIZE = 16 * 1024 * 1024
/** Segments of the asynchronous batch: all in one WAL folder. */
const BATCH = 24
/**
 * Requests the background process may make beyond one upload per segment: archive.info, one listing of the batch's
 * folder, and one spare. Before issue #12 a segment cost four (archive.info, a listing before and after, the upload).
 */
const ASYNC_EXTRA_MAX = 3
/** A synchronous push: archive.info, one listing, the upload. */
const SYNC_MAX = 3
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

describe('S3 requests per archived segment', { concurrency: false }, () => {
  let gateway: S3Gateway
  let stanza: TestStanza
  let spoolPath: string
  let fake: string
  let systemId: bigint
  let owner = { uid: 0, gid: 0 }

  const segmentName = (index: number): string => `00000001000000050000${index.toString(16).toUpperCase().padStart(4, '0')}`
  const segment = (name: string, fill = 0): Buffer =>
    walSegmentBuild({ version: MAJOR, systemId, pageAddress: walSegmentStartLsn(name, SEGMENT_SIZE), fill })
  async function ready(name: string, data: Buffer): Promise<void> {
    for (const [path, content] of [
      [join(fake, 'pg_wal', name), data],
      [join(fake, 'pg_wal', 'archive_status', `${name}.ready`), ''],
    ] as const) {
      await writeFile(path, content)
      await chown(path, owner.uid, owner.gid)
    }
  }
  /** archive-push as the archiver runs it: in the data folder, %p relative. */
  const push = (name: string, extra: string[] = []): Promise<RunResult> =>
    runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, ...extra, 'archive-push', `pg_wal/${name}`], { cwd: fake })

  before(async () => {
    gateway = await s3Gateway()
    const bucket = await gateway.bucket('push-requests')
    stanza = await createTestStanza({
      major: MAJOR,
      name: 'pushreq',
      settings: { archive_mode: 'off' },
      repo1Lines: gateway.repoLines(1, { bucket, path: '/walden' }),
    })
    spoolPath = await stanza.dir.mkdir('spool')
    await stanza.waldenOk(['stanza-create'])
    systemId = (await pgControlRead(stanza.cluster.dataDir)).systemId
    const configStat = await stat(stanza.configPath)
    owner = { uid: configStat.uid, gid: configStat.gid }
    fake = await stanza.dir.mkdir('fake')
    for (const sub of ['pg_wal', 'pg_wal/archive_status']) {
      await mkdir(join(fake, sub), { recursive: true })
      await chown(join(fake, sub), owner.uid, owner.gid)
    }
    await chown(spoolPath, owner.uid, owner.gid)
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test(`a synchronous push: at most ${SYNC_MAX} requests; read back whole; a retry is accepted, other content refused`, async () => {
    const name = segmentName(1)
    const data = segment(name, 0x5a)
    await ready(name, data)
    const before_ = await gateway.requestCount()
    const pushed = await push(name, ['--log-level-console=info'])
    const requests = (await gateway.requestCount()) - before_
    assert.equal(pushed.code, 0, pushed.stderr)
    assert.match(pushed.stderr, /pushed WAL file '000000010000000500000001' to the archive/)
    assert.ok(requests <= SYNC_MAX, `a synchronous push made ${requests} requests, more than ${SYNC_MAX}`)

    // What was compressed from memory is the segment, byte for byte.
    const fetched = join(stanza.dir.path, 'fetched')
    const got = await runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, 'archive-get', name, fetched], { cwd: stanza.cluster.dataDir })
    assert.equal(got.code, 0, got.stderr)
    assert.ok((await readFile(fetched)).equals(data), 'archive-get returns the pushed segment unchanged')

    const again = await push(name, ['--log-level-console=info'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stderr, /already in the archive with the same checksum/)
    await ready(name, segment(name, 0xa5))
    const other = await push(name)
    assert.equal(other.code, 45, `${other.stdout}\n${other.stderr}`)
    assert.match(other.stderr, /already exists in the archive with a different checksum/)
  })

  test(`${BATCH} segments through archive-async: one upload each, and at most ${ASYNC_EXTRA_MAX} requests more`, async () => {
    await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`])
    const names = Array.from({ length: BATCH }, (_, index) => segmentName(0x10 + index))
    // All ready before the background process starts, as after a burst of WAL: one batch.
    for (const [index, name] of names.entries()) await ready(name, segment(name, index + 1))
    const before_ = await gateway.requestCount()
    const first = await push(names[0]!)
    assert.equal(first.code, 0, first.stderr)
    const out = join(spoolPath, 'archive', stanza.name, 'out')
    await waitFor('every segment acknowledged', async () => {
      const entries = await readdir(out).catch(() => [] as string[])
      return names.every((name) => entries.includes(`${name}.ok`))
    })
    await waitFor('the background process to end', async () => !lockHeld(stanza.lockPath, `${stanza.name}-archive`))
    const requests = (await gateway.requestCount()) - before_
    assert.ok(
      requests <= BATCH + ASYNC_EXTRA_MAX,
      `${BATCH} segments took ${requests} requests (${(requests / BATCH).toFixed(2)} per segment), more than ${BATCH} uploads and ${ASYNC_EXTRA_MAX} others`,
    )
    // Each is in the archive: archive-get of the last returns it.
    const last = names.at(-1)!
    const fetched = join(stanza.dir.path, 'fetched-last')
    const got = await runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, '--no-archive-async', 'archive-get', last, fetched], { cwd: stanza.cluster.dataDir })
    assert.equal(got.code, 0, got.stderr)
    assert.ok((await readFile(fetched)).equals(segment(last, BATCH)), 'archive-get returns the pushed segment unchanged')
  })
})
