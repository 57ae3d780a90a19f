// The whole core flow on an S3 repository (issue #12), through the CLI, on a real PostgreSQL 15 cluster whose repo1 is a
// bucket on a real Ceph RADOS Gateway: stanza-create, check, info; archive-push synchronous and with archive-async;
// backups full, diff and incr; restores into empty folders that replay segments fetched from the bucket (archive-get
// synchronous and through the async queue) and equal their source's dump; point-in-time recovery by time and by LSN;
// a delta restore over a changed folder; a hot standby fed from the bucket; expire; an encrypted repository with
// SSE-KMS; stanza-delete; and the mistakes a user meets first. Debian's awscli, an independent client, lists what
// walden wrote: the layout of a folder, under repo1-path.
//
// The credentials are in the stanza's config file (postgres's, mode 0600): archive_command and restore_command run as
// postgres with the server's environment, never the test's, so the config file is where their walden finds them.

import assert from 'node:assert/strict'
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Cluster, dumpDatabase, runWalden } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { s3Gateway } from '../harness/s3.js'
import type { S3Gateway } from '../harness/s3.js'
import { historyPushGet } from '../harness/history-file.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const PREFIX = 'walden/prod'
const PASS = 's3-flow-passphrase-6f1d2a'
const LABEL = /^\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?$/
const SEGMENT = /^[0-9A-F]{24}$/
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface InfoJson {
  name: string
  status: { code: number; message: string }
  repo: Array<{ key: number; cipher: string; status: { code: number; message: string } }>
  backup: Array<{ label: string; type: string; prior: string | null; archive: { start: string; stop: string } }>
  archive: Array<{ id: string; min: string | null; max: string | null }>
}

function assertNoStack(result: RunResult): void {
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

const SETVAL = /^SELECT pg_catalog\.setval\('([^']+)', (\d+), (true|false)\);$/gm

/**
 * Two dumps equal; when not, the failure shows the lines that differ rather than the start of two long texts. A
 * sequence may be ahead in the restored copy by up to 32 values: PostgreSQL logs nextval that far ahead in WAL, and
 * replay sets the logged value (cluster.ts's dumpDatabase says so too).
 */
function assertSameDump(restored: string, source: string): void {
  const values = (dump: string): Map<string, number> => new Map([...dump.matchAll(SETVAL)].map((match) => [match[1]!, Number(match[2])]))
  const restoredValues = values(restored)
  for (const [name, value] of values(source)) {
    const ahead = (restoredValues.get(name) ?? -1) - value
    assert.ok(ahead >= 0 && ahead <= 32, `sequence ${name}: ${restoredValues.get(name)} restored, ${value} in the source`)
  }
  const actual = restored.replaceAll(SETVAL, "SELECT pg_catalog.setval('$1', <value>, $3);")
  const expected = source.replaceAll(SETVAL, "SELECT pg_catalog.setval('$1', <value>, $3);")
  if (actual === expected) return
  const expectedLines = new Set(expected.split('\n'))
  const actualLines = new Set(actual.split('\n'))
  const missing = [...expectedLines].filter((line) => !actualLines.has(line)).slice(0, 20)
  const extra = [...actualLines].filter((line) => !expectedLines.has(line)).slice(0, 20)
  assert.fail(`the dumps differ\nonly in the source:\n${missing.join('\n')}\nonly in the restored copy:\n${extra.join('\n')}`)
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
    if (await check()) return
  }
  assert.fail(`timed out waiting for ${what}`)
}

