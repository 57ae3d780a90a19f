// staging-link, ways 2 and 3, on real clusters: a busy source (pgbench running) archiving into a WAL folder with
// `cp %p FOLDER/%f`, the user's pg_basebackup in plain and tar (gzip) format, and a staging copy linked from each that
// catches up with rows written after the backup. Then what a link must refuse, each with its own message and nothing
// created; the settings as the staging server shows them; disable, enable, unlink; and the jobs journal.
// PostgreSQL 15 (all of it, with a tablespace on the source) and 13 (the two external-wal links and their catch-up). pg_basebackup and pgbench are
// Debian's PostgreSQL 15 tools, which also serve a 13 server.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { availableMajors, Cluster, createCluster, runWalden, testDir } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'
import { clientBin, runAsPostgres, waitUntil } from '../harness/staging.js'

async function runOk(command: string, args: readonly string[]): Promise<string> {
  const result = await runAsPostgres(command, args)
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.code}\n${result.stderr}`)
  return result.stdout
}

interface StagingJob {
  type: string
  stanza: string
  start: string
  end: string | null
  result: string
  error: string | null
}

/** Everything one major's run needs: the source, its WAL folder, the walden config, and helpers. */
interface Bench {
  work: TestDir
  source: Cluster
  walDir: string
  configPath: string
  spoolPath: string
  bin: string
  walden(stanza: string, args: readonly string[]): Promise<RunResult>
  waldenOk(stanza: string, args: readonly string[]): Promise<RunResult>
  /** A staging cluster handle: its folder, a free port, and a socket folder the link tells it to use. */
  staging(name: string): Promise<Cluster>
  linkArgs(staging: Cluster, extra: readonly string[]): string[]
}

async function benchCreate(major: number): Promise<Bench> {
  const work = await testDir(`walden-staging-pg${major}`)
  const walDir = await work.mkdir('wal')
  const spoolPath = await work.mkdir('spool')
  const repoPath = await work.mkdir('repo')
  const lockPath = await work.mkdir('lock')
  const logPath = await work.mkdir('log')
  const source = await createCluster({
    major,
    dir: work,
    name: 'source',
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      // The user's own archiving into the WAL folder, as the seed describes it (no walden on the source).
      archive_command: `test ! -f ${walDir}/%f && cp %p ${walDir}/%f`,
      max_wal_senders: '10',
      max_replication_slots: '10',
      wal_keep_size: '256MB',
    },
  })
  await source.start()
  const configPath = join(work.path, 'walden.conf')
  await writeFile(
    configPath,
    [
      '[global]',
      `repo1-path=${repoPath}`,
      `lock-path=${lockPath}`,
      `log-path=${logPath}`,
      `spool-path=${spoolPath}`,
      'start-fast=y',
      'backup-standby=only',
      '',
    ].join('\n'),
  )
  const walden = (stanza: string, args: readonly string[]): Promise<RunResult> =>
    runWalden([`--config=${configPath}`, `--stanza=${stanza}`, ...args], { timeoutMs: 240_000 })
  return {
    work,
    source,
    walDir,
    configPath,
    spoolPath,
    bin: await clientBin(),
    walden,
    async waldenOk(stanza, args) {
      const result = await walden(stanza, args)
      if (result.code !== 0) throw new Error(`walden ${args.join(' ')} exited with ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
      return result
    },
    staging: (name) => Cluster.adopt({ major, dir: work, name }),
    linkArgs: (staging, extra) => [
      `--staging-path=${staging.dataDir}`,
      `--staging-port=${staging.port}`,
      `--staging-setting=unix_socket_directories=${staging.socketDir}`,
      ...extra,
    ],
  }
}

/** pgbench writing on the source until stopped. */
function pgbenchStart(bench: Bench): ChildProcess {
  return spawn('runuser', ['-u', 'postgres', '--', join(bench.bin, 'pgbench'), '-h', bench.source.socketDir, '-p', String(bench.source.port), '-U', 'postgres', '-c', '2', '-T', '600', '-n', 'postgres'], {
    stdio: 'ignore',
  })
}

/** The source's tablespace folder (PostgreSQL 15 run only). */
let sourceTablespace: string | undefined

