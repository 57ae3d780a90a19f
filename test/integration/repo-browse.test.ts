// repo-ls and repo-get against pgBackRest 2.45's own: on a real PostgreSQL 15 stanza's folder repository, pgbackrest
// (Debian's, run on the same folder) and walden must print the same bytes and exit the same way for the calls
// check_pgbackrest makes and for the options around them; a bucket on a real Ceph RADOS Gateway lists the same through
// both too. walden refuses paths that lead out of the repository, selects a repository with --repo, and decrypts
// what it sealed (repo-get of an encrypted repository's WAL gives the bytes the unencrypted one stores).

import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmod, chown, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { testDir } from '../harness/cluster.js'
import type { TestDir } from '../harness/cluster.js'
import { s3Gateway } from '../harness/s3.js'
import type { S3Gateway } from '../harness/s3.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'
import { S3Storage } from '../../src/storage/s3.js'

const MAJOR = 15
const PASS = 'repo-browse-test-passphrase-0123456789'

interface Output {
  code: number
  stdout: Buffer
  stderr: string
}

/** Runs a program as `user` with stdout as bytes (repo-get of a compressed file is not text). */
function runBytes(user: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Output {
  const [file, argv] = user === 'root' ? [command, [...args]] : ['runuser', ['-u', user, '--', command, ...args]]
  const result = spawnSync(file, argv, { env: { ...process.env, LC_ALL: 'C', ...env }, cwd: '/tmp', maxBuffer: 256 * 1024 * 1024, timeout: 120_000 })
  return { code: result.status ?? 128, stdout: result.stdout, stderr: result.stderr.toString('utf8') }
}

/** Debian's pgBackRest 2.45 on a repository, with no config file and no file log, as root (it only reads). */
function pgbackrest(repoLines: readonly string[], args: readonly string[], env: NodeJS.ProcessEnv = {}): Output {
  return runBytes('root', 'pgbackrest', ['--config=/dev/null', '--log-level-console=warn', '--log-level-file=off', ...repoLines, ...args], env)
}

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name)
    if (entry.isDirectory()) out.push(...(await filesUnder(path)))
    else if (entry.isFile()) out.push(path)
  }
  return out
}

