// Two repositories of one stanza on a real PostgreSQL 15 cluster: repo1 a folder, repo2 a bucket (key prefix /walden)
// on a real Ceph RADOS Gateway. A fan-out backup (--repo=all), full then incr, gives each a backup that restores alone,
// pg_dump-equal, with the other made unavailable (folder renamed, bucket credentials wrong). Self-healing both ways:
// objects deleted or damaged in the bucket are taken from the folder, a file damaged in the folder from the bucket,
// delta restore too. The gateway stopped mid-backup: the backup fails naming repo2, repo2 stays valid, and the next
// backup succeeds. Wrong key, wrong secret and a missing bucket give one clear error for every command. And the
// migration both ways through awscli (`aws s3 sync`): a folder synced into a bucket, and a bucket synced into a
// folder, are valid repositories of the other kind.
//
// The config is written here (writeConfig with extra [global] lines), so repo2's key is in the file PostgreSQL's
// archive_command reads; the file is then postgres's, mode 0600.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmod, chown, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
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
const STANZA = 's3repos'
const PREFIX = 'walden'
const LABEL = /^\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?$/
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

function assertNoStack(result: RunResult): void {
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

interface InfoJson {
  name: string
  status: { code: number; message: string }
  repo: Array<{ key: number; status: { code: number; message: string } }>
  backup: Array<{ label: string; type: string; database: { 'repo-key': number } }>
}

describe(`a folder and a bucket as the repositories of one stanza on PostgreSQL ${MAJOR}`, () => {
  let gateway: S3Gateway
  let stanza: TestStanza
  let bucket: string
  let folder: string
  let bucketStorage: S3Storage
  let relation: string
  let full: string
  let incr: string
  let dump: string

  const repo2Lines = (overrides: { bucket?: string; key?: string; secret?: string } = {}): string[] =>
    gateway.repoLines(2, { ...overrides, bucket: overrides.bucket ?? bucket, path: `/${PREFIX}` })
  /** The config file with repo2 as given; it holds a secret, so it is postgres's and mode 0600. */
  const configure = async (lines: string[] = repo2Lines()): Promise<void> => {
    await stanza.writeConfig(lines)
    const { uid, gid } = postgresIds()
    await chown(stanza.configPath, uid, gid)
    await chmod(stanza.configPath, 0o600)
  }

  /** Labels of the backups `info` lists in one repository. */
  const labelsIn = async (repo: number, env: NodeJS.ProcessEnv = {}): Promise<string[]> => {
    const shown = await stanza.waldenOk([`--repo=${repo}`, 'info', '--output=json'], { env })
    const [entry] = JSON.parse(shown.stdout) as InfoJson[]
    return entry!.backup.filter((backup) => backup.database['repo-key'] === repo).map((backup) => backup.label)
  }

  /**
   * Stops the cluster, empties its data folder, restores with `args`, starts it and checks it is pg_dump-equal.
   * `whileStopped` makes a repository unavailable only once the cluster is down: a segment it failed to archive
   * meanwhile would be lost with the emptied folder (a gap the test made, not walden).
   */
  const restoreFresh = async (args: string[], options: { env?: NodeJS.ProcessEnv; whileStopped?: () => Promise<void> } = {}): Promise<RunResult> => {
    await stanza.cluster.stop()
    await options.whileStopped?.()
    for (const entry of await readdir(stanza.cluster.dataDir)) await rm(join(stanza.cluster.dataDir, entry), { recursive: true, force: true })
    const result = await stanza.waldenOk(['restore', '--log-level-console=info', ...args], options.env ? { env: options.env } : {})
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    return result
  }

  /** The key of a repository path in the bucket, for awscli. */
  const s3Url = (path: string, name = bucket): string => `s3://${name}/${PREFIX}/${path}`

  const awsOk = async (args: string[]): Promise<string> => {
    const result = await gateway.aws(args)
    assert.equal(result.code, 0, `aws ${args.join(' ')}: ${result.stderr}`)
    return result.stdout
  }

  before(async () => {
    gateway = await s3Gateway()
    bucket = await gateway.bucket('s3-repos')
    bucketStorage = new S3Storage(gateway.location(bucket, { path: `/${PREFIX}` }))
    stanza = await createTestStanza({ major: MAJOR, name: STANZA })
    folder = stanza.repoPath
    await configure()
    // About 20 MB of table: several seconds of backup under load, and little for the gateway to hold in RAM.
    await stanza.cluster.query(
      `create table ledger (id int primary key, note text not null);
       insert into ledger select n, 'row ' || n || repeat(md5(n::text), 2) from generate_series(1, 150000) n;`,
    )
    relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('ledger')`)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['check'])
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('a fan-out full then incr: the same backups in the folder and in the bucket, each restoring alone', async () => {
    await stanza.waldenOk(['backup', '--type=full', '--repo=all'])
    await stanza.cluster.query(`update ledger set note = note || ' changed' where id <= 3000`)
    await stanza.waldenOk(['backup', '--type=incr', '--repo=all'])
    const inFolder = await labelsIn(1)
    const inBucket = await labelsIn(2)
    assert.equal(inFolder.length, 2)
    assert.deepEqual(inBucket, inFolder)
    ;[full, incr] = inFolder as [string, string]
    assert.match(full, LABEL)
    assert.match(incr, new RegExp(`^${full}_\\d{8}-\\d{6}I$`))
    // Laid out in the bucket as in the folder: awscli finds the table stored in the incr under the same name.
    const listed = await awsOk(['s3', 'ls', '--recursive', s3Url(`backup/${STANZA}/${incr}/pg_data/`)])
    assert.ok(listed.includes(`pg_data/${relation}.zst`), listed)
    await stanza.waldenOk(['check'])
    dump = await dumpDatabase(stanza.cluster)

    // The folder alone: the bucket refuses every request (a wrong secret in the config, which the restored cluster's
    // archive-get reads too).
    try {
      const fromFolder = await restoreFresh(['--repo=1'], { whileStopped: () => configure(repo2Lines({ secret: 'not-the-secret' })) })
      assert.match(fromFolder.stderr, new RegExp(`restore backup set ${incr} from repo1\\n`))
    } finally {
      await configure()
    }

    // The bucket alone: the folder moved away.
    const hidden = `${folder}.hidden`
    try {
      const fromBucket = await restoreFresh(['--repo=2'], { whileStopped: () => rename(folder, hidden) })
      assert.match(fromBucket.stderr, new RegExp(`restore backup set ${incr} from repo2\\n`))
      assert.doesNotMatch(fromBucket.stderr, /restored it from/)
    } finally {
      await rename(hidden, folder).catch(() => undefined)
    }
  })

  test('self-healing: objects deleted and damaged in the bucket come from the folder, a file damaged in the folder from the bucket; delta too', async () => {
    // The folder's manifest (not encrypted) names the files: the table stored in the incr, and the largest file of
    // the full that the incr references unchanged.
    const manifest = JSON.parse(await readFile(join(folder, 'backup', STANZA, incr, 'backup.manifest'), 'utf8')) as {
      content: { files: Array<{ name: string; size: number; reference?: string }> }
    }
    const referenced = manifest.content.files.filter((file) => file.reference === full && !file.name.includes('.') && file.size >= 64 * 1024)
    const [largest, second] = referenced.sort((a, b) => b.size - a.size)
    assert.ok(largest && second, 'two referenced files to damage')
    const tablePath = `backup/${STANZA}/${incr}/pg_data/${relation}.zst`
    const damagedPath = `backup/${STANZA}/${full}/${largest.name}.zst`

    // In the bucket: the table deleted, a referenced file damaged (one byte flipped, uploaded with awscli).
    const work = await stanza.dir.mkdir('heal-work')
    const local = join(work, 'object')
    await awsOk(['s3', 'cp', s3Url(damagedPath), local])
    const original = await readFile(local)
    const broken = Buffer.from(original)
    broken[broken.length >> 1]! ^= 0x20
    await writeFile(local, broken)
    await awsOk(['s3', 'cp', local, s3Url(damagedPath)])
    const tableCopy = join(work, 'table')
    await awsOk(['s3', 'cp', s3Url(tablePath), tableCopy])
    await awsOk(['s3', 'rm', s3Url(tablePath)])

    const checkHealed = (result: RunResult, from: number, to: number, names: string[]): void => {
      for (const name of names) {
        const line = result.stderr.split('\n').find((text) => text.includes(`'${name}' could not be read there`))
        assert.ok(line, `a warning for ${name}:\n${result.stderr}`)
        assert.match(line, new RegExp(`WARN: repo${from}: `))
        assert.match(line, new RegExp(`restored it from repo${to}, backup ${LABEL.source.slice(1, -1)}`))
      }
    }
    const fromBucket = await restoreFresh(['--repo=2'])
    assert.match(fromBucket.stderr, new RegExp(`restore backup set ${incr} from repo2\\n`))
    checkHealed(fromBucket, 2, 1, [`pg_data/${relation}`, largest.name])
    assert.ok(fromBucket.stderr.includes(`s3://${bucket}/${PREFIX}/${tablePath}`), 'the missing object is named')

    // Delta from the bucket: the damaged file gone from the cluster is fetched, healed from the folder again.
    await stanza.cluster.stop()
    await rm(join(stanza.cluster.dataDir, largest.name.slice('pg_data/'.length)))
    const delta = await stanza.waldenOk(['restore', '--repo=2', '--delta'])
    checkHealed(delta, 2, 1, [largest.name])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)

    // The bucket whole again; now a file damaged in the folder is taken from the bucket.
    await writeFile(local, original)
    await awsOk(['s3', 'cp', local, s3Url(damagedPath)])
    await awsOk(['s3', 'cp', tableCopy, s3Url(tablePath)])
    const folderFile = join(folder, 'backup', STANZA, full, `${second.name}.zst`)
    const good = await readFile(folderFile)
    const bad = Buffer.from(good)
    bad[bad.length >> 1]! ^= 0x20
    await writeFile(folderFile, bad)
    try {
      const fromFolder = await restoreFresh(['--repo=1'])
      checkHealed(fromFolder, 1, 2, [second.name])
      await stanza.cluster.stop()
      await rm(join(stanza.cluster.dataDir, second.name.slice('pg_data/'.length)))
      const deltaFolder = await stanza.waldenOk(['restore', '--repo=1', '--delta'])
      checkHealed(deltaFolder, 1, 2, [second.name])
      await stanza.cluster.start()
      await stanza.cluster.waitWritable()
      assert.equal(await dumpDatabase(stanza.cluster), dump)
    } finally {
      await writeFile(folderFile, good)
    }
    const verified = await stanza.walden(['verify'])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
  })

  test('the gateway stopped mid-backup: the backup fails naming repo2, repo2 stays valid, the next backup succeeds', async () => {
    // Enough new data that the backup is still copying when the gateway stops.
    await stanza.cluster.query(`insert into ledger select n, repeat(md5(n::text), 8) from generate_series(150001, 400000) n`)
    const before = await labelsIn(2)
    const running = stanza.walden(['backup', '--type=full', '--repo=2'], { timeoutMs: 300_000 })
    // Stopped once the copy has stored its first objects under a new label.
    let stopped = false
    const deadline = Date.now() + 120_000
    while (Date.now() < deadline) {
      const labels = (await bucketStorage.list(`backup/${STANZA}`)).filter((name) => LABEL.test(name) && !before.includes(name))
      if (labels.length > 0 && (await bucketStorage.list(`backup/${STANZA}/${labels[0]}/pg_data`)).length > 0) {
        await gateway.stopGateway()
        stopped = true
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    let failed: RunResult
    try {
      assert.ok(stopped, 'the backup reached the copy')
      failed = await running
    } finally {
      await gateway.startGateway()
    }
    // The retries give up after 8-16 s; the error names the repository and what could not be written.
    assert.equal(failed.code, 64, failed.stderr)
    assert.match(failed.stderr, /ERROR: \[064\]: .*s3:\/\//)
    assert.match(failed.stderr, new RegExp(escape(`s3://${bucket}/${PREFIX}/backup/${STANZA}/`)))
    assertNoStack(failed)
    assert.doesNotMatch(failed.stdout + failed.stderr, new RegExp(escape(gateway.secretKey)))

    // repo2 as it was: the half-written backup is not listed, info and verify are content.
    assert.deepEqual(await labelsIn(2), before)
    const verified = await stanza.walden(['verify', '--repo=2'])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    // The previous backup restores from the bucket, to its own consistent point (the rows added since are not in it).
    await restoreFresh(['--repo=2', `--set=${incr}`, '--type=immediate', '--target-action=promote'])

    const next = await stanza.waldenOk(['backup', '--type=full', '--repo=2', '--log-level-console=info'])
    assert.match(next.stderr, /removing incomplete backup/)
    const after = await labelsIn(2)
    assert.equal(after.length, before.length + 1)
    await stanza.waldenOk(['verify', '--repo=2'])
    dump = await dumpDatabase(stanza.cluster)
    // The newest backup in the bucket restores; the previous one did above, and is listed unchanged.
    await restoreFresh(['--repo=2'])
    await stanza.waldenOk(['expire', '--repo=2', '--repo2-retention-full=1'])
  })

  describe('wrong credentials and a missing bucket: one clear error for each command', () => {
    let wal: string
    let walPath: string
    let restoreTarget: string

    before(async () => {
      wal = await stanza.cluster.psqlScalar('select last_archived_wal from pg_stat_archiver')
      const work = await stanza.dir.mkdir('errors-work')
      walPath = join(work, wal)
      await stanza.waldenOk(['archive-get', wal, walPath])
      const { uid, gid } = postgresIds()
      await chown(walPath, uid, gid)
      restoreTarget = await stanza.dir.mkdir('errors-restore')
    })

    // Each command as it would meet repo2; archive-push writes to every repository and names the one that failed.
    const commands = (): Array<[string, string[]]> => [
      ['backup', ['--repo=2', 'backup', '--type=full']],
      ['restore', ['--repo=2', `--pg1-path=${restoreTarget}`, 'restore']],
      ['info', ['--repo=2', 'info']],
      ['check', ['--repo=2', 'check']],
      ['archive-push', ['archive-push', walPath]],
      ['expire', ['--repo=2', 'expire']],
    ]

    const cases: Array<{ what: string; env: () => NodeJS.ProcessEnv; code: number; error: () => RegExp; hint: RegExp }> = [
      {
        what: 'a wrong key',
        env: () => ({ WALDEN_REPO2_S3_KEY: 'AKIAWRONGWRONGWRONG0' }),
        code: 32,
        error: () => new RegExp(`access denied by ${escape(gateway.endpoint)} to bucket '${bucket}' \\((InvalidAccessKeyId|AccessDenied)\\)`),
        hint: /HINT: check repo2-s3-key and repo2-s3-key-secret \(and repo2-s3-token for temporary credentials\)/,
      },
      {
        what: 'a wrong secret',
        env: () => ({ WALDEN_REPO2_S3_KEY_SECRET: 'wrong-secret-7f3a9c' }),
        code: 32,
        error: () => new RegExp(`access denied by ${escape(gateway.endpoint)} to bucket '${bucket}' \\((SignatureDoesNotMatch|AccessDenied)\\)`),
        hint: /HINT: check repo2-s3-key and repo2-s3-key-secret \(and repo2-s3-token for temporary credentials\)/,
      },
      {
        what: 'a missing bucket',
        env: () => ({ WALDEN_REPO2_S3_BUCKET: 'no-such-bucket-walden' }),
        code: 103,
        error: () => new RegExp(`bucket 'no-such-bucket-walden' does not exist at ${escape(gateway.endpoint)}`),
        hint: /HINT: create the bucket, or check repo2-s3-bucket, repo2-s3-endpoint and repo2-s3-uri-style\./,
      },
    ]

    for (const known of cases) {
      test(`${known.what}: backup, restore, info, check, archive-push and expire each fail with it`, async () => {
        const seen: string[] = []
        for (const [name, args] of commands()) {
          const result = await stanza.walden(args, { env: known.env(), timeoutMs: 180_000 })
          const where = `${name} with ${known.what}: exit ${result.code}\n${result.stdout}\n${result.stderr}`
          assert.equal(result.code, known.code, where)
          if (name === 'info') {
            // info prints its whole report, the repository's error in it, and exits with that error's code.
            assert.match(result.stdout, known.error(), where)
            assert.match(result.stdout, new RegExp(known.hint.source.replace('HINT: ', '')), where)
          } else {
            const errors = result.stderr.split('\n').filter((line) => /ERROR: \[\d{3}\]/.test(line))
            assert.equal(errors.length, 1, `one error line: ${where}`)
            assert.match(errors[0]!, known.error(), where)
            assert.match(result.stderr, known.hint, where)
          }
          assertNoStack(result)
          for (const secret of [gateway.secretKey, 'wrong-secret-7f3a9c']) {
            assert.ok(!(result.stdout + result.stderr).includes(secret), `no secret in the output: ${where}`)
          }
          seen.push(name)
        }
        assert.equal(seen.length, 6)
      })
    }
  })

  describe('migration with awscli', () => {
    test('a folder synced into a bucket is a valid S3 repository: info, restore pg_dump-equal, archive-get', async () => {
      const target = await gateway.bucket('migrated-up')
      await stanza.waldenOk(['backup', '--type=full', '--repo=1'])
      dump = await dumpDatabase(stanza.cluster)
      const labels = await labelsIn(1)
      // A segment the folder holds when it is copied (later ones, and the history file of the restore's new timeline,
      // reach only the repositories of the config).
      // (the last archived file is the backup's history file, <segment>.<offset>.backup: its segment came before it)
      const wal = (await stanza.cluster.psqlScalar('select last_archived_wal from pg_stat_archiver')).slice(0, 24)
      assert.match(wal, /^[0-9A-F]{24}$/)
      await awsOk(['s3', 'sync', '--only-show-errors', folder, `s3://${target}/${PREFIX}`])
      // repo2 is now the synced bucket.
      const env = { WALDEN_REPO2_S3_BUCKET: target }
      assert.deepEqual(await labelsIn(2, env), labels)
      const verified = await stanza.walden(['verify', '--repo=2'], { env })
      assert.equal(verified.code, 0, verified.stdout + verified.stderr)
      const restored = await restoreFresh(['--repo=2'], { env })
      assert.match(restored.stderr, new RegExp(`restore backup set ${escape(labels.at(-1)!)} from repo2\\n`))

      // archive-get from the synced bucket alone gives the segment the folder holds.
      const work = await stanza.dir.mkdir('migrated-up-work')
      const fromFolder = join(work, 'from-folder')
      const fromBucket = join(work, 'from-bucket')
      await stanza.waldenOk(['--repo=1', 'archive-get', wal, fromFolder])
      await stanza.waldenOk(['--repo=2', 'archive-get', wal, fromBucket], { env })
      assert.ok((await readFile(fromBucket)).equals(await readFile(fromFolder)))
    })

    test('a bucket synced into a folder is a valid posix repository: info, verify, restore pg_dump-equal', async () => {
      await stanza.waldenOk(['backup', '--type=incr', '--repo=2'])
      dump = await dumpDatabase(stanza.cluster)
      const labels = await labelsIn(2)
      const down = join(stanza.dir.path, 'migrated-down')
      await mkdir(down)
      await awsOk(['s3', 'sync', '--only-show-errors', `s3://${bucket}/${PREFIX}`, down])
      execFileSync('chown', ['-R', 'postgres:postgres', down])
      // repo1 is now the synced folder.
      const env = { WALDEN_REPO1_PATH: down }
      assert.deepEqual(await labelsIn(1, env), labels)
      const verified = await stanza.walden(['verify', '--repo=1'], { env })
      assert.equal(verified.code, 0, verified.stdout + verified.stderr)
      const restored = await restoreFresh(['--repo=1'], { env })
      assert.match(restored.stderr, new RegExp(`restore backup set ${escape(labels.at(-1)!)} from repo1\\n`))
    })
  })
})
