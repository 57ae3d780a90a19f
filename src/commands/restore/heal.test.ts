import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Manifest, ManifestFile } from '../../repo/manifest.js'
import { ContentIndex } from './heal.js'

const sha = (char: string): string => char.repeat(64)

function file(name: string, size: number, sha256: string, extra: Partial<ManifestFile> = {}): ManifestFile {
  return { name, size, mtimeMs: 0, mode: 0o600, sha256, repoSize: size, compressType: 'lz4', ...extra }
}

function manifest(label: string, files: ManifestFile[]): Manifest {
  return {
    label, type: 'full', prior: null,
    pg: { version: 150000, systemId: '1', dbId: 1, walSegmentSize: 16777216, blockSize: 8192, dataChecksums: true },
    start: { lsn: '0/0', wal: '', timeline: 1, time: 0 }, stop: { lsn: '0/0', wal: '', time: 0 },
    compressType: 'lz4', compressLevel: 1, targets: [], paths: [], links: [], files, backupLabel: '', tablespaceMap: '',
  }
}

const repo2 = { index: 2 as const, location: { type: 'posix' as const, path: '/repo2' }, cipher: { type: 'none' as const, repo: 2, record: null } }
const repo3 = { index: 3 as const, location: { type: 'posix' as const, path: '/repo3' }, cipher: { type: 'none' as const, repo: 3, record: null } }
const FULL = '20260101-000000F'
const INCR = '20260101-000000F_20260102-000000I'

test('whole files and parts are found by SHA-256 and size, at their stored path, following references', () => {
  const index = new ContentIndex()
  const parted = file('pg_data/base/5/16384', 100, sha('p'), {
    partSize: 64,
    parts: [
      { size: 64, sha256: sha('a'), repoSize: 10 },
      { size: 36, sha256: sha('b'), repoSize: 5 },
    ],
  })
  index.add(repo2, 'demo', manifest(INCR, [file('pg_data/PG_VERSION', 3, sha('v'), { reference: FULL }), parted, file('pg_data/empty', 0, sha('e'))]))
  assert.deepEqual(index.find(sha('v'), 3).map((copy) => copy.repoPath), [`backup/demo/${FULL}/pg_data/PG_VERSION.lz4`])
  assert.equal(index.find(sha('v'), 3)[0]!.label, INCR)
  assert.deepEqual(index.find(sha('b'), 36).map((copy) => copy.repoPath), [`backup/demo/${INCR}/pg_data/base/5/16384.part-1.lz4`])
  assert.deepEqual(index.find(sha('v'), 4), [], 'the size must match too')
  assert.deepEqual(index.find(sha('p'), 100), [], 'a file in parts is found by its parts, not by their combined checksum')
  assert.deepEqual(index.find(sha('e'), 0), [], 'empty files are not stored')
})

test('one stored file referenced by several backups is listed once; repositories keep the order they were added in', () => {
  const index = new ContentIndex()
  index.add(repo2, 'demo', manifest(INCR, [file('pg_data/global/1262', 8192, sha('g'), { reference: FULL })]))
  index.add(repo2, 'demo', manifest(FULL, [file('pg_data/global/1262', 8192, sha('g'))]))
  index.add(repo3, 'demo', manifest(FULL, [file('pg_data/global/1262', 8192, sha('g'), { compressType: 'zst' })]))
  const copies = index.find(sha('g'), 8192)
  assert.deepEqual(copies.map((copy) => [copy.index, copy.repoPath]), [
    [2, `backup/demo/${FULL}/pg_data/global/1262.lz4`],
    [3, `backup/demo/${FULL}/pg_data/global/1262.zst`],
  ])
})
