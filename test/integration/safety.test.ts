// What walden refuses and what it detects, on one PostgreSQL 15 stanza: restores over a running cluster, a non-empty
// folder or another cluster; damaged repository files (backup and archive); a different WAL file under an archived
// name; a data page with a bad checksum; and the guards on stanza-delete. Tests run in order and share the stanza:
// each leaves it in the state the next one expects (noted where it matters).

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pgControlRead } from '../../src/pg/control.js'
import { createCluster } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const BLOCK = 8192

interface InfoJson {
  status: { code: number; message: string }
  backup: Array<{ label: string; type: string; prior: string | null; error: boolean }>
}

interface ManifestJson {
  format: number
  checksum: string
  content: { files: Array<{ name: string; badPages?: number[] }> }
}

async function infoJson(stanza: TestStanza): Promise<InfoJson> {
  const parsed = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as InfoJson[]
  assert.equal(parsed.length, 1)
  return parsed[0]!
}

/** Exit code, first line on stderr (exact string, or a pattern where the line holds a library's message), no stack. */
function assertRefused(result: RunResult, code: number, firstLine: string | RegExp): void {
  assert.equal(result.code, code, result.stderr)
  const line = result.stderr.split('\n')[0]!
  if (typeof firstLine === 'string') assert.equal(line, firstLine)
  else assert.match(line, firstLine)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** What a damaged stored file is reported as: a decompression failure or, if it still decompresses, a checksum mismatch. */
function damagedLine(what: string, path: string): RegExp {
  return new RegExp(`^P00  ERROR: \\[026\\]: ${what} '${escape(path)}' (is damaged: zst data is corrupt: '.+'|has checksum [0-9a-f]{64}, expected [0-9a-f]{64})$`)
}

/** Inverts `count` bytes in the middle of a file; returns the original content. */
async function flipMiddle(path: string, count = 4): Promise<Buffer> {
  const original = await readFile(path)
  const damaged = Buffer.from(original)
  const at = Math.floor(damaged.length / 2)
  for (let index = at; index < at + count && index < damaged.length; index++) damaged[index] = damaged[index]! ^ 0xff
  await writeFile(path, damaged)
  return original
}

/** Every file under a folder, as paths relative to it. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name).slice(root.length + 1))
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

describe(`safety on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let systemId: string
  let accountsPath: string // relation file of accounts, relative to the data folder
  let victimPath: string // relation file of victim (the bad-page test)
  let segment: string // a WAL segment archived before the first backup, needed by none
  let fullA: string
  let fullB: string

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR })
    await stanza.cluster.query(
      `create table accounts (id int primary key, owner text not null);
       insert into accounts select n, 'owner ' || n from generate_series(1, 5000) n;
       -- No autovacuum: once a page of this table is damaged, nothing but the backup may read it.
       create table victim (id int, pad text) with (autovacuum_enabled = false);
       insert into victim select n, repeat('v', 100) from generate_series(1, 500) n;`,
    )
    // Hint bits set and pages on disk now, so no later read of the table has a reason to rewrite them.
    await stanza.cluster.query('vacuum (analyze) victim')
    await stanza.cluster.query('checkpoint')
    systemId = await stanza.cluster.psqlScalar('select system_identifier from pg_control_system()')
    accountsPath = await stanza.cluster.psqlScalar(`select pg_relation_filepath('accounts')`)
    victimPath = await stanza.cluster.psqlScalar(`select pg_relation_filepath('victim')`)
    await stanza.waldenOk(['stanza-create'])
    const check = await stanza.waldenOk(['check'])
    segment = /WAL segment ([0-9A-F]{24}) archived/.exec(check.stdout)![1]!
    await stanza.waldenOk(['backup', '--type=full'])
    await stanza.waldenOk(['backup', '--type=full'])
    ;[fullA, fullB] = (await infoJson(stanza)).backup.map((backup) => backup.label) as [string, string]
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('backup writes its log file in log-path', async () => {
    const text = await readFile(join(stanza.dir.path, 'log', 'demo-backup.log'), 'utf8')
    const begin = text.indexOf('backup command begin')
    const end = text.indexOf('backup command end: completed successfully')
    assert.ok(begin >= 0, text)
    assert.ok(end > begin, text)
  })

  test('restore refuses a running cluster', async () => {
    const result = await stanza.walden(['restore'])
    assertRefused(result, 38, `P00  ERROR: [038]: PostgreSQL is running on '${stanza.cluster.dataDir}'`)
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from accounts'), '5000')
  })

  test('restore refuses a non-empty folder without --delta or --force', async () => {
    await stanza.cluster.stop() // stays stopped until the bad-page test
    const result = await stanza.walden(['restore'])
    assertRefused(result, 40, `P00  ERROR: [040]: unable to restore to '${stanza.cluster.dataDir}' because it contains files`)
    // A file where the data folder should be is not mistaken for an empty folder.
    const notFolder = join(stanza.dir.path, 'walden.conf')
    assertRefused(await stanza.walden(['restore', `--pg1-path=${notFolder}`]), 54, `P00  ERROR: [054]: unable to restore to '${notFolder}' because it is not a folder`)
  })

  test('--delta over another cluster is refused; --force overwrites it', async () => {
    const other = await createCluster({ major: MAJOR, dir: stanza.dir, name: 'other' })
    const otherId = (await pgControlRead(other.dataDir)).systemId.toString()
    assert.notEqual(otherId, systemId)

    const refused = await stanza.walden(['restore', '--delta', `--pg1-path=${other.dataDir}`])
    assertRefused(
      refused,
      58,
      `P00  ERROR: [058]: '${other.dataDir}' holds the cluster with system identifier ${otherId}, not ${systemId} of backup ${fullB}`,
    )
    // Refused before anything was touched.
    assert.equal((await pgControlRead(other.dataDir)).systemId.toString(), otherId)

    await stanza.waldenOk(['restore', '--force', `--pg1-path=${other.dataDir}`])
    assert.equal((await pgControlRead(other.dataDir)).systemId.toString(), systemId)
  })

  test('a damaged data file in the repository fails the restore naming it; another backup still restores', async () => {
    const backupDir = (label: string): string => join(stanza.repoPath, 'backup', 'demo', label, 'pg_data')
    const target = await stanza.dir.mkdir('restore-damaged')

    // A big relation file: restored among the first, so the restore stops early.
    const stored = join(backupDir(fullA), `${accountsPath}.zst`)
    const original = await flipMiddle(stored)
    const failed = await stanza.walden(['restore', `--set=${fullA}`, `--pg1-path=${target}`])
    assertRefused(failed, 26, damagedLine('repository file', stored))
    assert.equal(await exists(join(target, accountsPath)), false, 'no partial file under the final name')
    assert.deepEqual((await filesUnder(target)).filter((file) => /\.tmp-/.test(file)), [])
    await writeFile(stored, original)

    // A tiny file, restored after global/pg_control in size order: the restore fails late, with most files in
    // place, and the folder still must not be a cluster PostgreSQL would start.
    const version = join(backupDir(fullA), 'PG_VERSION.zst')
    await flipMiddle(version)
    const late = await stanza.walden(['restore', '--force', `--set=${fullA}`, `--pg1-path=${target}`])
    assertRefused(late, 26, damagedLine('repository file', version))
    assert.equal(await exists(join(target, accountsPath)), true, 'the big files were restored before the failure')
    assert.equal(await exists(join(target, 'PG_VERSION')), false)
    assert.equal(await exists(join(target, 'global', 'pg_control')), false, 'a part-restored cluster cannot start')
    assert.equal(await exists(join(target, 'backup_label')), false)

    const intact = await stanza.dir.mkdir('restore-intact')
    await stanza.waldenOk(['restore', `--set=${fullB}`, `--pg1-path=${intact}`])
    assert.equal((await pgControlRead(intact)).systemId.toString(), systemId)
    assert.equal(await readFile(join(intact, 'PG_VERSION'), 'utf8'), '15\n')
  })

  test('archive-push of an archived segment: the same content succeeds silently, different content fails', async () => {
    const walFolder = join(stanza.repoPath, 'archive', 'demo', '15-1', segment.slice(0, 16))
    const storedNames = async (): Promise<string[]> => (await readdir(walFolder)).filter((name) => name.startsWith(segment))
    const [storedName] = await storedNames()
    const sha256 = /-([0-9a-f]{64})\.zst$/.exec(storedName!)![1]!

    // archive-get returns the segment decompressed, with the content its stored name promises.
    const folder = await stanza.dir.mkdir('wal-copy')
    const copy = join(folder, segment)
    await stanza.waldenOk(['archive-get', segment, copy])
    assert.deepEqual(await readdir(folder), [segment])
    assert.equal(createHash('sha256').update(await readFile(copy)).digest('hex'), sha256)
    assert.equal((await stat(copy)).size, 16 * 1024 * 1024)

    for (let attempt = 0; attempt < 2; attempt++) {
      const again = await stanza.walden(['archive-push', copy])
      assert.equal(again.code, 0, again.stderr)
      assert.equal(again.stderr, '')
    }

    // Same name, same header (so it passes as this cluster's WAL), different bytes further in: in the 4 bytes of
    // alignment padding at the end of a page header, which neither PostgreSQL nor archive-push's checks read.
    const otherFolder = await stanza.dir.mkdir('wal-different')
    const different = Buffer.from(await readFile(copy))
    different.fill(0xab, 100 * BLOCK + 20, 100 * BLOCK + 24)
    await writeFile(join(otherFolder, segment), different)
    const result = await stanza.walden(['archive-push', join(otherFolder, segment)])
    assertRefused(result, 45, `P00  ERROR: [045]: WAL file '${segment}' already exists in the archive with a different checksum`)

    // The archive still holds exactly the original, and no temporary file of the refused push.
    assert.deepEqual(await storedNames(), [storedName])
  })

  test('archive-get of a damaged archived segment fails naming it and writes nothing', async () => {
    const walFolder = join(stanza.repoPath, 'archive', 'demo', '15-1', segment.slice(0, 16))
    const [name] = (await readdir(walFolder)).filter((entry) => entry.startsWith(`${segment}-`))
    const stored = join(walFolder, name!)
    await flipMiddle(stored)

    const destinationFolder = await stanza.dir.mkdir('wal-get')
    const result = await stanza.walden(['archive-get', segment, join(destinationFolder, segment)])
    // 126, not 26: PostgreSQL must abort recovery here rather than take the failure for the end of the archive.
    assertRefused(result, 126, damagedLine('archived WAL file', stored))
    assert.match(result.stderr, /exit 126: PostgreSQL must abort recovery rather than end it before this WAL file/)
    assert.deepEqual(await readdir(destinationFolder), [], 'nothing at the destination, not even a temporary file')
  })

  test('a page with a bad checksum is reported in the log, in info and in the manifest; the backup completes', async () => {
    // The cluster is stopped: damage the middle of block 1 (not its header, so the page LSN stays old).
    const relation = join(stanza.cluster.dataDir, victimPath)
    const data = await readFile(relation)
    assert.ok(data.length >= 3 * BLOCK, `victim has ${data.length} bytes`)
    for (let offset = BLOCK + 4000; offset < BLOCK + 4016; offset++) data[offset] = data[offset]! ^ 0x5a
    await writeFile(relation, data)
    await stanza.cluster.start()

    const result = await stanza.walden(['backup', '--type=full', '--log-level-console=warn'])
    assert.equal(result.code, 0, result.stderr)
    const lines = result.stderr.split('\n')
    assert.ok(lines.includes(`P00   WARN: invalid page checksums found in file '${relation}' at blocks 1`), result.stderr)

    const info = await infoJson(stanza)
    assert.deepEqual(
      info.backup.map((backup) => backup.error),
      [false, false, true],
    )
    const label = info.backup[2]!.label
    assert.ok(lines.includes(`P00   WARN: backup ${label} found 1 page(s) with invalid checksums; see the warnings above and the manifest`), result.stderr)

    const manifest = JSON.parse(await readFile(join(stanza.repoPath, 'backup', 'demo', label, 'backup.manifest'), 'utf8')) as ManifestJson
    const withBadPages = manifest.content.files.filter((file) => file.badPages !== undefined)
    assert.deepEqual(withBadPages, [manifest.content.files.find((file) => file.name === `pg_data/${victimPath}`)])
    assert.deepEqual(withBadPages[0]!.badPages, [1])
  })

  test('expire on its own keeps only the newest full backup and its dependants', async () => {
    await stanza.waldenOk(['backup', '--type=incr'])
    const before = (await infoJson(stanza)).backup
    assert.deepEqual(before.map((backup) => backup.type), ['full', 'full', 'full', 'incr'])
    const [newestFull, incr] = [before[2]!, before[3]!]
    assert.equal(incr.prior, newestFull.label)

    // Temporary files of archive-pushes killed mid-write: an old one goes, a fresh one (a push in progress) stays.
    const archiveId = join(stanza.repoPath, 'archive', 'demo', '15-1')
    const walFolder = join(archiveId, (await readdir(archiveId)).filter((entry) => /^[0-9A-F]{16}$/.test(entry)).sort().at(-1)!)
    const stale = join(walFolder, `${'0'.repeat(24)}-${'a'.repeat(64)}.zst.tmp-1-dead`)
    const fresh = join(walFolder, `${'0'.repeat(24)}-${'b'.repeat(64)}.zst.tmp-2-busy`)
    await writeFile(stale, 'partial')
    await writeFile(fresh, 'partial')
    await utimes(stale, new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000))

    await stanza.waldenOk(['expire', '--repo1-retention-full=1'])
    assert.deepEqual((await infoJson(stanza)).backup.map((backup) => backup.label), [newestFull.label, incr.label])
    assert.equal(await exists(stale), false, 'the stale temporary file is removed')
    assert.equal(await exists(fresh), true, 'a fresh temporary file is left alone')
    await rm(fresh)
    const folders = (await readdir(join(stanza.repoPath, 'backup', 'demo'))).filter((entry) => /^\d{8}-\d{6}F/.test(entry))
    assert.deepEqual(folders.sort(), [newestFull.label, incr.label].sort())
  })

  test('stanza-delete needs stop and a stopped cluster, then removes the stanza', async () => {
    const stanzaFolders = [join(stanza.repoPath, 'backup', 'demo'), join(stanza.repoPath, 'archive', 'demo')]
    assertRefused(await stanza.walden(['stanza-delete']), 62, `P00  ERROR: [062]: stanza 'demo' must be stopped before it is deleted`)
    await stanza.waldenOk(['stop'])
    assertRefused(
      await stanza.walden(['stanza-delete']),
      38,
      `P00  ERROR: [038]: PostgreSQL is running on '${stanza.cluster.dataDir}'; stop it before deleting stanza 'demo'`,
    )
    for (const folder of stanzaFolders) assert.equal(await exists(folder), true, `${folder} survives the refusals`)

    await stanza.cluster.stop()
    await stanza.waldenOk(['stanza-delete'])
    // info reports the stanza missing and, since that is an error status, exits 103 after printing its JSON.
    const deleted = await stanza.walden(['info', '--output=json'])
    assert.equal(deleted.code, 103, deleted.stderr)
    const parsed = JSON.parse(deleted.stdout) as InfoJson[]
    assert.equal(parsed[0]!.status.code, 1)
    for (const folder of stanzaFolders) assert.equal(await exists(folder), false, `${folder} is gone`)
  })
})
