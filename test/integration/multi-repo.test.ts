// Several repositories per stanza on a real PostgreSQL 15 cluster: repo1 a plain folder, repo2 a folder encrypted with
// its own passphrase. stanza-create adds repo2 to an existing stanza; archive-push (synchronous and archive-async)
// stores every segment in both, and when one cannot be written the other still gets it, the error names the failing
// one, and a retry after the fix completes it; archive-get falls back to repo2 when repo1 lacks a segment or holds it
// damaged; info shows both in pgBackRest's JSON shape; verify reports each; expire applies each repository's own
// retention; a wrong passphrase is named as repo2's; stanza-delete --repo=2 leaves repo1 alone. And a folder beside an
// S3 bucket on a real Ceph RADOS Gateway: the same push and fallback, and the gateway stopped during a push.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { chmod, chown, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { RunResult } from '../harness/cluster.js'
import { s3Gateway } from '../harness/s3.js'
import type { S3Gateway } from '../harness/s3.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const PASS = 'repo2-passphrase-9c1e5a7b3d'
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Archived copies of `walName` under `repoPath` (paths relative to it), whatever the archive id. */
async function storedCopies(repoPath: string, walName: string): Promise<string[]> {
  const root = join(repoPath, 'archive')
  const entries = await readdir(root, { recursive: true }).catch(() => [] as string[])
  return entries.filter((entry) => entry.split('/').at(-1)!.startsWith(`${walName}-`)).map((entry) => join('archive', entry)).sort()
}

/** The labels backup.info of a repository lists. */
async function labelsIn(repoPath: string, stanza: string): Promise<string[]> {
  const info = JSON.parse(await readFile(join(repoPath, 'backup', stanza, 'backup.info'), 'utf8')) as { content: { backups: Array<{ label: string }> } }
  return info.content.backups.map((backup) => backup.label)
}

