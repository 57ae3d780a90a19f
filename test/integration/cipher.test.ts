// Client-side encryption (repo1-cipher-type=aes-256-gcm) on real PostgreSQL 15 clusters: a passphrase stanza through
// archive-push, full and incr backups, delta restore and point-in-time recovery, with the repository searched for a
// known plaintext; the errors for a missing or wrong key and for a damaged file; and the public-key mode, where
// backup and archive-push hold only the public key.

import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmod, chown, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase, runWalden } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const PASS = 'correct-horse-battery-staple-7f3a9c'
// Distinctive text inserted into a table: it must not appear in any repository file.
const SECRET = 'WALDEN-PLAINTEXT-CANARY-4b1d7e'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

/** The config file with a secret in it: owned by postgres (walden's user), mode 0600. */
async function privateConfig(stanza: TestStanza, extra: string[]): Promise<void> {
  await stanza.writeConfig(extra)
  const { uid, gid } = postgresIds()
  await chown(stanza.configPath, uid, gid)
  await chmod(stanza.configPath, 0o600)
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

/** Repository files containing `needle`, as bytes. */
async function filesContaining(root: string, needle: string): Promise<string[]> {
  const found: string[] = []
  for (const file of await filesUnder(root)) if ((await readFile(file)).includes(needle)) found.push(file)
  return found
}

function assertCleanError(result: { code: number; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, result.stderr)
  assert.match(result.stderr, pattern)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

describe('passphrase-encrypted repository', () => {
  let stanza: TestStanza

  before(async () => {
    // compress-type=none: with encryption off, the repository would hold the table's pages as they are, so the
    // plaintext search below would find SECRET (checked: it is in the cluster's own files).
    stanza = await createTestStanza({ major: MAJOR, compressType: 'none' })
    await privateConfig(stanza, ['repo1-cipher-type=aes-256-gcm', `repo1-cipher-pass=${PASS}`])
    await stanza.cluster.query(
      `create table vault (id int primary key, note text not null);
       insert into vault select n, '${SECRET} ' || n from generate_series(1, 20000) n;`,
    )
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('stanza-create records the cipher; info shows it; archive-push, full and incr backups run', async () => {
    await stanza.waldenOk(['stanza-create'])
    const archiveInfo = JSON.parse(await readFile(join(stanza.repoPath, 'archive', stanza.name, 'archive.info'), 'utf8')) as {
      content: { cipher?: { type: string; passphrase?: { kdf: string; repoKey: string } } }
    }
    assert.equal(archiveInfo.content.cipher?.type, 'aes-256-gcm')
    assert.equal(archiveInfo.content.cipher?.passphrase?.kdf, 'scrypt')
    await stanza.waldenOk(['check'])
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.cluster.query(`update vault set note = note || ' changed' where id <= 100`)
    await stanza.waldenOk(['backup', '--type=incr'])
    const info = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<{ cipher: string; backup: Array<{ type: string }> }>
    assert.equal(info[0]!.cipher, 'aes-256-gcm')
    assert.deepEqual(info[0]!.backup.map((backup) => backup.type), ['full', 'incr'])
    assert.match((await stanza.waldenOk(['info'])).stdout, /cipher: aes-256-gcm/)
  })

  test('no repository file holds the plaintext, while the cluster does', async () => {
    await stanza.waldenOk(['check'])
    const relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('vault')`)
    assert.ok((await readFile(join(stanza.cluster.dataDir, relation))).includes(SECRET), 'the canary is in the cluster in clear')
    const files = await filesUnder(stanza.repoPath)
    assert.ok(files.some((file) => file.includes('/archive/')) && files.some((file) => file.endsWith('backup.manifest')))
    assert.deepEqual(await filesContaining(stanza.repoPath, SECRET), [])
    // Manifests are sealed too: file names of the cluster are not readable in them.
    assert.deepEqual(await filesContaining(join(stanza.repoPath, 'backup'), 'pg_data/'), [])
  })

  test('the passphrase is refused on the command line and never reaches logs, argv or restore_command', async () => {
    const refused = await stanza.walden(['info', `--repo1-cipher-pass=${PASS}`])
    assertCleanError(refused, 31, /option '--repo1-cipher-pass' is secret and may not be given on the command line/)
    assert.ok(!refused.stderr.includes(PASS))
    // Seen by every process of the host while a backup runs: no walden process carries it in its argv.
    const running = stanza.walden(['backup', '--type=full'])
    let sampled = 0
    for (let round = 0; round < 40; round++) {
      for (const pid of await readdir('/proc').catch(() => [])) {
        if (!/^\d+$/.test(pid)) continue
        const cmdline = await readFile(`/proc/${pid}/cmdline`).catch(() => Buffer.alloc(0))
        if (cmdline.includes('walden')) sampled++
        assert.ok(!cmdline.includes(PASS), `process ${pid} has the passphrase in its argv`)
      }
      await sleep(50)
    }
    assert.equal((await running).code, 0)
    assert.ok(sampled > 0, 'walden processes were seen')
    const logs = await filesUnder(join(stanza.dir.path, 'log'))
    assert.ok(logs.length > 0)
    for (const log of logs) {
      const text = await readFile(log, 'utf8')
      assert.ok(!text.includes(PASS), `${log} holds the passphrase`)
    }
    // Something of the option echo was logged, redacted.
    assert.ok((await Promise.all(logs.map((log) => readFile(log, 'utf8')))).some((text) => text.includes('command begin')))
  })

  test('a missing key, a wrong passphrase and a cipher-type of none each give one clear error before any write', async () => {
    const plainConfig = join(stanza.dir.path, 'nopass.conf')
    const text = (await readFile(stanza.configPath, 'utf8')).replace(/^repo1-cipher-pass=.*\n/m, '')
    await writeFile(plainConfig, text)
    await chown(plainConfig, postgresIds().uid, postgresIds().gid)
    const before = (await filesUnder(stanza.repoPath)).length
    const noPass = await runWalden([`--config=${plainConfig}`, `--stanza=${stanza.name}`, 'backup'])
    assertCleanError(noPass, 95, /repo1-cipher-type=aes-256-gcm needs a key/)
    const noType = await stanza.walden(['backup', '--repo1-cipher-type=none'])
    assertCleanError(noType, 95, /stanza 'demo' is encrypted \(aes-256-gcm\); set repo1-cipher-type=aes-256-gcm/)
    const wrong = await stanza.walden(['backup'], { env: { WALDEN_REPO1_CIPHER_PASS: 'not-the-passphrase' } })
    assertCleanError(wrong, 95, /wrong passphrase: repo1-cipher-pass does not unlock stanza 'demo'/)
    const wrongRestore = await stanza.walden(['info'], { env: { WALDEN_REPO1_CIPHER_PASS: 'not-the-passphrase' } })
    assert.match(wrongRestore.stdout + wrongRestore.stderr, /wrong passphrase/)
    assert.equal((await filesUnder(stanza.repoPath)).length, before, 'nothing was written')
  })

  test('restore with delta equals the dump; point-in-time recovery through archive-get', async () => {
    const dump = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await rm(join(stanza.cluster.dataDir, 'base'), { recursive: true, force: true })
    await stanza.waldenOk(['restore', '--delta'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)

    await stanza.waldenOk(['backup', '--type=incr'])
    await stanza.cluster.query(`create table precious (id int); insert into precious select generate_series(1, 500)`)
    await sleep(1100)
    const target = await stanza.cluster.psqlScalar(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
    await sleep(1100)
    await stanza.cluster.query('drop table precious')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', '--type=time', `--target=${target}`, '--target-action=promote'])
    const autoConf = await readFile(join(stanza.cluster.dataDir, 'postgresql.auto.conf'), 'utf8')
    assert.ok(!autoConf.includes(PASS), 'restore_command does not carry the passphrase')
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from precious'), '500')
    await stanza.waldenOk(['expire', '--repo1-retention-full=1'])
  })

  test('a flipped byte in a stored backup file fails the restore, naming that file', async () => {
    await stanza.waldenOk(['backup', '--type=full'])
    const relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('vault')`)
    await stanza.cluster.stop()
    const labels = (await readdir(join(stanza.repoPath, 'backup', stanza.name))).filter((entry) => /^\d{8}-\d{6}F$/.test(entry)).sort()
    const stored = join(stanza.repoPath, 'backup', stanza.name, labels.at(-1)!, 'pg_data', relation)
    // verify reads the encrypted repository through the same keys: whole before the damage, the file named after.
    const clean = await stanza.walden(['verify'])
    assert.equal(clean.code, 0, clean.stdout + clean.stderr)
    const original = await readFile(stored)
    const damaged = Buffer.from(original)
    const at = Math.floor(original.length / 2)
    damaged[at] = damaged[at]! ^ 0x01
    await writeFile(stored, damaged)
    try {
      const verified = await stanza.walden(['verify'])
      assert.equal(verified.code, 93, verified.stdout + verified.stderr)
      assert.ok(verified.stdout.includes(`'${stored}' failed authentication`), verified.stdout)
      await rm(join(stanza.cluster.dataDir, relation))
      const result = await stanza.walden(['restore', '--delta'])
      assert.equal(result.code, 95, result.stderr)
      assert.ok(result.stderr.includes(`'${stored}' failed authentication: damaged or encrypted with another key`), result.stderr)
      assert.doesNotMatch(result.stderr, /\n\s+at /)
    } finally {
      await writeFile(stored, original)
    }
    // The failed restore left the folder without pg_control, as any interrupted restore does.
    await stanza.waldenOk(['restore', '--delta', '--force'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await stanza.cluster.psqlScalar(`select count(*) from vault where note like '${SECRET}%'`), '20000')
  })
})

describe('public-key repository', () => {
  let stanza: TestStanza
  let privatePath: string
  let publicPath: string

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'pub', compressType: 'zst' })
    const keys = await stanza.dir.mkdir('keys')
    privatePath = join(keys, 'private.pem')
    publicPath = join(stanza.dir.path, 'public.pem')
    execFileSync('openssl', ['genpkey', '-algorithm', 'X25519', '-out', privatePath])
    execFileSync('openssl', ['pkey', '-in', privatePath, '-pubout', '-out', publicPath])
    // The private key is root's alone while backups run: walden (as postgres) cannot read it.
    await chown(keys, 0, 0)
    await chmod(privatePath, 0o600)
    await chmod(publicPath, 0o644)
    const spool = await stanza.dir.mkdir('spool')
    await privateConfig(stanza, ['repo1-cipher-type=aes-256-gcm', `repo1-cipher-public-key=${publicPath}`, 'archive-async=y', `spool-path=${spool}`])
    await stanza.cluster.query(`create table vault (id int primary key, note text); insert into vault select n, '${SECRET} ' || n from generate_series(1, 5000) n;`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('stanza-create, async archive-push and backups need only the public key', async () => {
    assert.equal(spawnSync('runuser', ['-u', 'postgres', '--', 'cat', privatePath]).status !== 0, true, 'postgres cannot read the private key')
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['check'])
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.cluster.query(`update vault set note = note || ' changed' where id <= 10`)
    await stanza.waldenOk(['backup', '--type=incr'])
    assert.deepEqual(await filesContaining(stanza.repoPath, SECRET), [])
    // zst output would hide the canary anyway: every stored file and WAL segment must be in walden's sealed format.
    // Checksum records of history and backup history files (<name>.sha256-<hex>) are empty: their name is all they hold.
    const records = (await filesUnder(stanza.repoPath)).filter((file) => /\.sha256-[0-9a-f]{64}$/.test(file))
    for (const record of records) assert.equal((await readFile(record)).length, 0, record)
    const stored = (await filesUnder(stanza.repoPath)).filter((file) => !/\.info(\.copy)?$|backup\.manifest(\.copy)?$|\.sha256-[0-9a-f]{64}$/.test(file))
    assert.ok(stored.length > 10 && stored.some((file) => file.includes('/archive/')))
    for (const file of stored) assert.equal((await readFile(file)).subarray(0, 8).toString('latin1'), 'WALDENC\x01', file)
    // Without a passphrase the manifests stay readable to the writer (the incr backup above read the full's).
    const labels = (await readdir(join(stanza.repoPath, 'backup', stanza.name))).filter((entry) => /^\d{8}-\d{6}F$/.test(entry))
    assert.match(await readFile(join(stanza.repoPath, 'backup', stanza.name, labels[0]!, 'backup.manifest'), 'utf8'), /pg_data\//)
  })

  test('restore needs the private key; with it, the cluster comes back equal', async () => {
    const dump = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await rm(join(stanza.cluster.dataDir, 'base'), { recursive: true, force: true })
    const without = await stanza.walden(['restore', '--delta'])
    assert.notEqual(without.code, 0)
    assert.match(without.stderr, /encrypted to the repository's public key; reading it needs the private key/)
    assert.doesNotMatch(without.stderr, /\n\s+at /)

    const { uid, gid } = postgresIds()
    await chown(join(stanza.dir.path, 'keys'), uid, gid)
    await chown(privatePath, uid, gid)
    const spool = join(stanza.dir.path, 'spool')
    await privateConfig(stanza, ['repo1-cipher-type=aes-256-gcm', `repo1-cipher-private-key=${privatePath}`, 'archive-async=y', `spool-path=${spool}`])
    // A private key others can read is refused.
    await chmod(privatePath, 0o644)
    assertCleanError(await stanza.walden(['info']), 27, /repo1-cipher-private-key '.*' is readable by other users/)
    await chmod(privatePath, 0o600)
    assert.ok(((await stat(privatePath)).mode & 0o077) === 0)

    await stanza.waldenOk(['restore', '--delta', '--force'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
  })
})