describe(`repo-ls and repo-get beside pgBackRest 2.45 on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let label: string
  let segment: string
  let repo2: string

  const walden = (args: readonly string[]): Output =>
    runBytes('postgres', process.execPath, [join(import.meta.dirname, '../../bin/walden'), `--config=${stanza.configPath}`, `--stanza=${stanza.name}`, ...args])

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'browse' })
    await stanza.waldenOk(['stanza-create'])
    const check = await stanza.waldenOk(['check'])
    segment = /WAL segment ([0-9A-F]{24}) archived/.exec(check.stdout)![1]!
    await stanza.waldenOk(['backup', '--type=full'])
    label = /^(\d{8}-\d{6}F)$/m.exec((await readdir(join(stanza.repoPath, 'backup', stanza.name))).join('\n'))![1]!
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('the same output and exit status as pgbackrest for the calls check_pgbackrest makes and the options around them', () => {
    const name = stanza.name
    const calls: string[][] = [
      ['repo-ls'],
      ['repo-ls', '--output=json'],
      ['repo-ls', '--recurse', '--output=json'],
      ['repo-ls', '--recurse'],
      ['repo-ls', `archive/${name}`, '--recurse', '--output=json'],
      ['repo-ls', `backup/${name}`, '--output=json'],
      ['repo-ls', '--recurse', '--sort=desc'],
      ['repo-ls', `archive/${name}`, '--recurse', '--sort=desc', '--output=json'],
      ['repo-ls', '--recurse', '--filter=\\.info$', '--output=json'],
      ['repo-ls', `${stanza.repoPath}/backup`, '--output=json'],
      ['repo-ls', `backup/${name}/backup.info`, '--output=json'],
      ['repo-ls', `backup/${name}/backup.info`],
      ['repo-ls', 'nothere', '--output=json'],
      ['repo-ls', 'nothere'],
      ['repo-get', `backup/${name}/backup.info`],
      ['repo-get', `backup/${name}/${label}/backup.manifest`],
      ['repo-get', `archive/${name}/archive.info`],
      ['repo-get', `${stanza.repoPath}/archive/${name}/archive.info`],
      ['repo-get', 'nothere', '--ignore-missing'],
      ['repo-get', 'nothere'],
    ]
    const differences: string[] = []
    for (const call of calls) {
      const ours = walden(call)
      const theirs = pgbackrest([`--repo1-path=${stanza.repoPath}`, `--stanza=${name}`], call)
      if (ours.code !== theirs.code || !ours.stdout.equals(theirs.stdout)) {
        differences.push(`${call.join(' ')}:\n  walden (${ours.code}): ${ours.stdout.toString()}${ours.stderr}\n  pgbackrest (${theirs.code}): ${theirs.stdout.toString()}${theirs.stderr}`)
      }
    }
    assert.deepEqual(differences, [])
    // A check that compares nothing would pass too: the listing has the backup and the segment.
    const listing = JSON.parse(walden(['repo-ls', '--recurse', '--output=json']).stdout.toString()) as Record<string, { type: string }>
    assert.equal(listing[`backup/${name}/${label}`]?.type, 'path')
    assert.ok(Object.keys(listing).some((key) => key.includes(`/${segment}-`)), 'the archived segment is listed')
  })

  test('a compressed WAL segment comes out as stored, byte for byte, as from pgbackrest', async () => {
    const stored = (await filesUnder(join(stanza.repoPath, 'archive'))).find((file) => file.includes(`/${segment}-`))!
    const path = stored.slice(stanza.repoPath.length + 1)
    const ours = walden(['repo-get', path])
    assert.equal(ours.code, 0, ours.stderr)
    assert.ok(ours.stdout.equals(await readFile(stored)))
    assert.ok(ours.stdout.equals(pgbackrest([`--repo1-path=${stanza.repoPath}`], ['repo-get', path]).stdout))
  })

  test('paths out of the repository, folders and missing files get one clear line each', () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['repo-ls', '..'], 69, /ERROR: \[069\]: path '\.\.' leads out of the repository\nHINT: /],
      [['repo-ls', 'archive/../../..', '--recurse'], 69, /path 'archive\/\.\.\/\.\.\/\.\.' leads out of the repository/],
      [['repo-get', '/etc/passwd'], 69, new RegExp(`absolute path '/etc/passwd' is not in the repository '${stanza.repoPath}'`)],
      [['repo-get', `backup/${stanza.name}`], 28, /is a folder, not a file/],
      [['repo-get', 'nothere'], 55, new RegExp(`unable to open missing file '${stanza.repoPath}/nothere' for read`)],
      [['repo-ls', '--filter=['], 32, /option 'filter' is not a valid regular expression/],
    ]
    for (const [args, code, pattern] of cases) {
      const result = walden(args)
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`)
      assert.equal(result.stdout.length, 0)
      assert.match(result.stderr, pattern)
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
    }
  })

  test('a reader that stops early (| head) ends repo-get quietly, without an error or a stack trace', async () => {
    const manifest = join(stanza.repoPath, 'backup', stanza.name, label, 'backup.manifest')
    // Larger than a pipe's buffer, so the write after head has gone fails with EPIPE.
    assert.ok((await readFile(manifest)).length > 256 * 1024)
    const bin = join(import.meta.dirname, '../../bin/walden')
    const command = `set -o pipefail; runuser -u postgres -- '${process.execPath}' '${bin}' --config='${stanza.configPath}' repo-get 'backup/${stanza.name}/${label}/backup.manifest' | head -c 10`
    const result = spawnSync('bash', ['-c', command], { cwd: '/tmp', encoding: 'utf8', timeout: 60_000 })
    assert.equal(result.stderr, '')
    assert.equal(result.status, 0)
    assert.equal(result.stdout.length, 10)
  })

  describe('with an encrypted second repository', () => {
    let sealedPath: string

    before(async () => {
      repo2 = await stanza.dir.mkdir('repo2')
      const { uid, gid } = postgresIds()
      await chown(repo2, uid, gid)
      await stanza.writeConfig([`repo2-path=${repo2}`, 'repo2-cipher-type=aes-256-gcm', `repo2-cipher-pass=${PASS}`])
      await chown(stanza.configPath, uid, gid)
      await chmod(stanza.configPath, 0o600)
      await stanza.waldenOk(['stanza-create', '--repo=2'])
      const check = await stanza.waldenOk(['check'])
      segment = /WAL segment ([0-9A-F]{24}) archived/.exec(check.stdout)![1]!
      await stanza.waldenOk(['backup', '--type=full', '--repo=2'])
      sealedPath = (await filesUnder(join(repo2, 'archive'))).find((file) => file.includes(`/${segment}-`))!.slice(repo2.length + 1)
    })

    test('--repo selects the repository listed; two repositories are refused', () => {
      const one = walden(['repo-ls', `archive/${stanza.name}`, '--recurse'])
      const two = walden(['repo-ls', `archive/${stanza.name}`, '--recurse', '--repo=2'])
      assert.equal(two.code, 0, two.stderr)
      assert.ok(two.stdout.toString().split('\n').includes(sealedPath.slice(`archive/${stanza.name}/`.length)))
      assert.notEqual(one.stdout.toString(), two.stdout.toString())
      const both = walden(['repo-ls', '--repo=1,2'])
      assert.equal(both.code, 32, both.stderr)
      assert.match(both.stderr, /repo-ls reads one repository; option 'repo' names 2 \('1,2'\)/)
    })

    test('repo-get decrypts but does not decompress: the sealed segment gives the bytes the clear repository stores; --raw the sealed bytes', async () => {
      const sealed = await readFile(join(repo2, sealedPath))
      assert.equal(sealed.subarray(0, 7).toString('latin1'), 'WALDENC')
      const clear = await readFile(join(stanza.repoPath, sealedPath))
      const opened = walden(['repo-get', '--repo=2', sealedPath])
      assert.equal(opened.code, 0, opened.stderr)
      assert.ok(opened.stdout.equals(clear), 'decrypted and still compressed, as repo1 stores it')
      const raw = walden(['repo-get', '--repo=2', '--raw', sealedPath])
      assert.ok(raw.stdout.equals(sealed))
      // Without --stanza, the stanza is the one the path names.
      const noStanza = runBytes('postgres', process.execPath, [join(import.meta.dirname, '../../bin/walden'), `--config=${stanza.configPath}`, '--repo=2', 'repo-get', sealedPath])
      assert.equal(noStanza.code, 0, noStanza.stderr)
      assert.ok(noStanza.stdout.equals(clear))
    })

    test('a sealed manifest comes out as its text; without the passphrase, one clear error', async () => {
      const labels = (await readdir(join(repo2, 'backup', stanza.name))).filter((name) => /F$/.test(name))
      const manifest = walden(['repo-get', '--repo=2', `backup/${stanza.name}/${labels[0]}/backup.manifest`])
      assert.equal(manifest.code, 0, manifest.stderr)
      assert.match(manifest.stdout.toString(), new RegExp(`"${labels[0]}"`))
      const result = runBytes('postgres', process.execPath, [join(import.meta.dirname, '../../bin/walden'), `--config=${stanza.configPath}`, '--repo=2', 'repo-get', sealedPath], {
        WALDEN_REPO2_CIPHER_TYPE: 'none',
      })
      assert.equal(result.code, 95, result.stderr)
      assert.match(result.stderr, /is encrypted \(aes-256-gcm\); set repo2-cipher-type=aes-256-gcm/)
      assert.equal(result.stdout.length, 0)
    })
  })
})

