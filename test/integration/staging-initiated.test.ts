// Issue #14, way 1 (staging-method=initiated): walden takes the base backup of a busy source over the replication
// protocol, authenticating with SCRAM from a password file, and the staging copy streams from a slot on the source.
// Also: the tar extractor on real pg_basebackup -F t output, which ways 2 and 3 load.

import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chown, readdir, readFile, readlink, writeFile, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { tarExtractFile } from '../../src/io/tar-extract.js'
import { Cluster, cleanupAll, dumpDatabase, runTool, runWalden, testDir, type TestDir } from '../harness/cluster.js'

const TIMEOUT = { timeout: 240_000 }
const PASSWORD = "Wal'den:s3cret\\pw"

after(cleanupAll)

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

/** Every entry below a folder: name → kind, mode and content (or link target). */
async function treeOf(folder: string): Promise<Map<string, string>> {
  const result = new Map<string, string>()
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(folder, relative), { withFileTypes: true })) {
      const name = relative === '' ? entry.name : `${relative}/${entry.name}`
      const info = await lstat(join(folder, name))
      const mode = (info.mode & 0o777).toString(8)
      if (entry.isSymbolicLink()) result.set(name, `link ${await readlink(join(folder, name))}`)
      else if (entry.isDirectory()) {
        result.set(name, `dir ${mode}`)
        await walk(name)
      } else result.set(name, `file ${mode} ${(await readFile(join(folder, name))).toString('base64')}`)
    }
  }
  await walk('')
  return result
}

