// Damaged info files on a real PostgreSQL 15 stanza: a damaged main copy of archive.info, backup.info or a manifest
// falls back to the intact .copy (a whole restore and its recovery run through it); both copies damaged makes
// archive-get exit 126, so recovery aborts rather than ends; temporary files of an interrupted expire are removed by
// the next one; info's exit status follows the stanzas' status. Tests run in order and share the stanza.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15

interface Envelope {
  format: unknown
  checksum: unknown
  content: Record<string, unknown>
}

const checksum = (content: unknown): string => createHash('sha256').update(JSON.stringify(content)).digest('hex')

/** Ways a copy gets damaged: each must make walden use the other copy. */
const DAMAGE: Record<string, (text: string) => string> = {
  truncated: (text) => text.slice(0, Math.floor(text.length / 2)),
  'JSON null': () => 'null',
  'format as a string': (text) => JSON.stringify({ ...(JSON.parse(text) as Envelope), format: '1' }),
  // A key of the content removed with the checksum recomputed: only the shape check can tell.
  'db removed, checksum recomputed': (text) => {
    const envelope = JSON.parse(text) as Envelope
    delete envelope.content.db
    return JSON.stringify({ ...envelope, checksum: checksum(envelope.content) })
  },
}

interface InfoJson {
  name: string
  status: { code: number; message: string }
  backup: Array<{ label: string }>
}

