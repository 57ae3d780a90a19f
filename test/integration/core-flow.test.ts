// The flow a new user follows, on a real cluster (Debian's PostgreSQL 15, which has pg_dump): stanza-create,
// check, backups, info, disaster and restore, point-in-time recovery, retention, delta repair, a killed backup,
// and the errors a user meets first.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase, runWalden, waldenCommand } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface InfoJson {
  name: string
  status: { code: number; message: string }
  backup: Array<{ label: string; type: string; prior: string | null; reference: string[] | null }>
  archive: Array<{ min: string | null; max: string | null }>
}

async function infoJson(stanza: TestStanza): Promise<InfoJson> {
  const result = await stanza.waldenOk(['info', '--output=json'])
  const parsed = JSON.parse(result.stdout) as InfoJson[]
  assert.equal(parsed.length, 1)
  return parsed[0]!
}

/** A pg_dump text without the rows of one table (the COPY block's data lines). */
function withoutData(dump: string, table: string): string {
  return dump.replace(new RegExp(`(COPY ${table.replace('.', '\\.')} [^\\n]* FROM stdin;\\n)[\\s\\S]*?\\n\\\\\\.\\n`), '$1\\.\n')
}

/** One line, an error code, no stack trace: what a user mistake must look like. */
function assertCleanError(result: { code: number; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, result.stderr)
  assert.match(result.stderr, pattern)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

describe(`core flow on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR })
    await stanza.cluster.query(
      `create table accounts (id int primary key, owner text not null, balance numeric not null);
       insert into accounts select n, 'owner ' || n, n * 10 from generate_series(1, 20000) n;
       create index on accounts (owner);
       create unlogged table scratch (v int); insert into scratch select generate_series(1, 1000);`,
    )
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('stanza-create and check', async () => {
    await stanza.waldenOk(['stanza-create'])
    // Running it again for the same cluster is harmless.
    await stanza.waldenOk(['stanza-create'])
    const check = await stanza.waldenOk(['check'])
    assert.match(check.stdout, /configuration ok, WAL segment [0-9A-F]{24} archived/)
  })

  test('the first default backup becomes a full one; then a diff; info shows both', async () => {
    const first = await stanza.waldenOk(['backup', '--log-level-console=warn'])
    assert.match(first.stderr, /no prior backup exists, incr backup has been changed to full/)
    await stanza.cluster.query(`update accounts set balance = balance + 1 where id <= 100`)
    await stanza.waldenOk(['backup', '--type=diff'])

    const info = await infoJson(stanza)
    assert.equal(info.name, 'demo')
    assert.equal(info.status.code, 0)
    assert.deepEqual(info.backup.map((backup) => backup.type), ['full', 'diff'])
    assert.match(info.backup[0]!.label, /^\d{8}-\d{6}F$/)
    assert.match(info.backup[1]!.label, new RegExp(`^${info.backup[0]!.label}_\\d{8}-\\d{6}D$`))
    assert.equal(info.backup[1]!.prior, info.backup[0]!.label)
    assert.match(info.archive[0]!.min ?? '', /^[0-9A-F]{24}$/)

    const text = await stanza.waldenOk(['info'])
    assert.match(text.stdout, /stanza: demo\n\s+status: ok/)
    assert.match(text.stdout, /diff backup: \d{8}-\d{6}F_\d{8}-\d{6}D/)
  })

  test('a cluster without global/pg_control is restored from the backups and equals its dump', async () => {
    const before = await dumpDatabase(stanza.cluster)
    // Everything the dump shows must be in the archive: close the current segment.
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()

    await rm(join(stanza.cluster.dataDir, 'global', 'pg_control'))
    await assert.rejects(stanza.cluster.start({ timeoutMs: 15_000 }), /failed to start|pg_control/)

    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    await stanza.waldenOk(['restore'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    // Unlogged tables come back empty, as after a crash: their data is not part of the comparison.
    assert.equal(withoutData(await dumpDatabase(stanza.cluster), 'public.scratch'), withoutData(before, 'public.scratch'))
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from scratch'), '0')
  })

  test('point-in-time recovery brings back a dropped table', async () => {
    await stanza.waldenOk(['backup', '--type=incr'])
    await stanza.cluster.query(`create table precious (id int, note text); insert into precious select n, 'row ' || n from generate_series(1, 500) n`)
    await sleep(1100)
    const target = await stanza.cluster.psqlScalar(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
    await sleep(1100)
    await stanza.cluster.query('drop table precious')
    await stanza.waldenOk(['check']) // archives the segment holding the drop
    await stanza.cluster.stop()

    await stanza.waldenOk(['restore', '--delta', '--type=time', `--target=${target}`, '--target-action=promote'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from precious'), '500')
    assert.equal(await stanza.cluster.psqlScalar(`select note from precious where id = 42`), 'row 42')
  })

  test('a delta restore repairs a damaged relation file and removes a stray one', async () => {
    await stanza.waldenOk(['backup', '--type=full'])
    const relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('accounts')`)
    const dump = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()

    // The backup recorded the relation's XXH3-128, which delta compares (with SHA-256 as the fallback).
    const labels = (await readdir(join(stanza.repoPath, 'backup', stanza.name))).filter((entry) => /^\d{8}-\d{6}F$/.test(entry)).sort()
    const manifest = JSON.parse(await readFile(join(stanza.repoPath, 'backup', stanza.name, labels.at(-1)!, 'backup.manifest'), 'utf8')) as {
      content: { files: { name: string; xxh3?: string }[] }
    }
    assert.match(manifest.content.files.find((file) => file.name === `pg_data/${relation}`)?.xxh3 ?? '', /^[0-9a-f]{32}$/)

    // Changed in place: same size and modification time, so only a checksum tells.
    const damaged = join(stanza.cluster.dataDir, relation)
    const original = await readFile(damaged)
    const before = await stat(damaged)
    const broken = Buffer.from(original)
    broken.fill(0x55, 8192 + 100, 8192 + 300)
    await writeFile(damaged, broken)
    await utimes(damaged, before.atime, before.mtime)
    const stray = join(stanza.cluster.dataDir, 'base', 'stray-file')
    await writeFile(stray, 'not from the backup')

    const result = await stanza.waldenOk(['restore', '--delta', '--log-level-console=info'])
    assert.match(result.stderr, /kept, [1-9]\d* removed/)
    assert.deepEqual(await readFile(damaged), original)
    await assert.rejects(stat(stray), /ENOENT/)
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
  })

  test('three full backups with repo1-retention-full=2 leave two, and the WAL before them goes', async () => {
    await stanza.writeConfig(['repo1-retention-full=2'])
    for (let index = 0; index < 3; index++) {
      await stanza.cluster.query(`insert into accounts values (${100000 + index}, 'new', 1)`)
      await stanza.waldenOk(['backup', '--type=full'])
    }
    const info = await infoJson(stanza)
    assert.deepEqual(info.backup.map((backup) => backup.type), ['full', 'full'])
    const oldestStart = (await stanza.waldenOk(['info', '--output=json'])).stdout.match(/"start":"([0-9A-F]{24})"/)![1]!
    assert.ok(info.archive[0]!.min! >= oldestStart, `archive min ${info.archive[0]!.min} should not precede ${oldestStart}`)
    await stanza.writeConfig()
  })

  test('a backup killed part-way leaves the repository valid and the next one cleans up', async () => {
    await stanza.cluster.query(`create table bulk as select n, md5(n::text) as h from generate_series(1, 400000) n`)
    const before = (await infoJson(stanza)).backup.map((backup) => backup.label)
    const child = spawn(
      'runuser',
      ['-u', 'postgres', '--', ...waldenCommand().split(' '), `--config=${stanza.configPath}`, '--stanza=demo', 'backup', '--type=full', '--process-max=1', '--compress-type=gz', '--compress-level=9'],
      { stdio: 'ignore' },
    )
    const backupRoot = join(stanza.repoPath, 'backup', 'demo')
    // Kill walden itself (the pid in its lock file; runuser is only its parent) once files land in a new backup folder.
    let waldenPid: number | undefined
    for (let attempt = 0; attempt < 400; attempt++) {
      const labels = (await readdir(backupRoot)).filter((entry) => /^\d{8}-\d{6}F$/.test(entry) && !before.includes(entry))
      // The lock file exists a moment before its pid is written: an empty read is no pid yet.
      waldenPid ??= await readFile(join(stanza.lockPath, 'demo-backup.lock'), 'utf8').then(
        (text) => (/^\d+/.test(text) ? Number.parseInt(text, 10) : undefined),
        () => undefined,
      )
      if (labels.length > 0 && waldenPid !== undefined) break
      await sleep(25)
    }
    assert.ok(waldenPid !== undefined, 'the backup took its lock')
    process.kill(waldenPid, 'SIGKILL')
    await new Promise((resolve) => child.on('close', resolve))
    const leftovers = (await readdir(backupRoot)).filter((entry) => /^\d{8}-\d{6}F$/.test(entry) && !before.includes(entry))
    assert.equal(leftovers.length, 1, 'the killed backup left its folder behind')

    // info lists only the completed backups; the server is not left in backup mode.
    assert.deepEqual((await infoJson(stanza)).backup.map((backup) => backup.label), before)
    for (let attempt = 0; attempt < 50; attempt++) {
      if ((await stanza.cluster.psqlScalar(`select count(*) from pg_stat_activity where application_name = 'walden'`)) === '0') break
      await sleep(100)
    }
    assert.equal(await stanza.cluster.psqlScalar(`select count(*) from pg_stat_activity where application_name = 'walden'`), '0')

    const next = await stanza.waldenOk(['backup', '--type=full', '--log-level-console=warn'])
    assert.match(next.stderr, new RegExp(`removing incomplete backup '${leftovers[0]}'`))
    assert.ok(!(await readdir(backupRoot)).includes(leftovers[0]!))
    assert.equal((await infoJson(stanza)).backup.length, before.length + 1)
  })

  test('archive-push refuses a segment from another cluster', async () => {
    const foreign = await createTestStanza({ major: MAJOR, name: 'other', start: false })
    try {
      const walDir = join(foreign.cluster.dataDir, 'pg_wal')
      const segment = (await readdir(walDir)).find((entry) => /^[0-9A-F]{24}$/.test(entry))!
      const result = await stanza.walden(['archive-push', join(walDir, segment)])
      assertCleanError(result, 44, /is from PostgreSQL 15 with system identifier \d+, but stanza 'demo' is PostgreSQL 15 with system identifier \d+/)
    } finally {
      await foreign.dir.cleanup()
    }
  })

  test('archive-get exits 1 quietly for a segment that is not archived, and verifies what it returns', async () => {
    const missing = await stanza.walden(['archive-get', '0000000A00000000000000FF', join(stanza.dir.path, 'x')])
    assert.equal(missing.code, 1)
    assert.equal(missing.stderr, '')
  })

  test('user mistakes get one clear line and a documented exit code', async () => {
    const unknownInfo = await runWalden([`--config=${stanza.configPath}`, '--stanza=nope', 'info', '--output=json'])
    // The stanza's status is an error, so info exits with the code `backup` gives for it, after printing the report.
    assert.equal(unknownInfo.code, 103)
    assert.deepEqual((JSON.parse(unknownInfo.stdout) as InfoJson[])[0]!.status, { code: 1, message: 'missing stanza path', lock: { backup: { held: false } } })
    assertCleanError(await runWalden([`--config=${stanza.configPath}`, '--stanza=nope', 'backup']), 103, /ERROR: \[103\]: stanza 'nope' does not exist in repository/)
    assertCleanError(await stanza.walden(['backup', '--bogus']), 31, /ERROR: \[031\]: invalid option '--bogus'/)
    assertCleanError(
      await stanza.walden(['restore', '--type=time', '--target=last tuesday', '--delta']),
      32,
      /ERROR: \[032\]: target time 'last tuesday' is not a valid time\nHINT: /,
    )
  })

  test('stop makes commands refuse; start lifts it', async () => {
    await stanza.waldenOk(['stop'])
    assertCleanError(await stanza.walden(['backup']), 62, /ERROR: \[062\]: stop file exists for stanza 'demo'/)
    // info still works while stopped, and so does archive-get: failing it would end a recovery early.
    await stanza.waldenOk(['info'])
    assert.equal((await stanza.walden(['archive-get', '0000000A00000000000000FF', join(stanza.dir.path, 'x')])).code, 1)
    await stanza.waldenOk(['start'])
    await stanza.waldenOk(['check'])
  })
})
