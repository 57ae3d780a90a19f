import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import { repoPathResolve, repoPathStanza } from './repo-path.js'

function failure(action: () => unknown): { kind: string; message: string } {
  try {
    action()
  } catch (error) {
    assert.ok(error instanceof WaldenError, String(error))
    return { kind: error.kind, message: error.message }
  }
  assert.fail('no error')
}

describe('repoPathResolve()', () => {
  test('relative paths are storage paths; the root is the empty path', () => {
    assert.equal(repoPathResolve(undefined, '/srv/repo'), '')
    assert.equal(repoPathResolve('.', '/srv/repo'), '')
    assert.equal(repoPathResolve('./', '/srv/repo'), '')
    assert.equal(repoPathResolve('archive/demo/', '/srv/repo'), 'archive/demo')
    assert.equal(repoPathResolve('archive//demo/./15-1', '/srv/repo'), 'archive/demo/15-1')
    // Up and down again stays inside.
    assert.equal(repoPathResolve('archive/../backup/demo', '/srv/repo'), 'backup/demo')
  })

  test('an absolute path inside repoN-path is taken relative to it', () => {
    assert.equal(repoPathResolve('/srv/repo', '/srv/repo'), '')
    assert.equal(repoPathResolve('/srv/repo/', '/srv/repo/'), '')
    assert.equal(repoPathResolve('/srv/repo/backup/demo', '/srv/repo'), 'backup/demo')
    assert.equal(repoPathResolve('/walden/archive', '/'), 'walden/archive')
  })

  test('paths that lead out of the repository are refused, naming the path', () => {
    assert.deepEqual(failure(() => repoPathResolve('..', '/srv/repo')), { kind: 'ParamInvalid', message: "path '..' leads out of the repository" })
    assert.deepEqual(failure(() => repoPathResolve('archive/../../etc', '/srv/repo')), {
      kind: 'ParamInvalid',
      message: "path 'archive/../../etc' leads out of the repository",
    })
    assert.deepEqual(failure(() => repoPathResolve('/srv/repository', '/srv/repo')), {
      kind: 'ParamInvalid',
      message: "absolute path '/srv/repository' is not in the repository '/srv/repo'",
    })
    assert.deepEqual(failure(() => repoPathResolve('/srv/repo/../etc', '/srv/repo')), {
      kind: 'ParamInvalid',
      message: "absolute path '/srv/repo/../etc' is not in the repository '/srv/repo'",
    })
    assert.equal(failure(() => repoPathResolve('/srv/repo/backup', undefined)).kind, 'ParamInvalid')
  })
})

test('repoPathStanza() names the stanza of archive and backup paths only', () => {
  assert.equal(repoPathStanza('archive/demo/15-1/00000002.history'), 'demo')
  assert.equal(repoPathStanza('backup/main'), 'main')
  assert.equal(repoPathStanza('backup'), undefined)
  assert.equal(repoPathStanza('other/demo/x'), undefined)
})