describe(`damaged info files on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let segment: string
  let archiveInfo: string
  let backupInfo: string
  let fresh: RunResult // info before the first backup

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR })
    await stanza.waldenOk(['stanza-create'])
    const check = await stanza.waldenOk(['check'])
    segment = /WAL segment ([0-9A-F]{24}) archived/.exec(check.stdout)![1]!
    archiveInfo = join(stanza.repoPath, 'archive', stanza.name, 'archive.info')
    backupInfo = join(stanza.repoPath, 'backup', stanza.name, 'backup.info')
    fresh = await stanza.walden(['info', '--output=json'])
    await stanza.waldenOk(['backup', '--type=full'])
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('info exits 51 for a stanza without backups, 0 once it has one, and prints the JSON in full either way', async () => {
    assert.equal(fresh.code, 51, fresh.stderr)
    assert.deepEqual((JSON.parse(fresh.stdout) as InfoJson[]).map((item) => [item.name, item.status.code]), [[stanza.name, 2]])
    await stanza.waldenOk(['info'])
  })

  test('archive-get works with the main archive.info damaged in each way, using the copy', async () => {
    const original = await readFile(archiveInfo, 'utf8')
    const folder = await stanza.dir.mkdir('get-one-damaged')
    // Every kind of damage is tried and the failures listed together.
    const failures: string[] = []
    try {
      for (const [name, damage] of Object.entries(DAMAGE)) {
        await writeFile(archiveInfo, damage(original))
        const destination = join(folder, `${segment}-${name.replaceAll(' ', '-')}`)
        const result = await stanza.walden(['archive-get', segment, destination])
        if (result.code !== 0) failures.push(`${name}: exit ${result.code}: ${result.stderr.split('\n')[0]}`)
        else if ((await stat(destination)).size !== 16 * 1024 * 1024) failures.push(`${name}: wrong size`)
        else if (!new RegExp(`WARN: '${archiveInfo}' .*; using '${archiveInfo}\\.copy'`).test(result.stderr)) failures.push(`${name}: no warning`)
      }
    } finally {
      await writeFile(archiveInfo, original)
    }
    assert.deepEqual(failures, [])
  })

  test('both copies of archive.info damaged: archive-get exits 126 naming both; info exits 26 with its JSON', async () => {
    const original = await readFile(archiveInfo, 'utf8')
    const folder = await stanza.dir.mkdir('get-both-damaged')
    const failures: string[] = []
    try {
      for (const [name, damage] of Object.entries(DAMAGE)) {
        await writeFile(archiveInfo, damage(original))
        await writeFile(`${archiveInfo}.copy`, DAMAGE.truncated!(original))
        const result = await stanza.walden(['archive-get', segment, join(folder, segment)])
        const loadError = new RegExp(`ERROR: \\[026\\]: unable to load '${archiveInfo}' or its copy: '${archiveInfo}' .*; '${archiveInfo}\\.copy' is not valid JSON`)
        // Not 124 or 26: PostgreSQL reads anything up to 125 as "not in the archive" and would end recovery here.
        if (result.code !== 126) failures.push(`${name}: exit ${result.code}: ${result.stderr.split('\n')[0]}`)
        else if (!loadError.test(result.stderr) || !/exit 126: PostgreSQL must abort recovery/.test(result.stderr)) failures.push(`${name}: ${result.stderr}`)
        else if (/TypeError|\n\s+at /.test(result.stderr)) failures.push(`${name}: a stack trace`)
        assert.deepEqual(await readdir(folder), [], 'nothing written')
      }
      assert.deepEqual(failures, [])
      const info = await stanza.walden(['info', '--output=json'])
      assert.equal(info.code, 26, info.stderr)
      const [report] = JSON.parse(info.stdout) as InfoJson[]
      assert.equal(report!.status.code, 99)
      assert.match(info.stdout, /\[ChecksumError\] unable to load/)

      // Both copies of a newer format: the "upgrade walden" error, and for archive-get 126 as well.
      for (const file of [archiveInfo, `${archiveInfo}.copy`]) await writeFile(file, JSON.stringify({ ...(JSON.parse(original) as Envelope), format: 2 }))
      const newer = await stanza.walden(['archive-get', segment, join(folder, segment)])
      assert.equal(newer.code, 126, newer.stderr)
      assert.match(newer.stderr, /ERROR: \[103\]: '.*archive\.info' has format 2, newer than this walden reads \(1\)\nHINT: upgrade walden/)
    } finally {
      await writeFile(archiveInfo, original)
      await writeFile(`${archiveInfo}.copy`, original)
    }
    await stanza.waldenOk(['info'])
  })

  test('a restore and its recovery run with the main archive.info, backup.info and manifest damaged', async () => {
    await stanza.cluster.query(`create table kept (id int); insert into kept select generate_series(1, 1000)`)
    await stanza.waldenOk(['check']) // the segment holding the rows is archived
    await stanza.cluster.stop()
    const [label] = ((JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as InfoJson[])[0]!.backup).map((backup) => backup.label)
    const manifest = join(stanza.repoPath, 'backup', stanza.name, label!, 'backup.manifest')
    const originals = new Map<string, string>()
    for (const file of [archiveInfo, backupInfo, manifest]) originals.set(file, await readFile(file, 'utf8'))
    for (const file of [archiveInfo, backupInfo]) await writeFile(file, DAMAGE['db removed, checksum recomputed']!(originals.get(file)!))
    // The manifest has no 'db' key: damage it another way.
    await writeFile(manifest, DAMAGE['JSON null']!(''))

    try {
      await stanza.waldenOk(['restore', '--delta'])
      await stanza.cluster.start()
      await stanza.cluster.waitWritable()
      assert.equal(await stanza.cluster.psqlScalar('select count(*) from kept'), '1000')
    } catch (error) {
      // Leave the stanza usable for the next test.
      for (const [file, text] of originals) await writeFile(file, text)
      if (!stanza.cluster.isRunning()) await stanza.cluster.start().catch(() => undefined)
      throw error
    }
    // The next write of backup.info (a backup) repairs its main copy; stanza-create repairs archive.info's.
    await stanza.waldenOk(['backup', '--type=incr'])
    assert.deepEqual(JSON.parse(await readFile(backupInfo, 'utf8')), JSON.parse(await readFile(`${backupInfo}.copy`, 'utf8')))
    const repair = await stanza.waldenOk(['stanza-create'])
    assert.match(repair.stderr, new RegExp(`WARN: '${archiveInfo}' is not a valid document: db is missing, expected an object; using '${archiveInfo}\\.copy' and rewriting both`))
    assert.deepEqual(JSON.parse(await readFile(archiveInfo, 'utf8')), JSON.parse(originals.get(archiveInfo)!))
    assert.equal((await stanza.waldenOk(['stanza-create'])).stderr, '', 'nothing left to repair')
  })

  test("expire removes temporary files an interrupted walden left in the stanza's metadata folders, not a push's", async () => {
    const backupRoot = join(stanza.repoPath, 'backup', stanza.name)
    const labels = (await readdir(backupRoot)).filter((entry) => /^\d{8}-\d{6}F/.test(entry))
    const archiveRoot = join(stanza.repoPath, 'archive', stanza.name)
    const leftovers = [
      join(backupRoot, 'backup.info.copy.tmp-4242-1a2b3c4d'),
      join(backupRoot, 'backup.info.tmp-4242-0badcafe'),
      join(archiveRoot, 'archive.info.tmp-99-00112233'),
      join(backupRoot, labels[0]!, 'backup.manifest.copy.tmp-4242-deadbeef'),
    ]
    // What an archive-push running right now would have in the archive id folder: never removed from under it.
    const walFolder = join(archiveRoot, '15-1', segment.slice(0, 16))
    const pushing = join(walFolder, `${segment}-${'0'.repeat(64)}.zst.tmp-77-abcdef01`)
    for (const file of [...leftovers, pushing]) await writeFile(file, '{"format":1,')

    // info only reads, and what it reads is intact.
    await stanza.waldenOk(['info'])
    const expire = await stanza.waldenOk(['expire', '--log-level-console=info'])
    assert.match(expire.stderr, /removed 4 temporary file\(s\) left by an interrupted walden/)
    for (const file of leftovers) await assert.rejects(stat(file), /ENOENT/, file)
    await stat(pushing)
  })
})