function assertFailed(result: RunResult, code: number, error: RegExp): void {
  assert.equal(result.code, code, `exit ${result.code}\n${result.stderr}`)
  assert.match(result.stderr, error)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

describe(`several repositories on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let repo2: string
  let spool: string
  let owner = { uid: 0, gid: 0 }
  const repo2Lines = (): string[] => [`repo2-path=${repo2}`, 'repo2-cipher-type=aes-256-gcm', `repo2-cipher-pass=${PASS}`]

  /** The config file with [global] `extra`; it holds a passphrase, so it is postgres's and mode 0600. */
  const configure = async (extra: string[]): Promise<void> => {
    await stanza.writeConfig(extra)
    await chown(stanza.configPath, owner.uid, owner.gid)
    await chmod(stanza.configPath, 0o600)
  }
  /** A file owned by postgres (walden runs as postgres, as PostgreSQL's commands do). */
  const put = async (path: string, data: Buffer): Promise<string> => {
    await writeFile(path, data)
    await chown(path, owner.uid, owner.gid)
    return path
  }
  /** The newest segment PostgreSQL has archived. */
  const lastArchived = async (): Promise<string> =>
    (await stanza.cluster.query<{ wal: string }>('select last_archived_wal as wal from pg_stat_archiver'))[0]!.wal

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'multi' })
    const repoStat = await stat(stanza.repoPath)
    owner = { uid: repoStat.uid, gid: repoStat.gid }
    repo2 = await stanza.dir.mkdir('repo2')
    spool = await stanza.dir.mkdir('spool')
    await stanza.cluster.query(`create table t (id int primary key, note text); insert into t select n, 'row ' || n from generate_series(1, 20000) n`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('stanza-create adds repo2 to an existing stanza, with its own encryption, and leaves repo1 as it was', async () => {
    await stanza.waldenOk(['stanza-create'])
    const repo1Info = await readFile(join(stanza.repoPath, 'archive', stanza.name, 'archive.info'))
    await configure(repo2Lines())
    const added = await stanza.waldenOk(['stanza-create', '--log-level-console=info'])
    assert.match(added.stderr, /repo1: stanza 'multi' already exists for this cluster/)
    assert.match(added.stderr, /repo2: stanza 'multi' created for PostgreSQL 15, system identifier \d+/)
    assert.ok((await readFile(join(stanza.repoPath, 'archive', stanza.name, 'archive.info'))).equals(repo1Info), 'repo1 untouched')
    const cipherOf = async (repo: string): Promise<string | undefined> =>
      (JSON.parse(await readFile(join(repo, 'archive', stanza.name, 'archive.info'), 'utf8')) as { content: { cipher?: { type: string } } }).content.cipher?.type
    assert.equal(await cipherOf(stanza.repoPath), undefined)
    assert.equal(await cipherOf(repo2), 'aes-256-gcm')
    const again = await stanza.waldenOk(['stanza-create', '--log-level-console=info'])
    assert.match(again.stderr, /repo1: stanza 'multi' already exists[^]*repo2: stanza 'multi' already exists/)
  })

  const checkedSegment = (stdout: string): string => {
    const found = /WAL segment ([0-9A-F]{24}) archived/.exec(stdout)
    assert.ok(found, `check names the segment it archived:\n${stdout}`)
    return found[1]!
  }

  test('archive-push stores each segment in both repositories, synchronous and archive-async; check reports each', async () => {
    // The segment is taken from check's own report: check returns once the segment is in the repositories, which can
    // be before PostgreSQL's archiver updates pg_stat_archiver.
    const checked = await stanza.waldenOk(['check'])
    const segment = checkedSegment(checked.stdout)
    assert.match(checked.stdout, new RegExp(`^repo1: stanza 'multi': configuration ok, WAL segment ${segment} archived\nrepo2: stanza 'multi': configuration ok, WAL segment ${segment} archived\n$`))
    const [plain] = await storedCopies(stanza.repoPath, segment)
    const [sealed] = await storedCopies(repo2, segment)
    assert.ok(plain && sealed, `stored in both: ${plain} ${sealed}`)
    // repo1 holds zstd as it is; repo2 holds it encrypted under its own key.
    assert.equal((await readFile(join(stanza.repoPath, plain))).subarray(0, 4).toString('hex'), '28b52ffd')
    assert.equal((await readFile(join(repo2, sealed))).subarray(0, 7).toString('latin1'), 'WALDENC')

    // archive-async: the background process pushes to both before it acknowledges.
    await configure([...repo2Lines(), 'archive-async=y', `spool-path=${spool}`])
    const asyncSegment = checkedSegment((await stanza.waldenOk(['check'])).stdout)
    assert.notEqual(asyncSegment, segment)
    assert.equal((await storedCopies(stanza.repoPath, asyncSegment)).length, 1)
    assert.equal((await storedCopies(repo2, asyncSegment)).length, 1)
    await configure(repo2Lines())
  })

  describe('with repositories of their own', () => {
    let fresh1: string
    let fresh2: string
    let walName: string
    let real: Buffer
    let realPath: string
    let work: string
    const both = (): string[] => [`--repo1-path=${fresh1}`, `--repo2-path=${fresh2}`]

    before(async () => {
      // A real segment of the cluster, as archive-get returns it, pushed by hand into two new repositories.
      walName = await lastArchived()
      work = await stanza.dir.mkdir('work')
      realPath = join(work, walName)
      await stanza.waldenOk(['archive-get', walName, realPath])
      real = await readFile(realPath)
      fresh1 = await stanza.dir.mkdir('fresh1')
      fresh2 = await stanza.dir.mkdir('fresh2')
      await stanza.waldenOk([...both(), 'stanza-create'])
    })

    test('one repository unwritable: the error names it, the other still gets the segment, and a retry after the fix succeeds', async () => {
      // Read-only for walden: archive.info can be read, no WAL folder can be made.
      const stanzaArchive = join(fresh2, 'archive', stanza.name)
      await chmod(stanzaArchive, 0o550)
      try {
        const refused = await stanza.walden([...both(), 'archive-push', realPath])
        assertFailed(refused, 41, new RegExp(`ERROR: \\[041\\]: repo2: unable to open for write '${escape(stanzaArchive)}/15-1/${walName.slice(0, 16)}/${walName}\\.tmp-[^']+': permission denied`))
        assert.match(refused.stderr, /HINT: .*repo1 has it; PostgreSQL retries the push/)
        assert.equal((await storedCopies(fresh1, walName)).length, 1, 'repo1 got it')
        assert.deepEqual(await storedCopies(fresh2, walName), [])
      } finally {
        await chmod(stanzaArchive, 0o750)
      }
      const retried = await stanza.waldenOk([...both(), 'archive-push', realPath, '--log-level-console=info'])
      assert.match(retried.stderr, new RegExp(`pushed WAL file '${walName}' to the archive of repo2 \\(repo1 had it already\\)`))
      assert.equal((await storedCopies(fresh1, walName)).length, 1)
      assert.equal((await storedCopies(fresh2, walName)).length, 1)
      // Each copy is the segment: fetched from each repository alone.
      for (const repo of ['1', '2']) {
        const back = join(work, `back-${repo}`)
        await stanza.waldenOk([...both(), `--repo=${repo}`, 'archive-get', walName, back])
        assert.equal(sha256(await readFile(back)), sha256(real))
        await rm(back)
      }
      const same = await stanza.waldenOk([...both(), 'archive-push', realPath, '--log-level-console=info'])
      assert.match(same.stderr, new RegExp(`WAL file '${walName}' is already in the archive with the same checksum`))
    })

    test('two passphrases: the segment compressed once into encrypted repo1 reaches repo2 under its own key', async () => {
      const sealed1 = await stanza.dir.mkdir('sealed1')
      const sealed2 = await stanza.dir.mkdir('sealed2')
      const env = { WALDEN_REPO1_CIPHER_PASS: 'repo1-passphrase-51d0c3e8' }
      const args = [`--repo1-path=${sealed1}`, '--repo1-cipher-type=aes-256-gcm', `--repo2-path=${sealed2}`]
      await stanza.waldenOk([...args, 'stanza-create'], { env })
      await stanza.waldenOk([...args, 'archive-push', realPath], { env })
      const [copy1] = await storedCopies(sealed1, walName)
      const [copy2] = await storedCopies(sealed2, walName)
      const header = async (path: string): Promise<Buffer> => (await readFile(path)).subarray(0, 64)
      assert.equal((await header(join(sealed1, copy1!))).subarray(0, 7).toString('latin1'), 'WALDENC')
      assert.equal((await header(join(sealed2, copy2!))).subarray(0, 7).toString('latin1'), 'WALDENC')
      // Each repository opens its copy with its own key alone.
      for (const repo of ['1', '2']) {
        const back = join(work, `sealed-back-${repo}`)
        await stanza.waldenOk([...args, `--repo=${repo}`, 'archive-get', walName, back], { env })
        assert.equal(sha256(await readFile(back)), sha256(real))
        await rm(back)
      }
      const wrong = await stanza.walden([...args, '--repo=1', 'archive-get', walName, join(work, 'never')], { env: { WALDEN_REPO1_CIPHER_PASS: 'wrong' } })
      assertFailed(wrong, 126, /wrong passphrase: repo1-cipher-pass does not unlock stanza 'multi'/)
    })

    test('archive-get takes the segment from repo2 when repo1 holds it damaged or lacks it; 126 when damaged everywhere', async () => {
      const dest = join(work, 'restored')
      const get = (args: string[] = []): Promise<RunResult> => stanza.walden([...both(), ...args, '--log-level-console=info', 'archive-get', walName, dest])
      const [copy1] = await storedCopies(fresh1, walName)
      const [copy2] = await storedCopies(fresh2, walName)
      const good1 = await readFile(join(fresh1, copy1!))
      const good2 = await readFile(join(fresh2, copy2!))
      const damage = async (path: string, data: Buffer): Promise<void> => {
        const bad = Buffer.from(data)
        bad[Math.floor(bad.length / 2)]! ^= 0xff
        await put(path, bad)
      }

      await damage(join(fresh1, copy1!), good1)
      const healed = await get()
      assert.equal(healed.code, 0, healed.stderr)
      assert.match(healed.stderr, new RegExp(`WARN: WAL file '${walName}' in repo1 is damaged \\(.+\\); it was taken from repo2`))
      assert.match(healed.stderr, new RegExp(`found WAL file '${walName}' in the archive \\(repo2: 15-1\\)`))
      assert.equal(sha256(await readFile(dest)), sha256(real))
      await rm(dest)

      await rm(join(fresh1, copy1!))
      const fallback = await get()
      assert.equal(fallback.code, 0, fallback.stderr)
      assert.doesNotMatch(fallback.stderr, /WARN/)
      assert.equal(sha256(await readFile(dest)), sha256(real))
      await rm(dest)
      // --repo=1 searches repo1 alone, where it is not.
      assert.equal((await get(['--repo=1'])).code, 1)

      // Damaged in every repository that holds it: recovery must stop, not end (126), naming both.
      await damage(join(fresh1, copy1!), good1)
      await damage(join(fresh2, copy2!), good2)
      const everywhere = await get()
      assert.equal(everywhere.code, 126, everywhere.stderr)
      // repo1's copy no longer decompresses; repo2's fails its authentication tag.
      assert.match(everywhere.stderr, /ERROR: \[026\]: repo1: archived WAL file '[^']+' is damaged: [^;]+; repo2: repository file '[^']+' failed authentication/)
      await assert.rejects(stat(dest), { code: 'ENOENT' }, 'nothing delivered')

      await put(join(fresh1, copy1!), good1)
      await put(join(fresh2, copy2!), good2)
      // Not archived anywhere: the end of the archive for PostgreSQL.
      assert.equal((await stanza.walden([...both(), 'archive-get', 'FFFFFFFF0000000000000001', dest])).code, 1)
    })
  })

  describe('a folder and an S3 repository (Ceph RADOS Gateway)', () => {
    let gateway: S3Gateway
    let folder: string
    let walName: string
    let real: Buffer
    let realPath: string
    // repo1 a new folder, repo3 a bucket; the credentials only in the environment, as walden requires.
    let args: string[]
    let env: NodeJS.ProcessEnv

    before(async () => {
      gateway = await s3Gateway()
      const bucket = await gateway.bucket('multi-repo')
      folder = await stanza.dir.mkdir('with-s3')
      args = [
        `--repo1-path=${folder}`,
        '--repo3-type=s3',
        `--repo3-s3-bucket=${bucket}`,
        `--repo3-s3-endpoint=${gateway.endpoint}`,
        '--repo3-s3-region=us-east-1',
        '--repo3-s3-uri-style=path',
        '--repo3-path=/walden',
        '--repo=1,3',
      ]
      env = { WALDEN_REPO3_S3_KEY: gateway.accessKey, WALDEN_REPO3_S3_KEY_SECRET: gateway.secretKey }
      walName = await lastArchived()
      const work = await stanza.dir.mkdir('work-s3')
      realPath = join(work, walName)
      await stanza.waldenOk(['archive-get', walName, realPath])
      real = await readFile(realPath)
      await stanza.waldenOk([...args, 'stanza-create'], { env })
    })

    test('archive-push stores the segment in the folder and the bucket; archive-get reads each, and falls back to the bucket', async () => {
      await stanza.waldenOk([...args, 'archive-push', realPath], { env })
      const [copy] = await storedCopies(folder, walName)
      assert.ok(copy, 'in the folder')
      // Named alike in the bucket, under repo3-path: the layout is the same as in a folder.
      const listed = await gateway.aws(['s3', 'ls', '--recursive', `s3://${args[2]!.split('=')[1]}/walden/archive/`])
      assert.equal(listed.code, 0, listed.stderr)
      assert.ok(listed.stdout.includes(copy!.slice('archive/'.length)), listed.stdout)

      const dest = join(stanza.dir.path, 'work-s3', 'back')
      const fromBucket = await stanza.walden([...args, '--repo=3', '--log-level-console=info', 'archive-get', walName, dest].filter((arg) => arg !== '--repo=1,3'), { env })
      assert.equal(fromBucket.code, 0, fromBucket.stderr)
      assert.equal(sha256(await readFile(dest)), sha256(real))
      await rm(dest)

      // The folder's copy damaged: the bucket's is delivered, with a warning naming both.
      const good = await readFile(join(folder, copy!))
      const bad = Buffer.from(good)
      bad[bad.length >> 1]! ^= 0xff
      await put(join(folder, copy!), bad)
      const healed = await stanza.walden([...args, '--log-level-console=info', 'archive-get', walName, dest], { env })
      assert.equal(healed.code, 0, healed.stderr)
      assert.match(healed.stderr, new RegExp(`WAL file '${walName}' in repo1 is damaged \\(.+\\); it was taken from repo3`))
      assert.equal(sha256(await readFile(dest)), sha256(real))
      await put(join(folder, copy!), good)

      // No backups in either yet: info says so, with exit status 51, and reads the bucket as it reads the folder.
      const shown = await stanza.walden([...args, 'info', '--output=json'], { env })
      assert.equal(shown.code, 51, shown.stderr)
      const info = JSON.parse(shown.stdout) as Array<Record<string, any>>
      assert.deepEqual(info[0]!.repo.map((repo: { key: number; status: { code: number } }) => [repo.key, repo.status.code]), [
        [1, 2],
        [3, 2],
      ])
      assert.deepEqual(info[0]!.archive.map((entry: { database: { 'repo-key': number }; min: string }) => [entry.database['repo-key'], entry.min]), [
        [1, walName],
        [3, walName],
      ])
    })

    test('the gateway stopped: the push names repo3 and the folder still gets the segment; the retry completes it', async () => {
      // The same segment into a second folder, with the bucket where it is already.
      const second = await stanza.dir.mkdir('with-s3-second')
      const secondArgs = args.map((arg) => (arg.startsWith('--repo1-path=') ? `--repo1-path=${second}` : arg))
      await stanza.waldenOk([...secondArgs.filter((arg) => arg !== '--repo=1,3'), '--repo=1', 'stanza-create'], { env })
      await gateway.stopGateway()
      let refused: RunResult
      try {
        refused = await stanza.walden([...secondArgs, 'archive-push', realPath], { env })
      } finally {
        await gateway.startGateway()
      }
      assert.notEqual(refused.code, 0)
      assert.match(refused.stderr, /ERROR: \[\d{3}\]: repo3: /)
      assert.match(refused.stderr, /HINT: .*repo1 has it/)
      assert.doesNotMatch(refused.stderr, new RegExp(escape(gateway.secretKey)))
      assert.equal((await storedCopies(second, walName)).length, 1)
      const retried = await stanza.waldenOk([...secondArgs, 'archive-push', realPath, '--log-level-console=info'], { env })
      assert.match(retried.stderr, /is already in the archive with the same checksum/)
    })
  })

  test("backups in each repository; info shows both in pgBackRest's JSON shape, and --repo limits it", async () => {
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.waldenOk(['backup', '--type=full', '--repo=2'])
    const info = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<Record<string, any>>
    assert.equal(info.length, 1)
    const entry = info[0]!
    assert.equal(entry.cipher, 'mixed')
    assert.deepEqual(entry.repo, [
      { cipher: 'none', key: 1, status: { code: 0, message: 'ok' } },
      { cipher: 'aes-256-gcm', key: 2, status: { code: 0, message: 'ok' } },
    ])
    assert.deepEqual(entry.status, { code: 0, lock: { backup: { held: false } }, message: 'ok' })
    assert.deepEqual(entry.backup.map((backup: { database: { 'repo-key': number } }) => backup.database), [
      { id: 1, 'repo-key': 1 },
      { id: 1, 'repo-key': 2 },
    ])
    assert.deepEqual(entry.db.map((db: { 'repo-key': number; id: number }) => [db['repo-key'], db.id]), [
      [1, 1],
      [2, 1],
    ])
    assert.deepEqual(entry.archive.map((archive: { database: unknown; id: string }) => [archive.database, archive.id]), [
      [{ id: 1, 'repo-key': 1 }, '15-1'],
      [{ id: 1, 'repo-key': 2 }, '15-1'],
    ])
    for (const archive of entry.archive as Array<{ min: string | null; max: string | null }>) assert.ok(archive.min && archive.max, JSON.stringify(archive))

    const only = JSON.parse((await stanza.waldenOk(['info', '--output=json', '--repo=2'])).stdout) as Array<Record<string, any>>
    assert.deepEqual(only[0]!.repo.map((repo: { key: number }) => repo.key), [2])
    assert.equal(only[0]!.cipher, 'aes-256-gcm')
    assert.equal(only[0]!.backup.length, 1)
    const text = (await stanza.waldenOk(['info'])).stdout
    assert.match(text, /cipher: mixed\n {8}repo1: none\n {8}repo2: aes-256-gcm\n/)
    assert.match(text, /repo1: backup set size[^]*repo2: backup set size/)
  })

  test('verify reports each repository; --repo=2 verifies repo2 alone', async () => {
    const all = await stanza.waldenOk(['verify', '--output=json'])
    const reports = JSON.parse(all.stdout) as Array<{ repo: number; status: string; backups: unknown[] }>
    assert.deepEqual(reports.map((report) => [report.repo, report.status, report.backups.length]), [
      [1, 'ok', 1],
      [2, 'ok', 1],
    ])
    const one = JSON.parse((await stanza.waldenOk(['verify', '--output=json', '--repo=2'])).stdout) as { repo: number; status: string }
    assert.deepEqual([one.repo, one.status], [2, 'ok'])
    assert.match((await stanza.waldenOk(['verify'])).stdout, /stanza multi repo1: ok\n[^]*stanza multi repo2: ok\n$/)
  })

  test("expire applies each repository's own retention; --repo expires that one alone", async () => {
    // A second full backup in each, taken while no retention is set, so none expires yet.
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.waldenOk(['backup', '--type=full', '--repo=2'])
    const before1 = await labelsIn(stanza.repoPath, stanza.name)
    const before2 = await labelsIn(repo2, stanza.name)
    assert.equal(before1.length, 2)
    assert.equal(before2.length, 2)

    await configure([...repo2Lines(), 'repo1-retention-full=1', 'repo2-retention-full=2'])
    await stanza.waldenOk(['expire'])
    assert.deepEqual(await labelsIn(stanza.repoPath, stanza.name), before1.slice(1))
    assert.deepEqual(await labelsIn(repo2, stanza.name), before2)

    await configure([...repo2Lines(), 'repo1-retention-full=1', 'repo2-retention-full=1'])
    await stanza.waldenOk(['expire', '--repo=1'])
    assert.deepEqual(await labelsIn(repo2, stanza.name), before2, '--repo=1 leaves repo2 alone')
    const expired = await stanza.waldenOk(['expire', '--log-level-console=info'])
    assert.match(expired.stderr, new RegExp(`repo2: expired backup ${before2[0]}`))
    assert.deepEqual(await labelsIn(repo2, stanza.name), before2.slice(1))
    await assert.rejects(stat(join(repo2, 'backup', stanza.name, before2[0]!)), { code: 'ENOENT' })
    await configure(repo2Lines())
  })

  test("a wrong passphrase is named as repo2's; archive-get from repo1 never needs it", async () => {
    const env = { WALDEN_REPO2_CIPHER_PASS: 'not-the-passphrase' }
    const checked = await stanza.walden(['check'], { env })
    assertFailed(checked, 95, /ERROR: \[095\]: repo2: wrong passphrase: repo2-cipher-pass does not unlock stanza 'multi'/)
    assert.ok(!checked.stderr.includes(PASS) && !checked.stderr.includes(env.WALDEN_REPO2_CIPHER_PASS), 'no passphrase in the output')
    const segment = await lastArchived()
    const dest = join(await stanza.dir.mkdir('get-wrong-pass'), segment)
    const fetched = await stanza.walden(['archive-get', segment, dest], { env })
    assert.equal(fetched.code, 0, fetched.stderr)
  })

  test('stanza-delete --repo=2 removes the stanza from repo2 alone; info then shows it missing there; stanza-create restores it', async () => {
    await stanza.waldenOk(['stanza-delete', '--repo=2', '--force'])
    await assert.rejects(stat(join(repo2, 'archive', stanza.name)), { code: 'ENOENT' })
    assert.ok((await labelsIn(stanza.repoPath, stanza.name)).length > 0, 'repo1 keeps its backups')
    const info = await stanza.walden(['info', '--output=json'])
    assert.equal(info.code, 103, info.stderr)
    const entry = (JSON.parse(info.stdout) as Array<{ status: { code: number }; repo: Array<{ key: number; status: { code: number } }> }>)[0]!
    assert.equal(entry.status.code, 4)
    assert.deepEqual(entry.repo.map((repo) => [repo.key, repo.status.code]), [
      [1, 0],
      [2, 1],
    ])
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['check'])
    // Back in repo2, with no backups there yet.
    const after = (JSON.parse((await stanza.walden(['info', '--output=json'])).stdout) as typeof entry[])[0]!
    assert.deepEqual(after.repo.map((repo) => [repo.key, repo.status.code]), [
      [1, 0],
      [2, 2],
    ])
  })
})
