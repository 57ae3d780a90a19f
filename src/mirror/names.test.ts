import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { hostNameCheck, printable, sqlCommentText, tableNameCheck } from './names.js'

test('host names: a plain alphabet; a newline, a quote or a space is refused by name, escaped', () => {
  for (const name of ['h1', 'db-2.example.com', 'site_a:5432', 'ops@dc1', 'A'.repeat(63)]) hostNameCheck(name, true)
  for (const name of ['', '-h', 'h2\nDROP TABLE t; --', "h'1", 'h 1', 'h\r', 'A'.repeat(64), 'büro', 'h\u2028x']) {
    assert.throws(
      () => hostNameCheck(name, true),
      (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && !/[\n\r\u2028]/.test(error.message),
      JSON.stringify(name),
    )
  }
  assert.throws(() => hostNameCheck('h2\nSELECT 1', false), /invalid mirror host name 'h2\\nSELECT 1'/)
})

test('table names: anything printable, nothing that ends a line', () => {
  tableNameCheck('public."Odd name; with --"')
  assert.throws(() => tableNameCheck('public.t\n; DROP TABLE x'), /invalid table name 'public\.t\\n; DROP TABLE x'/)
  assert.throws(() => tableNameCheck('t\u0085'), WaldenError)
})

test('comment text stays on one line whatever it holds', () => {
  const text = sqlCommentText("h\nDROP TABLE t;\r--\u2028\u2029\u0000\u001b[31m\u007f\u0085x")
  assert.doesNotMatch(text, /[\n\r\u2028\u2029\u0000-\u001f\u007f-\u009f]/)
  assert.equal(text, 'h\\nDROP TABLE t;\\r--\\u2028\\u2029\\x00\\x1b[31m\\x7f\\x85x')
  assert.equal(printable('plain text'), 'plain text')
})
