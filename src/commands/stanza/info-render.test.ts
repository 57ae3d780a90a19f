// Times are rendered in local time: pin the zone before any Date is made so the expected text holds everywhere.
process.env.TZ = 'UTC'

import assert from 'node:assert/strict'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { lockAcquire } from '../../common/lock.js'
import { configLoad } from '../../config/config.js'
import type { ArchiveInfo, BackupInfo, BackupRecord, PgIdentity } from '../../repo/stanza-info.js'
import { archiveInfoSave, backupInfoSave } from '../../repo/stanza-info.js'
import { manifestSave } from '../../repo/manifest.js'
import type { Manifest } from '../../repo/manifest.js'
import { PosixStorage } from '../../storage/posix.js'
import { VERSION } from '../../version.js'
import { info } from './info.js'
import { archiveIdFor, backupDetailOf, formatLocalTime, infoRenderJson, infoRenderText, stanzaReport, stanzaView } from './info-render.js'
import type { StanzaReport } from './info-render.js'

// Above 2^53: a JS number would turn it into 7312345678901234000.
const SYSTEM_ID = '7312345678901234567'
const DB: PgIdentity = { id: 1, systemId: SYSTEM_ID, version: 15 }
const seg = (n: number): string => `00000001000000000000000${n.toString(16).toUpperCase()}`

// 2026-11-22 01:30:00 UTC and onwards.
const T0 = Date.UTC(2026, 10, 22, 1, 30, 0) / 1000

function record(fields: Partial<BackupRecord> & Pick<BackupRecord, 'label' | 'type'>): BackupRecord {
  return {
    prior: null,
    reference: [],
    timestampStart: T0,
    timestampStop: T0 + 5,
    lsnStart: '0/2000028',
    lsnStop: '0/2000138',
    walStart: seg(2),
    walStop: seg(2),
    timeline: 1,
    size: 23_278_387,
    delta: 23_278_387,
    repoSize: 3_040_870,
    repoDelta: 3_040_870,
    dbId: 1,
    compressType: 'zst',
    pageErrors: 0,
    ...fields,
  }
}

const FULL = record({ label: '20261122-013000F', type: 'full' })
const DIFF = record({
  label: '20261122-013000F_20261122-014000D',
  type: 'diff',
  prior: FULL.label,
  reference: [FULL.label],
  timestampStart: T0 + 600,
  timestampStop: T0 + 602,
  lsnStart: '0/4000028',
  lsnStop: '0/4000100',
  walStart: seg(4),
  walStop: seg(4),
  delta: 1_572_864,
  repoSize: 3_145_728,
  repoDelta: 104_857,
})
const INCR = record({
  label: '20261122-013000F_20261122-014500I',
  type: 'incr',
  prior: DIFF.label,
  reference: [FULL.label, DIFF.label],
  timestampStart: T0 + 900,
  timestampStop: T0 + 903,
  lsnStart: '0/5000028',
  lsnStop: '0/5000100',
  walStart: seg(5),
  walStop: seg(5),
  delta: 8192,
  repoSize: 3_146_000,
  repoDelta: 800,
  pageErrors: 2,
})

/** The manifest of a backup, with what info --set shows: databases, links and tablespaces as a backup records them. */
function manifestOf(backup: BackupRecord, extra: Partial<Manifest> = {}): Manifest {
  return {
    label: backup.label,
    type: backup.type,
    prior: backup.prior,
    pg: { version: 15, systemId: DB.systemId, dbId: 1, walSegmentSize: 16 << 20, blockSize: 8192, dataChecksums: true },
    start: { lsn: backup.lsnStart, wal: backup.walStart, timeline: 1, time: backup.timestampStart * 1000 },
    stop: { lsn: backup.lsnStop, wal: backup.walStop, time: backup.timestampStop * 1000 },
    compressType: 'zst',
    compressLevel: 3,
    targets: [
      { name: 'pg_data', path: '/srv/pg' },
      { name: 'pg_tblspc/16400', path: '/srv/ts2', tablespaceOid: 16400, tablespaceName: 'ts2' },
      { name: 'pg_tblspc/16384', path: '/srv/ts1', tablespaceOid: 16384, tablespaceName: 'ts1' },
    ],
    paths: [{ name: 'pg_data', mode: 0o700 }],
    links: [
      { name: 'pg_data/pg_wal', destination: '/srv/wal' },
      { name: 'pg_data/postgresql.auto.conf', destination: '/etc/pg/auto.conf' },
    ],
    files: [],
    backupLabel: '',
    tablespaceMap: '',
    // As pgBackRest 2.45 recorded them from a PostgreSQL 15 cluster: template0 (4) is the last system database.
    databases: [
      { name: 'template1', oid: 1, lastSystemOid: 4 },
      { name: 'template0', oid: 4, lastSystemOid: 4 },
      { name: 'postgres', oid: 5, lastSystemOid: 4 },
      { name: 'app', oid: 16385, lastSystemOid: 4 },
    ],
    ...extra,
  }
}

