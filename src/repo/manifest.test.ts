import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { manifestDiff, manifestFileRepoPath } from './manifest.js'
import type { Manifest, ManifestFile } from './manifest.js'

// Times with a fraction of a millisecond, as the scan records them (mtimeNs / 1e6).
const T = 1767225600123.456

const FULL = '20260101-000000F'
const INCR = '20260101-000000F_20260102-000000I'

function file(name: string, size: number, mtimeMs: number, extra: Partial<ManifestFile> = {}): ManifestFile {
  return { name, size, mtimeMs, mode: 0o600, sha256: `sha-${name}`, repoSize: size / 2, compressType: 'zst', ...extra }
}

/** A prior manifest holding only what manifestDiff reads: its files. */
function prior(label: string, files: ManifestFile[], startTime = T + 60_000): Manifest {
  return {
    label,
    type: label.endsWith('F') ? 'full' : 'incr',
    prior: null,
    pg: { version: 15, systemId: '1', dbId: 1, walSegmentSize: 16 << 20, blockSize: 8192, dataChecksums: true },
    start: { lsn: '0/2000028', wal: '000000010000000000000002', timeline: 1, time: startTime },
    stop: { lsn: '0/2000100', wal: '000000010000000000000002', time: 0 },
    compressType: 'zst',
    compressLevel: 3,
    targets: [{ name: 'pg_data', path: '/data' }],
    paths: [],
    links: [],
    files,
    backupLabel: '',
    tablespaceMap: '',
  }
}


describe('manifestDiff', () => {
  test('a file with the same size and mtime is referenced; its record is carried over with the prior label', () => {
    const kept = file('pg_data/base/5/16384', 8192, T, { sha256: 'abc', repoSize: 99 })
    const diff = manifestDiff(prior(FULL, [kept]), FULL, [{ name: kept.name, size: 8192, mtimeMs: T, mode: 0o600 }])
    assert.deepEqual(diff.copy, [])
    assert.deepEqual([...diff.reference.keys()], [kept.name])
    // Everything a restore needs (checksum, stored size, compression) comes from the prior record.
    assert.deepEqual(diff.reference.get(kept.name), { ...kept, reference: FULL })
  })

  test('a file the prior backup itself referenced keeps pointing at the backup that stored it', () => {
    const inFull = file('pg_data/base/5/16384', 8192, T, { reference: FULL })
    const diff = manifestDiff(prior(INCR, [inFull]), INCR, [{ name: inFull.name, size: 8192, mtimeMs: T, mode: 0o600 }])
    assert.equal(diff.reference.get(inFull.name)?.reference, FULL)
  })

  test('a changed size, a changed mtime (even by a fraction of a millisecond) or a new file is copied', () => {
    const files = [file('pg_data/a', 8192, T), file('pg_data/b', 8192, T), file('pg_data/c', 8192, T)]
    const diff = manifestDiff(prior(FULL, files), FULL, [
      { name: 'pg_data/a', size: 16384, mtimeMs: T, mode: 0o600 },
      { name: 'pg_data/b', size: 8192, mtimeMs: T + 0.02, mode: 0o600 },
      { name: 'pg_data/c', size: 8192, mtimeMs: T, mode: 0o600 },
      { name: 'pg_data/new', size: 0, mtimeMs: T, mode: 0o600 },
    ])
    assert.deepEqual(diff.copy, ['pg_data/a', 'pg_data/b', 'pg_data/new'])
    assert.deepEqual([...diff.reference.keys()], ['pg_data/c'])
  })

  test('a time set back by restore (utimes in double seconds) still matches; twenty microseconds off do not', async () => {
    const { mkdtemp, rm, stat, writeFile, utimes } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'walden-mtime-'))
    try {
      const path = join(dir, 'f')
      await writeFile(path, 'x')
      await utimes(path, T / 1000, T / 1000)
      const restored = Number((await stat(path, { bigint: true })).mtimeNs) / 1e6
      const diff = manifestDiff(prior(FULL, [file('pg_data/f', 1, T), file('pg_data/g', 1, T)]), FULL, [
        { name: 'pg_data/f', size: 1, mtimeMs: restored, mode: 0o600 },
        { name: 'pg_data/g', size: 1, mtimeMs: T + 0.02, mode: 0o600 },
      ])
      assert.deepEqual([...diff.reference.keys()], ['pg_data/f'])
      assert.deepEqual(diff.copy, ['pg_data/g'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a file whose prior copy had bad pages is copied again, even unchanged', () => {
    // Referencing it would carry the damaged copy forward into every later backup without a new check.
    const damaged = file('pg_data/base/5/16384', 8192, T, { badPages: [0] })
    const clean = file('pg_data/base/5/16385', 8192, T, { badPages: [] })
    const diff = manifestDiff(prior(FULL, [damaged, clean]), FULL, [
      { name: damaged.name, size: 8192, mtimeMs: T, mode: 0o600 },
      { name: clean.name, size: 8192, mtimeMs: T, mode: 0o600 },
    ])
    assert.deepEqual(diff.copy, [damaged.name])
    assert.deepEqual([...diff.reference.keys()], [clean.name])
  })

  test('a file whose time is within a second of the prior backup start, or later, is copied even if unchanged', () => {
    // Written twice within one timestamp tick around the prior copy, it could show the same time with new content.
    const recent = file('pg_data/recent', 8192, T)
    assert.deepEqual(manifestDiff(prior(FULL, [recent], T + 999), FULL, [{ name: recent.name, size: 8192, mtimeMs: T, mode: 0o600 }]).copy, [recent.name])
    assert.deepEqual(manifestDiff(prior(FULL, [recent], T + 1001), FULL, [{ name: recent.name, size: 8192, mtimeMs: T, mode: 0o600 }]).copy, [])
  })

  test('a referenced record takes its mode from the current scan', () => {
    const kept = file('pg_data/postgresql.conf', 100, T)
    const diff = manifestDiff(prior(FULL, [kept]), FULL, [{ name: kept.name, size: 100, mtimeMs: T, mode: 0o640 }])
    assert.equal(diff.reference.get(kept.name)?.mode, 0o640)
  })

  test('files of the prior backup that are gone now are neither copied nor referenced', () => {
    const diff = manifestDiff(prior(FULL, [file('pg_data/dropped', 8192, T)]), FULL, [])
    assert.deepEqual(diff.copy, [])
    assert.equal(diff.reference.size, 0)
  })
})

describe('manifestFileRepoPath', () => {
  test('a file stored by this backup is under its own label, with the compression extension', () => {
    assert.equal(
      manifestFileRepoPath('demo', INCR, file('pg_data/base/5/16384', 8192, T), '.zst'),
      `backup/demo/${INCR}/pg_data/base/5/16384.zst`,
    )
  })

  test('a referenced file is read from the backup that stored it', () => {
    assert.equal(
      manifestFileRepoPath('demo', INCR, file('pg_tblspc/16400/PG_15_202209061/5/16401', 8192, T, { reference: FULL }), ''),
      `backup/demo/${FULL}/pg_tblspc/16400/PG_15_202209061/5/16401`,
    )
  })
})
