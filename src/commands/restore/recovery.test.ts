import assert from 'node:assert/strict'
import { test } from 'node:test'
import { shellQuote } from '../../pg/conf-syntax.js'
import { autoConfRewrite, recoverySettings, signalFile } from './recovery.js'

const base = { targetAction: 'promote', targetExclusive: false, restoreCommand: 'walden --stanza=demo archive-get %f "%p"', options: {} }

test('time target settings, stale recovery settings replaced', () => {
  const settings = recoverySettings({ ...base, type: 'time', target: "2026-11-22 10:00:00+00", targetExclusive: true })
  const existing = "# Do not edit\nwork_mem = '8MB'\nrecovery_target_name = 'old'\nrestore_command = 'cp x'\n"
  assert.equal(
    autoConfRewrite(existing, settings),
    "# Do not edit\nwork_mem = '8MB'\n# Recovery settings written by walden restore\n" +
      `restore_command = 'walden --stanza=demo archive-get %f "%p"'\n` +
      "recovery_target_time = '2026-11-22 10:00:00+00'\nrecovery_target_inclusive = 'false'\nrecovery_target_action = 'promote'\n",
  )
  assert.equal(signalFile('time'), 'recovery.signal')
})

test('standby, preserve and none', () => {
  assert.deepEqual([...recoverySettings({ ...base, type: 'standby' }).keys()], ['restore_command'])
  assert.equal(signalFile('standby'), 'standby.signal')
  assert.equal(recoverySettings({ ...base, type: 'preserve' }).size, 0)
  assert.equal(autoConfRewrite("a = '1'\n", new Map()), "a = '1'\n")
  assert.equal(signalFile('none'), undefined)
})

test('recovery-option overrides and quoting', () => {
  const settings = recoverySettings({ ...base, type: 'default', options: { primary_conninfo: "host=x password='no'" } })
  assert.match(autoConfRewrite('', settings), /primary_conninfo = 'host=x password=''no'''/)
  assert.equal(shellQuote('/path with space/walden'), "'/path with space/walden'")
  assert.equal(shellQuote('--repo1-path=/r'), '--repo1-path=/r')
})

test('archive-mode=off turns archiving off, whatever the recovery type', () => {
  assert.equal(recoverySettings({ ...base, type: 'preserve', archiveOff: true }).get('archive_mode'), 'off')
  assert.match(autoConfRewrite("archive_mode = 'on'\n", recoverySettings({ ...base, type: 'default', archiveOff: true })), /^archive_mode = 'off'$/m)
  assert.doesNotMatch(autoConfRewrite("archive_mode = 'on'\n", recoverySettings({ ...base, type: 'default', archiveOff: true })), /'on'/)
})

test('nasty values are escaped by PostgreSQL rules, names checked and compared without case', () => {
  const settings = recoverySettings({
    ...base,
    type: 'name',
    target: 'daily\\tpoint\\101',
    options: { Recovery_Target_Action: 'shutdown', 'my.option': "it's 100% \\o/" },
  })
  const text = autoConfRewrite("recovery_target_action = 'pause'\nRESTORE_COMMAND 'old'\nwork_mem = '4MB'\n", settings)
  assert.equal(
    text,
    "work_mem = '4MB'\n# Recovery settings written by walden restore\n" +
      `restore_command = 'walden --stanza=demo archive-get %f "%p"'\n` +
      "recovery_target_name = 'daily\\\\tpoint\\\\101'\nrecovery_target_action = 'shutdown'\nmy.option = 'it''s 100% \\\\o/'\n",
  )
})

test('a value with a line break or a bad option name is refused, not written', () => {
  assert.throws(() => autoConfRewrite('', recoverySettings({ ...base, type: 'name', target: "x'\nrestore_command = 'evil'" })), /it contains a line break/)
  assert.throws(() => recoverySettings({ ...base, type: 'default', options: { 'a = 1\nb': 'x' } }), /recovery option name .* is not a PostgreSQL setting name/)
})
