import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { conninfoParse } from '../../pg/conninfo.js'
import { stagingSlotName, stagingSourceParse, stagingStreamSettings, stagingTablespacePath } from './link-initiated.js'

describe('staging streaming set-up', () => {
  test('primary_conninfo names the password file and the copy, never a password', () => {
    const settings = stagingStreamSettings("host=db1 port=5433 user=rep passfile='/home/pg/my pass'", 'walden_staging_main')
    assert.equal(settings.get('primary_slot_name'), 'walden_staging_main')
    assert.equal(settings.get('hot_standby'), 'on')
    const conninfo = settings.get('primary_conninfo')!
    assert.equal(conninfo, "host=db1 port=5433 user=rep passfile='/home/pg/my pass' application_name=walden_staging_main")
    // What libpq reads back is what was meant.
    assert.deepEqual(
      [...conninfoParse(conninfo)],
      [['host', 'db1'], ['port', '5433'], ['user', 'rep'], ['passfile', '/home/pg/my pass'], ['application_name', 'walden_staging_main']],
    )
  })

  test('without passfile=, the password file libpq would read is named explicitly', () => {
    const saved = process.env['PGPASSFILE']
    process.env['PGPASSFILE'] = '/etc/walden/pgpass'
    try {
      const conninfo = stagingStreamSettings('host=db1 user=rep application_name=mine', 'walden_x').get('primary_conninfo')!
      assert.equal(conninfo, 'host=db1 user=rep application_name=mine passfile=/etc/walden/pgpass')
    } finally {
      if (saved === undefined) delete process.env['PGPASSFILE']
      else process.env['PGPASSFILE'] = saved
    }
  })

  test('a password in staging-source is refused, wherever it came from', () => {
    assert.throws(() => stagingSourceParse('host=db1 user=rep password=secret'), (error: Error) => {
      assert.match(error.message, /holds a password/)
      assert.doesNotMatch(error.message, /secret/)
      return true
    })
    assert.throws(() => stagingSourceParse('postgresql://rep:secret@db1/'), /holds a password/)
    assert.throws(() => stagingSourceParse('host=db1 replication=database'), /physical replication connection/)
  })

  test('slot names and tablespace folders', () => {
    assert.equal(stagingSlotName('Main-DB.1'), 'walden_staging_main_db_1')
    assert.equal(stagingSlotName('x'.repeat(80)).length, 63)
    assert.equal(stagingTablespacePath('/srv/staging/main', 16385), '/srv/staging/main.tablespaces/16385')
  })
})
