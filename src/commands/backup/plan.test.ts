import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { RepoIndex } from '../../config/options.js'
import type { BackupInfo, BackupRecord } from '../../repo/stanza-info.js'
import { priorPlan } from './plan.js'

function record(label: string, type: BackupRecord['type'], prior: string | null, dbId = 1): BackupRecord {
  return {
    label, type, prior, reference: prior ? [prior] : [], timestampStart: 0, timestampStop: 0, lsnStart: '0/0', lsnStop: '0/0',
    walStart: '', walStop: '', timeline: 1, size: 0, delta: 0, repoSize: 0, repoDelta: 0, dbId, compressType: 'zst', pageErrors: 0,
  }
}

function repo(index: RepoIndex, backups: BackupRecord[], dbId = 1): { index: RepoIndex; info: BackupInfo } {
  return { index, info: { stanza: 'demo', db: { id: dbId, systemId: '1', version: 170000 }, history: [], backups } }
}

const F1 = record('20260101-000000F', 'full', null)
const I1 = record('20260101-000000F_20260102-000000I', 'incr', F1.label)
const I2 = record('20260101-000000F_20260103-000000I', 'incr', I1.label)
const F2 = record('20260104-000000F', 'full', null)

describe('priorPlan: the prior of a diff or incr in each repository', () => {
  test('full needs no prior', () => {
    assert.deepEqual(priorPlan('full', [repo(1, [F1]), repo(2, [])]), { type: 'full', priors: new Map() })
  })

  test('the same history everywhere: one full label, each repository on its latest', () => {
    const plan = priorPlan('incr', [repo(1, [F1, I1]), repo(2, [F1, I1])])
    assert.equal(plan.type, 'incr')
    assert.equal(plan.fullLabel, F1.label)
    assert.equal(plan.changed, undefined)
    assert.deepEqual([...plan.priors].map(([index, prior]) => [index, prior.label]), [[1, I1.label], [2, I1.label]])
  })

  test('one repository backed up alone since: each builds on its own latest, under the same full', () => {
    const plan = priorPlan('incr', [repo(1, [F1, I1, I2]), repo(2, [F1, I1])])
    assert.equal(plan.type, 'incr')
    assert.equal(plan.fullLabel, F1.label)
    assert.equal(plan.priors.get(1)!.label, I2.label)
    assert.equal(plan.priors.get(2)!.label, I1.label)
  })

  test('diff builds on the latest full of each repository', () => {
    const plan = priorPlan('diff', [repo(1, [F1, I1]), repo(2, [F1])])
    assert.equal(plan.type, 'diff')
    assert.deepEqual([...plan.priors.values()].map((prior) => prior.label), [F1.label, F1.label])
  })

  test('a repository without backups makes it a full everywhere, naming that repository', () => {
    const plan = priorPlan('incr', [repo(1, [F1, I1]), repo(2, [])])
    assert.equal(plan.type, 'full')
    assert.equal(plan.priors.size, 0)
    assert.match(plan.changed!, /no prior backup exists in repo2, so the incr backup has been changed to full in every repository/)
  })

  test('different full backups make it a full everywhere, naming each', () => {
    const plan = priorPlan('diff', [repo(1, [F1, F2]), repo(2, [F1, I1])])
    assert.equal(plan.type, 'full')
    assert.match(plan.changed!, /repo1 on 20260104-000000F, repo2 on 20260101-000000F/)
  })

  test('no prior anywhere: the message of a single repository', () => {
    assert.equal(priorPlan('incr', [repo(1, [])]).changed, 'no prior backup exists, incr backup has been changed to full')
  })

  test('backups of an earlier cluster of the stanza (another db id) are no prior', () => {
    const plan = priorPlan('incr', [repo(1, [F1, I1], 2)])
    assert.equal(plan.type, 'full')
  })
})
