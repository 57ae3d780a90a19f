// A way in from pgBackRest: Debian's pgBackRest 2.45 archives and backs up a PostgreSQL 15 cluster into three
// repositories (repo1: lz4, unencrypted; repo2: gz, aes-256-cbc with a passphrase; each with a full and an
// incremental backup; repo3: a full backup with its small files in bundles, repo3-bundle=y, encrypted too; and a fourth
// repository under a configuration of its own, compress-type=bz2 for its archive and its full and incremental backup,
// which archive_command pushes each segment to as well); walden then reads them as they are: info, restore to the end and to a time (each compared with
// pg_dump of the source at that point), a delta restore over a changed data folder, archive-get, a damaged stored file
// caught by its SHA-1, and every write refused. The source is stopped once pgBackRest is done, so at most one cluster
// runs at a time.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Cluster, dumpDatabase, runWalden, testDir } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'

const MAJOR = 15
const STANZA = 'demo'
const PASSPHRASE = 'walden-test-pgbackrest-passphrase'
const PGBACKREST = '/usr/bin/pgbackrest'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** pgBackRest as postgres, as its archive_command runs; fails the test on a non-zero exit. */
function pgbackrest(config: string, args: readonly string[]): string {
  const result = spawnSync('runuser', ['-u', 'postgres', '--', PGBACKREST, `--config=${config}`, `--stanza=${STANZA}`, ...args], {
    encoding: 'utf8',
    cwd: '/tmp',
    timeout: 300_000,
  })
  assert.equal(result.status, 0, `pgbackrest ${args.join(' ')}: ${result.stdout}${result.stderr}`)
  return result.stdout
}

