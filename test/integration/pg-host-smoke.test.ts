// Smoke test of backups run on the backup host (pg1-host): the lead's check while pg-host.test.ts is written.

import assert from 'node:assert/strict'
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase, runWalden } from '../harness/cluster.js'
import { PG_USER, REPO_USER, sshServer } from '../harness/ssh.js'
import type { SshServer } from '../harness/ssh.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

function ids(user: string): { uid: number; gid: number } {
  const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim()
  const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout.trim()
  return { uid: Number(uid), gid: Number(gid) }
}

describe('backups run on the backup host (pg1-host)', () => {
  let ssh: SshServer
  let stanza: TestStanza
  let backupHost: string
  let backupConfig: string
  const onBackupHost = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    runWalden([`--config=${backupConfig}`, `--stanza=${stanza.name}`, ...args], { asUser: REPO_USER, timeoutMs: 30_000 })

  before(async () => {
    ssh = await sshServer()
    const repoUser = ids(REPO_USER)
    backupHost = await mkdtemp(join(tmpdir(), 'walden-pg-host-'))
    await chmod(backupHost, 0o755)
    for (const name of ['repo', 'lock', 'log']) {
      await mkdir(join(backupHost, name), { mode: 0o750 })
      await chown(join(backupHost, name), repoUser.uid, repoUser.gid)
    }
    stanza = await createTestStanza({ major: 15, name: 'pghost' })
    backupConfig = join(backupHost, 'walden.conf')
    await writeFile(
      backupConfig,
      [
        '[global]',
        `repo1-path=${join(backupHost, 'repo')}`,
        `lock-path=${join(backupHost, 'lock')}`,
        `log-path=${join(backupHost, 'log')}`,
        `cmd-ssh=${ssh.sshCommand(REPO_USER)}`,
        'process-max=2',
        'start-fast=y',
        'archive-timeout=30',
        '',
        `[${stanza.name}]`,
        'pg1-host=127.0.0.1',
        `pg1-host-user=${PG_USER}`,
        `pg1-host-port=${ssh.port}`,
        `pg1-host-config=${stanza.configPath}`,
        `pg1-path=${stanza.cluster.dataDir}`,
        `pg1-port=${stanza.cluster.port}`,
        `pg1-socket-path=${stanza.cluster.socketDir}`,
        '',
      ].join('\n'),
    )
    await chown(backupConfig, repoUser.uid, repoUser.gid)
    await writeFile(
      stanza.configPath,
      [
        '[global]',
        'repo1-host=127.0.0.1',
        `repo1-host-user=${REPO_USER}`,
        `repo1-host-port=${ssh.port}`,
        `repo1-host-config=${backupConfig}`,
        `cmd-ssh=${ssh.sshCommand(PG_USER)}`,
        `lock-path=${stanza.lockPath}`,
        `log-path=${join(stanza.dir.path, 'log')}`,
        '',
        `[${stanza.name}]`,
        `pg1-path=${stanza.cluster.dataDir}`,
        `pg1-port=${stanza.cluster.port}`,
        `pg1-socket-path=${stanza.cluster.socketDir}`,
        '',
      ].join('\n'),
    )
    await chmod(stanza.configPath, 0o644)
    await stanza.cluster.query(`create table t (id int primary key, note text); insert into t select n, 'row ' || n from generate_series(1, 50000) n`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
    if (backupHost) await rm(backupHost, { recursive: true, force: true })
  })

  test('stanza-create, check and a full backup on the backup host; restore on the database host equals the dump', async () => {
    for (const args of [['stanza-create'], ['check'], ['backup', '--type=full']]) {
      const result = await onBackupHost(args)
      assert.equal(result.code, 0, `${args.join(' ')}: exit ${result.code}\n${result.stdout}\n${result.stderr}`)
    }
    await stanza.cluster.query(`insert into t select n, 'later ' || n from generate_series(50001, 60000) n`)
    const incr = await onBackupHost(['backup', '--type=incr'])
    assert.equal(incr.code, 0, incr.stderr)
    const dump = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    await stanza.waldenOk(['restore'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), dump)
  })
})
