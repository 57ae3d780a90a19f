import assert from 'node:assert/strict'
import { test } from 'node:test'
import { shellQuote } from '../../pg/conf-syntax.js'
import { AUTO_CONF_BEGIN, AUTO_CONF_COMMENTED, AUTO_CONF_END, autoConfRewrite, recoverySettings, signalFile } from './recovery.js'

const base = { targetAction: 'promote', targetExclusive: false, restoreCommand: 'walden --stanza=demo archive-get %f "%p"', options: {} }
const RESTORE = `restore_command = 'walden --stanza=demo archive-get %f "%p"'`
const block = (...lines: string[]): string => `${AUTO_CONF_BEGIN}\n${lines.join('\n')}\n${AUTO_CONF_END}\n`

test('time target settings in walden\'s block; recovery settings outside it commented out, other lines kept', () => {
  const settings = recoverySettings({ ...base, type: 'time', target: '2026-11-22 10:00:00+00', targetExclusive: true })
  const existing = "# Do not edit\nwork_mem = '8MB'\nrecovery_target_name = 'old'\nrestore_command = 'cp x'\n"
  const { text, commentedOut } = autoConfRewrite(existing, settings)
  assert.equal(
    text,
    `# Do not edit\nwork_mem = '8MB'\n${AUTO_CONF_COMMENTED}recovery_target_name = 'old'\n${AUTO_CONF_COMMENTED}restore_command = 'cp x'\n` +
      block(RESTORE, "recovery_target_time = '2026-11-22 10:00:00+00'", "recovery_target_inclusive = 'false'", "recovery_target_action = 'promote'"),
  )
  assert.deepEqual(commentedOut, ['recovery_target_name', 'restore_command'])
  assert.equal(signalFile('time'), 'recovery.signal')
})

test('a second restore replaces the block whole: nothing of the first stays, nothing piles up, user lines stay where they are', () => {
  const first = autoConfRewrite("work_mem = '8MB'\n", recoverySettings({ ...base, type: 'name', target: 'one', archiveOff: true, options: { port: '5499' } })).text
  const edited = `${first}shared_buffers = '64MB'\n`
  const second = autoConfRewrite(edited, recoverySettings({ ...base, type: 'xid', target: '1234' }))
  assert.equal(second.text, `work_mem = '8MB'\nshared_buffers = '64MB'\n` + block(RESTORE, "recovery_target_xid = '1234'", "recovery_target_action = 'promote'"))
  assert.deepEqual(second.commentedOut, [])
  // A third, with the same request, changes nothing.
  const third = autoConfRewrite(second.text, recoverySettings({ ...base, type: 'xid', target: '1234' }))
  assert.equal(third.text, second.text)
})

test('a file written by an earlier walden (no block): its settings go or are commented out, the lines after them stay', () => {
  const legacy =
    "work_mem = '8MB'\n# Recovery settings written by walden restore\narchive_mode = 'off'\n" +
    `${RESTORE}\nrecovery_target_name = 'one'\nrecovery_target_action = 'promote'\n` +
    "# Recovery settings written by walden restore\nrecovery_target_name = 'two'\n\n# mine\nmaintenance_work_mem = '1GB'\n"
  const { text, commentedOut } = autoConfRewrite(legacy, recoverySettings({ ...base, type: 'default' }))
  assert.equal(text, `work_mem = '8MB'\n${AUTO_CONF_COMMENTED}archive_mode = 'off'\n\n# mine\nmaintenance_work_mem = '1GB'\n` + block(RESTORE))
  assert.deepEqual(commentedOut, ['archive_mode'])
})

test('a block whose end line is gone: its lines are judged one by one, up to the first blank or comment line', () => {
  const broken = `${AUTO_CONF_BEGIN}\n${RESTORE}\nport = '5432'\n\nwork_mem = '8MB'\n`
  const { text } = autoConfRewrite(broken, recoverySettings({ ...base, type: 'default' }))
  assert.equal(text, `${AUTO_CONF_COMMENTED}port = '5432'\n\nwork_mem = '8MB'\n` + block(RESTORE))
})

test('standby, preserve and none', () => {
  assert.deepEqual([...recoverySettings({ ...base, type: 'standby' }).keys()], ['restore_command'])
  assert.equal(signalFile('standby'), 'standby.signal')
  assert.equal(recoverySettings({ ...base, type: 'preserve' }).size, 0)
  assert.equal(autoConfRewrite("a = '1'\n", new Map()).text, "a = '1'\n")
  assert.equal(signalFile('none'), undefined)
})

test('recovery-option overrides and quoting', () => {
  const settings = recoverySettings({ ...base, type: 'default', options: { primary_conninfo: "host=x password='no'" } })
  assert.match(autoConfRewrite('', settings).text, /primary_conninfo = 'host=x password=''no'''/)
  assert.equal(shellQuote('/path with space/walden'), "'/path with space/walden'")
  assert.equal(shellQuote('--repo1-path=/r'), '--repo1-path=/r')
})

test('archive-mode=off turns archiving off, whatever the recovery type: the block comes last, so its value wins', () => {
  assert.equal(recoverySettings({ ...base, type: 'preserve', archiveOff: true }).get('archive_mode'), 'off')
  const { text } = autoConfRewrite("archive_mode = 'on'\n", recoverySettings({ ...base, type: 'default', archiveOff: true }))
  const values = [...text.matchAll(/^archive_mode = '(\w+)'$/gm)].map((match) => match[1])
  assert.equal(values.at(-1), 'off')
})

test('nasty values are escaped by PostgreSQL rules, names checked and compared without case', () => {
  const settings = recoverySettings({
    ...base,
    type: 'name',
    target: 'daily\\tpoint\\101',
    options: { Recovery_Target_Action: 'shutdown', 'my.option': "it's 100% \\o/" },
  })
  const { text } = autoConfRewrite("recovery_target_action = 'pause'\nRESTORE_COMMAND 'old'\nwork_mem = '4MB'\n", settings)
  assert.equal(
    text,
    `${AUTO_CONF_COMMENTED}recovery_target_action = 'pause'\n${AUTO_CONF_COMMENTED}RESTORE_COMMAND 'old'\nwork_mem = '4MB'\n` +
      block(RESTORE, "recovery_target_name = 'daily\\\\tpoint\\\\101'", "recovery_target_action = 'shutdown'", "my.option = 'it''s 100% \\\\o/'"),
  )
})

test('a value with a line break or a bad option name is refused, not written', () => {
  assert.throws(() => autoConfRewrite('', recoverySettings({ ...base, type: 'name', target: "x'\nrestore_command = 'evil'" })), /it contains a line break/)
  assert.throws(() => recoverySettings({ ...base, type: 'default', options: { 'a = 1\nb': 'x' } }), /recovery option name .* is not a PostgreSQL setting name/)
})
