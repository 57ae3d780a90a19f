import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  changeSql,
  changeStatement,
  quoteIdent,
  quoteLiteral,
  sequenceSql,
  statementPrepared,
  statementsSql,
  statementVaries,
  transactionSql,
  transactionStatements,
  withoutCommitWait,
} from './render.js'
import type { Change, MasterTxn, TableKeys } from './render.js'

const keys: TableKeys = new Map([['public.t', { keyColumns: ['id'], alwaysIdentity: ['serial_no'] }]])

function change(fields: Partial<Change>): Change {
  return { seqId: '1', table: 'public.t', op: 'i', key: null, row: null, changedKeys: [], ...fields }
}

test('quoting: identifiers double their quotes; literals are E strings whatever standard_conforming_strings says', () => {
  assert.equal(quoteIdent('Odd "col"'), '"Odd ""col"""')
  assert.equal(quoteLiteral(`it's a \\ path`), `E'it''s a \\\\ path'`)
})

test('insert names its columns and lets identity values through', () => {
  const sql = changeSql('7', change({ op: 'i', row: '{"id": 1, "name": "x"}' }), keys, 'error')
  assert.equal(
    sql,
    `INSERT INTO public.t ("id", "name") OVERRIDING SYSTEM VALUE SELECT r."id", r."name" FROM pg_catalog.jsonb_populate_record(NULL::public.t, E'{"id": 1, "name": "x"}') AS r`,
  )
  assert.match(changeSql('7', change({ op: 'i', row: '{"id": 1, "name": "x"}' }), keys, 'overwrite'), / ON CONFLICT \("id"\) DO UPDATE SET "name" = EXCLUDED\."name"$/)
})

test('update sets changed key columns and all others but identity ALWAYS, and must touch one row', () => {
  const unchangedKey = changeSql('7', change({ op: 'u', key: '{"id": 1}', row: '{"id": 1, "name": "y", "serial_no": 3}' }), keys, 'error')
  assert.match(unchangedKey, /^WITH w AS \(UPDATE public\.t AS d SET "name" = r\."name" FROM /)
  assert.match(
    unchangedKey,
    /WHERE d\."id" = k\."id" RETURNING 1\) SELECT walden_mirror\.expect_row\(pg_catalog\.count\(\*\), E'master transaction ' \|\| E'7' \|\| E': UPDATE of public\.t key ' \|\| E'\{"id": 1\}'::text\) FROM w$/,
  )
  const keyChange = changeSql('7', change({ op: 'u', key: '{"id": 1}', row: '{"id": 2, "name": "y"}', changedKeys: ['id'] }), keys, 'error')
  assert.match(keyChange, /SET "id" = r\."id", "name" = r\."name" /)
  const overwrite = changeSql('7', change({ op: 'u', key: '{"id": 1}', row: '{"id": 1, "name": "y"}' }), keys, 'overwrite')
  assert.match(overwrite, /^WITH w AS \(UPDATE .* RETURNING 1\) INSERT INTO public\.t .* WHERE NOT EXISTS \(SELECT FROM w\) ON CONFLICT \("id"\) DO UPDATE SET "name" = EXCLUDED\."name"$/)
})

test('delete by old key, checked unless overwriting; truncate; sequences only forward', () => {
  assert.match(changeSql('7', change({ op: 'd', key: '{"id": 1}' }), keys, 'skip'), /^WITH w AS \(DELETE FROM public\.t AS d USING .* RETURNING 1\) SELECT walden_mirror\.expect_row/)
  assert.match(changeSql('7', change({ op: 'd', key: '{"id": 1}' }), keys, 'overwrite'), /^DELETE FROM public\.t AS d USING [^;]*WHERE d\."id" = k\."id"$/)
  assert.equal(changeSql('7', change({ op: 't' }), keys, 'error'), 'TRUNCATE ONLY public.t')
  assert.equal(
    sequenceSql({ table: 'public.t', sequence: 'public.t_id_seq', lastValue: '42' }),
    `SELECT pg_catalog.setval(E'public.t_id_seq', 42) FROM public.t_id_seq WHERE last_value < 42 OR (last_value = 42 AND NOT is_called)`,
  )
})

test('one host transaction per master transaction: guard first, changes in order, sequences of touched tables', () => {
  const txn: MasterTxn = {
    xid: '900',
    tick: '3',
    lastSeqId: '12',
    inCopy: false,
    changes: [change({ seqId: '11', op: 'i', row: '{"id": 1}' }), change({ seqId: '12', op: 'd', key: '{"id": 1}' })],
  }
  const sequences = [
    { table: 'public.t', sequence: 'public.t_id_seq', lastValue: '5' },
    { table: 'public.other', sequence: 'public.other_id_seq', lastValue: '9' },
  ]
  const lines = transactionSql(txn, keys, sequences, 'error').trimEnd().split('\n')
  assert.equal(lines[0], 'BEGIN ISOLATION LEVEL REPEATABLE READ;')
  assert.equal(lines[1], 'SET CONSTRAINTS ALL DEFERRED;')
  assert.equal(lines[2], 'INSERT INTO walden_mirror.applied (master_xid, tick, last_seq_id) VALUES (900, 3, 12);')
  assert.match(lines[3]!, /^INSERT INTO public\.t /)
  assert.match(lines[4]!, /^WITH w AS \(DELETE /)
  assert.match(lines[5]!, /setval\(E'public\.t_id_seq', 5\)/)
  assert.equal(lines[6], 'COMMIT;')
  assert.equal(lines.length, 7)
})

test('a transaction that does not wait for its commit flush differs only by that setting', () => {
  const txn: MasterTxn = { xid: '1', tick: '1', lastSeqId: '1', inCopy: false, changes: [change({ op: 't' })] }
  const sql = transactionSql(txn, keys, [], 'error')
  const lines = statementsSql(withoutCommitWait(transactionStatements(txn, keys, [], 'error'))).split('\n')
  assert.equal(lines[1], 'SET LOCAL synchronous_commit = off;')
  assert.equal([lines[0], ...lines.slice(2)].join('\n'), sql)
})

test('a change prepared once runs with its values as arguments; inline and prepared say the same', () => {
  const update = changeStatement('7', change({ op: 'u', key: '{"id": 1}', row: '{"id": 1, "name": "it\'s"}' }), keys, 'error')
  assert.ok(statementVaries(update))
  const { body, args } = statementPrepared(update)
  assert.doesNotMatch(body, /\u0000/)
  assert.match(body, /jsonb_populate_record\(NULL::public\.t, \$1\) AS r, pg_catalog\.jsonb_populate_record\(NULL::public\.t, \$2\) AS k/)
  assert.match(body, /E'master transaction ' \|\| \$3 \|\| E': UPDATE of public\.t key ' \|\| \$2::text/)
  assert.equal(args, `E'{"id": 1, "name": "it''s"}', E'{"id": 1}', E'7'`)
  assert.ok(!statementVaries(changeStatement('7', change({ op: 't' }), keys, 'error')))
})