const backupInfo = (backups: BackupRecord[]): BackupInfo => ({ stanza: 'demo', db: DB, history: [DB], backups })
const archiveInfo: ArchiveInfo = { stanza: 'demo', db: DB, history: [DB] }
const walRanges = new Map([['15-1', { min: seg(1), max: seg(5) }]])

function demoReport(backups = [FULL, DIFF, INCR]) {
  return stanzaReport({ name: 'demo', exists: true, backupInfo: backupInfo(backups), archiveInfo, walRanges })
}

// One repository per stanza, as with a single repository configured.
const renderJson = (reports: StanzaReport[]): string => infoRenderJson(reports.map((report) => stanzaView([report])))
const renderText = (reports: StanzaReport[], options: { set?: string } = {}): string =>
  infoRenderText(
    reports.map((report) => stanzaView([report])),
    options,
  )

/** JSON.stringify of an object written with keys in sorted order, system-id digits made bare as pgBackRest prints them. */
function expectedJson(value: unknown): string {
  return JSON.stringify(value).replace(/"system-id":"(\d+)"/g, '"system-id":$1')
}

function backupJson(backup: BackupRecord): Record<string, unknown> {
  return {
    archive: { start: backup.walStart, stop: backup.walStop },
    backrest: { format: 5, version: VERSION },
    database: { id: 1, 'repo-key': 1 },
    error: backup.pageErrors > 0,
    info: { delta: backup.delta, repository: { delta: backup.repoDelta, size: backup.repoSize }, size: backup.size },
    label: backup.label,
    lsn: { start: backup.lsnStart, stop: backup.lsnStop },
    prior: backup.prior,
    reference: backup.reference.length > 0 ? backup.reference : null,
    timestamp: { start: backup.timestampStart, stop: backup.timestampStop },
    type: backup.type,
  }
}

function stanzaJson(fields: { code: number; message: string; held?: boolean; repoMessage?: string }, rest: Record<string, unknown> = {}) {
  return {
    archive: [],
    backup: [],
    cipher: 'none',
    db: [],
    name: 'demo',
    repo: [{ cipher: 'none', key: 1, status: { code: fields.code, message: fields.repoMessage ?? fields.message } }],
    status: { code: fields.code, lock: { backup: { held: fields.held ?? false } }, message: fields.message },
    ...rest,
  }
}

