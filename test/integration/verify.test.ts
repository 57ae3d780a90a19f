// verify on a real cluster's repository: clean, then damaged in the ways a repository gets damaged (a flipped byte,
// a truncated file, a file of a prior backup an incr still uses, a WAL segment gone from the middle), and across a
// timeline switch made by a point-in-time restore and promote.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const VERIFY_FAILED = 93

interface Problem {
  kind: string
  file: string
  message: string
}

interface Report {
  stanza: string
  status: string
  problems: Problem[]
  backups: Array<{ label: string; type: string; status: string; files: number; bytes: number; problems: Problem[] }>
  archive: {
    status: string
    archiveIds: string[]
    files: number
    bytes: number
    gaps: Array<{ archiveId: string; timeline: number; from: string; to: string; neededBy: string[] }>
    problems: Problem[]
  }
}

interface ManifestFile {
  name: string
  size: number
  reference?: string
  parts?: Array<{ size: number }>
}

describe(`verify on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let full: string
  let incr: string

  const backupPath = (label: string): string => join(stanza.repoPath, 'backup', stanza.name, label)
  const manifestFiles = async (label: string): Promise<ManifestFile[]> =>
    (JSON.parse(await readFile(join(backupPath(label), 'backup.manifest'), 'utf8')) as { content: { files: ManifestFile[] } }).content.files
  const labels = async (): Promise<string[]> =>
    (JSON.parse(await readFile(join(stanza.repoPath, 'backup', stanza.name, 'backup.info'), 'utf8')) as { content: { backups: Array<{ label: string }> } }).content.backups.map(
      (backup) => backup.label,
    )
  const verifyJson = async (args: string[] = []): Promise<{ code: number; report: Report; stderr: string }> => {
    const result = await stanza.walden(['verify', '--output=json', ...args], { timeoutMs: 300_000 })
    return { code: result.code, report: JSON.parse(result.stdout) as Report, stderr: result.stderr }
  }
  /** Runs `change`, then puts the file back as it was. */
  const withDamage = async (path: string, change: () => Promise<void>, check: () => Promise<void>): Promise<void> => {
    const original = await readFile(path)
    try {
      await change()
      await check()
    } finally {
      await writeFile(path, original)
    }
  }

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, processMax: 2 })
    await stanza.cluster.query(
      `create table accounts (id int primary key, owner text not null, balance numeric not null);
       insert into accounts select n, 'owner ' || n, n * 10 from generate_series(1, 20000) n;
       create table big (id int, filler text);
       insert into big select n, repeat(md5(n::text), 6) from generate_series(1, 300000) n;`,
    )
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.cluster.query(`update accounts set balance = balance + 1 where id <= 100`)
    await stanza.waldenOk(['backup', '--type=incr'])
    ;[full, incr] = await labels()
    assert.match(incr!, /I$/)
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('a clean repository verifies with exit 0, in text and in JSON', async () => {
    const text = await stanza.walden(['verify'], { timeoutMs: 300_000 })
    assert.equal(text.code, 0, text.stdout + text.stderr)
    assert.match(text.stdout, new RegExp(`^backup ${full} \\(full\\): ok, \\d+ files \\(.+\\) verified$`, 'm'))
    assert.match(text.stdout, new RegExp(`^backup ${incr} \\(incr\\): ok, `, 'm'))
    assert.match(text.stdout, /^archive 15-1: ok, \d+ WAL files \(.+\) checked$/m)
    assert.match(text.stdout, /^stanza demo: ok$/m)

    const { code, report } = await verifyJson()
    assert.equal(code, 0)
    assert.equal(report.stanza, 'demo')
    assert.equal(report.status, 'ok')
    assert.deepEqual(report.problems, [])
    assert.deepEqual(
      report.backups.map((backup) => [backup.label, backup.type, backup.status, backup.problems]),
      [
        [full, 'full', 'ok', []],
        [incr, 'incr', 'ok', []],
      ],
    )
    // The incr counts the files it takes from the full: it needs all of them.
    assert.ok(report.backups[1]!.files >= report.backups[0]!.files - 5)
    assert.ok(report.backups[0]!.bytes > 64 * 1024 * 1024, 'the big table was read')
    assert.equal(report.archive.status, 'ok')
    assert.deepEqual(report.archive.archiveIds, ['15-1'])
    assert.ok(report.archive.files >= 2)
    assert.deepEqual(report.archive.gaps, [])
    // The big table is stored in parts, which verify reads one by one.
    assert.ok((await manifestFiles(full)).some((file) => (file.parts?.length ?? 0) > 1))
  })

  test('a flipped byte in one part of a large file is named, with its backup, and the exit status says so', async () => {
    const bigFile = (await manifestFiles(full)).find((file) => (file.parts?.length ?? 0) > 1)!
    const stored = join(backupPath(full), `${bigFile.name}.part-1.zst`)
    await withDamage(
      stored,
      async () => {
        const data = await readFile(stored)
        data[Math.floor(data.length / 2)] ^= 0x01
        await writeFile(stored, data)
      },
      async () => {
        const { code, report } = await verifyJson()
        assert.equal(code, VERIFY_FAILED)
        assert.equal(report.status, 'error')
        const fullReport = report.backups.find((backup) => backup.label === full)!
        assert.equal(fullReport.status, 'error')
        assert.equal(fullReport.problems.length, 1, JSON.stringify(fullReport.problems))
        assert.equal(fullReport.problems[0]!.file, `${bigFile.name} part 1`)
        assert.match(fullReport.problems[0]!.kind, /^(damaged|checksum)$/)
        assert.match(fullReport.problems[0]!.message, new RegExp(`${bigFile.name.replace(/\//g, '\\/')}\\.part-1\\.zst`))

        const text = await stanza.walden(['verify'], { timeoutMs: 300_000 })
        assert.equal(text.code, VERIFY_FAILED)
        assert.match(text.stdout, new RegExp(`^backup ${full}: ${bigFile.name} part 1: (damaged|checksum): `, 'm'))
        assert.match(text.stdout, /^stanza demo: error, \d+ problems?$/m)
        assert.match(text.stderr, /ERROR: \[093\]: verify found \d+ problem/)
      },
    )
  })

  test('a truncated file is named', async () => {
    const relation = `pg_data/${await stanza.cluster.psqlScalar(`select pg_relation_filepath('accounts')`)}`
    // The incr copied the updated table again: damage its own copy.
    assert.equal((await manifestFiles(incr)).find((file) => file.name === relation)?.reference, undefined)
    const stored = join(backupPath(incr), `${relation}.zst`)
    await withDamage(
      stored,
      async () => truncate(stored, Math.floor((await readFile(stored)).length / 2)),
      async () => {
        const { code, report } = await verifyJson()
        assert.equal(code, VERIFY_FAILED)
        assert.equal(report.backups.find((backup) => backup.label === full)!.status, 'ok')
        const problems = report.backups.find((backup) => backup.label === incr)!.problems
        assert.deepEqual(problems.map((problem) => problem.file), [relation])
        assert.match(problems[0]!.kind, /^(damaged|size)$/)
      },
    )
  })

  test('a deleted file of the full that the incr references is reported against the incr too; --set checks one backup', async () => {
    const referenced = (await manifestFiles(incr)).find((file) => file.reference === full && file.size > 0 && !file.parts)!
    const stored = join(backupPath(full), `${referenced.name}.zst`)
    const aside = `${stored}.aside`
    await rename(stored, aside)
    try {
      const { code, report } = await verifyJson()
      assert.equal(code, VERIFY_FAILED)
      for (const label of [full, incr]) {
        const problems = report.backups.find((backup) => backup.label === label)!.problems
        assert.deepEqual(
          problems.map((problem) => [problem.kind, problem.file]),
          [['missing', referenced.name]],
          label,
        )
        assert.match(problems[0]!.message, new RegExp(`${full}/${referenced.name.replace(/\//g, '\\/')}\\.zst`))
      }

      const one = await verifyJson([`--set=${incr}`])
      assert.equal(one.code, VERIFY_FAILED)
      assert.deepEqual(one.report.backups.map((backup) => [backup.label, backup.status]), [[incr, 'error']])
    } finally {
      await rename(aside, stored)
    }

    // A file only the incr has, damaged: --set of the full does not see it, --set of the incr does.
    const own = (await manifestFiles(incr)).find((file) => file.reference === undefined && file.size > 0 && !file.parts)!
    const ownStored = join(backupPath(incr), `${own.name}.zst`)
    await withDamage(
      ownStored,
      async () => writeFile(ownStored, Buffer.from('not zstd at all')),
      async () => {
        const fullOnly = await verifyJson([`--set=${full}`])
        assert.equal(fullOnly.code, 0, JSON.stringify(fullOnly.report))
        assert.deepEqual(fullOnly.report.backups.map((backup) => backup.label), [full])
        const incrOnly = await verifyJson([`--set=${incr}`])
        assert.equal(incrOnly.code, VERIFY_FAILED)
        assert.deepEqual(incrOnly.report.backups[0]!.problems.map((problem) => [problem.kind, problem.file]), [['damaged', own.name]])
      },
    )
    const unknown = await stanza.walden(['verify', '--set=20200101-000000F'])
    assert.equal(unknown.code, 51)
    assert.match(unknown.stderr, /backup set '20200101-000000F' is not in backup.info/)
  })

  test('a reference to a backup that is not in backup.info is reported for each file that uses it', async () => {
    const infoPath = join(stanza.repoPath, 'backup', stanza.name, 'backup.info')
    const original = await readFile(infoPath)
    const envelope = JSON.parse(original.toString('utf8')) as { format: number; checksum: string; content: { backups: Array<{ label: string }> } }
    envelope.content.backups = envelope.content.backups.filter((backup) => backup.label !== full)
    envelope.checksum = createHash('sha256').update(JSON.stringify(envelope.content)).digest('hex')
    try {
      for (const path of [infoPath, `${infoPath}.copy`]) await writeFile(path, JSON.stringify(envelope))
      const { code, report } = await verifyJson()
      assert.equal(code, VERIFY_FAILED)
      assert.deepEqual(report.backups.map((backup) => backup.label), [incr])
      const referenced = (await manifestFiles(incr)).filter((file) => file.reference === full)
      assert.ok(referenced.length > 0)
      const problems = report.backups[0]!.problems.filter((problem) => problem.kind === 'reference')
      assert.deepEqual(problems.map((problem) => problem.file).sort(), referenced.map((file) => file.name).sort())
      assert.equal(problems[0]!.message, `stored in backup '${full}', which is not in backup.info`)
    } finally {
      for (const path of [infoPath, `${infoPath}.copy`]) await writeFile(path, original)
    }
  })

  test('a damaged segment of a backup own WAL makes that backup unrestorable; a second copy under one name is a duplicate', async () => {
    const info = JSON.parse(await readFile(join(stanza.repoPath, 'backup', stanza.name, 'backup.info'), 'utf8')) as {
      content: { backups: Array<{ label: string; walStart: string }> }
    }
    const walStart = info.content.backups.find((backup) => backup.label === incr)!.walStart
    const folder = join(stanza.repoPath, 'archive', stanza.name, '15-1', walStart.slice(0, 16))
    const entry = (await readdir(folder)).find((name) => name.startsWith(`${walStart}-`))!
    const stored = join(folder, entry)
    const duplicate = join(folder, `${walStart}-${'0'.repeat(64)}.zst`)
    await withDamage(
      stored,
      async () => {
        const data = await readFile(stored)
        await writeFile(duplicate, data)
        data[Math.floor(data.length / 2)] ^= 0x10
        await writeFile(stored, data)
      },
      async () => {
        try {
          const { code, report } = await verifyJson()
          assert.equal(code, VERIFY_FAILED)
          const archiveProblems = report.archive.problems.map((problem) => [problem.kind, problem.file])
          assert.ok(archiveProblems.some(([kind, file]) => kind === 'duplicate' && file === walStart), JSON.stringify(archiveProblems))
          // Both copies fail their own check: one is damaged, the other's content is not what its name says.
          assert.equal(archiveProblems.filter(([kind, file]) => kind !== 'duplicate' && file === walStart).length, 2, JSON.stringify(archiveProblems))
          const incrProblems = report.backups.find((backup) => backup.label === incr)!.problems
          assert.deepEqual(incrProblems.map((problem) => [problem.kind, problem.file]), [['unrestorable', walStart]])
          assert.match(incrProblems[0]!.message, new RegExp(`backup ${incr} is unrestorable: WAL between its start and stop is missing or damaged: ${walStart}`))
          assert.equal(report.backups.find((backup) => backup.label === full)!.status, 'ok')
        } finally {
          await rm(duplicate, { force: true })
        }
      },
    )
  })

  test('a WAL segment deleted from the middle of the archive is a gap, needed by the backups before it', async () => {
    for (let index = 0; index < 4; index++) {
      await stanza.cluster.query(`insert into accounts values (${100_000 + index}, 'later', 0)`)
      await stanza.waldenOk(['check'])
    }
    const archiveId = join(stanza.repoPath, 'archive', stanza.name, '15-1')
    const segments: Array<{ name: string; path: string }> = []
    for (const folder of (await readdir(archiveId)).filter((entry) => /^[0-9A-F]{16}$/.test(entry)).sort()) {
      for (const entry of (await readdir(join(archiveId, folder))).sort()) {
        if (/^[0-9A-F]{24}-/.test(entry)) segments.push({ name: entry.slice(0, 24), path: join(archiveId, folder, entry) })
      }
    }
    const victim = segments[segments.length - 2]!
    await rename(victim.path, `${victim.path}.aside`)
    try {
      const { code, report } = await verifyJson()
      assert.equal(code, VERIFY_FAILED)
      assert.deepEqual(report.archive.gaps, [{ archiveId: '15-1', timeline: 1, from: victim.name, to: victim.name, neededBy: [full, incr] }])
      for (const backup of report.backups) {
        assert.deepEqual(backup.problems.map((problem) => problem.kind), ['wal-gap'], backup.label)
      }
      const text = await stanza.walden(['verify'])
      assert.match(text.stdout, new RegExp(`^archive 15-1: WAL missing on timeline 1: ${victim.name}, needed by backups ${full}, ${incr}$`, 'm'))
    } finally {
      await rename(`${victim.path}.aside`, victim.path)
    }
  })

  test('a timeline switch (point-in-time restore and promote, then a backup and WAL on timeline 2) gives no false gap', async () => {
    await stanza.cluster.query(`insert into accounts values (200000, 'before the split', 0)`)
    await stanza.cluster.query(`select pg_create_restore_point('verify-split')`)
    await stanza.cluster.query(`insert into accounts values (200001, 'lost in the split', 0)`)
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', '--type=name', '--target=verify-split', '--target-action=promote'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    await stanza.waldenOk(['backup', '--type=full'])
    for (let index = 0; index < 2; index++) {
      await stanza.cluster.query(`insert into accounts values (${300_000 + index}, 'timeline 2', 0)`)
      await stanza.waldenOk(['check'])
    }
    const archived = await readdir(join(stanza.repoPath, 'archive', stanza.name, '15-1'))
    // Under its own name, as pgBackRest stores it, with its checksum record.
    assert.ok(archived.includes('00000002.history') && archived.some((entry) => entry.startsWith('00000002.history.sha256-')), archived.join(' '))

    const { code, report } = await verifyJson()
    assert.equal(code, 0, JSON.stringify({ gaps: report.archive.gaps, problems: report.archive.problems, backups: report.backups.map((backup) => backup.problems) }))
    assert.deepEqual(report.archive.gaps, [])
    assert.equal(report.backups.length, 3)

    // And a segment missing on timeline 2 is a gap there, needed by every backup (all follow the switch).
    const folder = join(stanza.repoPath, 'archive', stanza.name, '15-1')
    const onTwo: string[] = []
    for (const sub of (await readdir(folder)).filter((entry) => /^00000002[0-9A-F]{8}$/.test(entry))) {
      for (const entry of await readdir(join(folder, sub))) if (/^00000002[0-9A-F]{16}-/.test(entry)) onTwo.push(join(folder, sub, entry))
    }
    onTwo.sort((a, b) => (a.split('/').at(-1)! < b.split('/').at(-1)! ? -1 : 1))
    const victim = onTwo[onTwo.length - 2]!
    await rename(victim, `${victim}.aside`)
    try {
      const damaged = await verifyJson()
      assert.equal(damaged.code, VERIFY_FAILED)
      const name = victim.split('/').at(-1)!.slice(0, 24)
      assert.deepEqual(damaged.report.archive.gaps.map((gap) => [gap.timeline, gap.from, gap.to, gap.neededBy.length]), [[2, name, name, 3]])
    } finally {
      await rename(`${victim}.aside`, victim)
    }
  })

  test('backups expire removes while verify reads them are reported as expired, not as damaged', async () => {
    const [oldest, , newest] = await labels()
    assert.match(newest!, /F$/)
    // One thread, so reading the oldest backup takes a while; expire starts as verify begins on it.
    const child = spawn('runuser', ['-u', 'postgres', '--', process.execPath, join(process.cwd(), 'bin', 'walden'), `--config=${stanza.configPath}`, `--stanza=${stanza.name}`, 'verify', '--output=json', '--process-max=1', '--log-level-console=info'])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    const started = new Promise<void>((resolve) =>
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        if (stderr.includes(`verify backup ${oldest}:`)) resolve()
      }),
    )
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)))
    await started
    await stanza.waldenOk(['expire', '--repo1-retention-full=1'])
    const code = await exited
    assert.deepEqual(await labels(), [newest])
    const report = JSON.parse(stdout) as Report
    assert.equal(code, 0, `${stderr}\n${JSON.stringify(report.backups.map((backup) => [backup.label, backup.status, backup.problems]))}`)
    assert.deepEqual(
      report.backups.map((backup) => [backup.label, backup.status, backup.problems.length]),
      [
        [oldest, 'expired', 0],
        [incr, 'expired', 0],
        [newest, 'ok', 0],
      ],
    )
    assert.deepEqual(report.archive.gaps, [])
  })

  test('with repo1-retention-archive, a backup outside the window needs only its own WAL, as expire keeps it', async () => {
    const [older] = await labels()
    for (let index = 0; index < 2; index++) {
      await stanza.cluster.query(`insert into accounts values (${400_000 + index}, 'window', 0)`)
      await stanza.waldenOk(['check'])
    }
    await stanza.waldenOk(['backup', '--type=full'])
    const [, newer] = await labels()
    await stanza.waldenOk(['expire', '--repo1-retention-full=2', '--repo1-retention-archive=1'])
    assert.deepEqual(await labels(), [older, newer])

    // The WAL between the older backup's stop and the newer one's start is gone, by policy.
    const strict = await verifyJson()
    assert.equal(strict.code, VERIFY_FAILED)
    assert.ok(strict.report.archive.gaps.length > 0)
    assert.ok(strict.report.archive.gaps.every((gap) => gap.neededBy.join() === older), JSON.stringify(strict.report.archive.gaps))

    const { code, report } = await verifyJson(['--repo1-retention-archive=1'])
    assert.equal(code, 0, JSON.stringify(report.archive.gaps))
    assert.deepEqual(report.backups.map((backup) => backup.status), ['ok', 'ok'])
  })
})