async function basebackup(bench: Bench, folder: string, format: 'p' | 't', extra: readonly string[] = []): Promise<string> {
  const target = join(bench.work.path, folder)
  // A plain backup on the source's host must put the tablespace elsewhere than the source's own folder.
  const mapping = format === 'p' && sourceTablespace !== undefined ? ['-T', `${sourceTablespace}=${target}-tablespace`] : []
  await runOk(join(bench.bin, 'pg_basebackup'), ['-h', bench.source.socketDir, '-p', String(bench.source.port), '-U', 'postgres', '-D', target, '-F', format, '-X', 'stream', '-c', 'fast', ...mapping, ...extra])
  return target
}

/** The staging copy has the source's tablespace in its own folder beside its data folder, and reads the table in it. */
async function tablespaceChecked(staging: Cluster): Promise<void> {
  const oid = await staging.psqlScalar(`select oid from pg_tablespace where spcname = 'staging_ts'`)
  assert.equal(await readlink(join(staging.dataDir, 'pg_tblspc', oid)), join(`${staging.dataDir}.tablespaces`, oid))
  assert.equal(await staging.psqlScalar('select count(*) from in_tablespace'), '100')
}

/** A row written on the source after the backups reaches each staging copy: archived (WAL switch) and replayed. */
async function catchesUp(bench: Bench, stagings: readonly Cluster[], note: string, switchWal: boolean): Promise<void> {
  await bench.source.query(`insert into staging_notes values ($1)`, [note])
  if (switchWal) await bench.source.query('select pg_switch_wal()')
  for (const staging of stagings) {
    await waitUntil(`row '${note}' on the staging copy on port ${staging.port}`, async () => {
      const rows = await staging.psqlScalar(`select count(*) from staging_notes where note = $1`, [note])
      return rows === '1'
    })
  }
}

async function jobsOf(bench: Bench, stanza?: string): Promise<StagingJob[]> {
  const result = await runWalden([`--config=${bench.configPath}`, ...(stanza ? [`--stanza=${stanza}`] : []), 'jobs', '--output=json'])
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(result.stdout) as StagingJob[]
}

async function portsJson(bench: Bench): Promise<string> {
  return readFile(join(bench.spoolPath, 'staging', 'ports.json'), 'utf8').catch(() => '')
}

async function recordExists(bench: Bench, stanza: string): Promise<boolean> {
  return stat(join(bench.spoolPath, 'staging', 'copy', `${stanza}.json`)).then(() => true, () => false)
}

