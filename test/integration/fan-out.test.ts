// Several repositories on one real PostgreSQL 15 cluster: repo1 a plain folder, repo2 a folder encrypted with a
// passphrase. A fan-out backup (--repo=all) reads the cluster once and gives each repository a complete backup of its
// own (same label, own manifest and backup.info); each restores alone to a pg_dump-equal cluster; restore without
// --repo takes the first repository that has a backup; a file deleted or damaged in repo1 is taken from repo2 with a
// warning (a delta restore too), and the restore fails only when neither has it; a repository that cannot be written
// drops out of a backup, which completes in the other and exits non-zero naming it.
//
// Until archive-push stores in every repository (issue #12, being built alongside), archive_command pushes each
// segment twice: with the stanza's config (repo1) and with a second config that names repo2 as its repo1. The same
// second config creates repo2's stanza, with repo2's encryption.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { chmod, chown, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase, runWalden, waldenCommand } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const PASS = 'fan-out-repo2-passphrase-51c9e0'
const CANARY = 'WALDEN-FANOUT-CANARY-7d21'
const CIPHER_MAGIC = Buffer.from('WALDENC\x01', 'latin1')
const LABEL = /^\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?$/

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

/** A config file holding a passphrase: owned by postgres (walden's user), mode 0600. */
async function privateFile(path: string, text: string): Promise<void> {
  await writeFile(path, text)
  const { uid, gid } = postgresIds()
  await chown(path, uid, gid)
  await chmod(path, 0o600)
}

interface BackupRecordJson {
  label: string
  type: string
  prior: string | null
  size: number
  repoDelta: number
  lsnStart: string
  lsnStop: string
}

interface InfoEnvelope {
  format: number
  checksum: string
  content: { backups: BackupRecordJson[] }
}

async function backupInfo(repoPath: string): Promise<InfoEnvelope> {
  return JSON.parse(await readFile(join(repoPath, 'backup', 'demo', 'backup.info'), 'utf8')) as InfoEnvelope
}

async function labels(repoPath: string): Promise<string[]> {
  return (await backupInfo(repoPath)).content.backups.map((backup) => backup.label)
}

/** rchar and wchar of /proc/self/io: bytes passed through read() and write() calls, whatever the page cache did. */
function ioParse(text: string): { rchar: number; wchar: number } {
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)![1])
  return { rchar: field('rchar'), wchar: field('wchar') }
}

