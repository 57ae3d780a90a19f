import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { RepoFormatNewerError } from '../repo/info-file.js'
import { repoFailureOf, repoFailuresError, repoList, repoNamed } from './repo-failures.js'

test('one repository in play: its error exactly as it was', () => {
  const failure = repoFailureOf(1, new WaldenError('FileOpen', "unable to open '/repo/x'", { hint: 'check permissions.' }))
  const error = repoFailuresError([failure], { several: false, stored: [] })
  assert.equal(error.kind, 'FileOpen')
  assert.equal(error.message, "unable to open '/repo/x'")
  assert.equal(error.hint, 'check permissions.')
})

test('several: each failing repository named, the first one decides the kind, the hint says who has it', () => {
  const error = repoFailuresError(
    [repoFailureOf(2, new WaldenError('FileWrite', 'disk full', { hint: 'free space.' })), repoFailureOf(4, new WaldenError('Crypto', 'wrong passphrase'))],
    { several: true, stored: [1, 3], retry: 'a retry stores it there.' },
  )
  assert.equal(error.kind, 'FileWrite')
  assert.equal(error.message, 'repo2: disk full; repo4: wrong passphrase')
  assert.equal(error.hint, 'free space. repo1 and repo3 have it; a retry stores it there.')
  assert.equal(repoFailuresError([repoFailureOf(2, new WaldenError('FileWrite', 'disk full'))], { several: true }).hint, undefined)
})

test('a bug stays a bug, and a repository of a newer walden stays one (archive-get tells them apart)', () => {
  const bug = repoFailureOf(1, new TypeError('x is undefined'))
  assert.equal(bug.kind, 'Unhandled')
  assert.match(bug.message, /^unexpected error: TypeError: x is undefined/)
  const newer = repoFailuresError([repoFailureOf(2, new RepoFormatNewerError('format 9', 'upgrade walden.'))], { several: true })
  assert.ok(newer instanceof RepoFormatNewerError)
  assert.equal(newer.message, 'repo2: format 9')
})

test('repository lists read as English', () => {
  assert.equal(repoList([2]), 'repo2')
  assert.equal(repoList([1, 2]), 'repo1 and repo2')
  assert.equal(repoList([1, 2, 4]), 'repo1, repo2 and repo4')
})

test('a message that names its repository already (an S3 failure does) is not named twice', () => {
  assert.equal(repoNamed(3, 'repo3: access denied'), 'repo3: access denied')
  assert.equal(repoNamed(3, 'access denied'), 'repo3: access denied')
  // Another repository's name is no reason to leave this one out.
  assert.equal(repoNamed(3, 'repo1: x'), 'repo3: repo1: x')
  const error = repoFailuresError([repoFailureOf(3, new WaldenError('OptionInvalidValue', 'repo3: access denied')), repoFailureOf(4, new WaldenError('FileWrite', 'disk full'))], {
    several: true,
  })
  assert.equal(error.message, 'repo3: access denied; repo4: disk full')
})
