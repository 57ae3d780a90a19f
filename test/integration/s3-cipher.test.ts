// Encrypted repositories on S3 through the CLI, on a real PostgreSQL 15 cluster: repo1 a folder and repo2 a bucket on a
// real Ceph gateway, each encrypted by walden with a passphrase of its own (no SSE-KMS: walden's encryption alone).
// WAL of incompressible rows is archived asynchronously to both; a fan-out full backup runs at process-max 4 (worker
// threads, two jobs each, one large upload per thread), an incr at process-max 1 (two part buffers); each repository
// restores alone, replaying WAL fetched from it, pg_dump-equal. Pins the bug where the chunked copy to S3 kept views of
// the Sealer's reused output buffer, so every stored file larger than 64 KiB failed authentication at chunk 0.

import assert from 'node:assert/strict'
import { readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { s3Gateway } from '../harness/s3.js'
import type { S3Gateway } from '../harness/s3.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'
import { S3Storage } from '../../src/storage/s3.js'

const MAJOR = 15
const STANZA = 's3cipher'
const PREFIX = 'walden'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe(`a folder and a bucket, each encrypted, as the repositories of one stanza on PostgreSQL ${MAJOR}`, () => {
  let gateway: S3Gateway
  let stanza: TestStanza
  let bucket: string
  let folder: string
  let global: string[]

  const repo2Lines = (secret: string): string[] => [
    ...gateway.repoLines(2, { bucket, path: `/${PREFIX}`, secret }),
    'repo2-cipher-type=aes-256-gcm',
    'repo2-cipher-pass=s3-cipher-test-passphrase-repo2',
  ]

  /** Forces a segment switch and waits until PostgreSQL has archived that segment (to every repository). */
  const switchAndWaitArchived = async (): Promise<void> => {
    const switched = await stanza.cluster.psqlScalar('select pg_walfile_name(pg_switch_wal())')
    for (let waited = 0; (await stanza.cluster.psqlScalar('select coalesce(last_archived_wal, \'\') from pg_stat_archiver')) < switched; waited += 200) {
      if (waited > 60_000) assert.fail(`segment ${switched} not archived after 60 s\n${await stanza.cluster.logTail()}`)
      await sleep(200)
    }
  }

  /** Stops the cluster, empties its data folder, restores with `args`, starts it and checks it is pg_dump-equal. */
  const restoreFresh = async (args: string[], dump: string, whileStopped: () => Promise<void>): Promise<RunResult> => {
    await stanza.cluster.stop()
    await whileStopped()
    for (const entry of await readdir(stanza.cluster.dataDir)) await rm(join(stanza.cluster.dataDir, entry), { recursive: true, force: true })
    const result = await stanza.waldenOk(['restore', '--log-level-console=info', ...args])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    return result
  }

  before(async () => {
    gateway = await s3Gateway()
    bucket = await gateway.bucket('s3-cipher')
    stanza = await createTestStanza({ major: MAJOR, name: STANZA, processMax: 4, repo1Lines: [] })
    folder = stanza.repoPath
    const spool = await stanza.dir.mkdir('spool')
    global = [`repo1-path=${folder}`, 'repo1-cipher-type=aes-256-gcm', 'repo1-cipher-pass=s3-cipher-test-passphrase-repo1', 'archive-async=y', `spool-path=${spool}`]
    await stanza.writeConfig([...global, ...repo2Lines(gateway.secretKey)])
    await stanza.cluster.query('select pg_reload_conf()')
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['check'])
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('fan-out full (process-max 4) and incr (process-max 1), WAL archived asynchronously: each repository restores alone', async () => {
    // md5 text compresses to about half: compressed 1 MiB chunks span several 64 KiB cipher chunks, in the backup and
    // in the WAL.
    await stanza.cluster.query(
      `create table ledger (id int primary key, note text not null);
       insert into ledger select n, repeat(md5(n::text), 3) from generate_series(1, 120000) n;`,
    )
    await stanza.waldenOk(['backup', '--type=full', '--repo=all'])
    await stanza.cluster.query(`update ledger set note = md5(note) where id <= 20000`)
    await stanza.waldenOk(['backup', '--type=incr', '--repo=all', '--process-max=1'])
    // After the backups: only the archive has these rows, so a restore must replay encrypted WAL from its repository.
    await stanza.cluster.query(`insert into ledger select n, repeat(md5(n::text), 3) from generate_series(120001, 160000) n`)
    await switchAndWaitArchived()
    const dump = await dumpDatabase(stanza.cluster)
    const stored = await new S3Storage(gateway.location(bucket, { path: `/${PREFIX}` })).list(`backup/${STANZA}`)
    assert.ok(stored.length >= 2, `the bucket holds the backups: ${stored.join(', ')}`)

    // The bucket alone: the folder moved away.
    const hidden = `${folder}.hidden`
    try {
      const fromBucket = await restoreFresh(['--repo=2'], dump, () => rename(folder, hidden))
      assert.match(fromBucket.stderr, /restore backup set \S+I from repo2\n/)
    } finally {
      await rename(hidden, folder).catch(() => undefined)
    }
    // The folder alone: the bucket refuses every request (a wrong secret, which the restored cluster's archive-get
    // reads too).
    try {
      const fromFolder = await restoreFresh(['--repo=1'], dump, () => stanza.writeConfig([...global, ...repo2Lines('not-the-secret')]))
      assert.match(fromFolder.stderr, /restore backup set \S+I from repo1\n/)
    } finally {
      await stanza.writeConfig([...global, ...repo2Lines(gateway.secretKey)])
    }
  })
})
