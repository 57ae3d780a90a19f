// The README's "Dedicated backup host" example, run for real: prints every command with its output, so the README can
// show what walden says rather than what we think it says.
//
// One machine stands for two hosts: the test harness's OpenSSH server on a loopback port, `postgres` as the database
// host's user (it owns a PostgreSQL 15 cluster) and `walden-repo` as the backup host's user (it owns the repository,
// mode 0750, which postgres cannot read). Each has its own config file, as the two hosts would. A standby of the
// cluster, made by standby-create, stands for a second database host (pg2-host) for a backup with backup-standby=y.
//
// Usage, as root (the harness switches users): node --import tsx scripts/docs-backup-host.ts [--cipher]
// --cipher: the repository encrypted under a passphrase, set in both config files (each host seals or opens what it
// writes or reads).
// Temporary folders are shown as /srv/db1 (the database host's) and /srv/backup1 (the backup host's); the SSH port
// the kernel chose is shown as is. Everything is removed at the end.

import { spawnSync } from 'node:child_process'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Cluster, dumpDatabase, runWalden } from '../test/harness/cluster.js'
import type { RunResult } from '../test/harness/cluster.js'
import { PG_USER, REPO_USER, sshServer } from '../test/harness/ssh.js'
import { createTestStanza } from '../test/harness/stanza.js'

function ids(user: string): { uid: number; gid: number } {
  const id = (flag: string): number => Number(spawnSync('id', [flag, user], { encoding: 'utf8' }).stdout.trim())
  return { uid: id('-u'), gid: id('-g') }
}

const CIPHER = process.argv.includes('--cipher')
const cipherLines = CIPHER ? ['repo1-cipher-type=aes-256-gcm', 'repo1-cipher-pass=correct-horse-battery-staple'] : []

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

