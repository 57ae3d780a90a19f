// Damage to one copy of an info file or manifest, key by key, must fall back to the other copy; damage to both is a
// clear WaldenError, never a TypeError.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { after, before, describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { log } from '../common/log.js'
import { PosixStorage } from '../storage/posix.js'
import { layout } from './layout.js'
import { manifestLoad, manifestSave } from './manifest.js'
import type { Manifest } from './manifest.js'
import { archiveInfoLoad, archiveInfoLoadIfExists, archiveInfoSave, backupInfoLoad, backupInfoSave } from './stanza-info.js'
import type { ArchiveInfo, BackupInfo, PgIdentity } from './stanza-info.js'

const DB: PgIdentity = { id: 2, systemId: '7312345678901234567', version: 15 }
const OLD_DB: PgIdentity = { id: 1, systemId: '7312345678901234000', version: 14 }
const FULL = '20261122-013000F'
const INCR = '20261122-013000F_20261123-013000I'

const ARCHIVE_INFO: ArchiveInfo = { stanza: 'demo', db: DB, history: [OLD_DB, DB] }

const BACKUP_INFO: BackupInfo = {
  stanza: 'demo',
  db: DB,
  history: [OLD_DB, DB],
  backups: [
    {
      label: INCR,
      type: 'incr',
      prior: FULL,
      reference: [FULL],
      timestampStart: 1763775000,
      timestampStop: 1763775010,
      lsnStart: '0/A000028',
      lsnStop: '0/A000100',
      walStart: '00000001000000000000000A',
      walStop: '00000001000000000000000A',
      timeline: 1,
      size: 1000,
      delta: 10,
      repoSize: 500,
      repoDelta: 5,
      dbId: 2,
      compressType: 'zst',
      pageErrors: 0,
    },
  ],
}

// Every optional field present, so each is also damaged.
const MANIFEST: Manifest = {
  label: INCR,
  type: 'incr',
  prior: FULL,
  pg: { version: 15, systemId: DB.systemId, dbId: 2, walSegmentSize: 16 << 20, blockSize: 8192, dataChecksums: true },
  start: { lsn: '0/A000028', wal: '00000001000000000000000A', timeline: 1, time: 1763775000123.5 },
  stop: { lsn: '0/A000100', wal: '00000001000000000000000A', time: 1763775010456 },
  compressType: 'zst',
  compressLevel: 3,
  targets: [
    { name: 'pg_data', path: '/data' },
    { name: 'pg_tblspc/16400', path: '/ts', tablespaceOid: 16400, tablespaceName: 'ts1' },
  ],
  paths: [{ name: 'pg_data', mode: 0o700 }],
  links: [{ name: 'pg_data/pg_wal', destination: '/wal' }],
  files: [
    {
      name: 'pg_data/base/5/16384',
      size: 3 << 20,
      mtimeMs: 1763774000000.25,
      mode: 0o600,
      sha256: 'a'.repeat(64),
      xxh3: 'b'.repeat(32),
      repoSize: 1 << 20,
      compressType: 'zst',
      reference: FULL,
      badPages: [7],
      parts: [{ size: 1 << 20, sha256: 'c'.repeat(64), xxh3: 'd'.repeat(32), repoSize: 1000 }],
      partSize: 1 << 20,
    },
  ],
  backupLabel: 'START WAL LOCATION: 0/A000028\n',
  tablespaceMap: '',
}

const OPTIONAL = new Set(['xxh3', 'reference', 'badPages', 'parts', 'partSize', 'tablespaceOid', 'tablespaceName'])

interface Document {
  name: string
  path: string
  content: unknown
  save(repo: PosixStorage): Promise<void>
  load(repo: PosixStorage): Promise<unknown>
}

const DOCUMENTS: Document[] = [
  {
    name: 'archive.info',
    path: layout.archiveInfo('demo'),
    content: ARCHIVE_INFO,
    save: (repo) => archiveInfoSave(repo, structuredClone(ARCHIVE_INFO)),
    load: (repo) => archiveInfoLoad(repo, 'demo'),
  },
  {
    name: 'backup.info',
    path: layout.backupInfo('demo'),
    content: BACKUP_INFO,
    save: (repo) => backupInfoSave(repo, structuredClone(BACKUP_INFO)),
    load: (repo) => backupInfoLoad(repo, 'demo'),
  },
  {
    name: 'backup.manifest',
    path: layout.backupManifest('demo', INCR),
    content: MANIFEST,
    save: (repo) => manifestSave(repo, 'demo', structuredClone(MANIFEST)),
    load: (repo) => manifestLoad(repo, 'demo', INCR),
  },
]

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** Every property of every object and every array element in the document, as a path of keys and indices. */
function propertyPaths(value: Json, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (Array.isArray(value)) return value.flatMap((item, index) => [[...prefix, index], ...propertyPaths(item, [...prefix, index])])
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([key, item]) => [[...prefix, key], ...propertyPaths(item, [...prefix, key])])
}