describe('info JSON', () => {
  test("is pgBackRest's shape, keys sorted, system-id a bare number with every digit", () => {
    const text = renderJson([demoReport()])
    const expected = [
      stanzaJson(
        { code: 0, message: 'ok' },
        {
          archive: [{ database: { id: 1, 'repo-key': 1 }, id: '15-1', max: seg(5), min: seg(1) }],
          backup: [FULL, DIFF, INCR].map(backupJson),
          db: [{ id: 1, 'repo-key': 1, 'system-id': SYSTEM_ID, version: '15' }],
        },
      ),
    ]
    // Byte for byte, which also pins the key order at every level.
    assert.equal(text, expectedJson(expected))
    assert.ok(text.includes(`"system-id":${SYSTEM_ID},`))

    const parsed = JSON.parse(text) as Array<Record<string, unknown>>
    assert.equal(parsed.length, 1)
    assert.deepEqual(Object.keys(parsed[0]!), ['archive', 'backup', 'cipher', 'db', 'name', 'repo', 'status'])
    const backups = parsed[0]!.backup as Array<Record<string, unknown>>
    assert.deepEqual(
      backups.map((backup) => [backup.label, backup.type, backup.error]),
      [
        [FULL.label, 'full', false],
        [DIFF.label, 'diff', false],
        [INCR.label, 'incr', true],
      ],
    )
    assert.equal(backups[0]!.reference, null)
    assert.deepEqual(backups[2]!.reference, [FULL.label, DIFF.label])
  })

  test('a stanza that does not exist is code 1, with empty sections', () => {
    const text = renderJson([stanzaReport({ name: 'demo', exists: false })])
    assert.equal(text, expectedJson([stanzaJson({ code: 1, message: 'missing stanza path' })]))
  })

  test('no backups is code 2; a running backup shows in lock.backup.held, not in the message', () => {
    const report = stanzaReport({
      name: 'demo',
      exists: true,
      backupInfo: backupInfo([]),
      archiveInfo,
      walRanges: new Map(),
      backupLockHeld: true,
    })
    const parsed = JSON.parse(renderJson([report])) as Array<Record<string, unknown>>
    assert.deepEqual(parsed[0]!.status, { code: 2, lock: { backup: { held: true } }, message: 'no valid backups' })
    assert.deepEqual(parsed[0]!.archive, [{ database: { id: 1, 'repo-key': 1 }, id: '15-1', max: null, min: null }])
  })

  test('missing backup.info is code 3; an error is 99 with the detail in the repo status', () => {
    assert.equal(
      renderJson([stanzaReport({ name: 'demo', exists: true })]),
      expectedJson([stanzaJson({ code: 3, message: 'missing stanza data' })]),
    )
    const error = '[ChecksumError] unable to load x\nHINT: restore it'
    assert.equal(
      renderJson([stanzaReport({ name: 'demo', exists: true, error })]),
      expectedJson([stanzaJson({ code: 99, message: 'other', repoMessage: error })]),
    )
  })

  test('--set keeps only that backup; an unknown label is code 6', () => {
    const one = stanzaReport({ name: 'demo', exists: true, backupInfo: backupInfo([FULL, DIFF]), archiveInfo, walRanges, set: DIFF.label })
    assert.deepEqual(one.backups, [DIFF])
    const none = stanzaReport({ name: 'demo', exists: true, backupInfo: backupInfo([FULL]), archiveInfo, walRanges, set: 'nope' })
    assert.equal(none.code, 6)
    assert.equal(renderJson([none]), expectedJson([stanzaJson({ code: 6, message: 'requested backup not found' })]))
  })

  test('an empty repository is an empty array', () => {
    assert.equal(renderJson([]), '[]')
  })
})

