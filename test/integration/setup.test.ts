// walden setup on a fresh cluster that has never archived: dry run, the changes, a second run that changes nothing,
// --restart, and archiving that then works end to end (stanza-create and check).

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { createCluster, runWalden, testDir } from '../harness/cluster.js'
import type { Cluster, TestDir } from '../harness/cluster.js'

describe('setup', { concurrency: false }, () => {
  let dir: TestDir
  let cluster: Cluster
  let configPath: string
  const walden = (args: readonly string[]) => runWalden([`--config=${configPath}`, '--stanza=fresh', ...args])
  const autoConf = (): Promise<string> => readFile(join(cluster.dataDir, 'postgresql.auto.conf'), 'utf8')
  const setting = (name: string): Promise<string> => cluster.psqlScalar(`select current_setting('${name}')`)

  before(async () => {
    dir = await testDir('walden-setup')
    // What a cluster looks like before anyone thought of backups: no WAL for archiving or standbys at all.
    cluster = await createCluster({ major: 15, dir, settings: { wal_level: 'minimal', max_wal_senders: '0', archive_mode: 'off' } })
    await cluster.start()
    configPath = join(dir.path, 'walden.conf')
    await writeFile(
      configPath,
      [
        '[global]',
        `repo1-path=${await dir.mkdir('repo')}`,
        `lock-path=${await dir.mkdir('lock')}`,
        `log-path=${await dir.mkdir('log')}`,
        'archive-timeout=30',
        '[fresh]',
        `pg1-path=${cluster.dataDir}`,
        `pg1-port=${cluster.port}`,
        `pg1-socket-path=${cluster.socketDir}`,
        '',
      ].join('\n'),
    )
    await chmod(configPath, 0o644)
  })

  after(async () => {
    await dir?.cleanup()
  })

  test('--dry-run shows the changes and makes none', async () => {
    const before = await autoConf()
    const result = await walden(['setup', '--dry-run'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /would change/)
    for (const name of ['wal_level', 'archive_mode', 'archive_command', 'max_wal_senders', 'wal_keep_size']) assert.match(result.stdout, new RegExp(`\\b${name}\\b`))
    assert.match(result.stdout, /restart needed for: wal_level, archive_mode, max_wal_senders/)
    assert.equal(await autoConf(), before)
  })

  test('changes the settings, says a restart is needed, and a second run changes nothing', async () => {
    const first = await walden(['setup'])
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /changed on/)
    assert.match(first.stdout, /wal_level\s+minimal -> replica\s+\(needs restart\)/)
    assert.match(first.stdout, /restart needed for: wal_level, archive_mode, max_wal_senders/)
    const conf = await autoConf()
    assert.match(conf, /archive_command = '.*--stanza=fresh archive-push %p'/)
    // wal_keep_size only needs the reload setup did (archive_command shows '(disabled)' until archive_mode is on).
    assert.equal(await setting('wal_keep_size'), '512MB')
    assert.equal(await setting('wal_level'), 'minimal')

    const second = await walden(['setup'])
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stdout, /nothing to change/)
    assert.match(second.stdout, /restart needed for: wal_level, archive_mode, max_wal_senders/)
    assert.equal(await autoConf(), conf)
  })

  test('--restart restarts the server, after which archiving works; then nothing is left to do', async () => {
    const restarted = await walden(['setup', '--restart'])
    assert.equal(restarted.code, 0, restarted.stderr)
    assert.match(restarted.stdout, /restarted PostgreSQL: wal_level, archive_mode, max_wal_senders now in effect/)
    assert.equal(await setting('wal_level'), 'replica')
    assert.equal(await setting('archive_mode'), 'on')
    assert.equal(await setting('max_wal_senders'), '10')

    const created = await walden(['stanza-create'])
    assert.equal(created.code, 0, created.stderr)
    const checked = await walden(['check'])
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(checked.stdout, /WAL segment \w+ archived/)

    const again = await walden(['setup'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /nothing to change/)
    assert.match(again.stdout, /no restart needed/)
  })

  test("refuses to replace another tool's archive_command without --force", async () => {
    await cluster.query(`alter system set archive_command = 'cp %p /somewhere/%f'`)
    await cluster.query('select pg_reload_conf()')
    const refused = await walden(['setup'])
    assert.equal(refused.code, 31, refused.stderr)
    assert.match(refused.stderr, /archive_command is already set to 'cp %p \/somewhere\/%f'/)
    assert.match(await autoConf(), /cp %p/)
    const forced = await walden(['setup', '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(await autoConf(), /--stanza=fresh archive-push %p/)
  })
})
