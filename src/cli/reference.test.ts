import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { ERROR_CODES } from '../common/errors.js'
import { OPTIONS } from '../config/options.js'
import { renderReference } from './reference.js'

test('docs/reference.md is generated from the tables and up to date (run `npm run docs`)', () => {
  const committed = readFileSync(new URL('../../docs/reference.md', import.meta.url), 'utf8')
  assert.equal(committed, renderReference())
})

test('the reference documents every option and every exit code', () => {
  const text = renderReference()
  for (const name of Object.keys(OPTIONS)) assert.ok(text.includes(`<a id="${name}"></a>`), name)
  for (const [kind, code] of Object.entries(ERROR_CODES)) assert.ok(text.includes(`| ${code} | ${kind} |`), kind)
})