describe('info text', () => {
  test('full, diff and incr backups, aligned, in local time', () => {
    assert.equal(formatLocalTime(T0), '2026-11-22 01:30:00')
    assert.deepEqual(renderText([demoReport()]).split('\n'), [
      'stanza: demo',
      '    status: ok',
      '    cipher: none',
      '',
      '    db (current)',
      '        wal archive min/max (15): 000000010000000000000001/000000010000000000000005',
      '',
      '        full backup: 20261122-013000F',
      '            timestamp start/stop: 2026-11-22 01:30:00 / 2026-11-22 01:30:05',
      '            wal start/stop: 000000010000000000000002 / 000000010000000000000002',
      '            lsn start/stop: 0/2000028 / 0/2000138',
      '            database size: 22.2MB, database backup size: 22.2MB',
      '            repo1: backup set size: 2.9MB, backup size: 2.9MB',
      '',
      '        diff backup: 20261122-013000F_20261122-014000D',
      '            timestamp start/stop: 2026-11-22 01:40:00 / 2026-11-22 01:40:02',
      '            wal start/stop: 000000010000000000000004 / 000000010000000000000004',
      '            lsn start/stop: 0/4000028 / 0/4000100',
      '            database size: 22.2MB, database backup size: 1.5MB',
      '            repo1: backup set size: 3.0MB, backup size: 102.4KB',
      '            backup reference list: 20261122-013000F',
      '',
      '        incr backup: 20261122-013000F_20261122-014500I',
      '            timestamp start/stop: 2026-11-22 01:45:00 / 2026-11-22 01:45:03',
      '            wal start/stop: 000000010000000000000005 / 000000010000000000000005',
      '            lsn start/stop: 0/5000028 / 0/5000100',
      '            database size: 22.2MB, database backup size: 8.0KB',
      '            repo1: backup set size: 3.0MB, backup size: 800B',
      '            backup reference list: 20261122-013000F, 20261122-013000F_20261122-014000D',
      '            page checksum errors: 2 (see the manifest)',
      '',
    ])
  })

  test('status lines for missing, empty, broken and busy stanzas', () => {
    assert.equal(renderText([]), 'No stanzas exist in the repository.\n')
    assert.equal(
      renderText([stanzaReport({ name: 'demo', exists: false })]),
      'stanza: demo\n    status: error (missing stanza path)\n',
    )
    assert.equal(
      renderText([stanzaReport({ name: 'demo', exists: true })]),
      'stanza: demo\n    status: error (missing stanza data)\n    cipher: none\n',
    )
    assert.equal(
      renderText([stanzaReport({ name: 'demo', exists: true, error: '[ChecksumError] bad\nHINT: fix it' })]),
      'stanza: demo\n    status: error (other)\n            [ChecksumError] bad\n            HINT: fix it\n    cipher: none\n',
    )
    const busy = stanzaReport({ name: 'demo', exists: true, backupInfo: backupInfo([]), archiveInfo, backupLockHeld: true })
    assert.equal(
      renderText([busy]),
      'stanza: demo\n    status: error (no valid backups, backup/expire running)\n    cipher: none\n\n' +
        '    db (current)\n        wal archive min/max (15): none present\n',
    )
    const running = stanzaReport({ ...{ name: 'demo', exists: true, backupInfo: backupInfo([FULL]), archiveInfo }, backupLockHeld: true })
    assert.ok(renderText([running]).startsWith('stanza: demo\n    status: ok (backup/expire running)\n'))
  })

  test('stanzas are separated by a blank line', () => {
    const other = stanzaReport({ name: 'other', exists: false })
    assert.equal(
      renderText([stanzaReport({ name: 'demo', exists: false }), other]),
      'stanza: demo\n    status: error (missing stanza path)\n\nstanza: other\n    status: error (missing stanza path)\n',
    )
  })

  test('an older cluster with WAL or backups is shown as prior, before the current one', () => {
    const old: PgIdentity = { id: 1, systemId: '6999999999999999999', version: 14 }
    const now: PgIdentity = { id: 2, systemId: SYSTEM_ID, version: 15 }
    const report = stanzaReport({
      name: 'demo',
      exists: true,
      backupInfo: { stanza: 'demo', db: now, history: [old, now], backups: [{ ...FULL, dbId: 1 }] },
      archiveInfo: { stanza: 'demo', db: now, history: [old, now] },
      walRanges: new Map([['14-1', { min: seg(1), max: seg(3) }]]),
    })
    const lines = renderText([report]).split('\n')
    assert.deepEqual(lines.slice(3, 8), [
      '',
      '    db (prior)',
      '        wal archive min/max (14): 000000010000000000000001/000000010000000000000003',
      '',
      '        full backup: 20261122-013000F',
    ])
    assert.deepEqual(lines.slice(-4), ['', '    db (current)', '        wal archive min/max (15): none present', ''])

    const json = JSON.parse(renderJson([report])) as Array<{ archive: unknown[]; db: Array<{ id: number }> }>
    assert.deepEqual(json[0]!.db.map((entry) => entry.id), [1, 2])
    assert.deepEqual(json[0]!.archive, [
      { database: { id: 1, 'repo-key': 1 }, id: '14-1', max: seg(3), min: seg(1) },
      { database: { id: 2, 'repo-key': 1 }, id: '15-2', max: null, min: null },
    ])
  })

  test('archive ids follow archive.info when its history ids differ from backup.info', () => {
    const archive: ArchiveInfo = { stanza: 'demo', db: { ...DB, id: 3 }, history: [{ ...DB, id: 3 }] }
    assert.equal(archiveIdFor(DB, archive), '15-3')
    assert.equal(archiveIdFor(DB, undefined), '15-1')
  })
})

