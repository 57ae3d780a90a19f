// A repository on a backup host over SSH (repo1-host), through a real OpenSSH server (test/harness/ssh.ts) on
// loopback. Two OS users stand for the two hosts: postgres owns the cluster and runs walden as PostgreSQL's commands
// do; walden-repo owns the repository, which postgres cannot read, and serves it through `walden remote` started by
// sshd. Everything the database host does to the repository crosses the SSH session: stanza-create, check,
// archive-push from archive_command (and from archive-async's background process), a full backup, info, restore
// compared by pg_dump, archive-get replaying WAL to a point in time, a hot standby built by standby-create that follows
// the primary. Then the failures: the SSH server stopped in the middle of a backup, a remote walden of another version,
// a wrong host key, a wrong user, a backup host that never answers, hostile repo1-host-config and -cmd values. And an
// encrypted repo2 on the backup host, whose passphrase never leaves the database host.

import assert from 'node:assert/strict'
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { Cluster, dumpDatabase } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { leftOver, PG_USER, REPO_USER, sshServer, userIds } from '../harness/ssh.js'
import type { SshServer } from '../harness/ssh.js'
import { historyPushGet } from '../harness/history-file.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const WALDEN = join(import.meta.dirname, '..', '..', 'bin', 'walden')
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** info reports a repository it cannot read in the stanza's status (on stdout), and exits with that error's code. */
function assertInfoFailed(result: RunResult, code: number, error: RegExp): void {
  assert.equal(result.code, code, `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
  assert.match(result.stdout, error)
  assert.doesNotMatch(result.stdout + result.stderr, /\n\s+at /, 'no stack trace')
}

function assertFailed(result: RunResult, code: number, error: RegExp): void {
  assert.equal(result.code, code, `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
  assert.match(result.stderr, error)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

// This file's processes, for leftOver (set once its sshd and backup host exist).
let mine: (pid: number, cmdline: string) => boolean = () => true

describe(`a repository on a backup host over SSH, PostgreSQL ${MAJOR}`, () => {
  let ssh: SshServer
  let stanza: TestStanza
  /** The backup host's side: its config file, repository, lock and log folders, all walden-repo's. */
  let backupHost: string
  let repo: string
  let backupConfig: string
  // Known once the harness has made sure the repository user exists.
  let repoUser = { uid: -1, gid: -1 }

  /** The database host's config: no repo1-path, the backup host instead. */
  const hostLines = (overrides: Record<string, string> = {}): string[] => {
    const settings: Record<string, string> = {
      'repo1-host': '127.0.0.1',
      'repo1-host-user': REPO_USER,
      'repo1-host-port': String(ssh.port),
      'repo1-host-config': backupConfig,
      'cmd-ssh': ssh.sshCommand(PG_USER),
      'protocol-timeout': '60',
      ...overrides,
    }
    return Object.entries(settings).filter(([, value]) => value !== '').map(([key, value]) => `${key}=${value}`)
  }
  const configure = async (overrides: Record<string, string> = {}, extra: string[] = []): Promise<void> => {
    const lines = [
      '[global]',
      ...hostLines(overrides),
      `lock-path=${stanza.lockPath}`,
      `log-path=${join(stanza.dir.path, 'log')}`,
      'compress-type=zst',
      'process-max=2',
      'start-fast=y',
      'archive-timeout=30',
      ...extra,
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
  /** Sessions the test sshd has accepted for the repository user so far (from its log). */
  const sessionsAccepted = async (): Promise<number> => ((await ssh.log()).match(new RegExp(`Accepted publickey for ${REPO_USER} `, 'g')) ?? []).length
  /** Archived WAL segments in the repository. */
  const archived = async (): Promise<string[]> => (await repoFiles()).filter((file) => /^archive\/remote\/15-1\/[0-9A-F]{16}\/[0-9A-F]{24}-/.test(file))
  /** Files under the repository, relative to it, read as root (postgres cannot). */
  const repoFiles = async (): Promise<string[]> => ((await readdir(repo, { recursive: true })) as string[]).sort()

  before(async () => {
    ssh = await sshServer()
    repoUser = userIds(REPO_USER)
    backupHost = await mkdtemp(join(tmpdir(), 'walden-backup-host-'))
    // This file's processes: its remote waldens name its backup host's config, its ssh clients its sshd's port, and
    // whatever else its sshd started descends from it.
    mine = (pid, cmdline) => cmdline.includes(backupHost) || cmdline.includes(`-p ${ssh.port} `) || ssh.sessionPids().includes(pid)
    await chmod(backupHost, 0o755)
    for (const name of ['repo', 'lock', 'log']) {
      await mkdir(join(backupHost, name), { mode: 0o750 })
      await chown(join(backupHost, name), repoUser.uid, repoUser.gid)
    }
    repo = join(backupHost, 'repo')
    backupConfig = join(backupHost, 'walden.conf')
    await writeFile(backupConfig, ['[global]', `repo1-path=${repo}`, `lock-path=${join(backupHost, 'lock')}`, `log-path=${join(backupHost, 'log')}`, ''].join('\n'))
    await chown(backupConfig, repoUser.uid, repoUser.gid)
    await chmod(backupConfig, 0o640)

    stanza = await createTestStanza({ major: MAJOR, name: 'remote' })
    await configure()
    await stanza.cluster.query(`create table t (id int primary key, note text); insert into t select n, 'row ' || n from generate_series(1, 20000) n`)
  })
  after(async () => {
    await stanza?.dir.cleanup()
    if (backupHost) await rm(backupHost, { recursive: true, force: true })
  })

  test('the two users reach each other by key through the test sshd, and postgres cannot read the repository', async () => {
    const asPostgres = spawnSync('runuser', ['-u', PG_USER, '--', ssh.sshCommand(PG_USER), '-p', String(ssh.port), `${REPO_USER}@127.0.0.1`, 'id -un'], { encoding: 'utf8' })
    assert.equal(asPostgres.stdout.trim(), REPO_USER, asPostgres.stderr)
    const asRepo = spawnSync('runuser', ['-u', REPO_USER, '--', ssh.sshCommand(REPO_USER), '-p', String(ssh.port), `${PG_USER}@127.0.0.1`, 'id -un'], { encoding: 'utf8' })
    assert.equal(asRepo.stdout.trim(), PG_USER, asRepo.stderr)
    const listing = spawnSync('runuser', ['-u', PG_USER, '--', 'ls', repo], { encoding: 'utf8' })
    assert.notEqual(listing.status, 0)
    assert.match(listing.stderr, /Permission denied/)
    assert.equal((await stat(repo)).mode & 0o777, 0o750)
  })

  test('stanza-create and check from the database host write the repository on the backup host, as its user', async () => {
    await stanza.waldenOk(['stanza-create'])
    const files = await repoFiles()
    assert.ok(files.includes(join('archive', stanza.name, 'archive.info')), files.join('\n'))
    assert.ok(files.includes(join('backup', stanza.name, 'backup.info')), files.join('\n'))
    const owner = await stat(join(repo, 'archive', stanza.name, 'archive.info'))
    assert.equal(owner.uid, repoUser.uid, 'written by the backup host\'s user')

    // check switches WAL and waits until archive_command (archive-push through SSH) has stored the segment.
    await stanza.waldenOk(['check'])
    const segments = (await repoFiles()).filter((file) => /^archive\/remote\/15-1\/[0-9A-F]{16}\/[0-9A-F]{24}-[0-9a-f]{40,64}\./.test(file))
    assert.ok(segments.length >= 1, (await repoFiles()).join('\n'))
    assert.deepEqual(await leftOver(repoUser.uid, /walden.* remote$/, mine), [], 'no remote walden left running')
  })

  test('a full backup through SSH, shown by info, restored on the database host equal to its dump', async () => {
    const sessionsBefore = await sessionsAccepted()
    const archivedBefore = (await archived()).length
    await stanza.waldenOk(['backup', '--type=full', '--process-max=2'])
    // One session for the command and one per worker, each reused for every one of the cluster's ~1000 files; and
    // one per segment PostgreSQL archived meanwhile (archive_command is a process of its own).
    const sessions = (await sessionsAccepted()) - sessionsBefore
    const segments = (await archived()).length - archivedBefore
    assert.ok(sessions >= 1 && sessions <= 3 + segments, `${sessions} SSH sessions for a backup with process-max=2 and ${segments} segment(s) archived`)
    assert.deepEqual(await leftOver(repoUser.uid, /walden/, mine), [], 'no remote walden left running')
    assert.deepEqual(await leftOver(userIds(PG_USER).uid, /ssh-postgres|\/usr\/bin\/ssh /, mine), [], 'no ssh client left running')
    const info = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<{ status: { code: number }; backup: Array<{ type: string }> }>
    assert.equal(info[0]!.status.code, 0)
    assert.deepEqual(info[0]!.backup.map((backup) => backup.type), ['full'])
    const text = await stanza.waldenOk(['info'])
    assert.match(text.stdout, /full backup: \d{8}-\d{6}F/)

    await stanza.cluster.query(`insert into t select n, 'later ' || n from generate_series(20001, 25000) n`)
    const before = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
    await stanza.waldenOk(['restore'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await dumpDatabase(stanza.cluster), before)
  })

  test("repo-ls and repo-get through SSH print what the backup host's own repo-ls and files say", async () => {
    const path = `backup/${stanza.name}`
    const local = spawnSync('runuser', ['-u', REPO_USER, '--', process.execPath, WALDEN, `--config=${backupConfig}`, 'repo-ls', path, '--recurse', '--output=json'], {
      cwd: '/tmp',
      encoding: 'utf8',
    })
    assert.equal(local.status, 0, local.stderr)
    const remote = await stanza.waldenOk(['repo-ls', path, '--recurse', '--output=json'])
    assert.equal(remote.stdout, local.stdout)
    assert.match(remote.stdout, /"backup\.info":\{"type":"file","size":\d+,"time":\d+\}/)
    const got = await stanza.waldenOk(['repo-get', `${path}/backup.info`])
    assert.equal(got.stdout, await readFile(join(repo, path, 'backup.info'), 'utf8'))
    // Where the repository is on that host is its own configuration: an absolute path cannot be checked here.
    const absolute = await stanza.walden(['repo-ls', join(repo, path)])
    assert.equal(absolute.code, 69, absolute.stderr)
    assert.match(absolute.stderr, /cannot be checked against a repository on a backup host/)
  })

  test('point-in-time recovery through SSH: archive-get replays WAL up to a target before a dropped table', async () => {
    await stanza.cluster.query(`create table precious as select n as id, 'row ' || n as note from generate_series(1, 500) n`)
    await sleep(1100)
    const target = await stanza.cluster.psqlScalar(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
    await sleep(1100)
    await stanza.cluster.query('drop table precious')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', '--type=time', `--target=${target}`, '--target-action=promote'])
    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await stanza.cluster.psqlScalar('select count(*) from precious'), '500')
  })

  test('archive-push with archive-async pushes through SSH from its background process', async () => {
    const spool = await stanza.dir.mkdir('spool')
    await configure({}, ['archive-async=y', `spool-path=${spool}`])
    try {
      const before = (await repoFiles()).length
      await stanza.cluster.query(`insert into t select n, 'async ' || n from generate_series(30001, 31000) n`)
      await stanza.waldenOk(['check'])
      assert.ok((await repoFiles()).length > before, 'a segment was stored by the background process')
    } finally {
      await configure()
    }
    assert.deepEqual(await leftOver(repoUser.uid, /walden.* remote$/, mine), [], 'no remote walden left running')
  })

  test('the SSH server stopped in the middle of a backup: a clear error, nothing left running, the next backup succeeds', async () => {
    // Enough incompressible data that the backup is still copying when the server goes away.
    await stanza.cluster.query(`create table big as select n, md5(random()::text) || md5(random()::text) || md5(random()::text) as a from generate_series(1, 400000) n`)
    await stanza.waldenOk(['check'])
    const backupRoot = join(repo, 'backup', stanza.name)
    const filesBefore = ((await readdir(backupRoot, { recursive: true })) as string[]).length
    const running = stanza.walden(['backup', '--type=full', '--compress-type=none', '--process-max=1'])
    let stopped = false
    for (let waited = 0; waited < 60_000; waited += 20) {
      const now = ((await readdir(backupRoot, { recursive: true }).catch(() => [])) as string[]).length
      if (now > filesBefore + 20) {
        await ssh.stop()
        stopped = true
        break
      }
      await sleep(20)
    }
    const result = await running
    assert.ok(stopped, `the backup never got going:\n${result.stderr}`)
    assertFailed(result, 49, /ERROR: \[049\]: connection to backup host '127\.0\.0\.1' as user 'walden-repo' lost: /)
    assert.match(result.stderr, /HINT: check that the host is up and its sshd running/)

    // Nothing of the session is left on either side, and no write was left under a temporary name.
    assert.deepEqual(await leftOver(repoUser.uid, /walden/, mine), [], 'no walden of the backup host left running')
    assert.deepEqual(await leftOver(userIds(PG_USER).uid, /ssh-postgres|\/usr\/bin\/ssh /, mine), [], 'no ssh client left running')
    assert.deepEqual((await repoFiles()).filter((file) => /\.tmp-\d+-[0-9a-f]{8}$/.test(file)), [])

    // The repository still reads as it did, and with the server back the next backup completes and verifies.
    await ssh.start()
    await configure()
    const info = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<{ status: { code: number }; backup: unknown[] }>
    assert.equal(info[0]!.status.code, 0)
    assert.equal(info[0]!.backup.length, 1)
    await stanza.waldenOk(['backup', '--type=full'])
    const after = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<{ backup: unknown[] }>
    assert.equal(after[0]!.backup.length, 2)
    await stanza.waldenOk(['verify'])
    await stanza.cluster.query('drop table big')
  })

  test('a remote walden of another version is refused by the handshake, naming both versions', async () => {
    const fake = join(backupHost, 'walden-0.2.0')
    await writeFile(fake, `#!/bin/sh\n_WALDEN_TEST_REMOTE_VERSION=0.2.0 exec ${process.execPath} ${WALDEN} "$@"\n`, { mode: 0o755 })
    await configure({ 'repo1-host-cmd': fake })
    try {
      const result = await stanza.walden(['info'])
      assertInfoFailed(result, 39, new RegExp(`\\[ProtocolError\\] walden 0\\.1\\.0 on ${hostname().replaceAll('.', '\\.')}, 0\\.2\\.0 on 127\\.0\\.0\\.1: install the same version on both`))
    } finally {
      await configure()
    }
    assert.deepEqual(await leftOver(repoUser.uid, /walden/, mine), [], 'the refused remote ended')
  })

  test('a host key that is not the one known, and a user that does not accept the key, each fail with one clear error', async () => {
    await ssh.knownHostsWrong(PG_USER)
    try {
      const result = await stanza.walden(['info'])
      assertInfoFailed(result, 49, /\[HostConnectError\] unable to start walden on backup host '127\.0\.0\.1' as user 'walden-repo': Host key verification failed\.\n\s+HINT: the host key of '127\.0\.0\.1' is not the one known_hosts holds/)
    } finally {
      await ssh.knownHostsRestore(PG_USER)
    }
    await configure({ 'repo1-host-user': PG_USER })
    try {
      const result = await stanza.walden(['info'])
      assertInfoFailed(result, 49, /\[HostConnectError\] unable to start walden on backup host '127\.0\.0\.1' as user 'postgres': .*Permission denied \(publickey\)\.\n\s+HINT: check that the key of the user running walden is in ~\/\.ssh\/authorized_keys of 'postgres'/)
    } finally {
      await configure()
    }
    await stanza.waldenOk(['info'])
  })

  test('hostile repo1-host-config and repo1-host-cmd reach the backup host as one quoted word each, never as shell code', async () => {
    const marker = join(backupHost, 'pwned')
    const config = `${backupHost}/it's $(touch ${marker}) \`a "b"\`; touch ${marker}.conf`
    await configure({ 'repo1-host-config': config })
    try {
      const result = await stanza.walden(['info'])
      assert.equal(result.code, 27, result.stderr)
      assert.ok(result.stdout.includes(`[ConfigError] 127.0.0.1: config file '${config}' does not exist\n`), result.stdout)
      assert.match(result.stdout, /HINT: check repo1-host-config, the config file walden reads on '127\.0\.0\.1'\./)
    } finally {
      await configure()
    }
    await configure({ 'repo1-host-cmd': `${backupHost}/walden; touch ${marker}` })
    try {
      const result = await stanza.walden(['info'])
      assertInfoFailed(result, 49, /unable to start walden on backup host '127\.0\.0\.1' as user 'walden-repo': .*not found\n\s+HINT: check repo1-host-cmd/)
    } finally {
      await configure()
    }
    await assert.rejects(stat(marker), /ENOENT/)
    await assert.rejects(stat(`${marker}.conf`), /ENOENT/)
  })

  test('a backup host that never answers is given up after protocol-timeout, and its session ends', async () => {
    // A "walden" that reads its input and says nothing: the handshake never comes.
    const silent = join(backupHost, 'silent-walden')
    await writeFile(silent, '#!/bin/sh\nexec cat >/dev/null\n', { mode: 0o755 })
    await configure({ 'repo1-host-cmd': silent, 'protocol-timeout': '2' })
    try {
      const started = Date.now()
      const result = await stanza.walden(['info'])
      assertInfoFailed(result, 39, /\[ProtocolError\] no answer from backup host '127\.0\.0\.1' in 2 second\(s\)/)
      assert.ok(Date.now() - started < 20_000)
    } finally {
      await configure()
    }
    assert.deepEqual(await leftOver(repoUser.uid, /cat|walden/, mine), [], 'the silent remote ended with its session')
  })

  test('standby-create builds a hot standby from the backup host, and it follows the primary through archive-get over SSH', async () => {
    const standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'standby' })
    await stanza.waldenOk(['standby-create', `--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`, `--pg1-socket-path=${standby.socketDir}`])
    // The restored postgresql.conf names the primary's socket folder.
    await standby.configure({ unix_socket_directories: standby.socketDir })
    await standby.start()
    try {
      await stanza.cluster.query(`create table after_standby as select n from generate_series(1, 321) n`)
      await stanza.waldenOk(['check'])
      let rows = ''
      let last = ''
      for (let waited = 0; waited < 60_000 && rows !== '321'; waited += 500) {
        rows = await standby.psqlScalar(`select count(*) from pg_class where relname = 'after_standby'`).then(
          async (found) => (found === '1' ? standby.psqlScalar('select count(*) from after_standby') : `found ${found}`),
          (error: Error) => `error ${error.message}`,
        )
        if (rows !== '321') {
          last = rows
          await sleep(500)
        }
      }
      const primaryWal = await stanza.cluster.psqlScalar('select pg_walfile_name(pg_current_wal_lsn())')
      assert.equal(rows, '321', `${last}; primary at ${primaryWal}\n${await standby.logTail()}`)
      assert.equal(await standby.psqlScalar('select pg_is_in_recovery()::text'), 'true')
    } finally {
      await standby.stop()
    }
  })

  test('an encrypted repository on the backup host: the passphrase stays on the database host, never on any command line', async () => {
    const repo2 = join(backupHost, 'repo2')
    await mkdir(repo2, { mode: 0o750 })
    await chown(repo2, repoUser.uid, repoUser.gid)
    await writeFile(backupConfig, ['[global]', `repo1-path=${repo}`, `repo2-path=${repo2}`, `lock-path=${join(backupHost, 'lock')}`, `log-path=${join(backupHost, 'log')}`, ''].join('\n'))
    // walden on the backup host through a wrapper that records its arguments and environment.
    const record = join(backupHost, 'log', 'remote-argv.log')
    const recording = join(backupHost, 'recording-walden')
    await writeFile(recording, `#!/bin/sh\n{ printf '%s\\n' "$@"; env; } >> ${record}\nexec ${process.execPath} ${WALDEN} "$@"\n`, { mode: 0o755 })
    const pass = 'repo2-secret-passphrase-7f3a9c'
    await configure({}, [
      'repo2-host=127.0.0.1',
      `repo2-host-user=${REPO_USER}`,
      `repo2-host-port=${ssh.port}`,
      `repo2-host-config=${backupConfig}`,
      `repo2-host-cmd=${recording}`,
      'repo2-cipher-type=aes-256-gcm',
      `repo2-cipher-pass=${pass}`,
    ])
    // A passphrase in the file: postgres's alone.
    await chown(stanza.configPath, userIds(PG_USER).uid, userIds(PG_USER).gid)
    await chmod(stanza.configPath, 0o600)
    try {
      await stanza.waldenOk(['stanza-create'])
      await stanza.waldenOk(['check'])
      await stanza.waldenOk(['backup', '--repo=2', '--type=full'])
      const info = JSON.parse((await stanza.waldenOk(['info', '--output=json', '--repo=2'])).stdout) as Array<{ status: { code: number }; cipher: string }>
      assert.equal(info[0]!.status.code, 0)
      assert.equal(info[0]!.cipher, 'aes-256-gcm')
      const stored = ((await readdir(join(repo2, 'archive'), { recursive: true })) as string[]).filter((file) => /[0-9A-F]{24}-[0-9a-f]{40,64}\./.test(file))
      assert.ok(stored.length >= 1)
      const bytes = await readFile(join(repo2, 'archive', stored[0]!))
      assert.notDeepEqual(bytes.subarray(0, 4), Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'not a plain zstd frame')
      // A timeline history file through SSH into both: under its own name with its checksum record, as it is in repo1,
      // sealed in repo2, and read back from each.
      const history = await historyPushGet(stanza, 0x2a, ['--repo=2'])
      const archiveId = join('archive', stanza.name, '15-1')
      for (const root of [repo, repo2]) {
        const names = await readdir(join(root, archiveId))
        assert.ok(names.includes(history.name) && names.includes(history.record), names.join(' '))
      }
      assert.deepEqual(await readFile(join(repo, archiveId, history.name)), history.content)
      assert.notDeepEqual(await readFile(join(repo2, archiveId, history.name)), history.content, 'sealed in the encrypted repository')
      assert.equal((await stanza.walden(['archive-get', '--repo=1', history.name, join(stanza.dir.path, 'fetched-history')])).code, 0)
      for (const root of [repo, repo2]) for (const entry of [history.name, history.record]) await rm(join(root, archiveId, entry))
      const seen = await readFile(record, 'utf8')
      assert.match(seen, /^--repo=2$/m, 'the wrapper saw the remote walden\'s arguments')
      assert.ok(!seen.includes(pass), 'the passphrase reached the backup host')
      assert.ok(!(await readFile(backupConfig, 'utf8')).includes(pass))
    } finally {
      await configure()
      await writeFile(backupConfig, ['[global]', `repo1-path=${repo}`, `lock-path=${join(backupHost, 'lock')}`, `log-path=${join(backupHost, 'log')}`, ''].join('\n'))
    }
  })

  test('pg1-host names a database host over SSH: a command that changes the cluster refuses it, pointing at pg1-tcp-host', async () => {
    for (const command of ['restore', 'archive-get', 'standby-create']) {
      const result = await stanza.walden([command, '--pg1-host=db1', ...(command === 'archive-get' ? ['000000010000000000000001', 'pg_wal/RECOVERYXLOG'] : [])])
      assertFailed(result, 67, new RegExp(`ERROR: \\[067\\]: ${command} runs on the database host, not on the backup host: pg1-host is set, so this is the backup host\\nHINT: run ${command} on 'db1'.*use pg1-tcp-host`))
    }
  })
})
