// Names users give mirroring: host names, which walden writes into the comments of SQL files, its log and the alert
// command's environment, and table names. A newline in a name would end a `--` comment and turn the rest of the name
// into SQL that runs when the file is replayed; control characters would forge lines in the log. So host names are
// kept to a plain alphabet, and what does reach a comment or a message has its control characters escaped.

import { fail } from '../common/errors.js'

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,62}$/
const HOST_NAME_RULE = "1 to 63 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit"

// Characters that end a line or do not print: C0 and C1 controls, DEL, and Unicode's line and paragraph separators.
const UNPRINTABLE = /[\p{Cc}\u2028\u2029]/gu

/** Text with its control characters as escapes (\n, \x1b, \u2028): one printable line, whatever it held. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (char) => {
    if (char === '\n') return '\\n'
    if (char === '\r') return '\\r'
    if (char === '\t') return '\\t'
    const code = char.codePointAt(0)!
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}

/** Text for the inside of a `--` comment of a SQL file: on one line, so nothing after it can become SQL. */
export function sqlCommentText(text: string): string {
  return printable(text)
}

/**
 * Refuses a host name outside the alphabet. `registering` is true for mirror-add-host; the other commands meet names
 * already registered (by an older walden, or by hand), which can only be removed and registered again.
 */
export function hostNameCheck(name: string, registering: boolean): void {
  if (HOST_NAME.test(name)) return
  fail('OptionInvalidValue', `invalid mirror host name '${printable(name)}'`, {
    hint: registering
      ? `a host name is ${HOST_NAME_RULE}.`
      : `a host name is ${HOST_NAME_RULE}; remove it with mirror-remove-host and register it again under a name of letters, digits and those marks.`,
  })
}

/** Refuses a table name with a control character: no table walden mirrors needs one, and it would forge log lines. */
export function tableNameCheck(name: string): void {
  if (!new RegExp(UNPRINTABLE.source, 'u').test(name)) return
  fail('OptionInvalidValue', `invalid table name '${printable(name)}': it holds a control character`, {
    hint: 'give --table=SCHEMA.NAME; rename a table whose name holds a line break or another control character first.',
  })
}
