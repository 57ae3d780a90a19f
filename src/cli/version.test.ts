import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { VERSION } from '../version.js'
import { versionNum } from './help.js'

test("versionNum() encodes a version as pgBackRest's version --output=num does", () => {
  assert.equal(versionNum('2.45'), 2045000)
  assert.equal(versionNum('2.45.0'), 2045000)
  assert.equal(versionNum('0.1.0'), 1000)
  assert.equal(versionNum('1.12.3-dev'), 1012003)
  assert.throws(() => versionNum('dev'), /version 'dev' is not MAJOR.MINOR.PATCH/)
})

test('walden version prints its text and its number; other formats are refused', () => {
  const bin = fileURLToPath(new URL('../../bin/walden', import.meta.url))
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  assert.equal(VERSION, pkg.version)
  assert.equal(execFileSync(process.execPath, [bin, 'version'], { encoding: 'utf8' }), `walden ${pkg.version}\n`)
  assert.equal(execFileSync(process.execPath, [bin, 'version', '--output=text'], { encoding: 'utf8' }), `walden ${pkg.version}\n`)
  assert.equal(execFileSync(process.execPath, [bin, 'version', '--output=num'], { encoding: 'utf8' }), `${versionNum(pkg.version)}\n`)
  assert.throws(() => execFileSync(process.execPath, [bin, 'version', '--output=json'], { stdio: 'pipe' }), (error: { status: number; stderr: Buffer }) => {
    assert.equal(error.status, 32)
    assert.match(error.stderr.toString(), /option 'output' on the command line must be one of 'text', 'num', not 'json'/)
    return true
  })
})
