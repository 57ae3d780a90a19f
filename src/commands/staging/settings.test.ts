import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WaldenError } from '../../common/errors.js'
import { settingParse, settingsApply, settingsParse } from './settings.js'

function refusal(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    assert.ok(error instanceof WaldenError, String(error))
    return error.message
  }
  assert.fail('expected a refusal')
}

describe('settingParse()', () => {
  test('name=value and #name', () => {
    assert.deepEqual(settingParse('work_mem=64MB', 'staging-setting'), { kind: 'set', name: 'work_mem', value: '64MB' })
    assert.deepEqual(settingParse(' Log_Line_Prefix = %m [%p]  ', 'staging-setting'), { kind: 'set', name: 'log_line_prefix', value: '%m [%p]' })
    assert.deepEqual(settingParse('#shared_preload_libraries', 'staging-setting'), { kind: 'comment', name: 'shared_preload_libraries' })
    assert.deepEqual(settingParse('search_path=a=b', 'clone-setting'), { kind: 'set', name: 'search_path', value: 'a=b' })
  })

  test('settings walden owns are refused, naming the setting, set or commented out', () => {
    for (const name of ['port', 'hot_standby', 'primary_conninfo', 'primary_slot_name', 'restore_command', 'recovery_target_time', 'archive_command', 'include_dir']) {
      assert.equal(
        refusal(() => settingParse(`${name.toUpperCase()}=x`, 'staging-setting')),
        `staging-setting '${name}' is a setting walden owns on this cluster and cannot be set`,
      )
    }
    assert.equal(
      refusal(() => settingParse('#primary_conninfo', 'clone-setting')),
      "clone-setting 'primary_conninfo' is a setting walden owns on this cluster and cannot be commented out",
    )
  })

  test('malformed values are refused with what to write instead', () => {
    assert.equal(refusal(() => settingParse('work_mem', 'staging-setting')), "staging-setting 'work_mem' must be name=value, or #name to comment a setting out")
    assert.match(refusal(() => settingParse('work mem=1', 'staging-setting')), /is not a PostgreSQL setting name/)
    assert.match(refusal(() => settingParse('application_name=a\nport=1', 'staging-setting')), /it contains a line break/)
    assert.equal(refusal(() => settingsParse(['work_mem=1MB', '#work_mem'], 'staging-setting')), "staging-setting 'work_mem' is given more than once")
  })
})

describe('settingsApply()', () => {
  test('owned settings last, user settings replace earlier ones, #name comments out in both files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'walden-settings-'))
    try {
      await writeFile(join(dir, 'postgresql.conf'), "port = 5432\nshared_buffers = 128MB\nwork_mem = '4MB'\narchive_command = 'cp %p /wal/%f'\n")
      await writeFile(join(dir, 'postgresql.auto.conf'), "# Do not edit\nwork_mem = '8MB'\nmax_connections = '50'\n")
      const owned = new Map([['port', '6000'], ['hot_standby', 'on'], ['archive_command', '']])
      await settingsApply(dir, owned, settingsParse(['work_mem=16MB', "application_name=it's", '#shared_buffers'], 'staging-setting'))
      const conf = await readFile(join(dir, 'postgresql.conf'), 'utf8')
      assert.equal(
        conf,
        "#port = 5432  # commented out by walden\n#shared_buffers = 128MB  # commented out by walden\nwork_mem = '4MB'\n#archive_command = 'cp %p /wal/%f'  # commented out by walden\n",
      )
      const auto = await readFile(join(dir, 'postgresql.auto.conf'), 'utf8')
      assert.equal(
        auto,
        "# Do not edit\nmax_connections = '50'\n" +
          "# staging settings (staging-setting), written by walden\nwork_mem = '16MB'\napplication_name = 'it''s'\n" +
          "# written by walden for the staging copy; do not change\nport = '6000'\nhot_standby = 'on'\narchive_command = ''\n",
      )

      // Applied again with a shorter list: the setting dropped from it does not linger.
      await settingsApply(dir, owned, settingsParse(['work_mem=32MB'], 'staging-setting'), settingsParse(['work_mem=16MB', "application_name=it's"], 'staging-setting'))
      const again = await readFile(join(dir, 'postgresql.auto.conf'), 'utf8')
      assert.doesNotMatch(again, /application_name/)
      assert.match(again, /^work_mem = '32MB'$/m)
      assert.equal(again.match(/^port = /gm)?.length, 1)
      assert.equal(again.match(/^# written by walden for the staging copy/gm)?.length, 1)
      assert.equal(again.match(/^# staging settings/gm)?.length, 1)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