function assertNoStack(result: RunResult): void {
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

describe(`several repositories on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let repo1: string
  let repo2: string
  let repo2Config: string
  let ioReport: string
  let ioPreload: string
  // The latest fan-out backups, in order.
  let full: string
  let incr: string
  let relation: string
  let dump: string

  /** walden with repo2 named as repo1 (see the file comment). */
  const asRepo2 = (args: string[]): Promise<RunResult> => runWalden([`--config=${repo2Config}`, '--stanza=demo', ...args])

  /** Runs walden with the I/O report preload: returns its result and the process's /proc/self/io at exit. */
  async function measured(args: string[]): Promise<{ result: RunResult; io: { rchar: number; wchar: number }; ms: number }> {
    await rm(ioReport, { force: true })
    const started = Date.now()
    const result = await stanza.waldenOk(args, { env: { NODE_OPTIONS: `--import=${ioPreload}`, FANOUT_TEST_IO_REPORT: ioReport } })
    return { result, io: ioParse(await readFile(ioReport, 'utf8')), ms: Date.now() - started }
  }

  /** Stops the cluster, empties its data folder, restores with `args`, starts it again and returns the restore's result. */
  async function restoreFresh(args: string[], options: { hideRepo?: string } = {}): Promise<RunResult> {
    await stanza.cluster.stop()
    for (const entry of await readdir(stanza.cluster.dataDir)) await rm(join(stanza.cluster.dataDir, entry), { recursive: true, force: true })
    // A repository moved away while restoring: the restore can only have read the other one.
    const hidden = options.hideRepo === undefined ? undefined : `${options.hideRepo}.hidden`
    if (hidden) await rename(options.hideRepo!, hidden)
    let result: RunResult
    try {
      result = await stanza.waldenOk(['restore', '--log-level-console=info', ...args])
    } finally {
      if (hidden) await rename(hidden, options.hideRepo!)
    }
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    return result
  }

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, compressType: 'lz4' })
    repo1 = stanza.repoPath
    repo2 = await stanza.dir.mkdir('repo2')
    await stanza.writeConfig(['repo2-path=' + repo2, 'repo2-cipher-type=aes-256-gcm', `repo2-cipher-pass=${PASS}`])
    const { uid, gid } = postgresIds()
    await chown(stanza.configPath, uid, gid)
    await chmod(stanza.configPath, 0o600)
    const text = await readFile(stanza.configPath, 'utf8')
    repo2Config = join(stanza.dir.path, 'repo2-as-repo1.conf')
    await privateFile(
      repo2Config,
      text
        .replace(/^repo1-path=.*$/m, `repo1-path=${repo2}`)
        .replace(/^repo2-path=.*\n/m, '')
        .replaceAll(/^repo2-cipher-/gm, 'repo1-cipher-'),
    )
    // Counts the bytes a walden process reads and writes, reported when it exits (worker threads included: the
    // kernel adds a finished thread's counts to its process).
    ioPreload = join(stanza.dir.path, 'io-report.mjs')
    ioReport = join(stanza.dir.path, 'io-report.txt')
    await writeFile(
      ioPreload,
      `import { readFileSync, writeFileSync } from 'node:fs'\n` +
        `import { isMainThread } from 'node:worker_threads'\n` +
        `const out = process.env.FANOUT_TEST_IO_REPORT\n` +
        `if (isMainThread && out) process.on('exit', () => writeFileSync(out, readFileSync('/proc/self/io')))\n`,
    )
    await chmod(ioPreload, 0o644)
    const push = (config: string): string => `${waldenCommand()} --config=${config} --stanza=demo archive-push %p`
    await stanza.cluster.configure({ archive_command: `${push(stanza.configPath)} && ${push(repo2Config)}` })
    await stanza.cluster.query('select pg_reload_conf()')

    // About 60 MB of cluster, so one read more of it could not hide in the noise of a process's other reads.
    await stanza.cluster.query(
      `create table ledger (id int primary key, note text not null);
       insert into ledger select n, '${CANARY} ' || n || repeat(md5(n::text), 2) from generate_series(1, 250000) n;`,
    )
    relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('ledger')`)
    await stanza.waldenOk(['stanza-create'])
    const created = await asRepo2(['stanza-create'])
    assert.equal(created.code, 0, created.stderr)
    await stanza.waldenOk(['check'])
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('a fan-out full backup reads the cluster once for two copies, each repository complete under one label', async (t) => {
    const single = await measured(['backup', '--type=full', '--repo=1', '--log-level-console=info'])
    const fanOut = await measured(['backup', '--type=full', '--repo=all', '--log-level-console=info'])
    const [inRepo1, inRepo2] = [await labels(repo1), await labels(repo2)]
    full = inRepo1.at(-1)!
    assert.match(full, LABEL)
    assert.deepEqual(inRepo2, [full], 'repo2 has only the fan-out backup, under the same label')
    assert.equal(inRepo1.length, 2)
    assert.match(fanOut.result.stderr, new RegExp(`backup begin: full backup ${full}, start LSN [0-9A-F/]+, to repo1, repo2`))
    assert.match(fanOut.result.stderr, new RegExp(`full backup ${full} complete in repo1:`))
    assert.match(fanOut.result.stderr, new RegExp(`full backup ${full} complete in repo2:`))

    const record1 = (await backupInfo(repo1)).content.backups.at(-1)!
    const record2 = (await backupInfo(repo2)).content.backups.at(-1)!
    assert.equal(record2.lsnStart, record1.lsnStart)
    assert.equal(record2.size, record1.size)
    const clusterBytes = record1.size
    assert.ok(clusterBytes > 50 * 1024 * 1024, `cluster of ${clusterBytes} bytes`)

    t.diagnostic(
      `cluster ${clusterBytes} B; read: single ${single.io.rchar} B, fan-out ${fanOut.io.rchar} B; ` +
        `written: single ${single.io.wchar} B, fan-out ${fanOut.io.wchar} B; repo1 stores ${record1.repoDelta} B, repo2 ${record2.repoDelta} B; ` +
        `time (not asserted, shared machine): single ${single.ms} ms, fan-out ${fanOut.ms} ms`,
    )
    // One read: the fan-out reads no more than the single backup did, give or take repo2's info files and its
    // manifest, while a second read of the cluster would add all of clusterBytes.
    assert.ok(single.io.rchar >= clusterBytes, `the single backup read ${single.io.rchar} bytes, the cluster has ${clusterBytes}`)
    const extraRead = fanOut.io.rchar - single.io.rchar
    assert.ok(extraRead < clusterBytes * 0.2, `the fan-out read ${extraRead} bytes more than the single backup (cluster: ${clusterBytes})`)
    // Two copies: the fan-out wrote repo2's copy on top of what the single backup wrote.
    const extraWritten = fanOut.io.wchar - single.io.wchar
    assert.ok(extraWritten >= record2.repoDelta * 0.95, `the fan-out wrote ${extraWritten} bytes more; repo2 stores ${record2.repoDelta}`)
    assert.match(fanOut.result.stderr, /read from the cluster once for 2 repositories/)

    // repo2 is sealed with its own key, repo1 is not; neither copy alone is missing anything.
    const stored1 = await readFile(join(repo1, 'backup', 'demo', full, 'pg_data', `${relation}.lz4`))
    const stored2 = await readFile(join(repo2, 'backup', 'demo', full, 'pg_data', `${relation}.lz4`))
    assert.ok(stored2.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC), 'repo2 copy is encrypted')
    assert.ok(!stored1.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC), 'repo1 copy is not')
    assert.ok(!stored2.includes(CANARY))
    const manifest2 = await readFile(join(repo2, 'backup', 'demo', full, 'backup.manifest'))
    assert.ok(!manifest2.includes('pg_data/'), "repo2's manifest is sealed")
    const verify2 = await asRepo2(['verify'])
    assert.equal(verify2.code, 0, verify2.stdout + verify2.stderr)
  })

  test('a fan-out incr builds on each repository\'s own prior; each repository restores alone, pg_dump-equal', async () => {
    await stanza.cluster.query(`update ledger set note = note || ' changed' where id <= 2000`)
    const result = await stanza.waldenOk(['backup', '--type=incr', '--repo=1,2'])
    incr = (await labels(repo1)).at(-1)!
    assert.match(incr, new RegExp(`^${full}_\\d{8}-\\d{6}I$`))
    assert.equal((await labels(repo2)).at(-1), incr)
    assert.equal((await backupInfo(repo1)).content.backups.at(-1)!.prior, full)
    assert.equal((await backupInfo(repo2)).content.backups.at(-1)!.prior, full)
    assert.doesNotMatch(result.stderr, /changed to full/)
    // The changed table is stored again in both; unchanged files are referenced, not stored.
    for (const repo of [repo1, repo2]) {
      await stat(join(repo, 'backup', 'demo', incr, 'pg_data', `${relation}.lz4`))
      await assert.rejects(stat(join(repo, 'backup', 'demo', incr, 'pg_data', 'PG_VERSION.lz4')))
    }

    await stanza.waldenOk(['check'])
    dump = await dumpDatabase(stanza.cluster)
    const fromRepo1 = await restoreFresh(['--repo=1'], { hideRepo: repo2 })
    assert.match(fromRepo1.stderr, new RegExp(`restore backup set ${incr} from repo1\\n`))
    assert.equal(await dumpDatabase(stanza.cluster), dump)

    const fromRepo2 = await restoreFresh(['--repo=2'], { hideRepo: repo1 })
    assert.match(fromRepo2.stderr, new RegExp(`restore backup set ${incr} from repo2\\n`))
    assert.doesNotMatch(fromRepo2.stderr, /restored it from/)
    assert.equal(await dumpDatabase(stanza.cluster), dump)
  })

  test('restore without --repo takes repo2 when repo1 has no backup', async () => {
    // repo1's backup.info as stanza-create left it: no backups (the files stay, unreferenced).
    const path = join(repo1, 'backup', 'demo', 'backup.info')
    const saved = await readFile(path)
    const savedCopy = await readFile(`${path}.copy`)
    const envelope = JSON.parse(saved.toString('utf8')) as InfoEnvelope
    envelope.content.backups = []
    envelope.checksum = createHash('sha256').update(JSON.stringify(envelope.content)).digest('hex')
    const emptied = `${JSON.stringify(envelope, null, 1)}\n`
    await writeFile(path, emptied)
    await writeFile(`${path}.copy`, emptied)
    try {
      const result = await restoreFresh([])
      assert.match(result.stderr, /WARN: repo1: the stanza has no backups to restore/)
      assert.match(result.stderr, new RegExp(`restore backup set ${incr} from repo2\\n`))
      assert.equal(await dumpDatabase(stanza.cluster), dump)
    } finally {
      await writeFile(path, saved)
      await writeFile(`${path}.copy`, savedCopy)
    }
  })

  test('a file deleted and a file damaged in repo1 are restored from repo2 with a warning naming both; delta too', async () => {
    // Damaged: a large file of the full backup the incr references (pg_proc, unchanged since); deleted: the table,
    // stored in the incr. repo1 is not encrypted, so its manifest is readable here.
    const manifest = JSON.parse(await readFile(join(repo1, 'backup', 'demo', incr, 'backup.manifest'), 'utf8')) as {
      content: { files: Array<{ name: string; size: number; reference?: string }> }
    }
    const referenced = manifest.content.files.filter((file) => file.reference === full && !file.name.includes('.') && file.size >= 256 * 1024)
    const damagedName = referenced.sort((a, b) => b.size - a.size)[0]!.name
    const deletedName = `pg_data/${relation}`
    const damagedPath = join(repo1, 'backup', 'demo', full, `${damagedName}.lz4`)
    const deletedPath = join(repo1, 'backup', 'demo', incr, `${deletedName}.lz4`)
    const original = await readFile(damagedPath)
    const broken = Buffer.from(original)
    broken[Math.floor(broken.length / 2)] ^= 0x40
    await writeFile(damagedPath, broken)
    await rm(deletedPath)

    const checkHealed = (result: RunResult): void => {
      for (const name of [damagedName, deletedName]) {
        const line = result.stderr.split('\n').find((text) => text.includes(`'${name}' could not be read there`))
        assert.ok(line, `a warning for ${name}:\n${result.stderr}`)
        assert.match(line, /WARN: repo1: /)
        assert.match(line, new RegExp(`restored it from repo2, backup ${LABEL.source.slice(1, -1)}`))
      }
      assert.ok(result.stderr.includes(deletedPath), 'the deleted file is named')
    }
    const healed = await restoreFresh([])
    assert.match(healed.stderr, new RegExp(`restore backup set ${incr} from repo1\\n`))
    checkHealed(healed)
    assert.equal(await dumpDatabase(stanza.cluster), dump)

    // Delta: only what differs is fetched, and what repo1 cannot give comes from repo2 again.
    await stanza.cluster.stop()
    await rm(join(stanza.cluster.dataDir, relation))
    await rm(join(stanza.cluster.dataDir, damagedName.slice('pg_data/'.length)))
    const delta = await stanza.waldenOk(['restore', '--delta'])
    checkHealed(delta)
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    await writeFile(damagedPath, original)
  })

  test('when no repository has a good copy, the restore fails naming the file', async () => {
    // repo1's copy of the table is still deleted (above); now repo2's goes too.
    const repo2Copy = join(repo2, 'backup', 'demo', incr, 'pg_data', `${relation}.lz4`)
    const saved = await readFile(repo2Copy)
    await rm(repo2Copy)
    try {
      await stanza.cluster.stop()
      await rm(join(stanza.cluster.dataDir, relation))
      const result = await stanza.walden(['restore', '--delta'])
      assert.equal(result.code, 55, result.stderr)
      assert.match(result.stderr, new RegExp(`no other repository holds a good copy of 'pg_data/${relation}'`))
      assert.match(result.stderr, new RegExp(`repo2: its copy of 'pg_data/${relation}' in backup ${incr} is unreadable too`))
      assertNoStack(result)
    } finally {
      await writeFile(repo2Copy, saved)
      const { uid, gid } = postgresIds()
      await chown(repo2Copy, uid, gid)
    }
    // repo2's copy is back: the same restore now heals, and the cluster is whole again. --force, not --delta: the
    // failed restore had already removed pg_control, which a delta needs to know whose files the folder holds.
    const healed = await stanza.waldenOk(['restore', '--force'])
    assert.match(healed.stderr, /restored it from repo2/)
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
  })

  test('a repository that cannot be written drops out: the backup completes in the other and exits naming it', async () => {
    const backupRoot2 = join(repo2, 'backup', 'demo')
    await stanza.cluster.query(`update ledger set note = note || ' again' where id <= 2000`)
    // walden runs as postgres: a folder it may not write makes every file of repo2 fail.
    await chmod(backupRoot2, 0o500)
    let result: RunResult
    try {
      result = await stanza.walden(['backup', '--type=incr', '--repo=all'])
    } finally {
      await chmod(backupRoot2, 0o750)
    }
    // The failed repository's error is the exit status: FileOpen, permission denied.
    assert.equal(result.code, 41, result.stderr)
    assertNoStack(result)
    const partial = (await labels(repo1)).at(-1)!
    assert.notEqual(partial, incr)
    assert.equal((await labels(repo2)).at(-1), incr, 'repo2 did not record the backup')
    assert.match(result.stderr, /ERROR: repo2: .*the backup goes on in repo1 without/)
    assert.match(result.stderr, new RegExp(`backup ${partial} failed in repo2 \\(repo2: .*\\); it completed in repo1`))

    // The next fan-out incr: each repository builds on its own latest, under the same full, and repo2 gets what it lacks.
    await stanza.waldenOk(['backup', '--type=incr', '--repo=all'])
    const next1 = (await backupInfo(repo1)).content.backups.at(-1)!
    const next2 = (await backupInfo(repo2)).content.backups.at(-1)!
    assert.equal(next1.label, next2.label)
    assert.equal(next1.prior, partial)
    assert.equal(next2.prior, incr)
    await stat(join(repo2, 'backup', 'demo', next2.label, 'pg_data', `${relation}.lz4`))
    const verify2 = await asRepo2(['verify'])
    assert.equal(verify2.code, 0, verify2.stdout + verify2.stderr)
  })

  test('after a fan-out backup each repository is expired by its own retention', async () => {
    await stanza.writeConfig(['repo2-path=' + repo2, 'repo2-cipher-type=aes-256-gcm', `repo2-cipher-pass=${PASS}`, 'repo1-retention-full=2', 'repo2-retention-full=1'])
    const { uid, gid } = postgresIds()
    await chown(stanza.configPath, uid, gid)
    await chmod(stanza.configPath, 0o600)
    const fulls = async (repo: string): Promise<string[]> => (await labels(repo)).filter((label) => label.endsWith('F'))
    await stanza.waldenOk(['backup', '--type=full', '--repo=all'])
    const first = (await fulls(repo1)).at(-1)!
    const result = await stanza.waldenOk(['backup', '--type=full', '--repo=all', '--log-level-console=info'])
    const newest = (await fulls(repo1)).at(-1)!
    // repo1-retention-full=2 keeps both new fulls there; repo2-retention-full=1 keeps only the newest.
    assert.deepEqual(await fulls(repo1), [first, newest])
    assert.deepEqual(await fulls(repo2), [newest])
    assert.match(result.stderr + result.stdout, new RegExp(`repo2: expired backup ${first}\\b`))
    assert.doesNotMatch(result.stderr + result.stdout, new RegExp(`repo1: expired backup ${first}\\b`))
  })
})
