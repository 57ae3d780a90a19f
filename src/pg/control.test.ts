import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DB_STATE_IN_PRODUCTION, PG_CONTROL_FILE_SIZE, pgControlBuild, pgControlParse, pgControlRead, pgControlStateName } from './control.js'
import { crc32c } from './crc32c.js'
import { PG_MAJORS, pgMajorInfo } from './version.js'

function hex32(value: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(8, '0')}`
}

describe('pgControlParse', () => {
  test('round trip for every major', () => {
    for (const { major, controlVersion, catalogVersion } of PG_MAJORS) {
      const buffer = pgControlBuild({
        version: major,
        systemId: 7312345678901234567n,
        state: DB_STATE_IN_PRODUCTION,
        time: 1712345678,
        checkpointLsn: 0x16b374d848n,
        redoLsn: 0x16b374d000n,
        timeline: 7,
        walSegmentSize: 64 * 1024 * 1024,
        walBlockSize: 16384,
        blockSize: 32768,
        relSegmentSize: 32768,
        dataChecksumVersion: 1,
      })
      assert.equal(buffer.length, PG_CONTROL_FILE_SIZE)
      assert.deepEqual(pgControlParse(buffer), {
        version: major,
        systemId: 7312345678901234567n,
        controlVersion,
        catalogVersion,
        state: DB_STATE_IN_PRODUCTION,
        time: 1712345678,
        checkpointLsn: 0x16b374d848n,
        redoLsn: 0x16b374d000n,
        timeline: 7,
        walSegmentSize: 64 * 1024 * 1024,
        walBlockSize: 16384,
        blockSize: 32768,
        relSegmentSize: 32768,
        dataChecksumVersion: 1,
      })
    }
  })

  test('defaults, with data checksums turned off', () => {
    const control = pgControlParse(pgControlBuild({ version: 15, dataChecksumVersion: 0 }))
    assert.equal(control.version, 15)
    assert.equal(control.dataChecksumVersion, 0)
    assert.equal(control.walSegmentSize, 16 * 1024 * 1024)
    assert.equal(control.blockSize, 8192)
  })

  test('the crc sits at 288 up to 17 and at 292 in 18', () => {
    for (const [major, offset] of [
      [13, 288],
      [17, 288],
      [18, 292],
    ] as const) {
      const buffer = pgControlBuild({ version: major })
      assert.equal(buffer.readUInt32LE(offset), crc32c(buffer.subarray(0, offset)))
      assert.ok(buffer.subarray(offset + 4).every((byte) => byte === 0))
    }
  })

  test('a catversion between releases maps to the enclosing major', () => {
    const beta = pgControlBuild({ version: 17, catalogVersion: 202404021 })
    const control = pgControlParse(beta)
    assert.equal(control.version, 17)
    assert.equal(control.catalogVersion, 202404021)
  })

  test('the bytes after the struct are ignored, and the file may be cut to the struct', () => {
    const buffer = pgControlBuild({ version: 18 })
    buffer.fill(0xee, 400)
    assert.equal(pgControlParse(buffer).version, 18)
    assert.equal(pgControlParse(buffer.subarray(0, 296)).version, 18)
  })

  test('a damaged byte fails the crc, naming the file', () => {
    for (const { major, controlLayout } of PG_MAJORS) {
      const buffer = pgControlBuild({ version: major })
      buffer[controlLayout.walSegmentSize] ^= 0x01
      const computed = crc32c(buffer.subarray(0, controlLayout.crc))
      const stored = buffer.readUInt32LE(controlLayout.crc)
      assert.throws(() => pgControlParse(buffer, '/data/global/pg_control'), {
        kind: 'Checksum',
        message: `'/data/global/pg_control' has an invalid crc: expected '${hex32(stored)}', computed '${hex32(computed)}'`,
        hint: 'the file is damaged, or was copied while PostgreSQL was writing it',
      })
    }
  })

  test('a 17 file read as 18 would fail the crc: the layouts really differ', () => {
    const buffer = pgControlBuild({ version: 17 })
    buffer.writeUInt32LE(1800, 8)
    buffer.writeUInt32LE(pgMajorInfo(18).catalogVersion, 12)
    assert.throws(() => pgControlParse(buffer), { kind: 'Checksum' })
  })

  test('unsupported versions are reported before the crc', () => {
    const buffer = pgControlBuild({ version: 18 })
    buffer.writeUInt32LE(1900, 8)
    assert.throws(() => pgControlParse(buffer), { kind: 'VersionNotSupported', message: "pg_control version '1900' is not supported" })
    buffer.writeUInt32LE(1800, 8)
    buffer.writeUInt32LE(202607011, 12)
    assert.throws(() => pgControlParse(buffer), {
      kind: 'VersionNotSupported',
      message: "catalog version '202607011' is newer than postgresql 18",
    })
  })

  test('too short', () => {
    assert.throws(() => pgControlParse(Buffer.alloc(10)), {
      kind: 'FileInvalid',
      message: "'pg_control' is too short: '10' bytes",
      hint: 'pg_control is 8192 bytes',
    })
    assert.throws(() => pgControlParse(pgControlBuild({ version: 16 }).subarray(0, 200)), {
      kind: 'FileInvalid',
      message: "'pg_control' is too short: '200' bytes",
    })
  })

  test('impossible sizes behind a valid crc', () => {
    assert.throws(() => pgControlParse(pgControlBuild({ version: 16, walSegmentSize: 1000 })), {
      kind: 'FileInvalid',
      message: "'pg_control' has invalid wal segment size '1000'",
    })
    assert.throws(() => pgControlParse(pgControlBuild({ version: 16, blockSize: 3000 })), {
      kind: 'FileInvalid',
      message: "'pg_control' has invalid block size '3000'",
    })
    assert.throws(() => pgControlParse(pgControlBuild({ version: 16, walBlockSize: 0 })), {
      kind: 'FileInvalid',
      message: "'pg_control' has invalid wal block size '0'",
    })
  })

  test('state names as pg_controldata prints them', () => {
    assert.equal(pgControlStateName(1), 'shut down')
    assert.equal(pgControlStateName(DB_STATE_IN_PRODUCTION), 'in production')
    assert.equal(pgControlStateName(99), 'unrecognized status code')
  })
})

describe('pgControlRead', () => {
  const dirs: string[] = []
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  async function dataDir(content?: Buffer): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'walden-control-'))
    dirs.push(dir)
    if (content !== undefined) {
      await mkdir(join(dir, 'global'))
      await writeFile(join(dir, 'global', 'pg_control'), content)
    }
    return dir
  }

  test('reads global/pg_control', async () => {
    const dir = await dataDir(pgControlBuild({ version: 16, systemId: 42n }))
    const control = await pgControlRead(dir)
    assert.equal(control.version, 16)
    assert.equal(control.systemId, 42n)
  })

  test('reads only the first 8192 bytes of a longer file', async () => {
    const dir = await dataDir(Buffer.concat([pgControlBuild({ version: 13 }), Buffer.alloc(10000, 0xff)]))
    assert.equal((await pgControlRead(dir)).version, 13)
  })

  test('a missing file points at pg1-path', async () => {
    const dir = await dataDir()
    const path = join(dir, 'global', 'pg_control')
    await assert.rejects(pgControlRead(dir), {
      kind: 'FileMissing',
      message: `unable to open missing file '${path}' for read`,
      hint: `is '${dir}' a PostgreSQL data directory? pg1-path must point at the data directory`,
    })
  })

  test('a truncated file', async () => {
    const dir = await dataDir(pgControlBuild({ version: 17 }).subarray(0, 100))
    await assert.rejects(pgControlRead(dir), {
      kind: 'FileInvalid',
      message: `'${join(dir, 'global', 'pg_control')}' is too short: '100' bytes`,
    })
  })

  test('a damaged file names its path', async () => {
    const buffer = pgControlBuild({ version: 17 })
    buffer[0] ^= 0xff
    const dir = await dataDir(buffer)
    await assert.rejects(pgControlRead(dir), (error: Error) => {
      assert.equal((error as Error & { kind: string }).kind, 'Checksum')
      assert.ok(error.message.startsWith(`'${join(dir, 'global', 'pg_control')}' has an invalid crc: expected '0x`))
      return true
    })
  })
})