describe('repo-ls on S3 beside pgBackRest 2.45', () => {
  let gateway: S3Gateway
  let bucket: string
  let dir: TestDir

  before(async () => {
    gateway = await s3Gateway()
    bucket = await gateway.bucket('repo-ls')
    dir = await testDir('walden-repo-ls-s3')
    const storage = new S3Storage(gateway.location(bucket, { path: '/walden' }))
    await storage.write('archive/demo/archive.info', 'x\n')
    await storage.write('archive/demo/15-1/0000000100000000/000000010000000000000001-abc.zst', Buffer.alloc(1000, 7))
    await storage.write('archive/demo/15-1/00000002.history', '1\t0/3000000\tno recovery target specified\n')
    await storage.write('backup/demo/backup.info', 'y\n')
    await storage.write('backup/demo/20261203-100000F/backup.manifest', 'z\n')
  })
  after(async () => {
    await dir?.cleanup()
  })

  test('the same listings as pgbackrest on the same bucket', () => {
    const port = Number(new URL(gateway.tlsEndpoint).port)
    const theirs = [
      '--repo1-type=s3',
      `--repo1-s3-bucket=${bucket}`,
      // 2.45 matches names only, not IP addresses, against the certificate (its SAN has DNS:localhost too).
      '--repo1-s3-endpoint=localhost',
      `--repo1-storage-port=${port}`,
      `--repo1-storage-ca-file=${gateway.caFile}`,
      '--repo1-s3-region=us-east-1',
      '--repo1-s3-uri-style=path',
      '--repo1-path=/walden',
    ]
    const theirEnv = { PGBACKREST_REPO1_S3_KEY: gateway.accessKey, PGBACKREST_REPO1_S3_KEY_SECRET: gateway.secretKey }
    const ourEnv = {
      WALDEN_REPO1_TYPE: 's3',
      WALDEN_REPO1_S3_BUCKET: bucket,
      WALDEN_REPO1_S3_ENDPOINT: gateway.endpoint,
      WALDEN_REPO1_S3_REGION: 'us-east-1',
      WALDEN_REPO1_S3_URI_STYLE: 'path',
      WALDEN_REPO1_PATH: '/walden',
      WALDEN_REPO1_S3_KEY: gateway.accessKey,
      WALDEN_REPO1_S3_KEY_SECRET: gateway.secretKey,
    }
    const calls = [
      ['repo-ls', '--recurse', '--output=json'],
      ['repo-ls', 'archive/demo', '--output=json'],
      ['repo-ls', 'archive/demo', '--recurse', '--sort=desc'],
      ['repo-ls', 'archive/demo/archive.info', '--output=json'],
      ['repo-ls', '/walden/backup', '--recurse', '--filter=manifest', '--output=json'],
      ['repo-get', 'archive/demo/15-1/00000002.history'],
    ]
    const differences: string[] = []
    for (const call of calls) {
      const ours = runBytes('root', process.execPath, [join(import.meta.dirname, '../../bin/walden'), '--config=/dev/null', `--log-path=${dir.path}`, ...call], ourEnv)
      const their = pgbackrest(theirs, call, theirEnv)
      if (ours.code !== their.code || !ours.stdout.equals(their.stdout) || their.code !== 0) {
        differences.push(`${call.join(' ')}:\n  walden (${ours.code}): ${ours.stdout.toString()}${ours.stderr}\n  pgbackrest (${their.code}): ${their.stdout.toString()}${their.stderr}`)
      }
    }
    assert.deepEqual(differences, [])
  })
})
