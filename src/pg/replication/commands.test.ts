import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { baseBackupCommand, baseBackupMessageParse, createPhysicalSlotCommand, dropSlotCommand, replicationLiteral } from './commands.js'

describe('replication commands', () => {
  test('BASE_BACKUP: keyword syntax up to PostgreSQL 14, option list from 15', () => {
    const request = { label: "walden's copy", fast: true, wal: true }
    assert.equal(baseBackupCommand(13, request), "BASE_BACKUP LABEL 'walden''s copy' FAST WAL NOWAIT")
    assert.equal(baseBackupCommand(14, { ...request, fast: false, wal: false, maxRateKb: 1024 }), "BASE_BACKUP LABEL 'walden''s copy' NOWAIT MAX_RATE 1024")
    assert.equal(
      baseBackupCommand(15, request),
      "BASE_BACKUP (LABEL 'walden''s copy', CHECKPOINT 'fast', WAL true, WAIT false, MANIFEST 'no')",
    )
    assert.equal(
      baseBackupCommand(18, { ...request, fast: false, wal: false, maxRateKb: 32 }),
      "BASE_BACKUP (LABEL 'walden''s copy', CHECKPOINT 'spread', WAL false, WAIT false, MANIFEST 'no', MAX_RATE 32)",
    )
  })

  test('majors outside 13..18 and bad rates are refused', () => {
    assert.throws(() => baseBackupCommand(12, { label: 'x', fast: true, wal: true }), /PostgreSQL 12 is not supported/)
    assert.throws(() => baseBackupCommand(19, { label: 'x', fast: true, wal: true }), /PostgreSQL 19 is not supported/)
    assert.throws(() => baseBackupCommand(15, { label: 'x', fast: true, wal: true, maxRateKb: 8 }), /out of range/)
  })

  test('slots: option list from 15, names checked', () => {
    assert.equal(createPhysicalSlotCommand(13, 'walden_a'), 'CREATE_REPLICATION_SLOT walden_a PHYSICAL RESERVE_WAL')
    assert.equal(createPhysicalSlotCommand(17, 'walden_a'), 'CREATE_REPLICATION_SLOT walden_a PHYSICAL (RESERVE_WAL)')
    assert.equal(dropSlotCommand('walden_a'), 'DROP_REPLICATION_SLOT walden_a')
    assert.throws(() => dropSlotCommand('bad; DROP'), /replication slot name 'bad; DROP' is not valid/)
    assert.throws(() => createPhysicalSlotCommand(15, 'x'.repeat(64)), /is not valid/)
  })

  test('string literals double quotes and refuse NUL', () => {
    assert.equal(replicationLiteral("a'b\\c"), "'a''b\\c'")
    assert.throws(() => replicationLiteral('a\0b'), /NUL/)
  })

  test('PostgreSQL 15+ CopyData messages', () => {
    assert.deepEqual(baseBackupMessageParse(Buffer.from('nbase.tar\0\0')), { type: 'archive', name: 'base.tar', location: '' })
    assert.deepEqual(baseBackupMessageParse(Buffer.from('n16385.tar\0/srv/ts1\0')), { type: 'archive', name: '16385.tar', location: '/srv/ts1' })
    const progress = Buffer.alloc(9)
    progress.write('p')
    progress.writeBigInt64BE(123456789012n, 1)
    assert.deepEqual(baseBackupMessageParse(progress), { type: 'progress', bytes: 123456789012n })
    assert.deepEqual(baseBackupMessageParse(Buffer.from('dxyz')), { type: 'data', data: Buffer.from('xyz') })
    assert.deepEqual(baseBackupMessageParse(Buffer.from('m')), { type: 'manifest' })
    assert.throws(() => baseBackupMessageParse(Buffer.from('nbase.tar')), /not two NUL-terminated strings/)
    assert.throws(() => baseBackupMessageParse(Buffer.from('p12')), /shorter than 9 bytes/)
    assert.throws(() => baseBackupMessageParse(Buffer.from('z')), /unknown message type 'z'/)
  })
})
