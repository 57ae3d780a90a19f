import { test } from 'node:test'
import { createTestStanza } from '/work/main/test/harness/stanza.js'
test('timing', async () => {
  const s = await createTestStanza({ major: 15 })
  const t = async (label: string, f: () => Promise<unknown>) => { const a = Date.now(); await f(); console.log(label, Date.now() - a) }
  await s.cluster.query('create table events (id serial primary key, note text)')
  await t('stanza-create', () => s.waldenOk(['stanza-create']))
  await t('full', () => s.waldenOk(['backup', '--type=full']))
  await t('incr', () => s.waldenOk(['backup', '--type=incr']))
  await t('check', () => s.waldenOk(['check']))
  await t('info', () => s.waldenOk(['info']))
  await t('stop', () => s.cluster.stop())
  await t('restore', () => s.waldenOk(['restore', '--delta', '--type=immediate', '--target-action=promote']))
  await t('start', () => s.cluster.start())
  await t('promote', async () => { while ((await s.cluster.psqlScalar('select pg_is_in_recovery()::text')) !== 'false') await new Promise(r => setTimeout(r, 50)) })
  await t('version', () => s.walden(['version']))
  console.log(await s.cluster.logTail(40))
  await s.dir.cleanup()
})
