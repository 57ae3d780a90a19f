// Clones the whole way, on PostgreSQL 15: a busy source archiving into a WAL folder, a staging copy linked from the
// user's pg_basebackup (external-wal) that keeps its WAL in the stanza's repository, staging snapshots, and clones
// that equal the source at a snapshot and at a time between two snapshots. staging-clone.test.ts has the rest.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pgBinDirs } from '../../src/pg/binaries.js'
import { Cluster, createCluster, dumpDatabase, runWalden, testDir } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface CloneJson {
  name: string
  snapshot: string
  running: boolean
}

/** Runs a PostgreSQL client tool as postgres; fails with its output unless it exits 0. */
function toolOk(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('runuser', ['-u', 'postgres', '--', command, ...args], { cwd: '/tmp', env: { ...process.env, LC_ALL: 'C' } })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolvePromise(output) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}\n${output}`))))
  })
}

describe('a clone from a staging snapshot on PostgreSQL 15', () => {
  const major = 15
  let work: TestDir
  let source: Cluster
  let configPath: string
  let staging: Cluster
  let clone: Cluster
  const clones: Cluster[] = []
  const walden = (args: readonly string[]): Promise<RunResult> => runWalden([`--config=${configPath}`, '--stanza=staged', ...args], { timeoutMs: 240_000 })
  const waldenOk = async (args: readonly string[]): Promise<RunResult> => {
    const result = await walden(args)
    assert.equal(result.code, 0, `walden ${args.join(' ')}\n${result.stdout}\n${result.stderr}`)
    return result
  }

  before(async () => {
    work = await testDir('walden-staged-clone')
    const walDir = await work.mkdir('wal')
    staging = await Cluster.adopt({ major, dir: work, name: 'staging' })
    configPath = join(work.path, 'walden.conf')
    // The stanza's pg1 is the staging cluster: staging-snapshot backs it up through its socket folder.
    await writeFile(
      configPath,
      [
        '[global]',
        `repo1-path=${await work.mkdir('repo')}`,
        `lock-path=${await work.mkdir('lock')}`,
        `log-path=${await work.mkdir('log')}`,
        `spool-path=${await work.mkdir('spool')}`,
        'start-fast=y',
        'backup-standby=only',
        '',
        '[staged]',
        `pg1-socket-path=${staging.socketDir}`,
        '',
      ].join('\n'),
    )
    source = await createCluster({
      major,
      dir: work,
      name: 'source',
      settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `test ! -f ${walDir}/%f && cp %p ${walDir}/%f` },
    })
    await source.start()
    const bin = (await pgBinDirs()).get(15)!
    const connect = ['-h', source.socketDir, '-p', String(source.port), '-U', 'postgres']
    await toolOk(join(bin, 'pgbench'), [...connect, '-i', '-s', '2', '-q', 'postgres'])
    const backupPath = join(work.path, 'basebackup')
    await toolOk(join(bin, 'pg_basebackup'), [...connect, '-D', backupPath, '-F', 'p', '-X', 'stream', '-c', 'fast'])
    // Busy while the staging copy is linked and catches up.
    await toolOk(join(bin, 'pgbench'), [...connect, '-c', '2', '-T', '5', '-n', 'postgres'])
    await waldenOk([
      'staging-link',
      '--staging-method=external-wal',
      `--staging-path=${staging.dataDir}`,
      `--staging-port=${staging.port}`,
      `--staging-setting=unix_socket_directories=${staging.socketDir}`,
      `--staging-backup-path=${backupPath}`,
      `--staging-wal-path=${walDir}`,
    ])
  })
  after(async () => {
    for (const handle of [clone, ...clones]) await handle?.stop().catch(() => {})
    await staging?.stop().catch(() => {})
    await work?.cleanup()
  })

  /**
   * The source stops writing, its last WAL reaches the folder, and the staging copy replays all of it and archives it
   * into the stanza's repository (archive_mode = always).
   */
  const settle = async (): Promise<void> => {
    const end = await source.psqlScalar('select pg_current_wal_lsn()::text')
    const endFile = await source.psqlScalar(`select pg_walfile_name('${end}')`)
    await source.query('select pg_switch_wal()')
    for (const deadline = Date.now() + 90_000; ; ) {
      const done = await staging
        .psqlScalar(`select (pg_last_wal_replay_lsn() >= '${end}'::pg_lsn and coalesce(last_archived_wal, '') >= '${endFile}')::text from pg_stat_archiver`)
        .catch(() => 'false')
      if (done === 'true') return
      assert.ok(Date.now() < deadline, "the staging copy replays and archives the source's last write")
      await sleep(250)
    }
  }
  const snapshot = async (): Promise<string> => /snapshot (\S+) of stanza/.exec((await waldenOk(['staging-snapshot'])).stdout)![1]!
  const cloneArgs = (name: string, handle: Cluster, extra: readonly string[] = []): string[] => [
    'clone-create',
    `--clone=${name}`,
    `--clone-path=${handle.dataDir}`,
    `--clone-port=${handle.port}`,
    `--clone-setting=unix_socket_directories=${handle.socketDir}`,
    ...extra,
  ]

  test('clone-create from a staging snapshot equals the source at the snapshot; one at a time between two snapshots equals the source then', async () => {
    await source.query("create table marker (id int primary key, note text); insert into marker values (1, 'last write')")
    await settle()
    const atFirst = await dumpDatabase(source)
    const first = await snapshot()
    clone = await Cluster.adopt({ major, dir: work, name: 'clone' })
    await waldenOk(cloneArgs('qa', clone))
    assert.equal(await dumpDatabase(clone), atFirst)
    const listed = JSON.parse((await waldenOk(['clone-list', '--output=json'])).stdout) as CloneJson[]
    assert.deepEqual(listed.map((entry) => [entry.name, entry.snapshot, entry.running]), [['qa', first, true]])
    // The staging copy's port is taken, by the host's table or its listener.
    const refused = await walden(['clone-create', '--clone=qa2', `--clone-path=${join(work.path, 'clone2')}`, `--clone-port=${staging.port}`])
    assert.equal(refused.code, 32, refused.stderr)
    assert.match(refused.stderr, new RegExp(`clone-port ${staging.port} is (assigned to the staging copy of stanza 'staged' on this host|in use: )`))
    await waldenOk(['clone-destroy', '--clone=qa'])
    assert.equal(clone.isRunning(), false)

    // Two writes with a recorded time between them reach the staging copy, which keeps its WAL in the repository;
    // then a second snapshot. A clone at that time, from the first snapshot plus the staging copy's WAL, equals the
    // source between the writes.
    await source.query("insert into marker values (2, 'before the time')")
    const atTime = await dumpDatabase(source)
    await sleep(1100)
    const time = await source.psqlScalar(`select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
    await sleep(1100)
    await source.query("insert into marker values (3, 'after the time')")
    await settle()
    await snapshot()
    const atTimeClone = await Cluster.adopt({ major, dir: work, name: 'clone-time' })
    clones.push(atTimeClone)
    await waldenOk(cloneArgs('attime', atTimeClone, ['--type=time', `--target=${time}`]))
    assert.equal(await dumpDatabase(atTimeClone), atTime)
    await waldenOk(['clone-destroy', '--clone=attime'])
  })
})