describe(`the core flow on an S3 repository, PostgreSQL ${MAJOR}`, { concurrency: false }, () => {
  let gateway: S3Gateway
  let bucket: string
  let stanza: TestStanza
  let spoolPath: string
  let logPath: string
  // Restored copies, one at a time beside the running source cluster.
  let copySerial = 0

  const repo1Lines = (bucketName: string, extra: string[] = []): string[] => [
    ...gateway.repoLines(1, { bucket: bucketName, path: `/${PREFIX}` }),
    ...extra,
  ]

  /** Keys under the repository's prefix in `bucketName`, as awscli lists them, relative to the prefix. */
  async function keys(bucketName: string, under = ''): Promise<string[]> {
    const listed = await gateway.aws(['s3', 'ls', '--recursive', `s3://${bucketName}/${PREFIX}/${under}`])
    // `aws s3 ls` exits 1 when nothing matches.
    if (listed.code === 1 && listed.stdout === '') return []
    assert.equal(listed.code, 0, listed.stderr)
    return listed.stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => line.replace(/^\S+\s+\S+\s+\d+\s+/, ''))
      .map((key) => {
        assert.ok(key.startsWith(`${PREFIX}/`), `key '${key}' lies under the prefix`)
        return key.slice(PREFIX.length + 1)
      })
      .sort()
  }

  /** Segment names archived in the bucket (under any archive id and timeline). */
  async function archivedSegments(bucketName = bucket): Promise<string[]> {
    return (await keys(bucketName, `archive/${stanza.name}/`))
      .map((key) => /\/([0-9A-F]{24})-[0-9a-f]{40,64}(?:\.\w+)?$/.exec(key)?.[1])
      .filter((name): name is string => name !== undefined)
  }

  async function infoJson(): Promise<InfoJson> {
    const shown = await stanza.waldenOk(['info', '--output=json'])
    const parsed = JSON.parse(shown.stdout) as InfoJson[]
    assert.equal(parsed.length, 1)
    return parsed[0]!
  }

  /**
   * Closes the current segment and waits until PostgreSQL has archived it; returns its name. A switch with nothing
   * written since the last one is a no-op and names the segment archived already.
   */
  async function switchAndWaitArchived(): Promise<string> {
    const switched = await stanza.cluster.psqlScalar('select pg_walfile_name(pg_switch_wal())')
    await waitFor(`segment ${switched} archived`, async () => (await stanza.cluster.psqlScalar('select last_archived_wal from pg_stat_archiver')) >= switched)
    return switched
  }

  /**
   * Restores into a new empty folder beside the source (archive_mode off, so the copy never archives into the stanza's
   * repository), starts it and returns it with the restore's output. The caller stops it.
   */
  async function restoreCopy(args: string[]): Promise<{ copy: Cluster; result: RunResult }> {
    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: `copy${++copySerial}` })
    const result = await stanza.waldenOk([
      `--pg1-path=${copy.dataDir}`,
      `--pg1-port=${copy.port}`,
      'restore',
      '--archive-mode=off',
      '--log-level-console=info',
      ...args,
    ])
    await copy.configure({ unix_socket_directories: copy.socketDir })
    await copy.start()
    await copy.waitWritable(60_000)
    return { copy, result }
  }

  async function restoredFromArchive(cluster: Cluster): Promise<number> {
    return ((await readFile(cluster.logFile, 'utf8')).match(/restored log file "[0-9A-F]{24}" from archive/g) ?? []).length
  }

  before(async () => {
    gateway = await s3Gateway()
    bucket = await gateway.bucket('s3-flow')
    stanza = await createTestStanza({ major: MAJOR, name: 'demo', settings: { hot_standby: 'on' }, repo1Lines: repo1Lines(bucket) })
    spoolPath = await stanza.dir.mkdir('spool')
    logPath = join(stanza.dir.path, 'log')
    await stanza.cluster.query(
      `create table accounts (id int primary key, owner text not null, balance numeric not null);
       insert into accounts select n, 'owner ' || n, n * 10 from generate_series(1, 20000) n;
       create index on accounts (owner);
       create table events (id serial primary key, note text not null unique, at timestamptz not null default clock_timestamp());`,
    )
  })

  after(async () => {
    await stanza?.dir.cleanup()
    if (gateway && bucket) await gateway.aws(['s3', 'rb', '--force', `s3://${bucket}`])
  })

  test('stanza-create and check: archive_command pushes through walden into the bucket', async () => {
    await stanza.waldenOk(['stanza-create'])
    // Again, for the same cluster: harmless.
    await stanza.waldenOk(['stanza-create'])
    const info = await keys(bucket)
    for (const key of ['archive/demo/archive.info', 'archive/demo/archive.info.copy', 'backup/demo/backup.info', 'backup/demo/backup.info.copy']) {
      assert.ok(info.includes(key), `${key} in ${info.join(', ')}`)
    }
    const check = await stanza.waldenOk(['check'])
    const segment = /WAL segment ([0-9A-F]{24}) archived/.exec(check.stdout)?.[1]
    assert.ok(segment, check.stdout)
    assert.ok((await archivedSegments()).includes(segment), `${segment} in the bucket`)
  })

  test('info, text and JSON, reads the bucket: the stanza without backups yet', async () => {
    const shown = await stanza.walden(['info', '--output=json'])
    // No backup yet: the status pgBackRest gives for it, and the exit code of a backup-set mismatch.
    assert.equal(shown.code, 51, shown.stderr)
    const entry = (JSON.parse(shown.stdout) as InfoJson[])[0]!
    assert.equal(entry.name, 'demo')
    assert.deepEqual(entry.repo.map((repo) => [repo.key, repo.cipher, repo.status.code]), [[1, 'none', 2]])
    assert.equal(entry.archive.length, 1)
    assert.equal(entry.archive[0]!.id, `${MAJOR}-1`)
    assert.match(entry.archive[0]!.min ?? '', SEGMENT)
    const text = await stanza.walden(['info'])
    assert.match(text.stdout, /stanza: demo\n\s+status: error \(no valid backups\)/)
    assert.match(text.stdout, new RegExp(`wal archive min/max \\(${MAJOR}\\): [0-9A-F]{24}/[0-9A-F]{24}`))
  })

  test('a timeline history file lands in the bucket under its own name, with its checksum record, and comes back', async () => {
    const history = await historyPushGet(stanza, 0x2a)
    const under = `archive/${stanza.name}/${MAJOR}-1/`
    const inBucket = await keys(bucket, under)
    assert.ok(inBucket.includes(`${under}${history.name}`) && inBucket.includes(`${under}${history.record}`), inBucket.join(' '))
    const stored = await gateway.aws(['s3', 'cp', `s3://${bucket}/${PREFIX}/${under}${history.name}`, '-'])
    assert.equal(stored.stdout, history.content.toString('utf8'), 'stored as it is: uncompressed')
    // Gone again: a timeline this cluster never had must not be the newest a later restore looks for.
    for (const name of [history.name, history.record]) assert.equal((await gateway.aws(['s3', 'rm', `s3://${bucket}/${PREFIX}/${under}${name}`])).code, 0)
  })

  test('archive-push: synchronous, then with archive-async=y, each segment lands in the bucket', async () => {
    await stanza.cluster.query(`insert into events (note) values ('sync-push')`)
    const synchronous = await switchAndWaitArchived()
    assert.ok((await archivedSegments()).includes(synchronous))

    await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`])
    await stanza.cluster.query('select pg_reload_conf()')
    const pushed: string[] = []
    for (let round = 0; round < 3; round++) {
      await stanza.cluster.query(`insert into events (note) values ('async-push-${round}')`)
      pushed.push(await switchAndWaitArchived())
    }
    const inBucket = await archivedSegments()
    for (const segment of pushed) assert.ok(inBucket.includes(segment), `${segment} in the bucket`)
    assert.match(await readFile(join(logPath, 'demo-archive-push-async.log'), 'utf8'), /pushed WAL file '[0-9A-F]{24}' to the archive/)
    const failed = await stanza.cluster.psqlScalar('select failed_count from pg_stat_archiver')
    assert.equal(failed, '0', await stanza.cluster.logTail())
  })

  let fullLabel: string
  let dumpAfterIncr: string

  test('backups full, diff and incr into the bucket; info lists them', async () => {
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.cluster.query(`update accounts set balance = balance + 1 where id <= 500; insert into events (note) values ('after-full')`)
    await stanza.waldenOk(['backup', '--type=diff'])
    await stanza.cluster.query(`delete from accounts where id > 19000; insert into events (note) values ('after-diff')`)
    await stanza.waldenOk(['backup', '--type=incr'])
    await stanza.cluster.query(`insert into events (note) values ('after-incr')`)

    const info = await infoJson()
    assert.equal(info.status.code, 0)
    assert.deepEqual(info.backup.map((backup) => backup.type), ['full', 'diff', 'incr'])
    fullLabel = info.backup[0]!.label
    assert.match(fullLabel, /^\d{8}-\d{6}F$/)
    assert.equal(info.backup[1]!.prior, fullLabel)
    assert.equal(info.backup[2]!.prior, info.backup[1]!.label)
    const text = (await stanza.waldenOk(['info'])).stdout
    assert.match(text, /full backup: \d{8}-\d{6}F\n/)
    assert.match(text, /diff backup: \d{8}-\d{6}F_\d{8}-\d{6}D\n/)
    assert.match(text, /incr backup: \d{8}-\d{6}F_\d{8}-\d{6}I\n/)

    // Every backup is in the bucket under backup/demo/<label>/, with its manifest.
    const stored = await keys(bucket, 'backup/demo/')
    for (const backup of info.backup) {
      assert.ok(stored.includes(`backup/demo/${backup.label}/backup.manifest`), `${backup.label}'s manifest in the bucket`)
      assert.ok(stored.some((key) => key.startsWith(`backup/demo/${backup.label}/pg_data/`)), `${backup.label}'s files in the bucket`)
    }
    // What the restores below must bring back: everything up to here, archived.
    await switchAndWaitArchived()
    dumpAfterIncr = await dumpDatabase(stanza.cluster)
  })

  test('the layout in the bucket is a folder\'s: the same names under repo1-path as a posix repository of the same cluster', async () => {
    const folder = await stanza.dir.mkdir('posix-repo')
    const posix = ['--repo1-type=posix', `--repo1-path=${folder}`]
    await stanza.waldenOk([...posix, 'stanza-create'])
    // archive_command pushes to the bucket alone, so the folder gets one segment by hand and its backup does not wait
    // for WAL it will never see.
    const segment = (await archivedSegments()).at(-1)!
    const fetched = join(await stanza.dir.mkdir('layout-work'), segment)
    await stanza.waldenOk(['archive-get', segment, fetched])
    await stanza.waldenOk([...posix, 'archive-push', fetched])
    await stanza.waldenOk([...posix, 'backup', '--type=full', '--no-archive-check'])
    // The same backup once more into the bucket, with nothing changed between the two.
    await stanza.waldenOk(['backup', '--type=full'])

    const walk = async (root: string, sub = ''): Promise<string[]> => {
      const out: string[] = []
      for (const entry of await readdir(join(root, sub), { withFileTypes: true })) {
        const path = sub === '' ? entry.name : `${sub}/${entry.name}`
        if (entry.isDirectory()) out.push(...(await walk(root, path)))
        else out.push(path)
      }
      return out
    }
    const normalize = (names: string[]): string[] =>
      [
        ...new Set(
          names.map((name) =>
            name
              .replace(/\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?/g, '<label>')
              .replace(/\/[0-9A-F]{16}\//g, '/<tli+log>/')
              .replace(/[0-9A-F]{24}-[0-9a-f]{40,64}/g, '<segment>'),
          ),
        ),
      ].sort()
    const posixLabel = (JSON.parse(await readFile(join(folder, 'backup/demo/backup.info'), 'utf8')) as { content: { backups: Array<{ label: string }> } })
      .content.backups.at(-1)!.label
    const s3Label = (await infoJson()).backup.at(-1)!.label
    // File for file, the backup's names are the same.
    const posixBackup = (await walk(folder, `backup/demo/${posixLabel}`)).map((path) => path.replace(posixLabel, '<label>')).sort()
    const s3Backup = (await keys(bucket, `backup/demo/${s3Label}/`)).map((key) => key.replace(s3Label, '<label>'))
    assert.ok(posixBackup.length > 100, `${posixBackup.length} files in the posix backup`)
    // The cluster may gain or lose a file between the two backups (autovacuum making a visibility map): such a file
    // is in one manifest alone. Every other name is the same in both.
    const manifestNames = (text: string): Set<string> =>
      new Set((JSON.parse(text) as { content: { files: Array<{ name: string }> } }).content.files.map((file) => file.name))
    const posixManifest = manifestNames(await readFile(join(folder, 'backup/demo', posixLabel, 'backup.manifest'), 'utf8'))
    const s3Object = await gateway.aws(['s3', 'cp', `s3://${bucket}/${PREFIX}/backup/demo/${s3Label}/backup.manifest`, '-'])
    assert.equal(s3Object.code, 0, s3Object.stderr)
    const s3Manifest = manifestNames(s3Object.stdout)
    const fileOf = (key: string): string => key.replace('backup/demo/<label>/', '').replace(/\.zst$/, '')
    for (const [only, mine, theirs] of [
      [s3Backup.filter((key) => !posixBackup.includes(key)), s3Manifest, posixManifest],
      [posixBackup.filter((key) => !s3Backup.includes(key)), posixManifest, s3Manifest],
    ] as const) {
      assert.ok(only.length <= 5, `${only.length} names differ: ${only.join(', ')}`)
      for (const key of only) assert.ok(mine.has(fileOf(key)) && !theirs.has(fileOf(key)), `${key} is named differently in the bucket and the folder`)
    }
    // And the stanza's own files and the archive's names, in their shapes. PostgreSQL archived backup history files
    // into the bucket alone (archive_command pushes there); they are stored beside the segments under their own
    // name, uncompressed, as pgBackRest stores them, each with its checksum record.
    const history = /\.[0-9A-F]{8}\.backup(\.sha256-[0-9a-f]{64})?$/
    const inBucket = await keys(bucket)
    const backupFile = inBucket.find((key) => /^archive\/demo\/15-1\/[0-9A-F]{16}\/[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/.test(key))
    assert.ok(backupFile !== undefined, inBucket.join(' '))
    assert.ok(inBucket.some((key) => key.startsWith(`${backupFile}.sha256-`)), `${backupFile} has its checksum record`)
    assert.deepEqual(normalize(inBucket.filter((key) => !history.test(key))), normalize(await walk(folder)))
    await rm(folder, { recursive: true, force: true })
  })

  test('restore into an empty folder replays segments fetched from the bucket (archive-get synchronous); equal dump', async () => {
    // Synchronous archiving from here until the next test turns archive-async on again.
    await stanza.writeConfig()
    const newest = (await infoJson()).backup.at(-1)!.label
    const { copy, result } = await restoreCopy([])
    try {
      assert.match(result.stderr, new RegExp(`INFO: restore backup set ${newest}\n`))
      assert.ok((await restoredFromArchive(copy)) >= 1, 'recovery fetched segments from the archive')
      assertSameDump(await dumpDatabase(copy), dumpAfterIncr)
      // restore_command calls walden itself, in the foreground (no archive-async here).
      const autoConf = await readFile(join(copy.dataDir, 'postgresql.auto.conf'), 'utf8')
      assert.match(autoConf, /restore_command = '.*walden.* archive-get %f "%p"'/)
    } finally {
      await copy.stop()
    }
  })

  test('restore with archive-async: archive-get fetches ahead into the queue from the bucket; equal dump', async () => {
    await stanza.cluster.query('create table bulk (n int, h text)')
    for (let round = 0; round < 4; round++) {
      await stanza.cluster.query(`insert into bulk select n, md5(n::text) from generate_series(${round * 5000}, ${round * 5000 + 4999}) n`)
      await switchAndWaitArchived()
    }
    const dump = await dumpDatabase(stanza.cluster)
    await switchAndWaitArchived()
    await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`, 'archive-get-queue-max=48MiB', '[global:archive-get]', 'log-level-file=info'])
    const { copy } = await restoreCopy([])
    try {
      const autoConf = await readFile(join(copy.dataDir, 'postgresql.auto.conf'), 'utf8')
      assert.match(autoConf, /restore_command = '[^']*walden-archive-get /)
      assert.ok((await restoredFromArchive(copy)) >= 5, 'recovery replayed the archived segments')
      assertSameDump(await dumpDatabase(copy), dump)
      assert.match(await readFile(join(logPath, 'demo-archive-get-async.log'), 'utf8'), /queued WAL file '[0-9A-F]{24}' from the archive/)
    } finally {
      await copy.stop()
      await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`])
    }
  })

  test('point-in-time recovery by time and by LSN stops exactly at the target', async () => {
    await stanza.cluster.query(`insert into events (note) values ('pitr-a')`)
    await sleep(1100)
    const time = await stanza.cluster.psqlScalar(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
    await sleep(1100)
    await stanza.cluster.query(`insert into events (note) values ('pitr-b')`)
    // Past pitr-b's commit (flushed) and before pitr-c's.
    const lsn = await stanza.cluster.psqlScalar('select pg_current_wal_lsn()::text')
    await stanza.cluster.query(`insert into events (note) values ('pitr-c')`)
    await switchAndWaitArchived()
    const pitrNotes = async (cluster: Cluster): Promise<string[]> =>
      (await cluster.query<{ note: string }>(`select note from events where note like 'pitr-%' order by id`)).map((row) => row.note)

    const byTime = await restoreCopy(['--type=time', `--target=${time}`, '--target-action=promote'])
    try {
      assert.deepEqual(await pitrNotes(byTime.copy), ['pitr-a'])
      assert.ok((await restoredFromArchive(byTime.copy)) >= 1)
    } finally {
      await byTime.copy.stop()
    }
    const byLsn = await restoreCopy(['--type=lsn', `--target=${lsn}`, '--target-action=promote'])
    try {
      assert.deepEqual(await pitrNotes(byLsn.copy), ['pitr-a', 'pitr-b'])
    } finally {
      await byLsn.copy.stop()
    }
  })

  test('a delta restore over a changed data folder repairs it from the bucket', async () => {
    const { copy } = await restoreCopy([])
    await copy.stop()
    const relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('accounts')`)
    const damaged = join(copy.dataDir, relation)
    const original = await readFile(damaged)
    const before = await stat(damaged)
    const broken = Buffer.from(original)
    broken.fill(0x55, 8192 + 100, 8192 + 300)
    await writeFile(damaged, broken)
    await utimes(damaged, before.atime, before.mtime)
    const stray = join(copy.dataDir, 'base', 'stray-file')
    await writeFile(stray, 'not from the backup')

    const dump = await dumpDatabase(stanza.cluster)
    await switchAndWaitArchived()
    const result = await stanza.waldenOk([`--pg1-path=${copy.dataDir}`, `--pg1-port=${copy.port}`, 'restore', '--delta', '--archive-mode=off', '--log-level-console=info'])
    assert.match(result.stderr, /kept, [1-9]\d* removed/)
    await assert.rejects(stat(stray), { code: 'ENOENT' })
    assert.notDeepEqual(await readFile(damaged), broken, 'the damaged relation file was rewritten')
    // postgresql.conf is the backup's again.
    await copy.configure({ unix_socket_directories: copy.socketDir })
    await copy.start()
    try {
      await copy.waitWritable(60_000)
      assertSameDump(await dumpDatabase(copy), dump)
    } finally {
      await copy.stop()
    }
  })

  test('standby-create builds a hot standby that replays from the bucket what the primary archives next', async () => {
    const standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'standby' })
    await stanza.waldenOk([`--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`, 'standby-create', '--archive-mode=off'])
    await standby.configure({ unix_socket_directories: standby.socketDir })
    await standby.start()
    try {
      assert.equal(await standby.psqlScalar('select pg_is_in_recovery()::text'), 'true')
      await stanza.cluster.query(`create table only_in_archive as select 1 as one`)
      await switchAndWaitArchived()
      await waitFor(
        'the archived table on the standby',
        async () => (await standby.psqlScalar(`select coalesce(to_regclass('only_in_archive')::text, 'absent')`)) !== 'absent',
      )
      await assert.rejects(standby.query(`insert into events (note) values ('on the standby')`), /read-only transaction/)
    } finally {
      await standby.stop()
    }
  })

  test('mistakes against the bucket: one line naming repo1 and what to do, the secret never shown', async () => {
    const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const noSecret = (result: RunResult, secret: string): void => {
      assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), 'the secret is not shown')
    }
    // A wrong secret: access denied, with the access-denied code, from every command that reads the bucket. info
    // reports it in the repository's status, on stdout, and exits with the same code.
    const wrongSecret = 'not-the-secret-9d3e1f'
    const denied = new RegExp(`repo1: access denied by ${escape(gateway.endpoint)} to bucket '${bucket}' \\((?:SignatureDoesNotMatch|AccessDenied)\\)`)
    for (const args of [['check'], ['info'], ['backup', '--type=incr'], ['verify'], ['expire'], ['stanza-create']]) {
      const refused = await stanza.walden(args, { env: { WALDEN_REPO1_S3_KEY_SECRET: wrongSecret } })
      assert.equal(refused.code, 32, `${args[0]}: ${refused.stderr}${refused.stdout}`)
      if (args[0] === 'info') assert.match(refused.stdout, denied)
      else assert.match(refused.stderr, new RegExp(`ERROR: \\[032\\]: ${denied.source}\nHINT: check repo1-s3-key and repo1-s3-key-secret`), args[0])
      assertNoStack(refused)
      noSecret(refused, wrongSecret)
      noSecret(refused, gateway.secretKey)
    }
    // Nothing listens at the endpoint: one clear line naming it, soon, after saying it retries.
    const started = Date.now()
    const unreachable = await stanza.walden(['check', '--repo1-s3-endpoint=http://127.0.0.1:9'], { timeoutMs: 90_000 })
    const elapsedMs = Date.now() - started
    assert.notEqual(unreachable.code, 0)
    assert.match(unreachable.stderr, /ERROR: \[\d{3}\]: repo1: unable to [a-z ]+ 's3:\/\/[^']+': connect ECONNREFUSED 127\.0\.0\.1:9 \(after \d+ attempts\)\n/)
    assert.match(unreachable.stderr, /WARN: repo1: S3 request to http:\/\/127\.0\.0\.1:9 failed \(connect ECONNREFUSED 127\.0\.0\.1:9\); retrying \d+ times over up to \d+ s\n/)
    assert.equal(unreachable.stderr.match(/ERROR:/g)?.length, 1, unreachable.stderr)
    assertNoStack(unreachable)
    assert.ok(elapsedMs < 60_000, `gave up after ${elapsedMs} ms`)
    // A missing bucket.
    const missing = await stanza.walden(['check', '--repo1-s3-bucket=no-such-bucket-s3-flow'])
    assert.equal(missing.code, 103, missing.stderr)
    assert.match(missing.stderr, new RegExp(`ERROR: \\[103\\]: repo1: bucket 'no-such-bucket-s3-flow' does not exist at ${escape(gateway.endpoint)}\nHINT: create the bucket, or check repo1-s3-bucket`))
    assertNoStack(missing)
  })

  test('restore warns when the S3 secret comes from the environment only: restore_command will not have it', async () => {
    const text = await readFile(stanza.configPath, 'utf8')
    const secretless = join(stanza.dir.path, 'secretless.conf')
    await writeFile(secretless, text.replace(/^repo1-s3-key-secret=.*\n/m, ''))
    const target = join(stanza.dir.path, 'env-secret-restore')
    const result = await runWalden([`--config=${secretless}`, '--stanza=demo', `--pg1-path=${target}`, 'restore', '--archive-mode=off', '--log-level-console=warn'], {
      env: { WALDEN_REPO1_S3_KEY_SECRET: gateway.secretKey },
    })
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stderr, /WARN: repo1-s3-key-secret comes from the environment \(WALDEN_REPO1_S3_KEY_SECRET\), which restore_command will not have/)
    assert.doesNotMatch(result.stderr, /repo1-s3-key comes/, 'the key is in the config file')
    assert.ok(!result.stderr.includes(gateway.secretKey))
    await rm(target, { recursive: true, force: true })
    await rm(secretless)
  })

  test('expire by retention removes backups and their WAL from the bucket', async () => {
    const beforeInfo = await infoJson()
    assert.ok(beforeInfo.backup.length >= 4)
    const segmentsBefore = await archivedSegments()
    await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`, 'repo1-retention-full=1'])
    await stanza.waldenOk(['backup', '--type=full'])
    const info = await infoJson()
    assert.deepEqual(info.backup.map((backup) => backup.type), ['full'])
    const kept = info.backup[0]!
    // Not a key left of the expired backups' folders: only the kept one's, beside backup.info.
    const left = await keys(bucket, 'backup/demo/')
    assert.deepEqual([...new Set(left.map((key) => key.split('/')[2]!).filter((name) => LABEL.test(name)))], [kept.label])
    for (const gone of beforeInfo.backup) assert.ok(!left.some((key) => key.includes(gone.label)), `${gone.label} removed`)
    const segmentsAfter = await archivedSegments()
    assert.ok(segmentsAfter.length > 0 && segmentsAfter.length < segmentsBefore.length, `${segmentsBefore.length} segments before, ${segmentsAfter.length} after`)
    for (const segment of segmentsAfter) assert.ok(segment >= kept.archive.start, `${segment} is not older than the kept backup (${kept.archive.start})`)
    await stanza.writeConfig(['archive-async=y', `spool-path=${spoolPath}`])
  })

  test('an encrypted repository with SSE-KMS round-trips a backup and restore; stanza-delete empties it', async () => {
    const sealed = await gateway.bucket('s3-flow-sealed')
    const cipherLines = repo1Lines(sealed, ['repo1-cipher-type=aes-256-gcm', `repo1-cipher-pass=${PASS}`, `repo1-s3-kms-key-id=${gateway.kmsKeyId}`])
    const previous = repo1Lines(bucket)
    await stanza.writeConfig([], cipherLines)
    try {
      await stanza.waldenOk(['stanza-create'])
      await stanza.waldenOk(['check'])
      await stanza.cluster.query(`insert into events (note) values ('sealed')`)
      await stanza.waldenOk(['backup', '--type=full'])
      const dump = await dumpDatabase(stanza.cluster)
      await switchAndWaitArchived()

      const info = await infoJson()
      assert.deepEqual(info.repo.map((repo) => repo.cipher), ['aes-256-gcm'])
      const label = info.backup[0]!.label
      const manifestKey = `${PREFIX}/backup/demo/${label}/backup.manifest`
      // Encrypted by walden: the object is not the manifest's JSON; and encrypted at rest by the gateway with the key.
      const head = await gateway.aws(['s3api', 'head-object', '--bucket', sealed, '--key', manifestKey])
      assert.equal(head.code, 0, head.stderr)
      const headJson = JSON.parse(head.stdout) as { ServerSideEncryption?: string; SSEKMSKeyId?: string }
      assert.equal(headJson.ServerSideEncryption, 'aws:kms')
      assert.match(headJson.SSEKMSKeyId ?? '', new RegExp(gateway.kmsKeyId))
      const object = await gateway.aws(['s3', 'cp', `s3://${sealed}/${manifestKey}`, '-'])
      assert.equal(object.code, 0, object.stderr)
      assert.ok(!object.stdout.includes('pg_data/'), 'the manifest is not stored in clear')

      const { copy } = await restoreCopy([])
      try {
        assertSameDump(await dumpDatabase(copy), dump)
        assert.ok((await restoredFromArchive(copy)) >= 1)
      } finally {
        await copy.stop()
      }

      // stanza-delete (forced, as the cluster runs) leaves nothing of the stanza under the prefix.
      assert.ok((await keys(sealed)).length > 10)
      await stanza.waldenOk(['stanza-delete', '--force'])
      assert.deepEqual(await keys(sealed), [])
    } finally {
      await stanza.writeConfig([], previous)
      await gateway.aws(['s3', 'rb', '--force', `s3://${sealed}`])
    }
  })
})