/** A value of another JSON type than `value`. */
function wrongType(value: Json): Json {
  if (value === null) return 7
  if (Array.isArray(value)) return { length: 0 }
  if (typeof value === 'object') return 'not an object'
  if (typeof value === 'string') return 12345
  if (typeof value === 'number') return String(value)
  return 'yes'
}

function edit(envelope: { [key: string]: Json }, path: Array<string | number>, change: 'delete' | 'wrong type'): void {
  let parent = envelope as Json
  for (const key of path.slice(0, -1)) parent = (parent as Record<string, Json>)[key]!
  const last = path.at(-1)!
  const holder = parent as Record<string, Json>
  if (change === 'delete') delete holder[last]
  else holder[last] = wrongType(holder[last]!)
}

const checksum = (content: unknown): string => createHash('sha256').update(JSON.stringify(content)).digest('hex')

describe('info files and manifests: damage to one copy', () => {
  let root: string
  let repo: PosixStorage
  const warnings: string[] = []
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'walden-info-file-'))
    repo = new PosixStorage(root)
    // The fallback is logged as a warning; keep those lines out of the test output but check them.
    const warn = log.warn.bind(log)
    log.warn = (message: string) => {
      warnings.push(message)
      void warn
    }
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  for (const document of DOCUMENTS) {
    describe(document.name, () => {
      const full = (name: string): string => join(root, name)

      async function envelopeOf(name: string): Promise<{ [key: string]: Json }> {
        return JSON.parse(await readFile(full(name), 'utf8')) as { [key: string]: Json }
      }

      /** Damages `damaged` (the main file or its copy) with `change`; the other copy stays as saved. */
      let saved: string | undefined

      async function damageAndLoad(damaged: string, change: (envelope: { [key: string]: Json }) => void, rechecksum: boolean): Promise<unknown> {
        if (saved === undefined) {
          await document.save(repo)
          saved = await readFile(full(document.path), 'utf8')
        }
        // Both copies as saved (without an fsync per case, which would make the loops slow), then one damaged.
        for (const name of [document.path, `${document.path}.copy`]) await writeFile(full(name), saved)
        const envelope = JSON.parse(saved) as { [key: string]: Json }
        change(envelope)
        // With the checksum recomputed only the shape check can tell the copy is damaged.
        if (rechecksum && typeof envelope.content === 'object' && envelope.content !== null) envelope.checksum = checksum(envelope.content)
        await writeFile(full(damaged), JSON.stringify(envelope))
        return document.load(repo)
      }

      test('saves and loads back what it saved', async () => {
        await document.save(repo)
        assert.deepEqual(await document.load(repo), document.content)
      })

      for (const which of ['main', 'copy'] as const) {
        test(`each key of the ${which} file deleted or of a wrong type: the other copy is used`, async () => {
          const damaged = which === 'main' ? document.path : `${document.path}.copy`
          const paths = propertyPaths({ format: 1, checksum: 'x', content: document.content as Json })
          assert.ok(paths.length > 10, 'the walk found the keys')
          // Every case is tried and the failures listed together, so a regression shows its whole extent.
          const failures: string[] = []
          let checked = 0
          for (const path of paths) {
            for (const change of ['delete', 'wrong type'] as const) {
              for (const rechecksum of path[0] === 'content' ? [false, true] : [false]) {
                const label = `${path.join('.')} ${change}${rechecksum ? ' (checksum recomputed)' : ''}`
                warnings.length = 0
                checked++
                let loaded: unknown
                try {
                  loaded = await damageAndLoad(damaged, (envelope) => edit(envelope, path, change), rechecksum)
                } catch (error) {
                  failures.push(`${label}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`)
                  continue
                }
                // Still a valid document, just without an optional field: either copy may be the one loaded.
                if (change === 'delete' && rechecksum && OPTIONAL.has(String(path.at(-1)))) continue
                if (!isDeepStrictEqual(loaded, document.content)) failures.push(`${label}: the damaged copy was loaded`)
                else if (which === 'main' && warnings.length !== 1) failures.push(`${label}: ${warnings.length} warnings, expected one naming the damaged copy`)
              }
            }
          }
          assert.ok(checked > 50, `${checked} cases`)
          assert.deepEqual(failures, [])
        })
      }

      test('a truncated, empty or non-object main file: the copy is used', async () => {
        await document.save(repo)
        const text = await readFile(full(document.path), 'utf8')
        for (const damaged of [text.slice(0, text.length / 2), text.slice(0, 1), '', 'null', '[]', '"text"', '42', '{}', '\u0000\u0000']) {
          await document.save(repo)
          await writeFile(full(document.path), damaged)
          assert.deepEqual(await document.load(repo), document.content, JSON.stringify(damaged.slice(0, 20)))
        }
      })

      test("a damaged format number in one copy falls back; 'format' as a string, null, 0, 2 or 1e9", async () => {
        for (const format of ['1', null, 0, -1, 1.5, 2, 1e9] as Json[]) {
          for (const damaged of [document.path, `${document.path}.copy`]) {
            assert.deepEqual(
              await damageAndLoad(damaged, (envelope) => { envelope.format = format }, false),
              document.content,
              `${damaged} format ${JSON.stringify(format)}`,
            )
          }
        }
      })

      test('both copies damaged: a Checksum error naming both and what is wrong with each', async () => {
        await document.save(repo)
        await writeFile(full(document.path), '{"format":1,"checksum":"x"')
        const copy = await envelopeOf(`${document.path}.copy`)
        delete (copy.content as Record<string, Json>)[Object.keys(copy.content as object)[0]!]
        copy.checksum = checksum(copy.content)
        await writeFile(full(`${document.path}.copy`), JSON.stringify(copy))
        await assert.rejects(document.load(repo), (error: unknown) => {
          assert.ok(error instanceof WaldenError, String(error))
          assert.equal(error.kind, 'Checksum')
          assert.equal(error.code, 26)
          assert.match(error.message, new RegExp(`'${full(document.path)}' is not valid JSON`))
          assert.match(error.message, new RegExp(`'${full(document.path)}.copy' is not a valid document: \\w+ is missing, expected`))
          assert.match(error.hint ?? '', /restore them from a copy of the repository/)
          return true
        })
        // One damaged and the other missing is damage too, not "does not exist".
        await rm(full(`${document.path}.copy`))
        await assert.rejects(document.load(repo), { name: 'ChecksumError', message: /\.copy' is missing/ })
      })

      test('both copies of a newer format, otherwise intact: the "upgrade walden" error', async () => {
        await document.save(repo)
        for (const name of [document.path, `${document.path}.copy`]) {
          const envelope = await envelopeOf(name)
          envelope.format = 2
          envelope.content = { written: 'by a newer walden' }
          envelope.checksum = checksum(envelope.content)
          await writeFile(full(name), JSON.stringify(envelope))
        }
        await assert.rejects(document.load(repo), (error: unknown) => {
          assert.ok(error instanceof WaldenError, String(error))
          assert.equal(error.kind, 'RepoInvalid')
          assert.match(error.message, /has format 2, newer than this walden reads \(1\)/)
          assert.match(error.hint ?? '', /upgrade walden/)
          return true
        })
      })
    })
  }

  test('a repairing load (stanza-create) rewrites a damaged or missing copy from the whole one', async () => {
    const main = join(root, layout.archiveInfo('demo'))
    for (const damaged of [main, `${main}.copy`]) {
      for (const damage of ['truncate', 'remove'] as const) {
        await archiveInfoSave(repo, structuredClone(ARCHIVE_INFO))
        const whole = await readFile(main, 'utf8')
        if (damage === 'remove') await rm(damaged)
        else await writeFile(damaged, whole.slice(0, 30))
        warnings.length = 0
        assert.deepEqual(await archiveInfoLoadIfExists(repo, 'demo', { repair: true }), ARCHIVE_INFO)
        assert.equal(warnings.length, 1, `${damaged} ${damage}: ${warnings.join('; ')}`)
        assert.deepEqual(JSON.parse(await readFile(main, 'utf8')), JSON.parse(whole), `${damaged} ${damage}`)
        assert.deepEqual(JSON.parse(await readFile(`${main}.copy`, 'utf8')), JSON.parse(whole), `${damaged} ${damage}`)
      }
    }
    // A copy of a newer format (or a damaged format number) is never rewritten: it may be a newer walden's.
    await archiveInfoSave(repo, structuredClone(ARCHIVE_INFO))
    const newer = JSON.stringify({ ...(JSON.parse(await readFile(main, 'utf8')) as object), format: 2 })
    for (const name of [main, `${main}.copy`]) {
      await archiveInfoSave(repo, structuredClone(ARCHIVE_INFO))
      await writeFile(name, newer)
      assert.deepEqual(await archiveInfoLoadIfExists(repo, 'demo', { repair: true }), ARCHIVE_INFO)
      assert.equal(await readFile(name, 'utf8'), newer, name)
    }
    await archiveInfoSave(repo, structuredClone(ARCHIVE_INFO))

    // Nothing damaged: nothing said, nothing written.
    warnings.length = 0
    const before = (await stat(main)).mtimeMs
    await archiveInfoLoadIfExists(repo, 'demo', { repair: true })
    assert.deepEqual(warnings, [])
    assert.equal((await stat(main)).mtimeMs, before)
  })

  test('a wrongly shaped document is never written', async () => {
    const bad = { ...structuredClone(ARCHIVE_INFO), db: { ...DB, systemId: 7312345678901234567 as unknown as string } }
    await assert.rejects(archiveInfoSave(repo, bad), { name: 'AssertError', message: /db\.systemId is number \d+, expected a system identifier/ })
  })
})
