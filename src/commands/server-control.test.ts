// pgCtlPathCheck: the folder names pg_ctl would hand to sh inside double quotes are refused, others pass.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { pgCtlPathCheck } from './server-control.js'

test('paths sh would act on inside double quotes are refused, naming the character', () => {
  for (const [path, shown] of [
    ['/srv/a"$(id)"b', `'"'`],
    ['/srv/$HOME', `'$'`],
    ['/srv/`id`', "'`'"],
    ['/srv/a\\b', `'\\'`],
    ['/srv/a\nb', 'a control character (0x0a)'],
  ] as const) {
    assert.throws(
      () => pgCtlPathCheck(path, 'clone-path'),
      (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue' && error.message.includes(`contains ${shown}, which pg_ctl would hand to the shell`) && !error.message.includes('\n'),
      path,
    )
  }
})

test("spaces, quotes sh leaves alone inside double quotes, and UTF-8 pass", () => {
  for (const path of ['/srv/pg data', "/srv/o'brien", '/srv/données', '/srv/a#b;c&d|e>f']) pgCtlPathCheck(path, 'clone-path')
})
