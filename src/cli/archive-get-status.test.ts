import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { RepoFormatNewerError } from '../repo/info-file.js'
import { archiveGetAbortsRecovery } from './archive-get-status.js'

describe('archive-get: which failures abort recovery (126)', () => {
  test('damage, a newer repository format and anything unexpected abort recovery', () => {
    assert.equal(archiveGetAbortsRecovery(new WaldenError('Checksum', 'damaged')), true)
    assert.equal(archiveGetAbortsRecovery(new WaldenError('Format', 'bad header')), true)
    assert.equal(archiveGetAbortsRecovery(new WaldenError('ArchiveDuplicate', 'twice')), true)
    assert.equal(archiveGetAbortsRecovery(new WaldenError('Assert', 'a bug')), true)
    // A bug met on a worker thread or in one of several repositories arrives as a WaldenError of kind Unhandled.
    assert.equal(archiveGetAbortsRecovery(new WaldenError('Unhandled', 'unexpected error: TypeError')), true)
    assert.equal(archiveGetAbortsRecovery(new RepoFormatNewerError('format 2', 'upgrade walden')), true)
    // A bug that is not a WaldenError: 124 would read as "not in the archive".
    assert.equal(archiveGetAbortsRecovery(new TypeError("Cannot read properties of undefined (reading 'id')")), true)
    assert.equal(archiveGetAbortsRecovery('a thrown string'), true)
  })

  test('transient and setup failures keep their own codes, so a standby asks again', () => {
    for (const kind of ['FileRead', 'FileOpen', 'LockAcquire', 'OptionInvalid', 'Config', 'RepoInvalid'] as const) {
      assert.equal(archiveGetAbortsRecovery(new WaldenError(kind, 'x')), false, kind)
    }
  })
})