describe('info with several repositories', () => {
  const repo1 = (backups: BackupRecord[]) => stanzaReport({ name: 'demo', repoKey: 1, exists: true, backupInfo: backupInfo(backups), archiveInfo, walRanges })
  const repo2Ranges = new Map([['15-1', { min: seg(3), max: seg(7) }]])
  const repo2 = (backups: BackupRecord[], cipher?: 'aes-256-gcm') =>
    stanzaReport({
      name: 'demo',
      repoKey: 2,
      exists: true,
      backupInfo: { ...backupInfo(backups), ...(cipher ? { cipher: { type: cipher } } : {}) },
      archiveInfo,
      walRanges: repo2Ranges,
    })
  const LATER = record({ label: '20261122-020000F', type: 'full', timestampStart: T0 + 1800, timestampStop: T0 + 1805 })

  test("JSON: pgBackRest's per-repository shape: repo list, repo-key on every db, archive and backup entry", () => {
    const parsed = JSON.parse(infoRenderJson([stanzaView([repo1([FULL]), repo2([LATER, DIFF], 'aes-256-gcm')])])) as Array<Record<string, any>>
    const stanza = parsed[0]!
    assert.equal(stanza.cipher, 'mixed')
    assert.deepEqual(stanza.repo, [
      { cipher: 'none', key: 1, status: { code: 0, message: 'ok' } },
      { cipher: 'aes-256-gcm', key: 2, status: { code: 0, message: 'ok' } },
    ])
    assert.deepEqual(stanza.status, { code: 0, lock: { backup: { held: false } }, message: 'ok' })
    assert.deepEqual(stanza.db, [
      { id: 1, 'repo-key': 1, 'system-id': Number(SYSTEM_ID), version: '15' },
      { id: 1, 'repo-key': 2, 'system-id': Number(SYSTEM_ID), version: '15' },
    ])
    assert.deepEqual(stanza.archive, [
      { database: { id: 1, 'repo-key': 1 }, id: '15-1', max: seg(5), min: seg(1) },
      { database: { id: 1, 'repo-key': 2 }, id: '15-1', max: seg(7), min: seg(3) },
    ])
    // Time order across repositories, each backup naming its own.
    assert.deepEqual(
      stanza.backup.map((backup: { label: string; database: unknown }) => [backup.label, backup.database]),
      [
        [FULL.label, { id: 1, 'repo-key': 1 }],
        [DIFF.label, { id: 1, 'repo-key': 2 }],
        [LATER.label, { id: 1, 'repo-key': 2 }],
      ],
    )
  })

  test('a stanza missing from one repository is mixed (4), each repository with its own status', () => {
    const missing = stanzaReport({ name: 'demo', repoKey: 2, exists: false })
    const view = stanzaView([repo1([FULL]), missing])
    assert.equal(view.code, 4)
    const parsed = JSON.parse(infoRenderJson([view])) as Array<Record<string, any>>
    assert.deepEqual(parsed[0]!.status, { code: 4, lock: { backup: { held: false } }, message: 'different across repos' })
    assert.deepEqual(
      parsed[0]!.repo.map((repo: { key: number; status: unknown }) => [repo.key, repo.status]),
      [
        [1, { code: 0, message: 'ok' }],
        [2, { code: 1, message: 'missing stanza path' }],
      ],
    )
    const lines = infoRenderText([view]).split('\n')
    assert.deepEqual(lines.slice(0, 5), ['stanza: demo', '    status: mixed', '        repo1: ok', '        repo2: error (missing stanza path)', '    cipher: none'])
    // Same status everywhere (no backups yet in either) is that status, not mixed.
    assert.equal(stanzaView([repo1([]), repo2([])]).code, 2)
  })

  test('text: one WAL range over all repositories, backups in time order with their repository, ciphers per repository', () => {
    const text = infoRenderText([stanzaView([repo1([FULL]), repo2([LATER], 'aes-256-gcm')])])
    const lines = text.split('\n')
    assert.deepEqual(lines.slice(0, 8), [
      'stanza: demo',
      '    status: ok',
      '    cipher: mixed',
      '        repo1: none',
      '        repo2: aes-256-gcm',
      '',
      '    db (current)',
      `        wal archive min/max (15): ${seg(1)}/${seg(7)}`,
    ])
    assert.deepEqual(
      lines.filter((line) => / backup: |backup set size/.test(line)),
      [
        `        full backup: ${FULL.label}`,
        '            repo1: backup set size: 2.9MB, backup size: 2.9MB',
        `        full backup: ${LATER.label}`,
        '            repo2: backup set size: 2.9MB, backup size: 2.9MB',
      ],
    )
  })

  test('repositories naming different clusters are a database mismatch (5); an unreadable one shows its error', () => {
    const other: PgIdentity = { id: 1, systemId: '7000000000000000001', version: 15 }
    const foreign = stanzaReport({
      name: 'demo',
      repoKey: 2,
      exists: true,
      backupInfo: { stanza: 'demo', db: other, history: [other], backups: [] },
      archiveInfo: { stanza: 'demo', db: other, history: [other] },
    })
    const view = stanzaView([repo1([FULL]), foreign])
    assert.equal(view.code, 5)
    assert.match(infoRenderText([view]), /^stanza: demo\n    status: error \(database mismatch across repos\)\n        repo1: ok\n        repo2: error \(no valid backups\)\n/)
    const broken = stanzaReport({ name: 'demo', repoKey: 2, exists: true, error: '[CryptoError] wrong passphrase\nHINT: check repo2-cipher-pass' })
    assert.deepEqual(infoRenderText([stanzaView([repo1([FULL]), broken])]).split('\n').slice(0, 6), [
      'stanza: demo',
      '    status: mixed',
      '        repo1: ok',
      '        repo2: error (other)',
      '                [CryptoError] wrong passphrase',
      '                HINT: check repo2-cipher-pass',
    ])
  })
})

