import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { archivedFilesIn, archiveEntryParse, archiveFolderFiles, checksumRecordName, isStoredAsNamed } from './archive.js'

const SHA_A = 'a'.repeat(64)
const SHA_B = 'b'.repeat(64)
const SEGMENT = '000000010000000000000002'
const BACKUP = `${SEGMENT}.00000028.backup`
const FOLDER = 'archive/demo/15-1'

describe('archive entry names', () => {
  test('history and backup history files are stored under their own name, segments are not', () => {
    assert.equal(isStoredAsNamed('00000002.history'), true)
    assert.equal(isStoredAsNamed(BACKUP), true)
    assert.equal(isStoredAsNamed(SEGMENT), false)
    assert.equal(isStoredAsNamed(`${SEGMENT}.partial`), false)
  })

  test('each kind of entry parses to its WAL name', () => {
    assert.deepEqual(archiveEntryParse(`${SEGMENT}-${SHA_A}.zst`), { kind: 'checksummed', walName: SEGMENT, sha256: SHA_A, extension: '.zst' })
    assert.deepEqual(archiveEntryParse(`00000002.history-${SHA_A}`), { kind: 'checksummed', walName: '00000002.history', sha256: SHA_A, extension: '' })
    assert.deepEqual(archiveEntryParse('00000002.history'), { kind: 'named', walName: '00000002.history' })
    assert.deepEqual(archiveEntryParse(checksumRecordName(BACKUP, SHA_A)), { kind: 'checksum', walName: BACKUP, sha256: SHA_A })
    assert.equal(checksumRecordName('00000002.history', SHA_A), `00000002.history.sha256-${SHA_A}`)
    // A record for a name that is never stored under its own name, a temporary file, a stray: nothing of the archive.
    assert.equal(archiveEntryParse(`${SEGMENT}.sha256-${SHA_A}`), undefined)
    assert.equal(archiveEntryParse('00000002.history.tmp-77-0123abcd'), undefined)
    assert.equal(archiveEntryParse('README'), undefined)
  })
})

describe('archivedFilesIn()', () => {
  test('a file under its own name is archived once its checksum record is there', () => {
    assert.deepEqual(archivedFilesIn(FOLDER, ['00000002.history'], '15-1', '00000002.history'), [])
    assert.deepEqual(archivedFilesIn(FOLDER, ['00000002.history', checksumRecordName('00000002.history', SHA_A)], '15-1', '00000002.history'), [
      { path: `${FOLDER}/00000002.history`, sha256: SHA_A, extension: '', archiveId: '15-1', recordPath: `${FOLDER}/00000002.history.sha256-${SHA_A}` },
    ])
  })

  test('a record without its file says the file is missing', () => {
    const [found, ...rest] = archivedFilesIn(FOLDER, [checksumRecordName('00000002.history', SHA_A)], '15-1', '00000002.history')
    assert.equal(rest.length, 0)
    assert.equal(found?.fileMissing, true)
    assert.equal(found?.path, `${FOLDER}/00000002.history`)
  })

  test('two records with different checksums are two copies; the same content in both layouts is one, the new one', () => {
    const twice = archivedFilesIn(FOLDER, ['00000002.history', checksumRecordName('00000002.history', SHA_A), checksumRecordName('00000002.history', SHA_B)], '15-1', '00000002.history')
    assert.deepEqual(twice.map((file) => file.sha256).sort(), [SHA_A, SHA_B])
    const both = archivedFilesIn(FOLDER, [`00000002.history-${SHA_A}`, '00000002.history', checksumRecordName('00000002.history', SHA_A)], '15-1', '00000002.history')
    assert.deepEqual(both.map((file) => file.path), [`${FOLDER}/00000002.history`])
    // Its record is there but the file is lost: the earlier layout's copy of the same content serves.
    const lost = archivedFilesIn(FOLDER, [`00000002.history-${SHA_A}`, checksumRecordName('00000002.history', SHA_A)], '15-1', '00000002.history')
    assert.deepEqual(lost.map((file) => [file.path, file.fileMissing]), [[`${FOLDER}/00000002.history-${SHA_A}`, undefined]])
  })

  test('the earlier layout is still found, and other names in the folder are not taken', () => {
    const entries = [`${SEGMENT}-${SHA_A}.lz4`, `${BACKUP}-${SHA_B}.lz4`, `${SEGMENT}.partial-${SHA_B}.zst`]
    assert.deepEqual(archivedFilesIn(FOLDER, entries, '15-1', SEGMENT).map((file) => file.path), [`${FOLDER}/${SEGMENT}-${SHA_A}.lz4`])
    assert.deepEqual(archivedFilesIn(FOLDER, entries, '15-1', BACKUP).map((file) => [file.path, file.extension]), [[`${FOLDER}/${BACKUP}-${SHA_B}.lz4`, '.lz4']])
  })

  test('archiveFolderFiles lists every archived file of a folder by its WAL name', () => {
    const entries = [`${SEGMENT}-${SHA_A}.lz4`, BACKUP, checksumRecordName(BACKUP, SHA_B), '000000010000000000000003.00000060.backup', 'x.tmp-1-0123abcd']
    assert.deepEqual(archiveFolderFiles(entries).map((file) => [file.walName, file.entry, file.sha256]), [
      [SEGMENT, `${SEGMENT}-${SHA_A}.lz4`, SHA_A],
      [BACKUP, BACKUP, SHA_B],
    ])
  })
})
