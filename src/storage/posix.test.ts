import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { gnuSyncHasFileSystemOption } from './posix.js'

test('sync -f is used only from GNU coreutils 8.24 on', () => {
  assert.equal(gnuSyncHasFileSystemOption('sync (GNU coreutils) 9.1\nCopyright (C) 2022'), true)
  assert.equal(gnuSyncHasFileSystemOption('sync (GNU coreutils) 8.24\n'), true)
  assert.equal(gnuSyncHasFileSystemOption('sync (GNU coreutils) 8.23\n'), false)
  assert.equal(gnuSyncHasFileSystemOption('sync (GNU coreutils) 10.0\n'), true)
  assert.equal(gnuSyncHasFileSystemOption('BusyBox v1.36.1 multi-call binary'), false)
  assert.equal(gnuSyncHasFileSystemOption(''), false)
  // This machine's own sync agrees with what trying the option says.
  const here = gnuSyncHasFileSystemOption(spawnSync('sync', ['--version'], { encoding: 'utf8' }).stdout ?? '')
  assert.equal(here, spawnSync('sync', ['-f', '/proc'], { stdio: 'ignore' }).status === 0)
})