for (const major of [15, 13]) {
  describe(`staging-link on PostgreSQL ${major}`, { concurrency: false }, () => {
    let bench: Bench
    let pgbench: ChildProcess | undefined
    let plainBackup: string
    let tarBackup: string
    let stagePlain: Cluster
    let stageTar: Cluster
    const staged: Cluster[] = []

    before(async () => {
      assert.ok((await availableMajors()).includes(major), `PostgreSQL ${major} is installed`)
      bench = await benchCreate(major)
      await bench.source.query('create table staging_notes (note text primary key)')
      if (major === 15) {
        sourceTablespace = await bench.work.mkdir('source-tablespace')
        await bench.source.query(`create tablespace staging_ts location '${sourceTablespace}'`)
        await bench.source.query('create table in_tablespace tablespace staging_ts as select generate_series(1, 100) as n')
      } else {
        sourceTablespace = undefined
      }
      await runOk(join(bench.bin, 'pgbench'), ['-h', bench.source.socketDir, '-p', String(bench.source.port), '-U', 'postgres', '-i', '-s', '2', '-q', 'postgres'])
      pgbench = pgbenchStart(bench)
      await bench.source.query(`insert into staging_notes values ('before-backup')`)
      plainBackup = await basebackup(bench, 'backup-plain', 'p')
      // Client-side compression of both tar files: gzip on 15, zstd on 13.
      tarBackup = await basebackup(bench, 'backup-tar', 't', [major === 15 ? '--compress=client-gzip' : '--compress=client-zstd'])
    })

    after(async () => {
      pgbench?.kill('SIGTERM')
      for (const cluster of staged) await cluster.stop('immediate').catch(() => {})
      await bench?.work.cleanup()
    })

    test('way 2 from a plain pg_basebackup: linked as DB_LINK and DB_SYNC, a hot standby with the settings given', async () => {
      stagePlain = await bench.staging('stage-plain')
      staged.push(stagePlain)
      const linked = await bench.walden('plain', [
        'staging-link',
        '--staging-method=external-wal',
        ...bench.linkArgs(stagePlain, [
          `--staging-backup-path=${plainBackup}`,
          `--staging-wal-path=${bench.walDir}`,
          '--staging-setting=work_mem=7MB',
          // The source's postgresql.conf sets it (32MB); commented out, the server's default applies.
          '--staging-setting=#shared_buffers',
        ]),
      ])
      assert.equal(linked.code, 0, linked.stderr)
      assert.match(linked.stdout, new RegExp(`staging copy of stanza 'plain' linked \\(external-wal\\): PostgreSQL ${major} on '.*stage-plain', port ${stagePlain.port}`))
      assert.equal(await stagePlain.psqlScalar('select pg_is_in_recovery()::text'), 'true')
      assert.equal(await stagePlain.psqlScalar('show work_mem'), '7MB')
      assert.equal(await stagePlain.psqlScalar(`select source from pg_settings where name = 'shared_buffers'`), 'default')
      assert.match(await readFile(join(stagePlain.dataDir, 'postgresql.conf'), 'utf8'), /^#shared_buffers = '32MB'  # commented out by walden$/m)
      assert.equal(await stagePlain.psqlScalar('show port'), String(stagePlain.port))
      // The staging copy archives what it replays into the stanza's repository (snapshot.ts), never the source's way.
      assert.equal(await stagePlain.psqlScalar('show archive_mode'), 'always')
      assert.match(await stagePlain.psqlScalar('show archive_command'), /--stanza=plain archive-push %p$/)
      assert.match(await stagePlain.psqlScalar('show restore_command'), /staging-wal-get %f "%p"$/)
      assert.equal(await stagePlain.psqlScalar(`select note from staging_notes where note = 'before-backup'`), 'before-backup')
      // The user's backup was read, not changed.
      assert.ok((await readdir(plainBackup)).includes('backup_label'))
      if (major === 15) await tablespaceChecked(stagePlain)

      const jobs = (await jobsOf(bench, 'plain')).map((job) => `${job.type}:${job.result}`)
      assert.deepEqual(jobs, ['DB_LINK:ok', 'DB_SYNC:ok'])
      // The stanza exists, made against the staging cluster.
      const info = await bench.walden('plain', ['info', '--output=json'])
      assert.equal(info.code, 51, info.stderr) // no backups yet, but the stanza is there
      assert.match(info.stdout, /"name":"plain"/)
    })

    test(`way 2 from a tar pg_basebackup (-F t -X stream, ${major === 15 ? 'gzip' : 'zstd'})`, async () => {
      const files = await readdir(tarBackup)
      assert.ok(files.includes(major === 15 ? 'base.tar.gz' : 'base.tar.zst'), files.join(' '))
      stageTar = await bench.staging('stage-tar')
      staged.push(stageTar)
      const linked = await bench.walden('tar', [
        'staging-link',
        '--staging-method=external-wal',
        ...bench.linkArgs(stageTar, [`--staging-backup-path=${tarBackup}`, `--staging-wal-path=${bench.walDir}`]),
      ])
      assert.equal(linked.code, 0, linked.stderr)
      assert.equal(await stageTar.psqlScalar('select pg_is_in_recovery()::text'), 'true')
      assert.equal(await stageTar.psqlScalar(`select note from staging_notes where note = 'before-backup'`), 'before-backup')
      assert.equal((await stat(stageTar.dataDir)).mode & 0o777, 0o700)
      if (major === 15) await tablespaceChecked(stageTar)
    })

    test('both staging copies catch up from the WAL folder while pgbench writes', async () => {
      await catchesUp(bench, [stagePlain, stageTar], 'after-backup-1', true)
      assert.equal(
        await stagePlain.psqlScalar('select count(*) from pgbench_accounts'),
        await bench.source.psqlScalar('select count(*) from pgbench_accounts'),
      )
    })

    if (major !== 15) return

    test('way 3 (external-streaming) from the tar backup: a WAL folder given as well is ignored with a notice; it streams', async () => {
      const stageStream = await bench.staging('stage-stream')
      staged.push(stageStream)
      const linked = await bench.walden('stream', [
        'staging-link',
        '--staging-method=external-streaming',
        ...bench.linkArgs(stageStream, [
          `--staging-backup-path=${tarBackup}`,
          `--staging-wal-path=${bench.walDir}`,
          `--staging-source=host=127.0.0.1 port=${bench.source.port} user=postgres`,
        ]),
      ])
      assert.equal(linked.code, 0, linked.stderr)
      assert.match(linked.stderr, /both a WAL folder and streaming are given: streaming wins, staging-wal-path is ignored/)
      assert.equal(
        await bench.source.psqlScalar(`select slot_type from pg_replication_slots where slot_name = 'walden_staging_stream'`),
        'physical',
      )
      await catchesUp(bench, [stageStream], 'streamed-1', false)
      await waitUntil('the WAL receiver streaming', async () => (await stageStream.psqlScalar('select status from pg_stat_wal_receiver')) === 'streaming')

      const unlinked = await bench.walden('stream', ['staging-unlink', '--delete-data'])
      assert.equal(unlinked.code, 0, unlinked.stderr)
      assert.equal(await bench.source.psqlScalar(`select count(*) from pg_replication_slots where slot_name = 'walden_staging_stream'`), '0')
      assert.equal(await stat(stageStream.dataDir).then(() => true, () => false), false)
      assert.equal(await stat(`${stageStream.dataDir}.tablespaces`).then(() => true, () => false), false)
    })

    test('what a link refuses, each with its own message, and nothing created', async () => {
      const fresh = await bench.staging('stage-refused')
      const folder = fresh.dataDir
      const portsBefore = await portsJson(bench)
      const base = ['staging-link', '--staging-method=external-wal', `--staging-wal-path=${bench.walDir}`]
      const injected = join(bench.work.path, 'INJECTED')
      const cases: Array<{ what: string; args: string[]; code: number; message: RegExp; before?: () => Promise<void> }> = [
        {
          what: 'the port of the source',
          args: [...base, `--staging-path=${folder}`, `--staging-port=${bench.source.port}`, `--staging-backup-path=${plainBackup}`],
          code: 32,
          message: new RegExp(`staging-port ${bench.source.port} is in use: a server listens on 127\\.0\\.0\\.1:${bench.source.port}`),
        },
        {
          what: 'the port of another staging copy, stopped',
          args: [...base, `--staging-path=${folder}`, `--staging-port=${stageTar.port}`, `--staging-backup-path=${plainBackup}`],
          code: 32,
          message: new RegExp(`staging-port ${stageTar.port} is assigned to the staging copy of stanza 'tar' on this host`),
          before: async () => {
            await bench.waldenOk('tar', ['staging-disable'])
          },
        },
        {
          what: 'two backup paths',
          args: [...base, `--staging-path=${folder}`, `--staging-port=${fresh.port}`, `--staging-backup-path=${plainBackup}`, `--staging-backup-path=${tarBackup}`],
          code: 31,
          message: /option 'staging-backup-path' is given 2 times .*: a staging copy loads exactly one base backup/,
        },
        {
          what: 'a walden-owned setting',
          args: [...base, `--staging-path=${folder}`, `--staging-port=${fresh.port}`, `--staging-backup-path=${plainBackup}`, '--staging-setting=primary_conninfo=host=elsewhere'],
          code: 32,
          message: /staging-setting 'primary_conninfo' is a setting walden owns on this cluster and cannot be set/,
        },
        {
          what: 'a staging folder that is not empty',
          args: [...base, `--staging-path=${plainBackup}`, `--staging-port=${fresh.port}`, `--staging-backup-path=${plainBackup}`],
          code: 40,
          message: new RegExp(`staging-path '${plainBackup}' is not empty`),
        },
        {
          what: 'a mandatory field missing (the WAL folder of external-wal)',
          args: ['staging-link', '--staging-method=external-wal', `--staging-path=${folder}`, `--staging-port=${fresh.port}`, `--staging-backup-path=${plainBackup}`],
          code: 37,
          message: /staging-link --staging-method=external-wal requires option 'staging-wal-path'/,
        },
        {
          what: 'a password in staging-source',
          args: ['staging-link', '--staging-method=external-streaming', `--staging-path=${folder}`, `--staging-port=${fresh.port}`, `--staging-backup-path=${plainBackup}`, '--staging-source=host=127.0.0.1 user=postgres password=hunter2'],
          code: 32,
          message: /option 'staging-source' holds a password/,
        },
        {
          // The attack: pg_ctl would run "$(...)" in the folder's name through sh, as postgres.
          what: 'a staging folder whose name the shell would run',
          args: [...base, `--staging-path=${folder}"$(touch ${injected})"`, `--staging-port=${fresh.port}`, `--staging-backup-path=${plainBackup}`],
          code: 32,
          message: /staging-path '.*' contains '"', which pg_ctl would hand to the shell/,
        },
      ]
      const messages = new Set<string>()
      for (const item of cases) {
        await item.before?.()
        const refused = await bench.walden('refused', item.args)
        assert.equal(refused.code, item.code, `${item.what}: ${refused.stderr}`)
        assert.match(refused.stderr, item.message, item.what)
        assert.doesNotMatch(refused.stderr, /hunter2/, `${item.what}: no secret in the error`)
        assert.doesNotMatch(refused.stderr, /\n\s+at /, `${item.what}: no stack trace`)
        messages.add(refused.stderr.split('\n').find((line) => line.includes('ERROR'))!)
        // Nothing created: no record, no port, no folder.
        assert.equal(await recordExists(bench, 'refused'), false, item.what)
        assert.equal(await stat(folder).then(() => true, () => false), false, item.what)
        assert.equal(await portsJson(bench), portsBefore, item.what)
      }
      assert.equal(messages.size, cases.length, 'each refusal has its own message')
      assert.equal(await stat(injected).then(() => true, () => false), false, 'no command ran')
      // Each was recorded as a failed DB_LINK, and nothing went on to DB_SYNC.
      const jobs = await jobsOf(bench, 'refused')
      assert.deepEqual(jobs.map((job) => `${job.type}:${job.result}`), cases.map(() => 'DB_LINK:failed'))
      assert.match(jobs[0]!.error!, /^\[032\]: staging-port \d+ is in use/)
    })

    test('a DB_SYNC that fails undoes the link: no record, no port, no folder, and the same link can run again', async () => {
      const failing = await bench.staging('stage-failing')
      const unused = await bench.staging('unused-port')
      const failed = await bench.walden('failing', [
        'staging-link',
        '--staging-method=external-streaming',
        ...bench.linkArgs(failing, [`--staging-backup-path=${plainBackup}`, `--staging-source=host=127.0.0.1 port=${unused.port} user=postgres connect_timeout=5`]),
      ])
      assert.equal(failed.code, 56, failed.stderr)
      assert.match(failed.stderr, new RegExp(`unable to open a replication connection to '127\\.0\\.0\\.1:${unused.port}'`))
      assert.match(failed.stderr, /WARN: the initial load failed: undoing the link, so that staging-link can simply be run again/)
      assert.deepEqual((await jobsOf(bench, 'failing')).map((job) => `${job.type}:${job.result}`), ['DB_LINK:ok', 'DB_SYNC:failed'])
      assert.equal(await recordExists(bench, 'failing'), false)
      assert.doesNotMatch(await portsJson(bench), new RegExp(`"${failing.port}"`))
      assert.equal(await stat(failing.dataDir).then(() => true, () => false), false)
      assert.equal(await stat(`${failing.dataDir}.tablespaces`).then(() => true, () => false), false)

      const again = await bench.walden('failing', [
        'staging-link',
        '--staging-method=external-streaming',
        ...bench.linkArgs(failing, [`--staging-backup-path=${plainBackup}`, `--staging-source=host=127.0.0.1 port=${bench.source.port} user=postgres`]),
      ])
      assert.equal(again.code, 0, again.stderr)
      await bench.waldenOk('failing', ['staging-unlink', '--delete-data'])
    })

    test('disable stops the copy; enable re-applies settings (new ones replace the old) and it catches up again', async () => {
      // The tar copy was disabled by the refusal test above; disable again is harmless.
      await bench.waldenOk('tar', ['staging-disable'])
      assert.equal(stageTar.isRunning(), false)
      await bench.source.query(`insert into staging_notes values ('while-disabled')`)
      await bench.source.query('select pg_switch_wal()')
      const enabled = await bench.walden('tar', ['staging-enable', `--staging-setting=unix_socket_directories=${stageTar.socketDir}`, '--staging-setting=work_mem=9MB'])
      assert.equal(enabled.code, 0, enabled.stderr)
      assert.equal(await stageTar.psqlScalar('show work_mem'), '9MB')
      await waitUntil('the row written while disabled', async () => (await stageTar.psqlScalar(`select count(*) from staging_notes where note = 'while-disabled'`)) === '1')

      // Enable with no settings keeps the recorded ones.
      await bench.waldenOk('tar', ['staging-disable'])
      await bench.waldenOk('tar', ['staging-enable'])
      assert.equal(await stageTar.psqlScalar('show work_mem'), '9MB')
      const settings = JSON.parse(await readFile(join(bench.spoolPath, 'staging', 'copy', 'tar.json'), 'utf8')) as { settings: string[]; enabled: boolean }
      assert.deepEqual(settings.settings, [`unix_socket_directories=${stageTar.socketDir}`, 'work_mem=9MB'])
      assert.equal(settings.enabled, true)
    })

    test('walden jobs lists every job with its outcome, also after the staging cluster restarted', async () => {
      await stagePlain.stop()
      await bench.waldenOk('plain', ['staging-enable'])
      const jobs = await jobsOf(bench)
      const tar = jobs.filter((job) => job.stanza === 'tar').map((job) => `${job.type}:${job.result}`)
      assert.deepEqual(tar, ['DB_LINK:ok', 'DB_SYNC:ok', 'DISABLE:ok', 'DISABLE:ok', 'ENABLE:ok', 'DISABLE:ok', 'ENABLE:ok'])
      for (const job of jobs) {
        assert.ok(job.end !== null && Date.parse(job.end) >= Date.parse(job.start), `${job.type} has an end after its start`)
      }
      const text = await runWalden([`--config=${bench.configPath}`, 'jobs'])
      assert.equal(text.code, 0, text.stderr)
      assert.match(text.stdout, /^start\s+end\s+type\s+stanza\s+result\s+error$/m)
      assert.match(text.stdout, /DB_SYNC\s+plain\s+ok/)
      assert.match(text.stdout, /DB_LINK\s+refused\s+failed\s+\[032\]: staging-port/)
    })

    test('resync: a backup of another cluster is refused and the old folder put back; a fresh backup of the source loads', async () => {
      const other = await createCluster({ major, dir: bench.work, name: 'other' })
      await other.start()
      const otherBackup = join(bench.work.path, 'backup-other')
      await runOk(join(bench.bin, 'pg_basebackup'), ['-h', other.socketDir, '-p', String(other.port), '-U', 'postgres', '-D', otherBackup, '-F', 'p', '-X', 'stream', '-c', 'fast'])
      await other.stop()
      const recordBefore = JSON.parse(await readFile(join(bench.spoolPath, 'staging', 'copy', 'plain.json'), 'utf8')) as { systemId: string }

      const refused = await bench.walden('plain', ['staging-resync', `--staging-backup-path=${otherBackup}`])
      assert.equal(refused.code, 58, refused.stderr)
      assert.match(refused.stderr, new RegExp(`the base backup loaded is of another cluster: system identifier \\d+, the staging copy's is ${recordBefore.systemId}`))
      assert.equal(await stat(`${stagePlain.dataDir}.resync-old`).then(() => true, () => false), false, 'the old folder is back in place')
      assert.equal(stagePlain.isRunning(), false, 'put back stopped')
      await bench.waldenOk('plain', ['staging-enable'])
      await catchesUp(bench, [stagePlain], 'after-failed-resync', true)

      const fresh = await basebackup(bench, 'backup-plain-2', 'p')
      const resynced = await bench.walden('plain', ['staging-resync', `--staging-backup-path=${fresh}`])
      assert.equal(resynced.code, 0, resynced.stderr)
      assert.equal(await stat(`${stagePlain.dataDir}.resync-old`).then(() => true, () => false), false, 'the old folder is removed')
      assert.equal(await stagePlain.psqlScalar('show work_mem'), '7MB', 'the recorded settings are applied again')
      if (major === 15) {
        await tablespaceChecked(stagePlain)
        assert.equal(await stat(`${stagePlain.dataDir}.tablespaces.resync-old`).then(() => true, () => false), false)
      }
      await catchesUp(bench, [stagePlain], 'after-resync', true)
      const jobs = (await jobsOf(bench, 'plain')).map((job) => `${job.type}:${job.result}`)
      assert.deepEqual(jobs.slice(-3), ['RESYNC:failed', 'ENABLE:ok', 'RESYNC:ok'])
    })

    test('unlink stops the copy, forgets it and its port, and leaves the data folder', async () => {
      const unlinked = await bench.walden('tar', ['staging-unlink'])
      assert.equal(unlinked.code, 0, unlinked.stderr)
      assert.match(unlinked.stdout, /its data folder '.*stage-tar' is left in place/)
      assert.equal(stageTar.isRunning(), false)
      assert.equal(await recordExists(bench, 'tar'), false)
      assert.doesNotMatch(await portsJson(bench), new RegExp(`"${stageTar.port}"`))
      assert.ok((await readdir(stageTar.dataDir)).includes('PG_VERSION'))
      const again = await bench.walden('tar', ['staging-disable'])
      assert.equal(again.code, 55, again.stderr)
      assert.match(again.stderr, /stanza 'tar' has no staging copy on this host/)
      assert.deepEqual((await jobsOf(bench, 'tar')).map((job) => job.type).slice(-1), ['UNLINK'])
    })
  })
}
