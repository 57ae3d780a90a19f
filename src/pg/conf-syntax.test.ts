import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { commandWord, confLine, confValue, settingName, shellQuote, sqlLiteral } from './conf-syntax.js'

/**
 * The value PostgreSQL's config lexer reads from a quoted string (guc-file.l's GUC_scanstr), written out here from
 * its documented rules so the escaping is checked against a reader, not against its own output. The integration
 * test conf-escape.test.ts checks the same values with the real server (`postgres -C`).
 */
function scanQuoted(quoted: string): string {
  assert.match(quoted, /^'([^'\\\n]|\\.|'')*'$/s, 'a STRING token of guc-file.l')
  const body = quoted.slice(1, -1)
  let out = ''
  for (let at = 0; at < body.length; at++) {
    const char = body[at]!
    if (char === "'") {
      out += "'"
      at++ // '' is one quote
    } else if (char !== '\\') out += char
    else {
      const next = body[++at]!
      const octal = /^[0-7]{1,3}/.exec(body.slice(at))?.[0]
      if (octal !== undefined) {
        out += String.fromCharCode(Number.parseInt(octal, 8))
        at += octal.length - 1
      } else out += { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[next] ?? next
    }
  }
  return out
}

const NASTY = [
  "it's",
  "''",
  'daily\\tpoint\\101',
  '\\',
  'C:\\new\\table',
  '100%p %f %% %',
  'a b  c',
  '$(touch /tmp/pwned); `id` && echo ; rm -rf',
  '"double" and \'single\'',
  'tab\there',
  'bell\x07 del\x7f cr\r',
  'ünïcödé ✓',
  '',
]

describe('confValue', () => {
  test('PostgreSQL reads back exactly the value, whatever it holds', () => {
    for (const value of NASTY) assert.equal(scanQuoted(confValue(value)), value, JSON.stringify(value))
  })

  test('a backslash is written doubled, so \\t and \\101 stay as typed', () => {
    assert.equal(confValue('daily\\tpoint\\101'), "'daily\\\\tpoint\\\\101'")
    assert.equal(confValue("it's"), "'it''s'")
    assert.equal(confValue('tab\t'), "'tab\\t'")
    assert.equal(confValue('\x01'), "'\\001'")
  })

  test('a line break or NUL is refused with the setting named', () => {
    for (const value of ['a\nb', 'end\n', 'nul\0']) {
      assert.throws(
        () => confValue(value, 'recovery_target_name'),
        (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && /^the value for recovery_target_name cannot be written to postgresql\.auto\.conf: it contains a (line break|NUL character)$/.test(error.message),
      )
    }
  })
})

describe('settingName', () => {
  test('identifiers and qualified names, lower-cased as PostgreSQL compares them', () => {
    assert.equal(settingName('recovery_target_action'), 'recovery_target_action')
    assert.equal(settingName('Restore_Command'), 'restore_command')
    assert.equal(settingName('auto_explain.log_min_duration'), 'auto_explain.log_min_duration')
    assert.equal(settingName('_x9'), '_x9')
  })

  test('anything that could make the line set something else is refused', () => {
    for (const name of ['', 'a b', 'a=b', 'x\nrestore_command', "a'", '9lives', 'a.b.c', 'a.', '-x', 'a#b']) {
      assert.throws(() => settingName(name), (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue', JSON.stringify(name))
    }
    assert.throws(() => settingName('x\ny', 'recovery option name'), /^OptionInvalidValueError: recovery option name 'x\\x0ay' is not a PostgreSQL setting name$/)
  })

  test('confLine checks both', () => {
    assert.equal(confLine('Recovery_Target_Name', "a'b"), "recovery_target_name = 'a''b'")
    assert.throws(() => confLine('a b', 'x'), /not a PostgreSQL setting name/)
  })
})

/** What sh makes of a command line, word by word, after PostgreSQL's %-substitution (%% to %, %f and %p replaced). */
function shWords(line: string): string[] {
  const substituted = line.replace(/%(.)/g, (all, char: string) => ({ '%': '%', f: 'FILE', p: 'PATH' })[char] ?? all)
  const result = spawnSync('sh', ['-c', `${substituted.replace(/^/, 'printf "%s\\0" ')}`], { encoding: 'utf8' })
  assert.equal(result.status, 0, result.stderr)
  return result.stdout.split('\0').slice(0, -1)
}

describe('commandWord', () => {
  test('sh and the % placeholders give every word back as it was', () => {
    const words = NASTY.filter((word) => !word.includes('\0'))
    assert.deepEqual(shWords([...words.map(commandWord), '%f', '"%p"'].join(' ')), [...words, 'FILE', 'PATH'])
  })

  test('quotes only when needed, and doubles %', () => {
    assert.equal(commandWord('--repo1-path=/r'), '--repo1-path=/r')
    assert.equal(commandWord("/data/o'brien"), "'/data/o'\\''brien'")
    assert.equal(commandWord('/data/100%p'), "'/data/100%%p'")
    assert.equal(shellQuote('/path with space/walden'), "'/path with space/walden'")
  })
})

test('sqlLiteral is an E-string: backslashes and quotes escaped', () => {
  assert.equal(sqlLiteral("a\\b'c"), "E'a\\\\b''c'")
})