/** Exit code and the exact first line on stderr, and no stack trace. */
function assertRefused(result: RunResult, code: number, firstLine: RegExp): void {
  assert.equal(result.code, code, result.stderr)
  assert.match(result.stderr.split('\n').find((line) => line.includes('ERROR')) ?? '', firstLine)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

/** pg_dump output compared; on a difference, the diff's first lines (the dumps are too long for the assertion's). */
function assertDumpEqual(actual: string, expected: string, what: string): void {
  if (actual === expected) return
  const actualLines = actual.split('\n')
  const expectedLines = expected.split('\n')
  const differing: string[] = []
  for (let index = 0; index < Math.max(actualLines.length, expectedLines.length) && differing.length < 10; index++) {
    if (actualLines[index] !== expectedLines[index]) differing.push(`line ${index + 1}: restored ${JSON.stringify(actualLines[index])}, source ${JSON.stringify(expectedLines[index])}`)
  }
  assert.fail(`${what}: the restored cluster's dump differs from the source's:\n${differing.join('\n')}`)
}

interface InfoJson {
  name: string
  status: { code: number; message: string }
  cipher: string
  backup: { label: string; type: string; prior: string | null; reference?: string[] | null }[]
}

describe('a pgBackRest 2.45 repository read by walden', { timeout: 900_000 }, () => {
  let dir: TestDir
  let source: Cluster
  let pgbrConfig: string
  let repoPlain: string
  let repoCipher: string
  let repoBundle: string
  /** The bz2 repository, and pgBackRest's configuration of it (its repo1). */
  let repoBz2: string
  let pgbrBz2Config: string
  let bz2Config: string
  /** walden's config for each repository; pg1-path names the folder restored into. */
  let plainConfig: string
  let cipherConfig: string
  let bundleConfig: string
  let restored: Cluster
  let dumpAtTarget: string
  let dumpAtEnd: string
  let target: string
  /** The WAL position just after the last change before `target`. */
  let targetLsn: string
  let pgbrLabels: { plain: string[]; cipher: string[] }

  const walden = (config: string, args: readonly string[]): Promise<RunResult> => runWalden([`--config=${config}`, `--stanza=${STANZA}`, ...args])
  const waldenOk = async (config: string, args: readonly string[]): Promise<RunResult> => {
    const result = await walden(config, args)
    assert.equal(result.code, 0, `walden ${args.join(' ')}: ${result.stderr}`)
    return result
  }

  before(async () => {
    await stat(PGBACKREST).catch(() => assert.fail(`${PGBACKREST} is missing: this test needs Debian's pgbackrest package (.ci/run installs it)`))
    dir = await testDir('walden-pgbr')
    repoPlain = await dir.mkdir('pgbr-repo')
    repoCipher = await dir.mkdir('pgbr-repo-cipher')
    repoBundle = await dir.mkdir('pgbr-repo-bundle')
    repoBz2 = await dir.mkdir('pgbr-repo-bz2')
    await dir.mkdir('pgbr-log')
    await dir.mkdir('pgbr-lock')
    await dir.mkdir('pgbr-lock-bz2')
    pgbrConfig = join(dir.path, 'pgbackrest.conf')
    source = await Cluster.create({ major: MAJOR, dir, name: 'source' })
    // One pgBackRest configuration: its repositories and options, then the cluster, as pgBackRest's user guide writes it.
    const pgbrConfigWrite = (path: string, globals: readonly string[], lockDir: string): Promise<void> =>
      writeFile(
        path,
        [
          '[global]',
          ...globals,
          `log-path=${join(dir.path, 'pgbr-log')}`,
          `lock-path=${join(dir.path, lockDir)}`,
          'log-level-console=warn',
          'start-fast=y',
          '',
          `[${STANZA}]`,
          `pg1-path=${source.dataDir}`,
          `pg1-socket-path=${source.socketDir}`,
          `pg1-port=${source.port}`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      )
    await pgbrConfigWrite(
      pgbrConfig,
      [
        `repo1-path=${repoPlain}`,
        'repo1-retention-full=2',
        `repo2-path=${repoCipher}`,
        'repo2-retention-full=2',
        'repo2-cipher-type=aes-256-cbc',
        `repo2-cipher-pass=${PASSPHRASE}`,
        `repo3-path=${repoBundle}`,
        'repo3-retention-full=2',
        'repo3-bundle=y',
        'repo3-cipher-type=aes-256-cbc',
        `repo3-cipher-pass=${PASSPHRASE}`,
      ],
      'pgbr-lock',
    )
    // compress-type applies to archive-push for every repository of a configuration, so bz2 gets one of its own; its
    // own lock path keeps its commands clear of the other configuration's.
    pgbrBz2Config = join(dir.path, 'pgbackrest-bz2.conf')
    await pgbrConfigWrite(pgbrBz2Config, [`repo1-path=${repoBz2}`, 'repo1-retention-full=2', 'compress-type=bz2'], 'pgbr-lock-bz2')
    spawnSync('chown', ['postgres:postgres', pgbrConfig, pgbrBz2Config])
    await source.configure({
      archive_mode: 'on',
      archive_command:
        `${PGBACKREST} --config=${pgbrConfig} --stanza=${STANZA} archive-push %p && ` +
        `${PGBACKREST} --config=${pgbrBz2Config} --stanza=${STANZA} archive-push %p`,
      wal_level: 'replica',
    })
    await source.start()
    pgbackrest(pgbrConfig, ['stanza-create'])
    pgbackrest(pgbrBz2Config, ['stanza-create'])

    await source.query(`create table accounts (id int primary key, owner text, balance numeric)`)
    await source.query(`insert into accounts select n, 'owner ' || n, n * 10 from generate_series(1, 50000) n`)
    // No serial: a sequence logs 32 values ahead, so a recovered one differs from the source's in pg_dump.
    await source.query(`create table events (id int primary key, note text, at timestamptz default clock_timestamp())`)
    pgbackrest(pgbrConfig, ['--repo=1', '--type=full', '--compress-type=lz4', 'backup'])
    pgbackrest(pgbrConfig, ['--repo=2', '--type=full', '--compress-type=gz', 'backup'])
    pgbackrest(pgbrBz2Config, ['--type=full', 'backup'])
    await source.query(`update accounts set balance = balance + 1 where id % 7 = 0`)
    await source.query(`insert into events (id, note) values (1, 'after the full backups')`)
    pgbackrest(pgbrConfig, ['--repo=1', '--type=incr', 'backup'])
    pgbackrest(pgbrConfig, ['--repo=2', '--type=incr', 'backup'])
    pgbackrest(pgbrBz2Config, ['--type=incr', 'backup'])
    pgbackrest(pgbrConfig, ['--repo=3', '--type=full', 'backup'])

    // The point in time: rows before it are in the restore to it, rows after it are not.
    await source.query(`insert into events (id, note) values (2, 'before the target')`)
    pgbackrest(pgbrConfig, ['check'])
    dumpAtTarget = await dumpDatabase(source)
    targetLsn = await source.psqlScalar('select pg_current_wal_insert_lsn()::text')
    await sleep(1100)
    target = await source.psqlScalar(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
    await sleep(1100)
    await source.query(`insert into events (id, note) values (3, 'after the target')`)
    await source.query(`delete from accounts where id between 100 and 200`)
    pgbackrest(pgbrConfig, ['check']) // switches WAL and waits until the segment is in both repositories
    pgbackrest(pgbrBz2Config, ['check'])
    dumpAtEnd = await dumpDatabase(source)
    await source.stop()

    const labels = (repo: string): string[] =>
      (JSON.parse(pgbackrest(pgbrConfig, [`--repo=${repo}`, 'info', '--output=json'])) as InfoJson[])[0]!.backup.map((backup) => backup.label)
    pgbrLabels = { plain: labels('1'), cipher: labels('2') }

    restored = await Cluster.adopt({ major: MAJOR, dir, name: 'restored' })
    const waldenConfig = async (name: string, lines: string[]): Promise<string> => {
      const path = join(dir.path, name)
      await writeFile(path, ['[global]', ...lines, `[${STANZA}]`, `pg1-path=${restored.dataDir}`, ''].join('\n'), { mode: 0o600 })
      spawnSync('chown', ['postgres:postgres', path])
      return path
    }
    const common = [`log-path=${join(dir.path, 'pgbr-log')}`, `lock-path=${join(dir.path, 'pgbr-lock')}`]
    plainConfig = await waldenConfig('walden-plain.conf', [`repo1-path=${repoPlain}`, ...common])
    bundleConfig = await waldenConfig('walden-bundle.conf', [`repo1-path=${repoBundle}`, 'repo1-cipher-type=aes-256-cbc', `repo1-cipher-pass=${PASSPHRASE}`, ...common])
    cipherConfig = await waldenConfig('walden-cipher.conf', [`repo1-path=${repoCipher}`, 'repo1-cipher-type=aes-256-cbc', `repo1-cipher-pass=${PASSPHRASE}`, ...common])
    bz2Config = await waldenConfig('walden-bz2.conf', [`repo1-path=${repoBz2}`, ...common])
  })

  after(async () => {
    await dir?.cleanup()
  })

  /** The restored folder made a cluster of its own: its port and socket, and no archiving into pgBackRest's repository. */
  async function startRestored(): Promise<void> {
    await restored.configure({ port: String(restored.port), unix_socket_directories: restored.socketDir, archive_mode: 'off' })
    await restored.start()
    await restored.waitWritable()
  }

  test('info reads both repositories: the same backups pgBackRest lists, text and JSON, with the cipher', async () => {
    assert.equal(pgbrLabels.plain.length, 2)
    assert.equal(pgbrLabels.cipher.length, 2)
    for (const [config, labels, cipher] of [
      [plainConfig, pgbrLabels.plain, 'none'],
      [cipherConfig, pgbrLabels.cipher, 'aes-256-cbc'],
    ] as const) {
      const [info] = JSON.parse((await waldenOk(config, ['info', '--output=json'])).stdout) as InfoJson[]
      assert.equal(info!.status.code, 0, info!.status.message)
      assert.equal(info!.cipher, cipher)
      assert.deepEqual(
        info!.backup.map((backup) => [backup.label, backup.type, backup.prior]),
        [
          [labels[0], 'full', null],
          [labels[1], 'incr', labels[0]],
        ],
      )
      const text = (await waldenOk(config, ['info'])).stdout
      assert.match(text, new RegExp(`incr backup: ${labels[1]}`))
      assert.match(text, new RegExp(`cipher: ${cipher}`))
    }
  })

  test('a wrong or missing passphrase is refused in one line', async () => {
    const wrong = join(dir.path, 'walden-wrong.conf')
    await writeFile(wrong, (await readFile(cipherConfig, 'utf8')).replace(PASSPHRASE, 'not-the-passphrase'), { mode: 0o600 })
    spawnSync('chown', ['postgres:postgres', wrong])
    assertRefused(await walden(wrong, ['restore']), 95, /ERROR: \[095\]: unable to decrypt '.*\/backup\.info' or its copy: wrong repo1-cipher-pass, or both are damaged/)
    assertRefused(
      await walden(plainConfig, [`--repo1-path=${repoCipher}`, 'restore']),
      95,
      /ERROR: \[095\]: stanza 'demo' is encrypted by pgBackRest \(aes-256-cbc\); set repo1-cipher-type=aes-256-cbc and repo1-cipher-pass/,
    )
    await assert.rejects(stat(restored.dataDir), /ENOENT/)
  })

  test('restore of the lz4 incremental backup, to the end of the archive, equals the source', async () => {
    await waldenOk(plainConfig, ['restore', `--set=${pgbrLabels.plain[1]}`])
    await startRestored()
    assertDumpEqual(await dumpDatabase(restored), dumpAtEnd, 'to the end')
  })

  test('a delta restore repairs a changed relation file and removes a stray one, comparing by SHA-1', async () => {
    const relation = await restored.psqlScalar(`select pg_relation_filepath('accounts')`)
    await restored.stop()
    const damaged = join(restored.dataDir, relation)
    const original = await readFile(damaged)
    const broken = Buffer.from(original)
    broken.write('changed', 8192 + 100)
    await writeFile(damaged, broken)
    await writeFile(join(restored.dataDir, 'base', 'stray-file'), 'not from the backup')

    const result = await waldenOk(plainConfig, ['restore', '--delta', '--log-level-console=info'])
    // Files the restored server did not touch since (most of them) matched their SHA-1 and were kept; the changed
    // relation, and what the promotion and its checkpoint rewrote, were fetched.
    const counts = /complete: (\d+) files, (\d+) fetched .*, (\d+) kept, (\d+) removed/.exec(result.stderr)
    assert.ok(counts, result.stderr)
    const [files, fetched, kept, removed] = counts.slice(1).map(Number) as [number, number, number, number]
    assert.ok(fetched >= 2 && fetched < files / 4, `fetched ${fetched} of ${files}`)
    assert.equal(kept, files - fetched)
    assert.ok(removed >= 1)
    // Restored as the backup holds it (the running server had rewritten some of its pages since, hint bits).
    assert.equal((await readFile(damaged)).indexOf('changed'), -1)
    assert.equal((await readFile(damaged)).length, original.length)
    await assert.rejects(stat(join(restored.dataDir, 'base', 'stray-file')), /ENOENT/)
    await startRestored()
    assertDumpEqual(await dumpDatabase(restored), dumpAtEnd, 'to the end')
    await restored.stop()
  })

  test('restore of the encrypted gz backup to a time equals the source at that time', async () => {
    await rm(restored.dataDir, { recursive: true, force: true })
    await waldenOk(cipherConfig, ['restore', '--type=time', `--target=${target}`, '--target-action=promote'])
    await startRestored()
    assertDumpEqual(await dumpDatabase(restored), dumpAtTarget, 'to a time')
    assert.equal(await restored.psqlScalar(`select count(*) from events where note = 'after the target'`), '0')
    await restored.stop()
  })

  test('restore of the lz4 backup to an LSN equals the source at that LSN', async () => {
    await rm(restored.dataDir, { recursive: true, force: true })
    await waldenOk(plainConfig, ['restore', '--type=lsn', `--target=${targetLsn}`, '--target-action=promote'])
    await startRestored()
    assertDumpEqual(await dumpDatabase(restored), dumpAtTarget, 'to an LSN')
    await restored.stop()
  })

  test('restore of an encrypted backup whose small files are in bundles equals the source, and verify checks every file', async () => {
    const label = (JSON.parse(pgbackrest(pgbrConfig, ['--repo=3', 'info', '--output=json'])) as InfoJson[])[0]!.backup[0]!.label
    const bundles = await readdir(join(repoBundle, 'backup', STANZA, label, 'bundle'))
    assert.ok(bundles.length > 0, 'pgBackRest made no bundle')
    await rm(restored.dataDir, { recursive: true, force: true })
    await waldenOk(bundleConfig, ['restore'])
    await startRestored()
    assertDumpEqual(await dumpDatabase(restored), dumpAtEnd, 'from bundles')
    await restored.stop()
    const verify = await waldenOk(bundleConfig, ['verify'])
    assert.match(verify.stdout, new RegExp(`backup ${label} \\(full\\): ok, \\d+ files`))
  })

  test('restore of the bz2 incremental backup equals the source; archive-get of a bz2 segment is pgBackRest\'s', async () => {
    const [info] = JSON.parse((await waldenOk(bz2Config, ['info', '--output=json'])).stdout) as InfoJson[]
    assert.deepEqual(
      info!.backup.map((backup) => backup.type),
      ['full', 'incr'],
    )
    const [full, incr] = info!.backup.map((backup) => backup.label) as [string, string]
    // pgBackRest stored the backups' files and the archive as bz2 (the incremental refers to the full for unchanged
    // files such as PG_VERSION): walden reads that, it does not skip it.
    assert.ok((await readdir(join(repoBz2, 'backup', STANZA, full, 'pg_data'))).includes('PG_VERSION.bz2'))
    assert.ok((await readdir(join(repoBz2, 'backup', STANZA, incr, 'pg_data', 'base', '5'))).some((name) => name.endsWith('.bz2')))
    await rm(restored.dataDir, { recursive: true, force: true })
    // Recovery to the end replays the archive through archive-get, so bz2 segments are read here too.
    await waldenOk(bz2Config, ['restore', `--set=${incr}`])
    await startRestored()
    assertDumpEqual(await dumpDatabase(restored), dumpAtEnd, 'from bz2')
    await restored.stop()

    const walFolder = join(repoBz2, 'archive', STANZA, `${MAJOR}-1`, '0000000100000000')
    const segments = (await readdir(walFolder)).filter((entry) => /^[0-9A-F]{24}-[0-9a-f]{40}\.bz2$/.test(entry))
    assert.ok(segments.length > 0, 'pgBackRest archived no bz2 segment')
    const segment = segments[0]!.slice(0, 24)
    const fetched = join(dir.path, 'fetched-bz2')
    const theirs = join(dir.path, 'fetched-bz2-by-pgbackrest')
    await waldenOk(bz2Config, ['archive-get', segment, fetched])
    pgbackrest(pgbrBz2Config, ['archive-get', segment, theirs])
    const ours = await readFile(fetched)
    assert.equal(ours.length, 16 * 1024 * 1024)
    assert.ok(ours.equals(await readFile(theirs)), 'the bz2 segment differs from pgBackRest\'s')
    await waldenOk(bz2Config, ['verify'])
  })

  test('archive-get serves a segment as pgBackRest does, and a missing one with exit code 1', async () => {
    const walFolder = join(repoCipher, 'archive', STANZA, `${MAJOR}-1`, '0000000100000000')
    const segment = (await readdir(walFolder)).find((entry) => /^[0-9A-F]{24}-[0-9a-f]{40}\.gz$/.test(entry))!.slice(0, 24)
    const fetched = join(dir.path, 'fetched')
    const theirs = join(dir.path, 'fetched-by-pgbackrest')
    for (const [config, repo] of [
      [plainConfig, '1'],
      [cipherConfig, '2'],
    ] as const) {
      await rm(fetched, { force: true })
      await rm(theirs, { force: true })
      await waldenOk(config, ['archive-get', segment, fetched])
      pgbackrest(pgbrConfig, [`--repo=${repo}`, 'archive-get', segment, theirs])
      assert.ok((await readFile(fetched)).equals(await readFile(theirs)), `repo${repo}: the segment differs from pgBackRest's`)
    }
    const missing = await walden(plainConfig, ['archive-get', '0000000100000000000000FE', join(dir.path, 'missing')])
    assert.equal(missing.code, 1, missing.stderr)
    await assert.rejects(stat(join(dir.path, 'missing')), /ENOENT/)
  })

  test('a stored file replaced by another valid one fails its SHA-1: restore stops, verify reports it', async () => {
    // A copy of repo1 in which one stored relation file holds another file's (valid, compressed) content.
    const damagedRepo = join(dir.path, 'pgbr-repo-damaged')
    spawnSync('cp', ['-a', repoPlain, damagedRepo])
    const full = join(damagedRepo, 'backup', STANZA, pgbrLabels.plain[0]!, 'pg_data', 'base', '5')
    const candidates = []
    for (const entry of await readdir(full)) {
      if (entry.endsWith('.lz4')) candidates.push({ entry, size: (await stat(join(full, entry))).size })
    }
    candidates.sort((a, b) => b.size - a.size)
    const [victim, donor] = candidates.filter((candidate) => /^\d+\.lz4$/.test(candidate.entry))
    await copyFile(join(full, donor!.entry), join(full, victim!.entry))
    const damagedConfig = join(dir.path, 'walden-damaged.conf')
    await writeFile(damagedConfig, (await readFile(plainConfig, 'utf8')).replace(`repo1-path=${repoPlain}`, `repo1-path=${damagedRepo}`), { mode: 0o600 })
    spawnSync('chown', ['-R', 'postgres:postgres', damagedConfig, damagedRepo])

    await rm(restored.dataDir, { recursive: true, force: true })
    const result = await walden(damagedConfig, ['restore', `--set=${pgbrLabels.plain[0]}`])
    assert.equal(result.code, 26, result.stderr)
    assert.match(result.stderr, new RegExp(`ERROR: \\[026\\]: repository file '${damagedRepo}/backup/${STANZA}/${pgbrLabels.plain[0]}/pg_data/base/5/${victim!.entry.replace('.', '\\.')}' has checksum [0-9a-f]{40}, expected [0-9a-f]{40}`))
    // Never a cluster that starts from it: pg_control is written last, and was not.
    await assert.rejects(stat(join(restored.dataDir, 'global', 'pg_control')), /ENOENT/)

    const verify = await walden(damagedConfig, ['verify'])
    assert.notEqual(verify.code, 0, verify.stdout)
    assert.match(`${verify.stdout}${verify.stderr}`, new RegExp(victim!.entry.replace('.lz4', '')))
    // The intact repository verifies clean, files and WAL.
    await waldenOk(plainConfig, ['verify'])
    await waldenOk(cipherConfig, ['verify'])
  })

  test('walden never writes into a pgBackRest repository: backup, expire, archive-push and stanza-create are refused', async () => {
    const refusal = /ERROR: \[103\]: (backup|expire|archive-push|stanza-create) refused: '.*' is a pgBackRest repository, which walden only reads/
    const pgOptions = [`--pg1-path=${source.dataDir}`, `--pg1-socket-path=${source.socketDir}`, `--pg1-port=${source.port}`]
    // The backups and info files as they are (the archive may take a segment from the source's start, by pgBackRest).
    const listing = (): string =>
      spawnSync('find', [join(repoPlain, 'backup'), join(repoPlain, 'archive', STANZA), '-maxdepth', '3', '(', '-name', '*.info*', '-o', '-path', '*/backup/*', ')', '-printf', '%p %s %T@\n'], { encoding: 'utf8' }).stdout
    const before = listing()
    await source.start()
    try {
      assertRefused(await walden(plainConfig, ['backup', ...pgOptions]), 103, refusal)
      assertRefused(await walden(plainConfig, ['stanza-create', ...pgOptions]), 103, refusal)
      const segment = (await readdir(join(source.dataDir, 'pg_wal'))).find((entry) => /^[0-9A-F]{24}$/.test(entry))!
      assertRefused(await walden(plainConfig, ['archive-push', ...pgOptions, join(source.dataDir, 'pg_wal', segment)]), 103, refusal)
    } finally {
      await source.stop()
    }
    assertRefused(await walden(plainConfig, ['expire', '--repo1-retention-full=1']), 103, refusal)
    const result = await walden(plainConfig, ['expire', '--repo1-retention-full=1'])
    assert.match(result.stderr, /HINT: give walden a repository of its own .*docs\/from-pgbackrest\.md/)
    // Nothing in the repository changed.
    assert.equal(listing(), before)
  })
})
