import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { PGBACKREST_LEVEL, VERSION } from '../version.js'
import { versionNum, versionText } from './help.js'

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

test("versionText(): walden's own version, or under the name pgbackrest the pgBackRest level it follows", () => {
  assert.equal(versionText('walden', undefined), `walden ${VERSION}`)
  assert.equal(versionText('walden', 'num'), `${versionNum(VERSION)}`)
  assert.equal(versionText('pgbackrest', 'text'), `pgBackRest ${PGBACKREST_LEVEL}`)
  assert.equal(versionText('pgbackrest', 'num'), `${versionNum(PGBACKREST_LEVEL)}`)
  // Only that exact name: a walden installed as pgbackrest-old or Pgbackrest is still walden.
  assert.equal(versionText('pgbackrest-old', undefined), `walden ${VERSION}`)
})

test('walden run through a link named pgbackrest answers version as pgBackRest would, and as itself otherwise', () => {
  const bin = fileURLToPath(new URL('../../bin/walden', import.meta.url))
  const folder = mkdtempSync(join(tmpdir(), 'walden-version-'))
  try {
    symlinkSync(bin, join(folder, 'pgbackrest'))
    symlinkSync(bin, join(folder, 'walden'))
    assert.equal(execFileSync(process.execPath, [join(folder, 'pgbackrest'), 'version'], { encoding: 'utf8' }), `pgBackRest ${PGBACKREST_LEVEL}\n`)
    assert.equal(execFileSync(process.execPath, [join(folder, 'pgbackrest'), 'version', '--output=num'], { encoding: 'utf8' }), `${versionNum(PGBACKREST_LEVEL)}\n`)
    assert.equal(execFileSync(process.execPath, [join(folder, 'walden'), 'version'], { encoding: 'utf8' }), `walden ${VERSION}\n`)
  } finally {
    rmSync(folder, { recursive: true, force: true })
  }
})