test('the README example of a dedicated backup host', { timeout: 600_000 }, async () => {
  const ssh = await sshServer()
  const repoUser = ids(REPO_USER)
  const backupHost = await mkdtemp(join(tmpdir(), 'walden-backup1-'))
  await chmod(backupHost, 0o755)
  for (const name of ['repo', 'lock', 'log']) {
    await mkdir(join(backupHost, name), { mode: 0o750 })
    await chown(join(backupHost, name), repoUser.uid, repoUser.gid)
  }
  const stanza = await createTestStanza({ major: 15, name: 'demo', settings: { hot_standby: 'on', wal_keep_size: '128MB' } })
  const cluster = stanza.cluster
  const tidy = (text: string): string => text.replaceAll(stanza.dir.path, '/srv/db1').replaceAll(backupHost, '/srv/backup1')
  const show = (text: string): void => console.log(tidy(text))
  const backupConfig = join(backupHost, 'walden.conf')

  try {
    // The database host: its cluster, and where the repository is (repo1-host); nothing about the repository's place.
    const dbLines = [
      '[global]',
      'repo1-host=127.0.0.1',
      `repo1-host-user=${REPO_USER}`,
      `repo1-host-port=${ssh.port}`,
      `repo1-host-config=${backupConfig}`,
      `cmd-ssh=${ssh.sshCommand(PG_USER)}`,
      ...cipherLines,
      'process-max=2',
      `lock-path=${stanza.lockPath}`,
      `log-path=${join(stanza.dir.path, 'log')}`,
      '',
      '[demo]',
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ]
    await writeFile(stanza.configPath, dbLines.join('\n'))
    // A file holding a passphrase is its user's alone; without one, readable by all (walden only reads it).
    if (CIPHER) await chown(stanza.configPath, ids(PG_USER).uid, ids(PG_USER).gid)
    await chmod(stanza.configPath, CIPHER ? 0o600 : 0o644)

    // The backup host: the repository, and where the cluster is (pg1-host, and pg1-path as the database host names it).
    const backupLines = [
      '[global]',
      `repo1-path=${join(backupHost, 'repo')}`,
      'repo1-retention-full=2',
      ...cipherLines,
      `lock-path=${join(backupHost, 'lock')}`,
      `log-path=${join(backupHost, 'log')}`,
      `cmd-ssh=${ssh.sshCommand(REPO_USER)}`,
      'process-max=2',
      'start-fast=y',
      '',
      '[demo]',
      'pg1-host=127.0.0.1',
      `pg1-host-user=${PG_USER}`,
      `pg1-host-port=${ssh.port}`,
      `pg1-host-config=${stanza.configPath}`,
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ]
    await writeFile(backupConfig, backupLines.join('\n'))
    await chown(backupConfig, repoUser.uid, repoUser.gid)
    await chmod(backupConfig, CIPHER ? 0o600 : 0o640)

    show(`--- database host, ${stanza.configPath} ---\n${dbLines.join('\n')}`)
    show(`--- backup host, ${backupConfig} ---\n${backupLines.join('\n')}`)

    await cluster.query(`create table accounts (id int primary key, balance bigint not null, note text)`)
    await cluster.query(`insert into accounts select n, 0, repeat('x', 80) from generate_series(1, 200000) n`)

    const run = async (where: 'backup1' | 'db1', args: string[], expectCode = 0): Promise<RunResult> => {
      const user = where === 'backup1' ? REPO_USER : PG_USER
      const config = where === 'backup1' ? backupConfig : stanza.configPath
      const started = Date.now()
      const result = await runWalden([`--config=${config}`, '--stanza=demo', ...args], { asUser: user, timeoutMs: 300_000 })
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      show(`\n${user}@${where}$ walden ${args.join(' ')}      # exit ${result.code}, ${seconds} s`)
      if (result.stdout.trim() !== '') show(result.stdout.trimEnd())
      if (result.stderr.trim() !== '') show(result.stderr.trimEnd())
      if (result.code !== expectCode) throw new Error(`walden ${args.join(' ')} on ${where}: exit ${result.code}, expected ${expectCode}`)
      return result
    }
    const info = ['--log-level-console=info']

    await run('backup1', ['stanza-create', ...info])
    await run('backup1', ['check'])
    await run('db1', ['check'])
    await run('backup1', ['backup', ...info])
    await cluster.query(`update accounts set balance = balance + 1 where id % 10 = 0`)
    // Sessions to the database host during one backup: sshd logs each key login it accepts.
    const logins = async (): Promise<number> => ((await ssh.log()).match(new RegExp(`Accepted publickey for ${PG_USER} `, 'g')) ?? []).length
    const loginsBefore = await logins()
    await run('backup1', ['backup', '--type=incr', ...info])
    show(`(SSH logins as ${PG_USER} during that backup: ${(await logins()) - loginsBefore})`)
    await run('backup1', ['info'])
    await run('backup1', ['verify'])
    await run('backup1', ['expire', ...info])

    // What changes the cluster runs where the cluster is.
    await run('backup1', ['restore'], 67)
    // An old config's pg1-host (the TCP address before walden 0.2) now names a database host over SSH.
    await run('db1', ['backup', '--pg1-host=localhost'], 49)

    // A standby on "another database host", for backup-standby=y through pg2-host.
    const standby = await Cluster.adopt({ major: 15, dir: stanza.dir, name: 'standby' })
    await run('db1', [
      'standby-create', `--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`,
      `--primary-conninfo=host=127.0.0.1 port=${cluster.port} user=postgres`,
    ])
    await standby.configure({ unix_socket_directories: standby.socketDir })
    await standby.start()
    const target = await cluster.psqlScalar('select pg_current_wal_lsn()::text')
    for (let waited = 0; (await standby.psqlScalar(`select (pg_last_wal_replay_lsn() >= '${target}')::text`)) !== 'true'; waited += 100) {
      if (waited > 60_000) throw new Error('the standby did not catch up')
      await sleep(100)
    }
    await writeFile(
      backupConfig,
      [
        ...backupLines,
        'pg2-host=127.0.0.1',
        `pg2-host-user=${PG_USER}`,
        `pg2-host-port=${ssh.port}`,
        `pg2-host-config=${stanza.configPath}`,
        `pg2-path=${standby.dataDir}`,
        `pg2-port=${standby.port}`,
        `pg2-socket-path=${standby.socketDir}`,
        '',
      ].join('\n'),
    )
    await cluster.query(`update accounts set balance = balance + 1 where id % 7 = 0`)
    await run('backup1', ['backup', '--type=incr', '--backup-standby=y', ...info])
    await standby.stop()

    // Disaster on the database host: the data folder is gone; restore there, from the backup host.
    await cluster.query(`insert into accounts select n, 1, 'after the last backup' from generate_series(200001, 201000) n`)
    const dump = await dumpDatabase(cluster)
    await cluster.stop()
    await rm(cluster.dataDir, { recursive: true, force: true })
    await run('db1', ['restore', ...info])
    await cluster.start()
    await cluster.waitWritable()
    const restored = await dumpDatabase(cluster)
    show(`\nrestored cluster dumps ${restored === dump ? 'equal to' : 'DIFFERENT from'} the one before the loss`)
    if (restored !== dump) throw new Error('the restored cluster differs')

    const ls = spawnSync('runuser', ['-u', PG_USER, '--', 'ls', join(backupHost, 'repo')], { encoding: 'utf8' })
    show(`\npostgres@db1$ ls ${join(backupHost, 'repo')}\n${ls.stderr.trimEnd()}`)
    show(`\n--- backup host log folder ---\n${spawnSync('ls', [join(backupHost, 'log')], { encoding: 'utf8' }).stdout}`)
    show(`--- db host log folder ---\n${spawnSync('ls', [join(stanza.dir.path, 'log')], { encoding: 'utf8' }).stdout}`)
    show(tidy((await readFile(join(backupHost, 'log', 'demo-backup.log'), 'utf8').catch(() => '')).split('\n').slice(0, 3).join('\n')))
  } finally {
    await stanza.dir.cleanup()
    await rm(backupHost, { recursive: true, force: true })
  }
})
