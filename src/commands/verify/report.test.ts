import assert from 'node:assert/strict'
import { test } from 'node:test'
import { problemCount, reportSettle, verifyRenderText } from './report.js'
import type { VerifyReport } from './report.js'

function sample(): VerifyReport {
  const gap = { archiveId: '15-1', timeline: 1, from: '000000010000000000000005', to: '000000010000000000000007', neededBy: ['20261201-010000F', '20261201-010000F_20261202-010000I'] }
  const gapProblem = { kind: 'wal-gap' as const, file: gap.from, message: 'WAL missing ...' }
  return {
    stanza: 'demo',
    repo: 1,
    status: 'ok',
    problems: [],
    backups: [
      { label: '20261201-010000F', type: 'full', status: 'ok', files: 10, bytes: 2048, problems: [{ kind: 'checksum', file: 'pg_data/base/5/16384', message: 'has checksum a, expected b' }, gapProblem] },
      { label: '20261201-010000F_20261202-010000I', type: 'incr', status: 'ok', files: 10, bytes: 2048, problems: [gapProblem] },
      { label: '20261130-010000F', type: 'full', status: 'expired', files: 3, bytes: 0, problems: [{ kind: 'missing', file: 'pg_data/PG_VERSION', message: 'gone' }] },
    ],
    archive: { status: 'ok', archiveIds: ['15-1'], files: 4, bytes: 64 * 1024 * 1024, gaps: [gap], problems: [] },
  }
}

test('statuses follow the problems; an expired backup drops its problems; a gap counts once', () => {
  const report = sample()
  reportSettle(report)
  assert.deepEqual(report.backups.map((backup) => [backup.status, backup.problems.length]), [['error', 2], ['error', 1], ['expired', 0]])
  assert.equal(report.archive.status, 'error')
  assert.equal(report.status, 'error')
  assert.equal(problemCount(report), 2)
})

test('text: a line per problem naming the file, a gap once as a range with the backups needing it, then the summaries', () => {
  const report = sample()
  reportSettle(report)
  assert.equal(
    verifyRenderText(report),
    [
      'backup 20261201-010000F: pg_data/base/5/16384: checksum: has checksum a, expected b',
      'archive 15-1: WAL missing on timeline 1: 000000010000000000000005 to 000000010000000000000007, needed by backups 20261201-010000F, 20261201-010000F_20261202-010000I',
      '',
      'backup 20261201-010000F (full): error, 2 problems, 10 files (2.0KB) checked',
      'backup 20261201-010000F_20261202-010000I (incr): error, 1 problem, 10 files (2.0KB) checked',
      'backup 20261130-010000F (full): expired while verify ran, not checked to the end',
      'archive 15-1: error, 4 WAL files (64.0MB) checked, 0 problems, 1 gap',
      'stanza demo: error, 2 problems',
      '',
    ].join('\n'),
  )
})

test('a clean report is ok', () => {
  const report: VerifyReport = { stanza: 'demo', repo: 1, status: 'error', problems: [], backups: [], archive: { status: 'error', archiveIds: [], files: 0, bytes: 0, gaps: [], problems: [] } }
  reportSettle(report)
  assert.equal(report.status, 'ok')
  assert.match(verifyRenderText(report), /^archive \(none\): ok, 0 WAL files \(0B\) checked\nstanza demo: ok\n$/)
})

test('several repositories: every line names the repository, so reports of two repositories read apart', () => {
  const report = { ...sample(), repo: 2 }
  reportSettle(report)
  const lines = verifyRenderText(report, { several: true }).split('\n')
  assert.equal(lines[0], 'repo2 backup 20261201-010000F: pg_data/base/5/16384: checksum: has checksum a, expected b')
  assert.equal(lines.at(-2), 'stanza demo repo2: error, 2 problems')
  assert.ok(lines.filter((line) => line !== '').every((line) => line.includes('repo2')), lines.join('\n'))
})
