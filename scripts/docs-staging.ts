// The README's "Staging copies and clones" example, run for real: prints every command with its output, so the README
// shows what walden says rather than what we think it says.
//
// One PostgreSQL 15 source, busy with pgbench, archiving into a WAL folder (`cp %p`), with a replication role whose
// password is in a password file. Three staging copies of it, one per way of linking: external-wal (the user's
// pg_basebackup -F t plus the WAL folder), initiated (walden's own base backup over the replication protocol) and
// external-streaming (the user's backup, then streaming). On the first: a break in the WAL chain and its repair, a
// snapshot with hooks, a clone, the jobs.
//
// Usage, as root (PostgreSQL and walden run as postgres): node --import tsx scripts/docs-staging.ts
// Temporary folders are shown as /srv/...; ports as the kernel chose them. Everything is removed at the end.

import { execFileSync, spawn } from 'node:child_process'
import { chown, readdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { Cluster, runWalden, testDir } from '../test/harness/cluster.js'
import type { RunResult } from '../test/harness/cluster.js'

const ROLE = 'walden_rep'
const PASSWORD = 'staging-demo-secret'
const BIN = '/usr/lib/postgresql/15/bin'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
}

test('the README example of staging copies and clones', { timeout: 900_000 }, async () => {
  const dir = await testDir('walden-docs-staging')
  const tidy = (text: string): string => text.replaceAll(dir.path, '/srv')
  const show = (text: string): void => console.log(tidy(text).trimEnd())
  const wal = await dir.mkdir('wal')
  const configPath = join(dir.path, 'walden.conf')
  const passfile = join(dir.path, 'pgpass')

  const source = await Cluster.create({
    major: 15,
    dir,
    name: 'source',
    settings: {
      wal_level: 'replica',
      max_wal_senders: '8',
      max_replication_slots: '8',
      archive_mode: 'on',
      archive_command: `test ! -f ${wal}/%f && cp %p ${wal}/%f`,
      archive_timeout: '10',
      password_encryption: 'scram-sha-256',
    },
  })
  await writeFile(
    join(source.dataDir, 'pg_hba.conf'),
    ['local all all trust', 'local replication all trust', `host replication ${ROLE} 127.0.0.1/32 scram-sha-256`, ''].join('\n'),
  )
  await source.start()
  await source.query(`create role ${ROLE} login replication password '${PASSWORD}'`)
  const connection = ['-h', source.socketDir, '-p', String(source.port), '-U', 'postgres']
  execFileSync(join(BIN, 'pgbench'), ['-i', '-q', '-s', '5', ...connection, 'postgres'], { stdio: 'ignore' })
  const load = spawn(join(BIN, 'pgbench'), ['-c', '2', '-R', '50', '-T', '900', '-n', ...connection, 'postgres'], { stdio: 'ignore' })
  const tarBackup = join(dir.path, 'basebackup')
  execFileSync('runuser', ['-u', 'postgres', '--', join(BIN, 'pg_basebackup'), ...connection, '-D', tarBackup, '-F', 't', '-X', 'stream', '-Z', 'gzip', '-c', 'fast'], { cwd: '/tmp' })

  await writeFile(passfile, `127.0.0.1:${source.port}:replication:${ROLE}:${PASSWORD}\n`, { mode: 0o600 })
  const { uid, gid } = postgresIds()
  await chown(passfile, uid, gid)

  const copies = { wal: await Cluster.adopt({ major: 15, dir, name: 'staging1' }), initiated: await Cluster.adopt({ major: 15, dir, name: 'staging2' }), streaming: await Cluster.adopt({ major: 15, dir, name: 'staging3' }) }
  const clone = await Cluster.adopt({ major: 15, dir, name: 'qa1' })
  const stanzaLines = (name: string, copy: Cluster): string[] => [
    `[${name}]`,
    `staging-path=${copy.dataDir}`,
    `staging-port=${copy.port}`,
    `staging-setting=unix_socket_directories=${copy.socketDir}`,
    'staging-setting=work_mem=64MB',
    `pg1-socket-path=${copy.socketDir}`,
  ]
  const config = [
    '[global]',
    `repo1-path=${await dir.mkdir('repo')}`,
    `spool-path=${await dir.mkdir('spool')}`,
    `lock-path=${await dir.mkdir('lock')}`,
    `log-path=${await dir.mkdir('log')}`,
    'process-max=2',
    'repo1-retention-full=4',
    '',
    ...stanzaLines('sales', copies.wal),
    'staging-method=external-wal',
    `staging-backup-path=${tarBackup}`,
    `staging-wal-path=${wal}`,
    'staging-hook-pre-snapshot=echo "pre-snapshot: $WALDEN_STANZA replayed to $WALDEN_REPLAY_LSN"',
    'staging-hook-post-snapshot=echo "snapshot $WALDEN_SNAPSHOT_LABEL done"',
    '',
    ...stanzaLines('sales-live', copies.initiated),
    'staging-method=initiated',
    `staging-source=host=127.0.0.1 port=${source.port} user=${ROLE} passfile=${passfile}`,
    '',
    ...stanzaLines('sales-mixed', copies.streaming),
    'staging-method=external-streaming',
    `staging-backup-path=${tarBackup}`,
    `staging-source=host=127.0.0.1 port=${source.port} user=${ROLE} passfile=${passfile}`,
    '',
  ]
  await writeFile(configPath, config.join('\n'))
  await chown(configPath, uid, gid)
  console.log('# /etc/walden/walden.conf')
  show(config.join('\n'))

  const walden = async (stanza: string | undefined, args: readonly string[]): Promise<RunResult> => {
    const shown = ['walden', ...(stanza !== undefined ? [`--stanza=${stanza}`] : []), ...args]
    console.log(`\n$ ${tidy(shown.join(' '))}`)
    const result = await runWalden([`--config=${configPath}`, ...(stanza !== undefined ? [`--stanza=${stanza}`] : []), ...args], { timeoutMs: 300_000 })
    show(result.stdout + result.stderr)
    if (result.code !== 0) console.log(`(exit code ${result.code})`)
    return result
  }
  const statusOf = async (stanza: string): Promise<{ status: string; 'expected-wal'?: string }> =>
    JSON.parse((await runWalden([`--config=${configPath}`, `--stanza=${stanza}`, 'staging-status', '--output=json'])).stdout) as { status: string }

  try {
    console.log('\n## Way 2: the user\'s pg_basebackup (tar, gzip) and the WAL folder')
    await walden('sales', ['staging-link'])
    await sleep(15_000)
    await walden('sales', ['staging-status'])

    console.log('\n## A break in the WAL chain: a segment goes missing while later ones arrive')
    const expected = (await statusOf('sales'))['expected-wal']!
    const aside = join(dir.path, 'aside')
    // Wait for the expected segment to be archived, then take it away before the copy asks for it again.
    for (let tries = 0; tries < 240 && !(await readdir(wal)).includes(expected); tries++) await sleep(250)
    await rename(join(wal, expected), aside)
    await source.query('select pg_switch_wal()')
    await sleep(2000)
    await source.query('select pg_switch_wal()')
    for (let tries = 0; tries < 120 && (await statusOf('sales')).status === 'ACTIVE'; tries++) await sleep(1000)
    await walden('sales', ['staging-status'])
    await walden('sales', ['staging-snapshot'])
    console.log(`\n# the file is put back: mv ${tidy(aside)} ${tidy(join(wal, expected))}`)
    await rename(aside, join(wal, expected))
    await walden('sales', ['staging-disable'])
    await walden('sales', ['staging-enable'])
    for (let tries = 0; tries < 60 && (await statusOf('sales')).status !== 'ACTIVE'; tries++) await sleep(1000)
    await walden('sales', ['staging-status'])

    console.log('\n## A snapshot, with its hooks, and a clone from it')
    await walden('sales', ['staging-snapshot'])
    await walden('sales', ['info'])
    await walden('sales', ['clone-create', '--clone=qa1', `--clone-path=${clone.dataDir}`, `--clone-port=${clone.port}`, `--clone-setting=unix_socket_directories=${clone.socketDir}`])
    await walden('sales', ['clone-list'])
    await walden('sales', ['clone-destroy', '--clone=qa1'])

    console.log('\n## Way 1: walden takes the base backup itself, then streams through a slot')
    await walden('sales-live', ['staging-link'])
    await walden('sales-live', ['staging-status'])

    console.log('\n## Way 3: the user\'s backup, then streaming')
    await walden('sales-mixed', ['staging-link'])
    await walden('sales-mixed', ['staging-status'])

    console.log('\n## The jobs')
    await walden('sales', ['jobs'])
  } finally {
    load.kill('SIGTERM')
    for (const stanza of ['sales', 'sales-live', 'sales-mixed']) {
      await runWalden([`--config=${configPath}`, `--stanza=${stanza}`, 'staging-unlink'], { timeoutMs: 120_000 }).catch(() => undefined)
    }
    await clone.stop('immediate').catch(() => undefined)
    for (const copy of Object.values(copies)) await copy.stop('immediate').catch(() => undefined)
    await source.stop('fast').catch(() => undefined)
    await dir.cleanup()
  }
})