describe('tar-extract on pg_basebackup -F t', () => {
  test('base.tar and pg_wal.tar (plain and lz4/zstd/gzip) extract as GNU tar does, and the result starts', TIMEOUT, async () => {
    const source = await Cluster.create({ major: 15, settings: { wal_level: 'replica', max_wal_senders: '4' } })
    await source.start()
    const dir = source.dir
    try {
      await source.query('create table t as select g as i, md5(g::text) as m from generate_series(1, 20000) g')
      for (const compress of ['none', 'lz4', 'zstd', 'gzip']) {
        const backup = await dir.mkdir(`bb-${compress}`)
        const result = await runTool(source, 'pg_basebackup', [
          '-h', source.socketDir, '-p', String(source.port), '-U', 'postgres', '-D', backup, '-F', 't', '-X', 'stream',
          '-c', 'fast', ...(compress === 'none' ? [] : ['-Z', compress]),
        ], { cwd: dir.path })
        assert.equal(result.code, 0, result.stderr)
        const suffix = { none: '', lz4: '.lz4', zstd: '.zst', gzip: '.gz' }[compress]
        const files = (await readdir(backup)).sort()
        assert.ok(files.includes(`base.tar${suffix}`), `pg_basebackup wrote ${files.join(', ')}`)

        const ours = await dir.mkdir(`ours-${compress}`)
        await tarExtractFile(join(backup, `base.tar${suffix}`), ours)
        // pg_basebackup 15 compresses the streamed WAL only with gzip: pg_wal.tar stays plain with lz4 and zstd.
        const walTar = files.find((name) => name.startsWith('pg_wal.tar'))
        assert.ok(walTar !== undefined, `pg_basebackup wrote ${files.join(', ')}`)
        await tarExtractFile(join(backup, walTar), join(ours, 'pg_wal'))
        if (compress === 'none') {
          const gnu = await dir.mkdir('gnu')
          execFileSync('tar', ['-xf', join(backup, 'base.tar'), '-C', gnu])
          execFileSync('tar', ['-xf', join(backup, 'pg_wal.tar'), '-C', join(gnu, 'pg_wal')])
          assert.deepEqual(await treeOf(ours), await treeOf(gnu))
        }
        if (compress === 'lz4') {
          // The real outcome: the extracted backup is a cluster that starts and holds the table.
          const { uid, gid } = postgresIds()
          execFileSync('chown', ['-R', `${uid}:${gid}`, ours])
          const restored = await Cluster.adopt({ major: 15, dir, name: `ours-${compress}` })
          await restored.configure({ port: String(restored.port), unix_socket_directories: restored.socketDir })
          await restored.start()
          assert.equal(await restored.psqlScalar('select count(*) from t'), '20000')
          await restored.stop()
        }
      }
    } finally {
      await source.destroy()
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// staging-link --staging-method=initiated

const ROLE = 'walden_rep'

interface Source {
  cluster: Cluster
  stopLoad(): Promise<void>
}

/** pgbench's path: Debian's PostgreSQL 15 client drives servers of every major. */
async function pgbenchPath(): Promise<string> {
  const { pgBinFor } = await import('../../src/pg/binaries.js')
  return join(await pgBinFor(15), 'pgbench')
}

/**
 * A source as a DBA would prepare it: a replication role with a SCRAM password, a `host replication` line for
 * loopback with scram-sha-256 (and nothing else that would let the role in), and pgbench writing all the time.
 */
async function busySource(major: number): Promise<Source> {
  const cluster = await Cluster.create({
    major,
    settings: { wal_level: 'replica', max_wal_senders: '6', max_replication_slots: '6', password_encryption: 'scram-sha-256' },
  })
  await writeFile(
    join(cluster.dataDir, 'pg_hba.conf'),
    ['local all postgres trust', `host replication ${ROLE} 127.0.0.1/32 scram-sha-256`, 'host all postgres 127.0.0.1/32 trust', ''].join('\n'),
  )
  await cluster.start()
  await cluster.query(`create role ${ROLE} login replication password '${PASSWORD.replaceAll("'", "''")}'`)
  // A tablespace, so that the base backup holds more than one archive (one CopyOut each before PostgreSQL 15).
  await cluster.query(`create tablespace space1 location '${await cluster.dir.mkdir('space1')}'`)
  await cluster.query('create table marker (note text) tablespace space1')
  const pgbench = await pgbenchPath()
  const connection = ['-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres']
  execFileSync(pgbench, ['-i', '-q', '-s', '2', ...connection, 'postgres'], { stdio: 'ignore' })
  const load: ChildProcess = spawn(pgbench, ['-c', '2', '-T', '600', '-n', ...connection, 'postgres'], { stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => load.once('exit', () => resolve()))
  return {
    cluster,
    async stopLoad() {
      if (load.exitCode === null) load.kill('SIGTERM')
      await exited
    },
  }
}

interface Staging {
  dir: TestDir
  path: string
  port: number
  cluster: Cluster
  passfile: string
  configPath: string
  spoolPath: string
  logPath: string
  link(source: Cluster): Promise<{ code: number; stdout: string; stderr: string; argvSeen: string[] }>
}

/** Escapes a password-file field: backslash and colon. */
function pgpassField(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll(':', '\\:')
}

async function stagingHost(major: number, source: Cluster, password: string): Promise<Staging> {
  const dir = await testDir(`walden-staging-pg${major}`)
  const spoolPath = await dir.mkdir('spool')
  const logPath = await dir.mkdir('log')
  const repoPath = await dir.mkdir('repo')
  const lockPath = await dir.mkdir('lock')
  const cluster = await Cluster.adopt({ major, dir, name: 'staging' })
  const path = join(dir.path, 'staging')
  const passfile = join(dir.path, 'pgpass')
  await writeFile(passfile, `127.0.0.1:${source.port}:replication:${ROLE}:${pgpassField(password)}\n`, { mode: 0o600 })
  const { uid, gid } = postgresIds()
  await chown(passfile, uid, gid)
  const configPath = join(dir.path, 'walden.conf')
  await writeFile(
    configPath,
    [
      '[global]',
      `repo1-path=${repoPath}`,
      `lock-path=${lockPath}`,
      `log-path=${logPath}`,
      `spool-path=${spoolPath}`,
      'log-level-file=debug',
      '[main]',
      `pg1-path=${path}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ].join('\n'),
  )
  const staging: Staging = {
    dir,
    path,
    port: cluster.port,
    cluster,
    passfile,
    configPath,
    spoolPath,
    logPath,
    async link(from: Cluster) {
      // Every process's arguments, sampled while the link runs: the password must be in none of them.
      const argvSeen: string[] = []
      let sampling = true
      const sampler = (async () => {
        while (sampling) {
          argvSeen.push(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }))
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      })()
      const result = await runWalden(
        [
          `--config=${configPath}`,
          '--stanza=main',
          'staging-link',
          '--staging-method=initiated',
          `--staging-path=${path}`,
          `--staging-port=${cluster.port}`,
          `--staging-source=host=127.0.0.1 port=${from.port} user=${ROLE} passfile=${passfile}`,
          `--staging-setting=unix_socket_directories=${cluster.socketDir}`,
        ],
        { timeoutMs: 180_000 },
      )
      sampling = false
      await sampler
      return { ...result, argvSeen }
    },
  }
  return staging
}

/** Every file below a folder whose bytes contain `needle`, except those named in `except`. */
async function filesHolding(folder: string, needle: string, except: readonly string[]): Promise<string[]> {
  const found: string[] = []
  const bytes = Buffer.from(needle)
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const full = join(path, entry.name)
      if (except.includes(full)) continue
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile() && (await readFile(full)).includes(bytes)) found.push(full)
    }
  }
  await walk(folder)
  return found
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
}

// 13 speaks the old BASE_BACKUP (14 too), 15 the new one; 17 and 18 are the newest.
for (const major of [13, 15, 17, 18]) {
  describe(`staging-link --staging-method=initiated, PostgreSQL ${major}`, () => {
    test('a wrong password: one clear error, nothing created on either side', TIMEOUT, async () => {
      const source = await busySource(major)
      const staging = await stagingHost(major, source.cluster, 'not-the-password')
      try {
        const result = await staging.link(source.cluster)
        assert.equal(result.code, 56, `${result.stdout}${result.stderr}`)
        // Refused while the link is validated: one error, and no initial load to undo.
        const errorLines = result.stderr.split('\n').filter((line) => line.includes('ERROR'))
        assert.equal(errorLines.length, 1, result.stderr)
        assert.match(errorLines[0]!, /unable to open a replication connection to '127\.0\.0\.1:\d+' as user 'walden_rep': password authentication failed for user "walden_rep"/)
        assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
        assert.deepEqual(await source.cluster.query('select slot_name from pg_replication_slots'), [])
        const made = await readdir(staging.path).catch(() => [])
        assert.deepEqual(made, [], 'the staging folder holds nothing')
        assert.deepEqual(await readdir(join(staging.spoolPath, 'staging', 'copy')).catch(() => []), [], 'no staging record')
      } finally {
        await source.stopLoad()
        await source.cluster.destroy()
        await staging.dir.cleanup()
      }
    })

    test('a busy source with a tablespace: the staging copy streams through its slot, and the password is nowhere but the password file', TIMEOUT, async () => {
      const source = await busySource(major)
      const staging = await stagingHost(major, source.cluster, PASSWORD)
      try {
        const result = await staging.link(source.cluster)
        assert.equal(result.code, 0, `${result.stdout}${result.stderr}`)

        // Streaming, through the slot walden made on the source.
        const [slot] = await source.cluster.query<{ slot_name: string; slot_type: string }>(
          "select slot_name, slot_type from pg_replication_slots where slot_name like 'walden%'",
        )
        assert.equal(slot?.slot_type, 'physical')
        await waitFor('the staging copy to stream', async () => {
          const [row] = await staging.cluster.query<{ status: string; slot_name: string }>('select status, slot_name from pg_stat_wal_receiver')
          return row?.status === 'streaming' && row.slot_name === slot.slot_name ? true : undefined
        })
        const [active] = await source.cluster.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot.slot_name])
        assert.equal(active?.active, true)

        // A row written on the busy source appears on the staging copy.
        const marker = `staging-${Date.now()}`
        await source.cluster.query('insert into marker values ($1)', [marker])
        await waitFor('the marker row on the staging copy', async () => {
          const rows = await staging.cluster.query('select 1 from marker where note = $1', [marker]).catch(() => [])
          return rows.length === 1 ? true : undefined
        })
        assert.equal(await staging.cluster.psqlScalar('select pg_is_in_recovery()::text'), 'true')
        // The tablespace lives beside the staging folder, not at the source's location.
        const oid = await source.cluster.psqlScalar("select oid from pg_tablespace where spcname = 'space1'")
        assert.equal(await readlink(join(staging.path, 'pg_tblspc', oid)), join(`${staging.path}.tablespaces`, oid))
        assert.equal(
          await staging.cluster.psqlScalar("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'space1'"),
          join(`${staging.path}.tablespaces`, oid),
        )

        // The password: in no process's arguments, and in no file on the staging host but the password file
        // (the staging cluster's configuration, walden's logs and state included).
        for (const sample of result.argvSeen) assert.ok(!sample.includes(PASSWORD), 'the password showed in ps')
        assert.ok(result.argvSeen.some((sample) => sample.includes('staging-link')), 'ps sampled while the link ran')
        assert.ok(!`${result.stdout}${result.stderr}`.includes(PASSWORD))
        assert.deepEqual(await filesHolding(staging.dir.path, PASSWORD, [staging.passfile]), [])
        const auto = await readFile(join(staging.path, 'postgresql.auto.conf'), 'utf8')
        assert.match(auto, new RegExp(`primary_conninfo = '.*passfile=${staging.passfile}`))
        assert.match(auto, new RegExp(`primary_slot_name = '${slot.slot_name}'`))

        if (major === 13 || major === 18) {
          // staging-resync takes a fresh base backup the same way, through the slot that is already there.
          const resync = await runWalden([`--config=${staging.configPath}`, '--stanza=main', 'staging-resync'], { timeoutMs: 180_000 })
          assert.equal(resync.code, 0, `${resync.stdout}${resync.stderr}`)
          const after = `after-resync-${Date.now()}`
          await source.cluster.query('insert into marker values ($1)', [after])
          await waitFor('a row written after the resync', async () => {
            const rows = await staging.cluster.query('select 1 from marker where note = $1 or note = $2', [marker, after]).catch(() => [])
            return rows.length === 2 ? true : undefined
          })
          assert.deepEqual(await source.cluster.query('select slot_name from pg_replication_slots'), [{ slot_name: slot.slot_name }])
        }

        if (major === 13 || major === 17) {
          // A snapshot of the copy, and a clone from it, equal the source once it is idle and replayed; the clone's
          // tablespace goes beside the clone, not into the staging copy's.
          await source.stopLoad()
          const end = await source.cluster.psqlScalar('select pg_current_wal_lsn()::text')
          await waitFor('the staging copy to replay the idle source', async () =>
            (await staging.cluster.psqlScalar(`select (pg_last_wal_replay_lsn() >= '${end}')::text`)) === 'true' ? true : undefined,
          )
          const snapshot = await runWalden([`--config=${staging.configPath}`, '--stanza=main', 'staging-snapshot'], { timeoutMs: 180_000 })
          assert.equal(snapshot.code, 0, `${snapshot.stdout}${snapshot.stderr}`)
          const clone = await Cluster.adopt({ major, dir: staging.dir, name: 'clone' })
          const created = await runWalden(
            [`--config=${staging.configPath}`, '--stanza=main', 'clone-create', '--clone=qa', `--clone-path=${clone.dataDir}`, `--clone-port=${clone.port}`, `--clone-setting=unix_socket_directories=${clone.socketDir}`],
            { timeoutMs: 180_000 },
          )
          assert.equal(created.code, 0, `${created.stdout}${created.stderr}`)
          assert.equal(await dumpDatabase(clone), await dumpDatabase(source.cluster))
          assert.equal(await clone.psqlScalar("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'space1'"), join(`${clone.dataDir}.tablespaces`, oid))
          assert.equal(await staging.cluster.psqlScalar('select count(*) from marker'), await source.cluster.psqlScalar('select count(*) from marker'), 'the staging copy is untouched')
          const destroyed = await runWalden([`--config=${staging.configPath}`, '--stanza=main', 'clone-destroy', '--clone=qa'])
          assert.equal(destroyed.code, 0, destroyed.stderr)
          await assert.rejects(lstat(`${clone.dataDir}.tablespaces`), { code: 'ENOENT' })
        }

        // staging-unlink stops the copy and drops its slot over the replication protocol (the role may not log in
        // to any database), so the source stops keeping WAL for it.
        const unlink = await runWalden([`--config=${staging.configPath}`, '--stanza=main', 'staging-unlink'])
        assert.equal(unlink.code, 0, `${unlink.stdout}${unlink.stderr}`)
        assert.deepEqual(await source.cluster.query('select slot_name from pg_replication_slots'), [])
      } finally {
        await source.stopLoad()
        await staging.cluster.stop().catch(() => undefined)
        await source.cluster.destroy()
        await staging.dir.cleanup()
      }
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// BASE_BACKUP failures: never a hang, never a half-written file left as if whole

describe('BASE_BACKUP when something fails mid-stream', () => {
  test('a sink that fails aborts the backup at once, and the source ends it', TIMEOUT, async () => {
    const { ReplicationConnection } = await import('../../src/pg/replication/client.js')
    const { Writable } = await import('node:stream')
    const source = await Cluster.create({ major: 15, settings: { wal_level: 'replica', max_wal_senders: '4' } })
    await source.start()
    try {
      await source.query('create table t as select g as i, md5(g::text) as m from generate_series(1, 200000) g')
      const connection = await ReplicationConnection.open({ socketPath: source.socketDir, port: source.port, user: 'postgres' })
      let received = 0
      const started = Date.now()
      await assert.rejects(
        connection.baseBackup({ label: 'fails', fast: true, wal: false }, {
          archive: () =>
            new Writable({
              write(chunk: Buffer, _encoding, callback) {
                received += chunk.length
                callback(received > 1024 * 1024 ? new Error('no space left on device (simulated)') : null)
              },
            }),
        }),
        /no space left on device \(simulated\)/,
      )
      assert.ok(Date.now() - started < 30_000)
      await connection.close()
      await waitFor('the source to end the backup', async () => {
        const rows = await source.query("select pid from pg_stat_activity where backend_type = 'walsender'")
        return rows.length === 0 ? true : undefined
      })
    } finally {
      await source.destroy()
    }
  })

  test('the walsender terminated mid-backup: a clear error, not a hang', TIMEOUT, async () => {
    const { ReplicationConnection } = await import('../../src/pg/replication/client.js')
    const { Writable } = await import('node:stream')
    const source = await Cluster.create({ major: 13, settings: { wal_level: 'replica', max_wal_senders: '4' } })
    await source.start()
    try {
      await source.query('create table t as select g as i, md5(g::text) as m from generate_series(1, 200000) g')
      const connection = await ReplicationConnection.open({ socketPath: source.socketDir, port: source.port, user: 'postgres' })
      let terminated = false
      const backup = connection.baseBackup({ label: 'terminated', fast: true, wal: false }, {
        // A slow disk: the backup takes long enough to be cut off in the middle.
        archive: () =>
          new Writable({
            highWaterMark: 64 * 1024,
            write(_chunk: Buffer, _encoding, callback) {
              setTimeout(callback, 5)
            },
          }),
      })
      backup.catch(() => undefined)
      await waitFor('the walsender to be cut off', async () => {
        const rows = await source.query("select pg_terminate_backend(pid) as done from pg_stat_activity where backend_type = 'walsender'")
        terminated = rows.length > 0
        return terminated ? true : undefined
      })
      await assert.rejects(backup, (error: Error) => {
        assert.match(error.message, /^BASE_BACKUP failed at socket '.*': (terminating connection due to administrator command|Connection terminated unexpectedly)/)
        return true
      })
      await connection.close()
    } finally {
      await source.destroy()
    }
  })
})

describe('staging-link when the base backup is cut off', () => {
  test('the slot it made is dropped, the staging folder and record are gone, and the same link then succeeds', TIMEOUT, async () => {
    const source = await busySource(15)
    await source.stopLoad()
    const staging = await stagingHost(15, source.cluster, PASSWORD)
    try {
      // Large enough that the backup takes a while to stream.
      const pgbench = await pgbenchPath()
      execFileSync(pgbench, ['-i', '-q', '-s', '15', '-h', source.cluster.socketDir, '-p', String(source.cluster.port), '-U', 'postgres', 'postgres'], { stdio: 'ignore' })
      let cutOff = 0
      let linking = true
      const killer = (async () => {
        while (linking && cutOff === 0) {
          const rows = await source.cluster.query(
            "select pg_terminate_backend(pid) from pg_stat_replication where state = 'backup' and application_name = 'walden'",
          )
          cutOff = rows.length
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      })()
      const result = await staging.link(source.cluster)
      linking = false
      await killer
      assert.equal(cutOff, 1, 'the base backup was cut off while it streamed')
      assert.notEqual(result.code, 0)
      const coded = result.stderr.split('\n').filter((line) => /ERROR: \[\d{3}\]/.test(line))
      assert.equal(coded.length, 1, result.stderr)
      // The server's FATAL, or the closed socket when it arrives while walden is not reading (its disk is busy).
      assert.match(coded[0]!, /BASE_BACKUP failed at '127\.0\.0\.1:\d+': (terminating connection due to administrator command|Connection terminated unexpectedly)$/)
      assert.deepEqual(await source.cluster.query('select slot_name from pg_replication_slots'), [])
      assert.deepEqual(await readdir(staging.path).catch(() => []), [])
      assert.deepEqual(await readdir(`${staging.path}.tablespaces`).catch(() => []), [])
      assert.deepEqual(await readdir(join(staging.spoolPath, 'staging', 'copy')).catch(() => []), [])

      const again = await staging.link(source.cluster)
      assert.equal(again.code, 0, `${again.stdout}${again.stderr}`)
      assert.equal(await staging.cluster.psqlScalar('select count(*) from pgbench_branches'), '15')
    } finally {
      await staging.cluster.stop().catch(() => undefined)
      await source.cluster.destroy()
      await staging.dir.cleanup()
    }
  })
})
