import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { join, resolve } from 'node:path'
import { configLoad } from '../config/config.js'
import { waldenPackageRoot } from '../pg/binaries.js'
import { shellQuote } from '../pg/conf-syntax.js'
import { waldenCommandLine } from './walden-command.js'

const CONFIG = '/etc/walden/test.conf'
const WALDEN = [process.execPath, resolve(process.argv[1]!)].map(shellQuote).join(' ')
const BIN = join(waldenPackageRoot(), 'bin')

/** The command line `command` gets from a run of `runner` (restore or setup) with this config file. */
function lineFor(runner: 'restore' | 'setup', command: 'archive-get' | 'archive-push', text: string, extra: string[] = [], frontFolder?: string): string {
  const readFile = (): string => text
  const cfg = configLoad({ argv: [`--config=${CONFIG}`, '--stanza=main', ...extra, runner], env: {}, readFile })
  return waldenCommandLine(cfg, command, command === 'archive-get' ? '%f "%p"' : '%p', { readFile, ...(frontFolder !== undefined ? { frontFolder } : {}) })
}

const ASYNC_GET = ['[global]', 'spool-path=/var/spool/w', '[global:archive-get]', 'archive-async=y', '[main]', 'pg1-path=/pg'].join('\n')

describe('waldenCommandLine', () => {
  test('archive-get with archive-async goes through bin/walden-archive-get, with stanza and spool path on its command line', () => {
    assert.equal(
      lineFor('restore', 'archive-get', ASYNC_GET),
      `${join(BIN, 'walden-archive-get')} ${WALDEN} --config=${CONFIG} --stanza=main --spool-path=/var/spool/w %f "%p"`,
    )
    // The default spool path when none is set.
    const defaultSpool = ['[global:archive-get]', 'archive-async=y'].join('\n')
    assert.match(lineFor('restore', 'archive-get', defaultSpool), / --stanza=main --spool-path=\/var\/spool\/walden %f "%p"$/)
  })

  test('without archive-async for archive-get, or with a stanza section turning it off, walden runs directly', () => {
    const plain = `${WALDEN} --config=${CONFIG} --stanza=main archive-get %f "%p"`
    assert.equal(lineFor('restore', 'archive-get', ['[global]', 'spool-path=/var/spool/w'].join('\n')), plain)
    assert.equal(lineFor('restore', 'archive-get', ['[global:archive-push]', 'archive-async=y'].join('\n')), plain)
    assert.equal(lineFor('restore', 'archive-get', `${ASYNC_GET}\n[main:archive-get]\narchive-async=n`), plain)
  })

  test('--cmd is used as given; a missing front means walden runs directly', () => {
    assert.equal(lineFor('restore', 'archive-get', ASYNC_GET, ['--cmd=/usr/local/bin/walden']), `/usr/local/bin/walden --config=${CONFIG} --stanza=main archive-get %f "%p"`)
    assert.equal(lineFor('restore', 'archive-get', ASYNC_GET, [], '/nonexistent'), `${WALDEN} --config=${CONFIG} --stanza=main archive-get %f "%p"`)
  })

  test('archive-push (setup) goes through bin/walden-archive-push when archive-async is on for it', () => {
    const asyncPush = ['[global]', 'spool-path=/var/spool/w', 'archive-async=y'].join('\n')
    assert.equal(lineFor('setup', 'archive-push', asyncPush), `${join(BIN, 'walden-archive-push')} ${WALDEN} --config=${CONFIG} --stanza=main --spool-path=/var/spool/w %p`)
    assert.equal(lineFor('setup', 'archive-push', ASYNC_GET), `${WALDEN} --config=${CONFIG} --stanza=main archive-push %p`)
  })

  test('a config path with a quote, a space and % is one sh word, its % doubled for PostgreSQL', () => {
    const readFile = (): string => ''
    const config = "/etc/o'brien/100%p wal.conf"
    const cfg = configLoad({ argv: [`--config=${config}`, '--stanza=main', 'restore'], env: {}, readFile })
    assert.equal(waldenCommandLine(cfg, 'archive-get', '%f "%p"', { readFile }), `${WALDEN} '--config=/etc/o'\\''brien/100%%p wal.conf' --stanza=main archive-get %f "%p"`)
  })
})
