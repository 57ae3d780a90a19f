// Backups run on the backup host (pg1-host over SSH, pgBackRest's meaning), through a real OpenSSH server
// (test/harness/ssh.ts) on loopback. Two OS users stand for the two hosts: walden-repo is the backup host, owns the
// repository (mode 0750, which postgres cannot read) and runs stanza-create, check, backup, info, expire and verify
// from its own config file; postgres is the database host, owns the cluster (mode 0700, which walden-repo cannot
// read), and is reached by walden-repo over SSH, where a `walden remote` reads the data folder and carries the
// backup's SQL to the cluster's socket. archive_command and restore go the other way, through repo1-host.
//
// The tests: the guide's flow (stanza-create, check, archive-push through SSH, full and incr backups, info, restore
// equal to the source's dump, point-in-time recovery); each user unable to read the other's files; one SSH session
// per worker with process-max; the SSH server stopped in the middle of a backup; a remote of another version, a wrong
// host key, a wrong user; backup-standby=y with the primary and the standby both over SSH; hostile pg1-path,
// pg1-socket-path and pg1-host-config values that must reach the database host as data.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Cluster, dumpDatabase, runWalden } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { leftOver, PG_USER, processesOf, REPO_USER, sshServer, userIds } from '../harness/ssh.js'
import type { SshServer } from '../harness/ssh.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const WALDEN = join(import.meta.dirname, '..', '..', 'bin', 'walden')
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function output(result: RunResult): string {
  return `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`
}

/** The ERROR and HINT lines of a command's output, for the test's diagnostics. */
function errorLines(result: RunResult): string {
  return `exit ${result.code}: ${(result.stderr + result.stdout).split('\n').filter((line) => /ERROR:|HINT:|^\s*at |Error/.test(line)).slice(0, 4).join(' | ')}`
}

