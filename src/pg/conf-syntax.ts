// PostgreSQL's config-file syntax, for what walden writes into postgresql.auto.conf, and the shell layer under
// restore_command and archive_command. Three layers quote one command line, innermost first:
//
//   1. sh: PostgreSQL runs the command through `sh -c`, so every word walden puts in it is single-quoted for sh.
//   2. %-placeholders: PostgreSQL replaces %p, %f, %r in the command and turns %% into %, so a % of our own is
//      doubled (PostgreSQL 16+ even refuses an unknown %x; 13-15 keep it, but %p in a path would still be replaced).
//   3. the config file: a value is '...' in which a quote is doubled and a backslash starts an escape (\n, \t, \101,
//      ...; any other \x is x), so a backslash of our own is written \\.
//
// Layers 1 and 2 are commandWord(); layer 3 is confValue(), applied to whole values when the file is written.

import { fail } from '../common/errors.js'
import { shellQuote } from '../common/shell.js'

/** A setting name as the config-file lexer reads one: an identifier, optionally qualified (`ext.name`). */
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/

/**
 * A setting name, lower-cased as PostgreSQL compares them; anything else is refused: a name with a space or `=`
 * in it would turn one setting into another when written to the file.
 */
export function settingName(name: string, what = 'setting name'): string {
  if (!SETTING_NAME.test(name)) {
    fail('OptionInvalidValue', `${what} '${printable(name)}' is not a PostgreSQL setting name`, {
      hint: 'a setting name is letters, digits and underscores, starting with a letter or underscore (e.g. recovery_target_action).',
    })
  }
  return name.toLowerCase()
}

/**
 * Why a value cannot be written to a config file, if it cannot. A line feed has an escape (\n) the lexer reads
 * back, but PostgreSQL's own ALTER SYSTEM refuses one and, rewriting postgresql.auto.conf later, would write it raw
 * and leave a file the server cannot start with. NUL ends a C string, so PostgreSQL would silently cut the value.
 */
export function confValueProblem(value: string): string | undefined {
  if (value.includes('\n')) return 'it contains a line break'
  if (value.includes('\0')) return 'it contains a NUL character'
  return undefined
}

/** Refuses a value that cannot be written to a config file, naming the setting and, if given, where it came from. */
export function confValueCheck(name: string, value: string, source?: string): void {
  const problem = confValueProblem(value)
  if (problem === undefined) return
  fail('OptionInvalidValue', `the value for ${name}${source === undefined ? '' : ` (${source})`} cannot be written to postgresql.auto.conf: ${problem}`, {
    hint: 'PostgreSQL config files hold one setting a line; give the value without line breaks.',
  })
}

/** Control characters that have a named escape; the rest are written as three-digit octal escapes. */
const NAMED_ESCAPES: Record<string, string> = { '\b': '\\b', '\f': '\\f', '\r': '\\r', '\t': '\\t' }

/**
 * A value quoted for a config file so that PostgreSQL reads back exactly `value`: quotes doubled, backslashes
 * doubled, control characters as escapes (so the file stays one setting a line and readable). `name` is for the error.
 */
export function confValue(value: string, name = 'the setting'): string {
  confValueCheck(name, value)
  // eslint-disable-next-line no-control-regex
  const escaped = value.replace(/['\\\x00-\x1f\x7f]/g, (char) => {
    if (char === "'") return "''"
    if (char === '\\') return '\\\\'
    return NAMED_ESCAPES[char] ?? `\\${char.charCodeAt(0).toString(8).padStart(3, '0')}`
  })
  return `'${escaped}'`
}

/** One `name = 'value'` line of a config file, both checked. */
export function confLine(name: string, value: string): string {
  return `${settingName(name)} = ${confValue(value, name)}`
}

export { shellQuote }

/**
 * One word of a command PostgreSQL runs (restore_command, archive_command): quoted for sh, then every % doubled so
 * PostgreSQL's placeholder substitution gives the word back as it was. Placeholders themselves are not words.
 */
export function commandWord(word: string): string {
  return shellQuote(word).replaceAll('%', '%%')
}

/** A value shown in an error: control characters as escapes, so the message stays one line. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** An SQL string literal that means `value` whatever standard_conforming_strings is (for ALTER SYSTEM). */
export function sqlLiteral(value: string): string {
  return `E'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

/** An SQL identifier in double quotes (a role name): a double quote inside is doubled, and case is kept. */
export function sqlIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
