import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  PG_MAJORS,
  PG_SUPPORTED_MAJORS,
  pgMajorInfo,
  pgVersionFromControl,
  pgVersionFromNum,
  pgVersionFromString,
  pgVersionSupported,
} from './version.js'

const SUPPORTED = 'walden supports PostgreSQL 13, 14, 15, 16, 17, 18'

describe('version table', () => {
  test('supports 13 to 18', () => {
    assert.deepEqual(PG_SUPPORTED_MAJORS, [13, 14, 15, 16, 17, 18])
    assert.equal(pgVersionSupported(15), true)
    assert.equal(pgVersionSupported(12), false)
  })

  test('majors, catalog versions and control versions only grow; magics are distinct', () => {
    for (let index = 1; index < PG_MAJORS.length; index++) {
      const [before, after] = [PG_MAJORS[index - 1]!, PG_MAJORS[index]!]
      assert.ok(after.major > before.major)
      assert.ok(after.catalogVersion > before.catalogVersion)
      assert.ok(after.controlVersion >= before.controlVersion)
      assert.ok(after.walMagic > before.walMagic)
    }
  })

  test('released constants', () => {
    const rows = PG_MAJORS.map((row) => [row.major, row.controlVersion, row.catalogVersion, row.walMagic])
    assert.deepEqual(rows, [
      [13, 1300, 202007201, 0xd106],
      [14, 1300, 202107181, 0xd10d],
      [15, 1300, 202209061, 0xd110],
      [16, 1300, 202307071, 0xd113],
      [17, 1700, 202406281, 0xd116],
      [18, 1800, 202506291, 0xd118],
    ])
  })

  test('pg_control crc offsets: 18 added default_char_signedness', () => {
    assert.deepEqual(
      PG_MAJORS.map((row) => row.controlLayout.crc),
      [288, 288, 288, 288, 288, 292],
    )
  })

  test('pgMajorInfo', () => {
    assert.equal(pgMajorInfo(16).catalogVersion, 202307071)
    assert.throws(() => pgMajorInfo(12), {
      kind: 'VersionNotSupported',
      message: "postgresql version '12' is not supported",
      hint: SUPPORTED,
    })
  })
})

describe('pgVersionFromNum', () => {
  test('major of server_version_num', () => {
    assert.equal(pgVersionFromNum(150004), 15)
    assert.equal(pgVersionFromNum(130000), 13)
    assert.equal(pgVersionFromNum(180004), 18)
  })

  test('unsupported majors', () => {
    assert.throws(() => pgVersionFromNum(120005), { kind: 'VersionNotSupported', message: "postgresql version '12' is not supported" })
    assert.throws(() => pgVersionFromNum(190000), { kind: 'VersionNotSupported', message: "postgresql version '19' is not supported" })
    assert.throws(() => pgVersionFromNum(90624), {
      kind: 'VersionNotSupported',
      message: "postgresql version '9.6' is not supported",
      hint: SUPPORTED,
    })
  })

  test('not a version number', () => {
    for (const bad of [Number.NaN, -1, 1.5, 999]) {
      assert.throws(() => pgVersionFromNum(bad), { kind: 'Format', message: `invalid postgresql version number '${bad}'` })
    }
  })
})

describe('pgVersionFromString', () => {
  test('forms PostgreSQL prints', () => {
    assert.equal(pgVersionFromString('15'), 15)
    assert.equal(pgVersionFromString('15\n'), 15) // PG_VERSION file
    assert.equal(pgVersionFromString('15.4'), 15)
    assert.equal(pgVersionFromString('18beta1'), 18)
    assert.equal(pgVersionFromString('16rc1'), 16)
    assert.equal(pgVersionFromString('17devel'), 17)
    assert.equal(pgVersionFromString('15.4 (Debian 15.4-1.pgdg120+1)'), 15)
  })

  test('unsupported', () => {
    assert.throws(() => pgVersionFromString('9.6'), { kind: 'VersionNotSupported', message: "postgresql version '9.6' is not supported" })
    assert.throws(() => pgVersionFromString('12.3'), { kind: 'VersionNotSupported', message: "postgresql version '12' is not supported" })
    assert.throws(() => pgVersionFromString('19'), { kind: 'VersionNotSupported', message: "postgresql version '19' is not supported" })
  })

  test('garbage', () => {
    for (const bad of ['', 'abc', 'v15', '15-4', '15beta']) {
      assert.throws(() => pgVersionFromString(bad), { kind: 'Format', message: `invalid postgresql version '${bad}'` })
    }
  })
})

describe('pgVersionFromControl', () => {
  test('released combinations', () => {
    for (const row of PG_MAJORS) assert.equal(pgVersionFromControl(row.controlVersion, row.catalogVersion), row.major)
  })

  test('a catversion between releases belongs to the next major (its betas)', () => {
    assert.equal(pgVersionFromControl(1300, 201909213), 13)
    assert.equal(pgVersionFromControl(1300, 202005161), 13)
    assert.equal(pgVersionFromControl(1300, 202207011), 15)
    assert.equal(pgVersionFromControl(1700, 202404021), 17)
    assert.equal(pgVersionFromControl(1800, 202504091), 18)
  })

  test('a control version that does not go with the catversion', () => {
    assert.throws(() => pgVersionFromControl(1300, 202404021), {
      kind: 'VersionNotSupported',
      message: "pg_control version '1300' does not match catalog version '202404021' of postgresql 17",
      hint: "postgresql 17 uses pg_control version '1700'; is this a development build?",
    })
  })

  test('too new', () => {
    assert.throws(() => pgVersionFromControl(1900, 202607011), {
      kind: 'VersionNotSupported',
      message: "pg_control version '1900' is not supported",
      hint: `${SUPPORTED}; a newer PostgreSQL needs a newer walden`,
    })
    assert.throws(() => pgVersionFromControl(1800, 202607011), {
      kind: 'VersionNotSupported',
      message: "catalog version '202607011' is newer than postgresql 18",
      hint: `${SUPPORTED}; a newer PostgreSQL needs a newer walden`,
    })
  })

  test('too old', () => {
    assert.throws(() => pgVersionFromControl(1201, 201909212), {
      kind: 'VersionNotSupported',
      message: "pg_control version '1201' is not supported",
      hint: SUPPORTED,
    })
    assert.throws(() => pgVersionFromControl(1300, 201909212), {
      kind: 'VersionNotSupported',
      message: "catalog version '201909212' is older than postgresql 13",
      hint: SUPPORTED,
    })
  })

  test('written on a machine of the other byte order', () => {
    assert.throws(() => pgVersionFromControl(0x14050000, 0xa1620a0c), {
      kind: 'VersionNotSupported',
      message: "pg_control version '335872000' is not supported",
      hint: 'the cluster was created on a machine of different byte order',
    })
  })
})