describe('info command', () => {
  let root: string
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'walden-info-'))
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  async function run(args: string[], repoPath = join(root, 'repo')): Promise<{ code: number; stdout: string }> {
    const cfg = configLoad({
      argv: ['info', `--repo1-path=${repoPath}`, `--lock-path=${join(root, 'lock')}`, ...args],
      env: {},
      readFile: () => undefined,
    })
    const chunks: string[] = []
    const write = process.stdout.write
    // The test runner reports to its parent over this same stdout, in binary chunks, while run() awaits; pass those
    // through and keep the strings, which is how info writes.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (typeof chunk !== 'string') return (write as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest)
      chunks.push(chunk)
      return true
    }) as typeof process.stdout.write
    try {
      const code = await info.run(cfg)
      return { code, stdout: chunks.join('') }
    } finally {
      process.stdout.write = write
    }
  }

  test('reads backup.info, archive.info, WAL listings and the lock file of a repository', async () => {
    const repo = new PosixStorage(join(root, 'repo'))
    await backupInfoSave(repo, backupInfo([INCR, FULL, DIFF]))
    await archiveInfoSave(repo, archiveInfo)

    const sha = 'a'.repeat(64)
    const archiveId = join(root, 'repo', 'archive', 'demo', '15-1')
    const files = [
      `0000000100000000/${seg(3)}-${sha}.zst`,
      `0000000100000000/${seg(2)}-${sha}.zst`,
      `0000000100000000/${seg(2)}.00000028.backup-${sha}.zst`,
      `0000000100000001/000000010000000100000004-${sha}.zst`,
      `0000000100000001/000000010000000100000005.partial-${sha}.zst`,
      `00000002.history-${sha}`,
      // The layout of issue #15: history and backup files under their own names, each with its checksum record.
      `0000000100000001/000000010000000100000004.00000028.backup`,
      `0000000100000001/000000010000000100000004.00000028.backup.sha256-${sha}`,
      `00000003.history`,
      `00000003.history.sha256-${sha}`,
    ]
    // An empty folder after the last segment (all its WAL expired) must not hide the real maximum.
    await mkdir(join(archiveId, '0000000100000002'), { recursive: true })
    for (const file of files) {
      await mkdir(join(archiveId, file, '..'), { recursive: true })
      await writeFile(join(archiveId, file), '')
    }

    const json = await run(['--stanza=demo', '--output=json'])
    assert.equal(json.code, 0)
    assert.ok(json.stdout.endsWith('\n'))
    assert.ok(json.stdout.includes(`"system-id":${SYSTEM_ID},`))
    const parsed = JSON.parse(json.stdout) as Array<Record<string, any>>
    assert.equal(parsed.length, 1)
    assert.deepEqual(parsed[0]!.archive, [
      { database: { id: 1, 'repo-key': 1 }, id: '15-1', max: '000000010000000100000004', min: seg(2) },
    ])
    assert.deepEqual(
      parsed[0]!.backup.map((backup: { label: string }) => backup.label),
      [FULL.label, DIFF.label, INCR.label],
    )
    assert.deepEqual(parsed[0]!.status, { code: 0, lock: { backup: { held: false } }, message: 'ok' })

    // A held backup lock (this process holds it) means a backup is running.
    await manifestSave(repo, 'demo', manifestOf(DIFF))
    const lock = await lockAcquire(join(root, 'lock'), 'demo-backup')
    const text = await run(['--stanza=demo', `--set=${DIFF.label}`])
    assert.equal(text.code, 0)
    const lines = text.stdout.split('\n')
    assert.deepEqual(lines.slice(0, 6), [
      'stanza: demo',
      '    status: ok (backup/expire running)',
      '    cipher: none',
      '',
      '    db (current)',
      `        wal archive min/max (15): ${seg(2)}/000000010000000100000004`,
    ])
    assert.deepEqual(
      lines.filter((line) => line.includes(' backup: ')),
      [`        diff backup: ${DIFF.label}`],
    )
    // The manifest's detail, worded and ordered as pgBackRest 2.45 prints it.
    assert.deepEqual(lines.slice(lines.indexOf(`            backup reference list: ${FULL.label}`) + 1), [
      '            database list: app (16385), postgres (5)',
      '            symlinks:',
      '                pg_wal => /srv/wal',
      '                postgresql.auto.conf => /etc/pg/auto.conf',
      '            tablespaces:',
      '                ts1 (16384) => /srv/ts1',
      '                ts2 (16400) => /srv/ts2',
      '',
    ])
    lock.release()

    // JSON: database-ref, link and tablespace only for the --set backup, as pgBackRest's keys.
    const setJson = JSON.parse((await run(['--stanza=demo', `--set=${DIFF.label}`, '--output=json'])).stdout) as Array<Record<string, any>>
    assert.deepEqual(setJson[0]!.backup[0]['database-ref'], [
      { name: 'app', oid: 16385 },
      { name: 'postgres', oid: 5 },
    ])
    assert.deepEqual(setJson[0]!.backup[0].link, [
      { destination: '/srv/wal', name: 'pg_wal' },
      { destination: '/etc/pg/auto.conf', name: 'postgresql.auto.conf' },
    ])
    assert.deepEqual(setJson[0]!.backup[0].tablespace[0], { destination: '/srv/ts1', name: 'ts1', oid: 16384 })
    for (const key of ['database-ref', 'link', 'tablespace']) assert.equal(key in parsed[0]!.backup[0], false, key)

    // --type shows only the backups of that type; the status still counts them all.
    const incrOnly = JSON.parse((await run(['--stanza=demo', '--type=incr', '--output=json'])).stdout) as Array<Record<string, any>>
    assert.deepEqual(incrOnly[0]!.backup.map((backup: { label: string }) => backup.label), [INCR.label])
    const fullText = await run(['--stanza=demo', '--type=full'])
    assert.deepEqual(fullText.stdout.split('\n').filter((line) => line.includes(' backup: ')), [`        full backup: ${FULL.label}`])

    // Without --stanza every stanza is listed, including one that has only an archive folder left.
    await mkdir(join(root, 'repo', 'archive', 'leftover'), { recursive: true })
    const all = await run(['--output=json'])
    const names = (JSON.parse(all.stdout) as Array<{ name: string; status: { code: number } }>).map((item) => [item.name, item.status.code])
    assert.deepEqual(names, [
      ['demo', 0],
      ['leftover', 3],
    ])

    const missing = await run(['--stanza=nope'])
    assert.equal(missing.code, 103)
    assert.equal(missing.stdout, 'stanza: nope\n    status: error (missing stanza path)\n')
  })

  test('the exit status is non-zero when a stanza is in error, after the whole report is printed', async () => {
    const repoPath = join(root, 'exit')
    const repo = new PosixStorage(repoPath)
    await backupInfoSave(repo, backupInfo([FULL]))
    await archiveInfoSave(repo, archiveInfo)
    assert.equal((await run(['--stanza=demo'], repoPath)).code, 0)
    // The requested backup does not exist: 51, as restore --set gives.
    assert.equal((await run(['--stanza=demo', '--set=20261122-013000F_20261122-020000I'], repoPath)).code, 51)

    // A second stanza with no backups yet: 51 (no valid backups), and the ok stanza is still listed.
    await backupInfoSave(repo, { ...backupInfo([]), stanza: 'fresh' })
    await archiveInfoSave(repo, { ...archiveInfo, stanza: 'fresh' })
    const fresh = await run(['--output=json'], repoPath)
    assert.equal(fresh.code, 51)
    assert.deepEqual((JSON.parse(fresh.stdout) as Array<{ name: string; status: { code: number } }>).map((item) => [item.name, item.status.code]), [
      ['demo', 0],
      ['fresh', 2],
    ])

    // Both copies of backup.info damaged: the stanza's status is 99 with the error, and info exits with its code.
    for (const name of ['backup.info', 'backup.info.copy']) await writeFile(join(repoPath, 'backup', 'demo', name), '{"format":1,')
    const damaged = await run(['--output=json'], repoPath)
    assert.equal(damaged.code, 26)
    const parsed = JSON.parse(damaged.stdout) as Array<{ name: string; status: { code: number; message: string } }>
    assert.deepEqual(parsed.map((item) => [item.name, item.status.code]), [
      ['demo', 99],
      ['fresh', 2],
    ])
    assert.match(damaged.stdout, /\[ChecksumError\] unable to load '[^']*backup\.info' or its copy: [^"]* is not valid JSON/)
    const text = await run(['--stanza=demo'], repoPath)
    assert.equal(text.code, 26)
    assert.match(text.stdout, /^stanza: demo\n    status: error \(other\)\n/)

    // One copy damaged: the other is used, the stanza is ok.
    await backupInfoSave(repo, backupInfo([FULL]))
    await writeFile(join(repoPath, 'backup', 'demo', 'backup.info'), '{"format":1,')
    assert.equal((await run(['--stanza=demo'], repoPath)).code, 0)

    // A stanza folder without its info files (a stanza-delete killed part-way): 103.
    await mkdir(join(repoPath, 'archive', 'leftover'), { recursive: true })
    assert.equal((await run(['--stanza=leftover'], repoPath)).code, 103)
  })

  test('every configured repository is read; --repo limits info to one', async () => {
    const one = join(root, 'multi1')
    const two = join(root, 'multi2')
    await backupInfoSave(new PosixStorage(one), backupInfo([FULL]))
    await archiveInfoSave(new PosixStorage(one), archiveInfo)
    await backupInfoSave(new PosixStorage(two), backupInfo([DIFF]))
    await archiveInfoSave(new PosixStorage(two), archiveInfo)
    const both = await run(['--stanza=demo', '--output=json', `--repo2-path=${two}`], one)
    assert.equal(both.code, 0)
    const parsed = JSON.parse(both.stdout) as Array<Record<string, any>>
    assert.deepEqual(parsed[0]!.repo.map((repo: { key: number }) => repo.key), [1, 2])
    assert.deepEqual(
      parsed[0]!.backup.map((backup: { label: string; database: { 'repo-key': number } }) => [backup.label, backup.database['repo-key']]),
      [
        [FULL.label, 1],
        [DIFF.label, 2],
      ],
    )
    const only = JSON.parse((await run(['--stanza=demo', '--output=json', `--repo2-path=${two}`, '--repo=2'], one)).stdout) as Array<Record<string, any>>
    assert.deepEqual(only[0]!.repo.map((repo: { key: number }) => repo.key), [2])
    assert.deepEqual(only[0]!.backup.map((backup: { label: string }) => backup.label), [DIFF.label])
    assert.match((await run(['--stanza=demo', `--repo2-path=${two}`, '--repo=2'], one)).stdout, /repo2: backup set size/)

    // A third repository without the stanza: listed as missing there, and info's exit status says so.
    const three = join(root, 'multi3')
    const mixed = await run(['--output=json', `--repo2-path=${two}`, `--repo3-path=${three}`], one)
    assert.equal(mixed.code, 103)
    const statuses = (JSON.parse(mixed.stdout) as Array<{ status: { code: number }; repo: Array<{ key: number; status: { code: number } }> }>)[0]!
    assert.equal(statuses.status.code, 4)
    assert.deepEqual(statuses.repo.map((repo) => [repo.key, repo.status.code]), [
      [1, 0],
      [2, 0],
      [3, 1],
    ])
  })

  test('an empty repository has no stanzas', async () => {
    const empty = join(root, 'empty')
    assert.deepEqual(await run([], empty), { code: 0, stdout: 'No stanzas exist in the repository.\n' })
    assert.deepEqual(await run(['--output=json'], empty), { code: 0, stdout: '[]\n' })
  })

  test('--set needs --stanza', async () => {
    await assert.rejects(run(['--set=20261122-013000F']), { name: 'OptionInvalidError' })
  })
})