/** A failed command: its exit code, one ERROR line matching `error`, and no stack trace. */
function assertFailed(result: RunResult, code: number, error: RegExp): void {
  assert.equal(result.code, code, output(result))
  const errors = result.stderr.split('\n').filter((line) => line.includes('ERROR:'))
  assert.equal(errors.length, 1, `one error line:\n${output(result)}`)
  assert.match(errors[0]!, error, output(result))
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

/** This file's processes: a marker (a path of this checkout or of this file's sshd) in the command line. */
const holding = (marker: string) => (_pid: number, cmdline: string): boolean => cmdline.includes(marker)

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    if (await check().catch(() => false)) return
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

describe(`backups run on the backup host, the database host reached over SSH (pg1-host), PostgreSQL ${MAJOR}`, { concurrency: false }, () => {
  let ssh: SshServer
  let stanza: TestStanza
  /** The backup host's side: its config file, repository, lock and log folders, all walden-repo's. */
  let backupHost: string
  let repo: string
  let backupConfig: string
  let repoUser = { uid: -1, gid: -1 }
  let pgUser = { uid: -1, gid: -1 }
  let restores = 0

  /** The database host's config (read by archive_command, restore and the remote walden): the backup host as repo1. */
  const dbHostConfigure = async (): Promise<void> => {
    const lines = [
      '[global]',
      'repo1-host=127.0.0.1',
      `repo1-host-user=${REPO_USER}`,
      `repo1-host-port=${ssh.port}`,
      `repo1-host-config=${backupConfig}`,
      `cmd-ssh=${ssh.sshCommand(PG_USER)}`,
      'protocol-timeout=60',
      `lock-path=${stanza.lockPath}`,
      `log-path=${join(stanza.dir.path, 'log')}`,
      'compress-type=zst',
      'start-fast=y',
      'archive-timeout=30',
      '',
      `[${stanza.name}]`,
      `pg1-path=${stanza.cluster.dataDir}`,
      `pg1-port=${stanza.cluster.port}`,
      `pg1-socket-path=${stanza.cluster.socketDir}`,
      '',
    ]
    await writeFile(stanza.configPath, lines.join('\n'))
    await chmod(stanza.configPath, 0o644)
  }

  /** The pgN lines of the backup host's config: the database host over SSH, and the cluster as seen there. */
  const pgLines = (index: number, cluster: Cluster, overrides: Record<string, string> = {}): string[] => {
    const settings: Record<string, string> = {
      host: '127.0.0.1',
      'host-user': PG_USER,
      'host-port': String(ssh.port),
      'host-cmd': WALDEN,
      'host-config': stanza.configPath,
      path: cluster.dataDir,
      port: String(cluster.port),
      'socket-path': cluster.socketDir,
      ...overrides,
    }
    return Object.entries(settings).filter(([, value]) => value !== '').map(([key, value]) => `pg${index}-${key}=${value}`)
  }

  /** The backup host's config: the repository, and pg1 (plus `stanzaLines`) reached over SSH. */
  const backupHostConfigure = async (pg1: Record<string, string> = {}, stanzaLines: string[] = [], globalLines: string[] = []): Promise<void> => {
    const lines = [
      '[global]',
      `repo1-path=${repo}`,
      `lock-path=${join(backupHost, 'lock')}`,
      `log-path=${join(backupHost, 'log')}`,
      `cmd-ssh=${ssh.sshCommand(REPO_USER)}`,
      'protocol-timeout=60',
      'compress-type=zst',
      'process-max=2',
      'start-fast=y',
      'archive-timeout=30',
      ...globalLines,
      '',
      `[${stanza.name}]`,
      ...pgLines(1, stanza.cluster, pg1),
      ...stanzaLines,
      '',
    ]
    await writeFile(backupConfig, lines.join('\n'))
    await chown(backupConfig, repoUser.uid, repoUser.gid)
    await chmod(backupConfig, 0o640)
  }

  /** walden on the backup host: as walden-repo, with the backup host's config. */
  const onBackupHost = (args: readonly string[]): Promise<RunResult> =>
    runWalden([`--config=${backupConfig}`, `--stanza=${stanza.name}`, ...args], { asUser: REPO_USER })
  const onBackupHostOk = async (args: readonly string[]): Promise<RunResult> => {
    const result = await onBackupHost(args)
    if (result.code !== 0) {
      assert.fail(`walden ${args.join(' ')} on the backup host: ${output(result)}\nserver log:\n${await stanza.cluster.logTail(20)}`)
    }
    return result
  }

  interface InfoJson {
    status: { code: number; message?: string }
    backup: Array<{ label: string; type: string }>
  }
  const infoOnBackupHost = async (): Promise<InfoJson> => (JSON.parse((await onBackupHostOk(['info', '--output=json'])).stdout) as InfoJson[])[0]!

  /** Files under the repository, relative to it, read as root (postgres cannot). */
  const repoFiles = async (): Promise<string[]> => ((await readdir(repo, { recursive: true })) as string[]).sort()
  /** Sessions the test sshd accepted for `user` so far, from its log. */
  const sessionsAccepted = async (user: string): Promise<number> => ((await ssh.log()).match(new RegExp(`Accepted publickey for ${user} `, 'g')) ?? []).length

  /**
   * What a command run on the backup host can leave behind: walden on either host, ssh clients of the backup host.
   * Only this file's: other test files run beside it with the same bin/walden (remote-repo.test.ts even has a stanza
   * named 'remote'), so a walden counts when its config file is one of this test's two.
   */
  const ours = (_pid: number, cmdline: string): boolean => cmdline.includes(WALDEN) && (cmdline.includes(backupHost) || cmdline.includes(stanza.dir.path))
  const strays = async (): Promise<string[]> => [
    ...(await leftOver(repoUser.uid, /./, ours)),
    ...(await leftOver(repoUser.uid, /./, holding(ssh.dir))),
    ...(await leftOver(pgUser.uid, /\bremote\b/, ours)),
  ]
  /** Sessions of walden still open on the cluster. */
  const waldenSessions = (): Promise<string> =>
    stanza.cluster.psqlScalar(`select count(*) from pg_stat_activity where application_name like 'walden%' and pid <> pg_backend_pid()`)

  /** Restores a backup on the database host (as postgres, through repo1-host) into a fresh cluster, and dumps it. */
  const restoreAndDump = async (label: string): Promise<string> => {
    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: `restored-${++restores}` })
    await stanza.waldenOk([
      'restore', `--set=${label}`, `--pg1-path=${copy.dataDir}`, `--pg1-port=${copy.port}`, '--archive-mode=off',
      `--recovery-option=unix_socket_directories=${copy.socketDir}`,
    ])
    await copy.start()
    try {
      await copy.waitWritable(60_000)
      return await dumpDatabase(copy)
    } catch (error) {
      throw new Error(`the restored cluster of ${label}: ${(error as Error).message}\n${await copy.logTail()}`)
    } finally {
      await copy.stop()
      await rm(copy.dataDir, { recursive: true, force: true })
    }
  }

  before(async () => {
    ssh = await sshServer()
    repoUser = userIds(REPO_USER)
    pgUser = userIds(PG_USER)
    backupHost = await mkdtemp(join(tmpdir(), 'walden-pg-host-'))
    await chmod(backupHost, 0o755)
    for (const name of ['repo', 'lock', 'log']) {
      await mkdir(join(backupHost, name), { mode: 0o750 })
      await chown(join(backupHost, name), repoUser.uid, repoUser.gid)
    }
    repo = join(backupHost, 'repo')
    backupConfig = join(backupHost, 'walden.conf')

    stanza = await createTestStanza({ major: MAJOR, name: 'pghost', settings: { hot_standby: 'on', wal_keep_size: '64MB' } })
    await dbHostConfigure()
    await backupHostConfigure()
    await stanza.cluster.query(`create table t (id int primary key, note text); insert into t select n, 'row ' || n from generate_series(1, 20000) n`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
    if (backupHost) await rm(backupHost, { recursive: true, force: true })
  })

  test('the guide\'s flow: stanza-create, check, full and incr backups and info on the backup host; restore and PITR on the database host', async () => {
    await onBackupHostOk(['stanza-create'])
    const files = await repoFiles()
    assert.ok(files.includes(join('archive', stanza.name, 'archive.info')), files.join('\n'))
    assert.ok(files.includes(join('backup', stanza.name, 'backup.info')), files.join('\n'))

    // check on the backup host switches WAL over SSH; archive_command on the database host pushes it back over SSH.
    await onBackupHostOk(['check'])
    const segment = (await repoFiles()).find((file) => new RegExp(`^archive/${stanza.name}/15-1/[0-9A-F]{16}/[0-9A-F]{24}-[0-9a-f]{40,64}\\.`).test(file))
    assert.ok(segment !== undefined, (await repoFiles()).join('\n'))
    assert.equal((await stat(join(repo, segment))).uid, repoUser.uid, 'the segment was stored by the backup host\'s user')

    await onBackupHostOk(['backup', '--type=full'])
    await stanza.cluster.query(`insert into t select n, 'incr ' || n from generate_series(20001, 25000) n`)
    await onBackupHostOk(['backup', '--type=incr'])
    const info = await infoOnBackupHost()
    assert.equal(info.status.code, 0)
    assert.deepEqual(info.backup.map((backup) => backup.type), ['full', 'incr'])
    const text = await onBackupHostOk(['info'])
    assert.match(text.stdout, /incr backup: \d{8}-\d{6}F_\d{8}-\d{6}I/)
    // Every file of the backups was written by walden-repo, not by root or postgres.
    const backupFiles = (await repoFiles()).filter((file) => file.startsWith(`backup/${stanza.name}/${info.backup[0]!.label}/`))
    assert.ok(backupFiles.length > 100, backupFiles.join('\n'))
    const owners = new Set(await Promise.all(backupFiles.map(async (file) => (await stat(join(repo, file))).uid)))
    assert.deepEqual([...owners], [repoUser.uid])
    await onBackupHostOk(['expire'])
    assert.equal((await infoOnBackupHost()).backup.length, 2, 'expire without retention settings keeps both')
    assert.deepEqual(await strays(), [], 'nothing of the sessions is left running')

    // Restore on the database host, as postgres, through repo1-host.
    await stanza.cluster.query(`insert into t select n, 'later ' || n from generate_series(25001, 26000) n`)
    const expected = await dumpDatabase(stanza.cluster)
    await onBackupHostOk(['check'])
    await stanza.cluster.stop()
    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    await stanza.waldenOk(['restore'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), expected)

    // Point-in-time recovery to an LSN between a table's creation and its drop.
    await stanza.cluster.query(`create table precious as select n as id, 'row ' || n as note from generate_series(1, 500) n`)
    const target = await stanza.cluster.psqlScalar('select pg_current_wal_lsn()::text')
    await stanza.cluster.query('drop table precious')
    await onBackupHostOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', '--type=lsn', `--target=${target}`, '--target-action=promote'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from precious'), '500')
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from t'), '26000')
  })

  test('neither user can read the other\'s files, and a backup run on the backup host still copies the data folder', async () => {
    assert.equal((await stat(repo)).mode & 0o777, 0o750)
    const listRepo = spawnSync('runuser', ['-u', PG_USER, '--', 'ls', repo], { encoding: 'utf8' })
    assert.notEqual(listRepo.status, 0)
    assert.match(listRepo.stderr, /Permission denied/)

    const data = await stat(stanza.cluster.dataDir)
    assert.equal(data.mode & 0o777, 0o700)
    assert.equal(data.uid, pgUser.uid)
    const listData = spawnSync('runuser', ['-u', REPO_USER, '--', 'ls', stanza.cluster.dataDir], { encoding: 'utf8' })
    assert.notEqual(listData.status, 0)
    assert.match(listData.stderr, /Permission denied/)
    const readVersion = spawnSync('runuser', ['-u', REPO_USER, '--', 'cat', join(stanza.cluster.dataDir, 'PG_VERSION')], { encoding: 'utf8' })
    assert.notEqual(readVersion.status, 0)

    // A table written only now: its rows can reach the backup only through the remote walden on the database host.
    await stanza.cluster.query(`create table only_now as select n, md5(n::text) as h from generate_series(1, 3000) n`)
    const relation = await stanza.cluster.psqlScalar(`select pg_relation_filepath('only_now')`)
    await stanza.cluster.query('checkpoint')
    await onBackupHostOk(['backup', '--type=full'])
    const label = (await infoOnBackupHost()).backup.at(-1)!.label
    const stored = (await repoFiles()).filter((file) => file.startsWith(`backup/${stanza.name}/${label}/pg_data/${relation}`))
    assert.ok(stored.length >= 1, `${relation} is in the backup`)
    const expected = await dumpDatabase(stanza.cluster)
    await onBackupHostOk(['check'])
    assert.equal(await restoreAndDump(label), expected)
  })

  test('process-max: one SSH session to the database host per worker, each kept for all its files', async (t) => {
    const sessions = async (processMax: number): Promise<{ count: number; concurrent: number }> => {
      const before = await sessionsAccepted(PG_USER)
      let concurrent = 0
      let running = true
      const sampler = (async () => {
        while (running) {
          // The walden processes themselves: a shell that sshd starts them through may show the same command line.
          concurrent = Math.max(concurrent, processesOf(pgUser.uid, /^\S*node \S*walden .*\bremote\b/, ours).length)
          await sleep(20)
        }
      })()
      try {
        await onBackupHostOk(['backup', '--type=full', `--process-max=${processMax}`])
      } finally {
        running = false
        await sampler
      }
      return { count: (await sessionsAccepted(PG_USER)) - before, concurrent }
    }
    const one = await sessions(1)
    const two = await sessions(2)
    const fileCount = ((await readdir(join(stanza.cluster.dataDir), { recursive: true })) as string[]).length
    // archive_command's sessions go to walden-repo, not postgres: every session counted here is the backup's.
    t.diagnostic(`SSH sessions as postgres: ${one.count} with process-max=1, ${two.count} with process-max=2 (${two.concurrent} remote walden at once), ${fileCount} files in the data folder`)
    assert.ok(one.count >= 1, `process-max=1: ${one.count} session(s)`)
    assert.equal(two.count, one.count + 1, `process-max=1: ${one.count} session(s), process-max=2: ${two.count}, for ${fileCount} files`)
    assert.ok(two.concurrent >= 2, `process-max=2: at most ${two.concurrent} walden remote process(es) seen at once`)
    assert.ok(two.concurrent <= two.count)
    assert.deepEqual(await strays(), [], 'the sessions ended with the backup')
  })

  test('the SSH server stopped in the middle of a backup: one clear error, nothing left on either host, the repository valid, the next backup succeeds', async (t) => {
    // Enough incompressible data that the backup is still copying when the server goes away.
    await stanza.cluster.query(`create table big as select n, md5(random()::text) || md5(random()::text) || md5(random()::text) as a from generate_series(1, 400000) n`)
    await onBackupHostOk(['check'])
    const backupsBefore = (await infoOnBackupHost()).backup.length
    const backupRoot = join(repo, 'backup', stanza.name)
    const filesBefore = ((await readdir(backupRoot, { recursive: true })) as string[]).length
    const running = onBackupHost(['backup', '--type=full', '--compress-type=none', '--process-max=1'])
    let stopped = false
    let result: RunResult
    try {
      try {
        for (let waited = 0; waited < 60_000; waited += 20) {
          const now = ((await readdir(backupRoot, { recursive: true }).catch(() => [])) as string[]).length
          if (now > filesBefore + 20) {
            await ssh.stop()
            stopped = true
            break
          }
          await sleep(20)
        }
        result = await running
        assert.ok(stopped, `the backup never got going:\n${output(result)}`)
        t.diagnostic(errorLines(result))
        assert.notEqual(result.code, 0, output(result))

        // Nothing of the session is left: no walden or ssh of the backup host, no remote walden on the database host.
        assert.deepEqual(await strays(), [])
        // The cluster's session of the backup ended with its remote, so no backup is left open there.
        await waitUntil('walden\'s session on the cluster to end', async () => (await waldenSessions()) === '0', 10_000).catch(async (error: unknown) => {
          const left = await stanza.cluster.query(`select pid, application_name, state, query from pg_stat_activity where application_name like 'walden%'`)
          throw new Error(`${(error as Error).message}: ${JSON.stringify(left)}`)
        })
      } finally {
        await ssh.start()
      }

      // The repository reads as before and verifies; the next backup starts (no backup is left open) and completes.
      const info = await infoOnBackupHost()
      assert.equal(info.status.code, 0)
      assert.equal(info.backup.length, backupsBefore)
      await onBackupHostOk(['verify'])
      await onBackupHostOk(['backup', '--type=full'])
      assert.equal((await infoOnBackupHost()).backup.length, backupsBefore + 1)
      await onBackupHostOk(['verify'])
      assert.equal(await waldenSessions(), '0')
    } finally {
      await stanza.cluster.query('drop table big')
    }
    // Last, so that a wrong message does not hide what the checks above show: the error names the database host.
    assertFailed(result, 49, /ERROR: \[049\]: connection to database host '127\.0\.0\.1' as user 'postgres' lost: /)
  })

  test('a remote walden of another version, a host key not the one known, and a user that refuses the key: one clear error each, naming the database host', async (t) => {
    const fake = join(backupHost, 'walden-0.2.0')
    await writeFile(fake, `#!/bin/sh\n_WALDEN_TEST_REMOTE_VERSION=0.2.0 exec ${process.execPath} ${WALDEN} "$@"\n`, { mode: 0o755 })
    await backupHostConfigure({ 'host-cmd': fake })
    try {
      const result = await onBackupHost(['backup', '--type=full'])
      t.diagnostic(errorLines(result))
      assertFailed(result, 39, /walden \S+ on \S+, 0\.2\.0 on 127\.0\.0\.1: install the same version on both/)
      assert.match(result.stderr, /HINT: .*\(pg1-host-cmd\)/)
    } finally {
      await backupHostConfigure()
    }
    assert.deepEqual(await strays(), [], 'the refused remote ended')

    await ssh.knownHostsWrong(REPO_USER)
    try {
      const result = await onBackupHost(['backup', '--type=full'])
      t.diagnostic(errorLines(result))
      assertFailed(result, 49, /\[049\]: unable to start walden on database host '127\.0\.0\.1' as user 'postgres': Host key verification failed\./)
    } finally {
      await ssh.knownHostsRestore(REPO_USER)
    }

    // walden-repo's key is authorized for postgres only.
    await backupHostConfigure({ 'host-user': REPO_USER })
    try {
      const result = await onBackupHost(['backup', '--type=full'])
      t.diagnostic(errorLines(result))
      assertFailed(result, 49, /\[049\]: unable to start walden on database host '127\.0\.0\.1' as user 'walden-repo': .*Permission denied \(publickey\)/)
      assert.match(result.stderr, /HINT: .*\(pg1-host-user\)/)
    } finally {
      await backupHostConfigure()
    }
    assert.deepEqual(await strays(), [])
    await onBackupHostOk(['check'])
  })

  test('backup-standby=y with the primary (pg1-host) and the standby (pg2-host) both over SSH, restored and compared', async () => {
    const primary = stanza.cluster
    const standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'standby' })
    await stanza.waldenOk([
      'standby-create', `--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`,
      `--primary-conninfo=host=127.0.0.1 port=${primary.port} user=postgres`,
    ])
    await standby.configure({ unix_socket_directories: standby.socketDir })
    await standby.start()
    try {
      const caughtUp = async (): Promise<void> => {
        const lsn = await primary.psqlScalar('select pg_current_wal_lsn()::text')
        await waitUntil('the standby to replay the primary', async () => (await standby.psqlScalar(`select (pg_last_wal_replay_lsn() >= '${lsn}')::text`)) === 'true')
      }
      // A table nothing writes, flushed on both; its file is then unreadable on the primary only.
      await primary.query(`create table cold with (autovacuum_enabled = off) as select n as id, repeat('c', 100) as note from generate_series(1, 5000) n`)
      await primary.query('checkpoint')
      await caughtUp()
      await standby.query('checkpoint')
      await backupHostConfigure({}, pgLines(2, standby))
      const coldFile = join(primary.dataDir, await primary.psqlScalar(`select pg_relation_filepath('cold')`))
      await chmod(coldFile, 0o000)
      try {
        // From the primary alone the backup fails on that file: the backup below could not pass by accident.
        const fromPrimary = await onBackupHost(['backup', '--type=full'])
        assert.equal(fromPrimary.code, 41, output(fromPrimary))
        assert.ok(fromPrimary.stderr.includes(coldFile), output(fromPrimary))

        const fromStandby = await onBackupHostOk(['backup', '--type=full', '--backup-standby=y', '--log-level-console=info'])
        assert.match(fromStandby.stderr, /relation files are read from the standby pg2 '.*standby', the rest from pg1/)
      } finally {
        await chmod(coldFile, 0o600)
      }
      // That backup recorded the file's mode on the primary, 0000, which a restored server could not open: the one
      // restored below is taken with the file readable again, from the standby as well.
      const restorable = await onBackupHostOk(['backup', '--type=full', '--backup-standby=y', '--log-level-console=info'])
      assert.match(restorable.stderr, /backup-standby: .* read from pg2 '.*standby', .* from pg1/)
      const text = await onBackupHostOk(['info'])
      assert.match(text.stdout, /backup-standby: y, run on pg1, relation files from pg2/)
      const label = (await infoOnBackupHost()).backup.at(-1)!.label
      const expected = await dumpDatabase(primary)
      await onBackupHostOk(['check'])
      assert.equal(await restoreAndDump(label), expected)
      assert.deepEqual(await strays(), [])
    } finally {
      await standby.stop()
      await backupHostConfigure()
    }
  })

  test('hostile pg1-path, pg1-socket-path and pg1-host-config reach the database host as data, never as shell code', async (t) => {
    // If any of these were run by a shell, it would create this file (postgres may write in /tmp).
    const marker = `/tmp/pw${randomBytes(4).toString('hex')}`
    const hostile = `x '$(touch ${marker})' "\`touch ${marker}\`"; touch ${marker}`
    try {
      // A config file at a hostile path (its folders are made from the slashes of the marker), read by the remote.
      const hostileConfig = join(stanza.dir.path, hostile, 'walden.conf')
      await mkdir(dirname(hostileConfig), { recursive: true, mode: 0o755 })
      await copyFile(stanza.configPath, hostileConfig)
      await chmod(hostileConfig, 0o644)
      // The socket folder through a symlink at a hostile path (short enough for a socket's 107 bytes).
      const hostileSocket = join(stanza.dir.path, `s '$(touch ${marker})' "\`x\`"`)
      await mkdir(dirname(hostileSocket), { recursive: true, mode: 0o755 })
      await symlink(stanza.cluster.socketDir, hostileSocket)
      assert.ok(`${hostileSocket}/.s.PGSQL.${stanza.cluster.port}`.length < 107)

      await backupHostConfigure({ 'host-config': hostileConfig, 'socket-path': hostileSocket })
      await onBackupHostOk(['check'])
      await onBackupHostOk(['backup', '--type=incr'])

      // A data folder that does not exist, at a hostile path: an error that names it whole.
      const hostileData = join(stanza.dir.path, hostile, 'data')
      await backupHostConfigure({ path: hostileData })
      const result = await onBackupHost(['backup', '--type=incr'])
      t.diagnostic(errorLines(result))
      assert.notEqual(result.code, 0, output(result))
      assert.ok(result.stderr.includes(`'${hostileData}'`), output(result))
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
    } finally {
      await backupHostConfigure()
    }
    await assert.rejects(stat(marker), /ENOENT/, 'a hostile value ran as shell code')
    assert.deepEqual(await strays(), [])
  })
})
