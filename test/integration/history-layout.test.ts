// History files under the names pgBackRest uses, and restore's block in postgresql.auto.conf (issue #15), on one
// PostgreSQL 15 stanza. The tests run in order and share it; each leaves a running primary behind.
//
// The stanza starts out archived, backed up and restored by walden as it was before the change (built from
// LAYOUT_BEFORE, test/harness/walden-build.ts), so its repository holds the earlier layout (`00000002.history-<sha>.zst`)
// and its postgresql.auto.conf what that restore wrote; this walden then takes over and must read both. Each timeline
// switch is a real one (a point-in-time restore that promotes, a standby promoted), and each restore that crosses one
// fetches the history file through archive-get, as PostgreSQL does.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chown, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { runWalden, testDir, waldenCommand } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'
import { waldenBuildAt, waldenBuildUnavailable } from '../harness/walden-build.js'
import { AUTO_CONF_BEGIN, AUTO_CONF_COMMENTED } from '../../src/commands/restore/recovery.js'

/** The last commit before history files moved to their own names and restore wrote its settings in a block. */
const LAYOUT_BEFORE = 'de01752e824a3ae803305e2ea35a1ebebb5095cc'
const MAJOR = 15
const LEGACY_HEADER = '# Recovery settings written by walden restore'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const hex8 = (value: number): string => value.toString(16).toUpperCase().padStart(8, '0')
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** Exit code and the exact first line on stderr, and no stack trace. */
function assertRefused(result: RunResult, code: number, firstLine: RegExp | string): void {
  assert.equal(result.code, code, `${result.stdout}\n${result.stderr}`)
  // archive-push and archive-get log their errors with the process id, as pgBackRest's do.
  const line = result.stderr.split('\n')[0]!.replace(/^P00\s+/, '')
  if (typeof firstLine === 'string') assert.equal(line, firstLine)
  else assert.match(line, firstLine)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

// Said in the test output (as a skip with its reason) when the clone lacks LAYOUT_BEFORE.
const unavailable = waldenBuildUnavailable(LAYOUT_BEFORE)

describe(`history files under pgBackRest's names, and restore's block in postgresql.auto.conf, on PostgreSQL ${MAJOR}`, { concurrency: false, ...(unavailable ? { skip: unavailable } : {}) }, () => {
  let stanza: TestStanza
  let buildDir: TestDir
  let oldBin: string
  let scratch: string
  let archiveRoot: string // <repo>/archive/demo/15-1
  let firstFull: string
  let secondFull: string

  const old = (args: readonly string[]): Promise<RunResult> => runWalden([`--config=${stanza.configPath}`, `--stanza=${stanza.name}`, ...args], { bin: oldBin })
  const oldOk = async (args: readonly string[]): Promise<RunResult> => {
    const result = await old(args)
    assert.equal(result.code, 0, `old walden ${args.join(' ')}: ${result.stdout}\n${result.stderr}\n${await stanza.cluster.logTail()}`)
    return result
  }
  const insert = async (note: string): Promise<void> => {
    await stanza.cluster.query('insert into events (note) values ($1)', [note])
  }
  const notes = async (): Promise<string[]> => (await stanza.cluster.query<{ note: string }>('select note from events order by id')).map((row) => row.note)
  const labelOf = (result: RunResult): string => /backup begin: \w+ backup (\S+), start LSN/.exec(result.stderr)![1]!
  const timeline = async (): Promise<number> => {
    await stanza.cluster.query('checkpoint')
    return Number(await stanza.cluster.psqlScalar('select timeline_id from pg_control_checkpoint()'))
  }
  /**
   * Points archive_command at a walden (the earlier one, or this checkout's when undefined). A restore brings back the
   * backup's postgresql.conf, so after restoring a backup the earlier walden took, this is said again.
   */
  const archivingWith = async (bin: string | undefined, options: { reload: boolean }): Promise<void> => {
    await stanza.cluster.configure({ archive_command: `${waldenCommand(bin)} --config=${stanza.configPath} --stanza=${stanza.name} archive-push %p` })
    if (options.reload) await stanza.cluster.query('select pg_reload_conf()')
  }
  /** Waits until an entry whose name starts with `prefix` is in the archive id's folder. */
  const waitArchived = async (prefix: string): Promise<string> => {
    for (let attempt = 0; attempt < 300; attempt++) {
      const found = (await readdir(archiveRoot)).find((entry) => entry.startsWith(prefix))
      if (found !== undefined) return found
      await sleep(100)
    }
    throw new Error(`no '${prefix}*' reached ${archiveRoot}\n${await stanza.cluster.logTail()}`)
  }
  /** What `postgres -C` says a setting is in the (stopped) cluster's configuration files (memory in kB). */
  const setting = (name: string): string => {
    const result = spawnSync('runuser', ['-u', 'postgres', '--', join(stanza.cluster.binDir, 'postgres'), '-D', stanza.cluster.dataDir, '-C', name], { encoding: 'utf8', cwd: '/tmp' })
    assert.equal(result.status, 0, result.stderr)
    return result.stdout.trim()
  }
  const autoConf = (): Promise<string> => readFile(join(stanza.cluster.dataDir, 'postgresql.auto.conf'), 'utf8')
  /** archive-get of `walName` into the scratch folder: its result, and the bytes fetched when it succeeded. */
  const archiveGet = async (walName: string): Promise<{ result: RunResult; data?: Buffer }> => {
    const destination = join(scratch, `${walName}.fetched`)
    await rm(destination, { force: true })
    const result = await stanza.walden(['archive-get', walName, destination])
    return result.code === 0 ? { result, data: await readFile(destination) } : { result }
  }
  /** Checks a history file is stored as pgBackRest stores it: its own name, the bytes of pg_wal's copy, its record. */
  const assertStoredAsNamed = async (folder: string, walName: string): Promise<Buffer> => {
    const original = await readFile(join(stanza.cluster.dataDir, 'pg_wal', walName))
    const entries = await readdir(folder)
    assert.ok(entries.includes(walName), `${walName} under its own name: ${entries.join(' ')}`)
    assert.deepEqual(await readFile(join(folder, walName)), original, 'stored as it is: uncompressed')
    assert.deepEqual(
      entries.filter((entry) => entry.startsWith(`${walName}.sha256-`)),
      [`${walName}.sha256-${sha256(original)}`],
      'one checksum record, of its content',
    )
    assert.ok(!entries.some((entry) => entry.startsWith(`${walName}-`)), 'no copy under a checksummed name')
    return original
  }

  before(async () => {
    buildDir = await testDir('walden-layout-before')
    oldBin = await waldenBuildAt(LAYOUT_BEFORE, buildDir)
    stanza = await createTestStanza({ major: MAJOR })
    scratch = await stanza.dir.mkdir('scratch')
    archiveRoot = join(stanza.repoPath, 'archive', stanza.name, `${MAJOR}-1`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
    await buildDir?.cleanup()
  })

  test('walden before the change archives, backs up and restores across a timeline switch: the earlier layout', async () => {
    await archivingWith(oldBin, { reload: true })
    await oldOk(['stanza-create'])
    await stanza.cluster.query('create table events (id serial primary key, note text)')
    firstFull = labelOf(await oldOk(['backup', '--type=full', '--log-level-console=info']))
    await insert('one')
    await stanza.cluster.query(`select pg_create_restore_point('split')`)
    await insert('lost in the split')
    await oldOk(['check'])
    await stanza.cluster.stop()
    // work_mem: a setting the earlier restore wrote that is not a recovery setting, so it outlived later restores.
    await oldOk(['restore', '--delta', '--type=name', '--target=split', '--target-action=promote', '--recovery-option=work_mem=5MB'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await timeline(), 2)
    assert.match(await waitArchived('00000002.history-'), /^00000002\.history-[0-9a-f]{64}\.zst$/)
    assert.ok(!(await readdir(archiveRoot)).includes('00000002.history'))
    await insert('two')
    // A backup on timeline 2: its postgresql.auto.conf is what the earlier restore wrote.
    secondFull = labelOf(await oldOk(['backup', '--type=full', '--log-level-console=info']))
    await insert('three')
    await oldOk(['check'])
    assert.deepEqual(await notes(), ['one', 'two', 'three'])
    await archivingWith(undefined, { reload: true })
  })

  test('this walden reads the earlier layout: archive-get, a repeated and a different push, verify, a restore across the switch', async () => {
    const original = await readFile(join(stanza.cluster.dataDir, 'pg_wal', '00000002.history'))
    const fetched = await archiveGet('00000002.history')
    assert.equal(fetched.result.code, 0, fetched.result.stderr)
    assert.deepEqual(fetched.data, original)

    // The same content again (PostgreSQL retrying): found in the earlier layout, nothing written.
    const again = await stanza.walden(['archive-push', join(stanza.cluster.dataDir, 'pg_wal', '00000002.history'), '--log-level-console=info'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout + again.stderr, /WAL file '00000002\.history' is already in the archive with the same checksum/)
    assert.ok(!(await readdir(archiveRoot)).some((entry) => entry === '00000002.history' || entry.startsWith('00000002.history.sha256-')))
    // Other content under the name: refused, as before.
    const other = join(scratch, '00000002.history')
    await writeFile(other, '1\t0/9000000\tanother cluster\n')
    await chown(other, Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout))
    assertRefused(await stanza.walden(['archive-push', other]), 45, "ERROR: [045]: WAL file '00000002.history' already exists in the archive with a different checksum")

    const verify = await stanza.walden(['verify'])
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`)

    // From the first full backup (timeline 1), recovery follows the archive's history file onto timeline 2 and to
    // its end: 'lost in the split' stays lost, everything of timeline 2 is there. Its end starts timeline 3.
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', `--set=${firstFull}`])
    await archivingWith(undefined, { reload: false })
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.deepEqual(await notes(), ['one', 'two', 'three'])
    assert.equal(await timeline(), 3)
    // Archived by this walden: under its own name, with its record.
    await waitArchived('00000003.history.sha256-')
    await assertStoredAsNamed(archiveRoot, '00000003.history')
  })

  test("a postgresql.auto.conf an earlier walden restore wrote: that restore's settings are gone, one block is left", async () => {
    await insert('four')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    // The backup of timeline 2 holds what the earlier restore wrote (header line, recovery settings, work_mem).
    const restored = await stanza.waldenOk(['restore', '--delta', `--set=${secondFull}`, '--log-level-console=warn'])
    const text = await autoConf()
    assert.ok(!text.includes(LEGACY_HEADER), text)
    assert.equal(text.split(AUTO_CONF_BEGIN).length, 2, `one block: ${text}`)
    assert.ok(text.includes(`${AUTO_CONF_COMMENTED}work_mem = '5MB'`), text)
    assert.match(restored.stdout + restored.stderr, /WARN: commented out work_mem in '.*postgresql\.auto\.conf'/)
    assert.equal(setting('work_mem'), '4096')
    assert.equal(setting('recovery_target_name'), '')
    await archivingWith(undefined, { reload: false })
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.deepEqual(await notes(), ['one', 'two', 'three', 'four'])
    assert.equal(await timeline(), 4)
    await waitArchived('00000004.history.sha256-')
  })

  test('a backup history file, and the history file of a promoted standby, under their own names', async () => {
    await stanza.waldenOk(['backup', '--type=full'])
    // Its backup history file '<segment>.<offset>.backup', in its segment's folder, once PostgreSQL archived it (the
    // backup waits for its WAL, not for this file) and its record is there.
    let folder = ''
    let newest = ''
    for (let attempt = 0; attempt < 300 && newest === ''; attempt++) {
      for (const sub of (await readdir(archiveRoot)).filter((entry) => entry.startsWith('00000004') && /^[0-9A-F]{16}$/.test(entry))) {
        const entries = await readdir(join(archiveRoot, sub))
        const found = entries.find((entry) => /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/.test(entry) && entries.some((other) => other.startsWith(`${entry}.sha256-`)))
        if (found !== undefined) [folder, newest] = [join(archiveRoot, sub), found]
      }
      if (newest === '') await sleep(100)
    }
    assert.ok(newest !== '', 'a backup history file of timeline 4 under its own name, with its checksum record')
    const content = await readFile(join(folder, newest))
    assert.match(content.toString('utf8'), /^START WAL LOCATION: /, 'stored as it is: uncompressed')
    assert.ok((await readdir(folder)).includes(`${newest}.sha256-${sha256(content)}`))
    const fetched = await archiveGet(newest)
    assert.deepEqual(fetched.data, content, fetched.result.stderr)

    // A standby restored from the archive, then promoted: walden promote waits until the history file is archived.
    await insert('five')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', '--type=standby'])
    await stanza.cluster.start()
    assert.equal(await stanza.cluster.psqlScalar('select pg_is_in_recovery()::text'), 'true')
    const promoted = await stanza.waldenOk(['promote'])
    assert.match(promoted.stdout, /promoted: now a primary on timeline 5; 00000005\.history is in the archive/)
    const original = await assertStoredAsNamed(archiveRoot, '00000005.history')
    const got = await archiveGet('00000005.history')
    assert.deepEqual(got.data, original, got.result.stderr)
    assert.deepEqual(await notes(), ['one', 'two', 'three', 'four', 'five'])
  })

  test('archive-get and archive-push of a history file: damage, an unfinished push, a lost file, two records, other content', async () => {
    const name = '00000005.history'
    const stored = join(archiveRoot, name)
    const original = await readFile(stored)
    const record = join(archiveRoot, `${name}.sha256-${sha256(original)}`)
    const push = (): Promise<RunResult> => stanza.walden(['archive-push', join(stanza.cluster.dataDir, 'pg_wal', name)])

    // Damaged in the repository: the checksum record catches it, PostgreSQL is not handed the file and is told to
    // abort recovery (126) rather than take the file for missing.
    const damaged = Buffer.from(original)
    damaged[0] = damaged[0] === 0x35 ? 0x36 : 0x35
    await writeFile(stored, damaged)
    const bad = await archiveGet(name)
    await writeFile(stored, original)
    assertRefused(bad.result, 126, `ERROR: [026]: archived WAL file '${stored}' has checksum ${sha256(damaged)}, expected ${sha256(original)}`)
    assert.equal(bad.data, undefined)

    // The push stopped between the file and its record: not archived yet (archive-get: not found), and the repeated
    // push completes it.
    await rm(record)
    assert.equal((await archiveGet(name)).result.code, 1)
    const repeated = await push()
    assert.equal(repeated.code, 0, repeated.stderr)
    assert.deepEqual((await archiveGet(name)).data, original)

    // The file lost, its record still there: an error naming both, not "not found", and a problem verify reports; a
    // push of it stores it again.
    await rm(stored)
    assertRefused((await archiveGet(name)).result, 55, `ERROR: [055]: WAL file '${name}' is recorded in the archive but missing from it: '${stored}' is gone, its checksum record '${record}' is there`)
    const lost = await stanza.walden(['verify', '--output=json'])
    assert.notEqual(lost.code, 0)
    const problems = (JSON.parse(lost.stdout) as { archive: { problems: Array<{ kind: string; file: string; message: string }> } }).archive.problems
    assert.deepEqual(problems, [{ kind: 'missing', file: name, message: `archived file '${stored}' is missing: only its checksum record is there` }])
    assert.equal((await push()).code, 0)
    assert.deepEqual((await archiveGet(name)).data, original)

    // Two records (two clusters pushed different content under the name at once): neither is served, and recovery
    // stops there (126) rather than guess.
    const otherRecord = join(archiveRoot, `${name}.sha256-${'0'.repeat(64)}`)
    await writeFile(otherRecord, '')
    const twice = await archiveGet(name)
    await rm(otherRecord)
    assertRefused(
      twice.result,
      126,
      `ERROR: [045]: WAL file '${name}' is archived more than once with different content: '${otherRecord}', '${record}'`,
    )

    // Other content pushed under the name: refused, the stored file untouched.
    const other = join(scratch, name)
    await writeFile(other, '4\t0/9000000\tanother cluster\n')
    await chown(other, Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout))
    assertRefused(await stanza.walden(['archive-push', other]), 45, `ERROR: [045]: WAL file '${name}' already exists in the archive with a different checksum`)
    assert.deepEqual(await readFile(stored), original)

    const verify = await stanza.walden(['verify'])
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`)
  })

  test('restore twice with different targets: only the last target is set, user lines are kept', async () => {
    await stanza.cluster.query(`alter system set maintenance_work_mem = '77MB'`)
    const first = labelOf(await stanza.waldenOk(['backup', '--type=full', '--log-level-console=info']))
    await insert('six')
    await stanza.cluster.query(`select pg_create_restore_point('first-target')`)
    await insert('seven')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', `--set=${first}`, '--type=name', '--target=first-target', '--target-action=promote', '--recovery-option=work_mem=5MB'])
    assert.equal(setting('recovery_target_name'), 'first-target')
    assert.equal(setting('work_mem'), '5120')
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.deepEqual((await notes()).slice(-2), ['five', 'six'])
    await waitArchived(`${hex8(await timeline())}.history.sha256-`)

    // The backup taken now holds the first restore's block; the second restore must replace it, not add to it.
    const second = labelOf(await stanza.waldenOk(['backup', '--type=full', '--log-level-console=info']))
    await insert('eight')
    await stanza.cluster.query(`select pg_create_restore_point('second-target')`)
    await insert('nine')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', `--set=${second}`, '--type=name', '--target=second-target', '--target-action=promote'])
    const text = await autoConf()
    assert.equal(text.split(AUTO_CONF_BEGIN).length, 2, `one block: ${text}`)
    assert.ok(!text.includes('first-target'), text)
    assert.equal(setting('recovery_target_name'), 'second-target')
    assert.equal(setting('work_mem'), '4096', "the first restore's work_mem went with its block")
    assert.equal(setting('maintenance_work_mem'), '78848', 'the line ALTER SYSTEM wrote is kept')
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.deepEqual((await notes()).slice(-3), ['five', 'six', 'eight'])
  })
})