describe('info --set detail', () => {
  test('no links or tablespaces: null in JSON and no lines; a manifest from before databases were recorded: none', () => {
    const plain = manifestOf(FULL, { targets: [{ name: 'pg_data', path: '/srv/pg' }], links: [] })
    delete plain.databases
    const report = stanzaReport({
      name: 'demo',
      exists: true,
      backupInfo: backupInfo([FULL]),
      archiveInfo,
      walRanges,
      set: FULL.label,
      setDetail: backupDetailOf(plain),
    })
    const backup = (JSON.parse(renderJson([report])) as Array<{ backup: Array<Record<string, unknown>> }>)[0]!.backup[0]!
    assert.equal(backup['database-ref'], null)
    assert.equal(backup.link, null)
    assert.equal(backup.tablespace, null)
    const text = renderText([report], { set: FULL.label })
    assert.match(text, /\n {12}database list: none\n$/)
    assert.doesNotMatch(text, /symlinks|tablespaces/)
  })

  test('a cluster with only the system databases lists none; pgBackRest shows an empty list then', () => {
    const detail = backupDetailOf(manifestOf(FULL, { databases: [{ name: 'template1', oid: 1, lastSystemOid: 13756 }, { name: 'template0', oid: 13756, lastSystemOid: 13756 }] }))
    assert.deepEqual(detail.databases, [])
  })
})
