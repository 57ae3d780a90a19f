import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import { archivePushOutcome } from './push-file.js'
import type { ArchivePushRepoResult } from './push-file.js'
import { repoFailureOf } from '../repo-failures.js'

const WAL = '000000010000000000000007'
const ok = (index: number, alreadyArchived = false): ArchivePushRepoResult => ({ index, stored: true, alreadyArchived })
const refused = (index: number, error: WaldenError): ArchivePushRepoResult => ({ index, stored: false, alreadyArchived: false, failure: repoFailureOf(index, error) })

test('one repository: the log lines and errors it always had', () => {
  assert.equal(archivePushOutcome({ walName: WAL, repos: [ok(1)] }), `pushed WAL file '${WAL}' to the archive`)
  assert.equal(archivePushOutcome({ walName: WAL, repos: [ok(1, true)] }), `WAL file '${WAL}' is already in the archive with the same checksum`)
  const duplicate = new WaldenError('ArchiveDuplicate', `WAL file '${WAL}' already exists in the archive with a different checksum`, { hint: 'look.' })
  assert.throws(() => archivePushOutcome({ walName: WAL, repos: [refused(1, duplicate)] }), (error: unknown) => {
    assert.ok(error instanceof WaldenError)
    assert.deepEqual([error.kind, error.message, error.hint], ['ArchiveDuplicate', duplicate.message, 'look.'])
    return true
  })
})

test('several: success only when every repository has it; the error names the failing one and who has the file', () => {
  assert.equal(archivePushOutcome({ walName: WAL, repos: [ok(1), ok(2)] }), `pushed WAL file '${WAL}' to the archive`)
  assert.equal(archivePushOutcome({ walName: WAL, repos: [ok(1, true), ok(2), ok(3, true)] }), `pushed WAL file '${WAL}' to the archive of repo2 (repo1 and repo3 had it already)`)
  const full = new WaldenError('FileWrite', "unable to write '/repo2/x': no space left on device")
  assert.throws(
    () => archivePushOutcome({ walName: WAL, repos: [ok(1), refused(2, full)] }),
    (error: unknown) => {
      assert.ok(error instanceof WaldenError)
      assert.equal(error.kind, 'FileWrite')
      assert.equal(error.message, "repo2: unable to write '/repo2/x': no space left on device")
      assert.match(error.hint ?? '', /^repo1 has it; PostgreSQL retries the push/)
      return true
    },
  )
})
