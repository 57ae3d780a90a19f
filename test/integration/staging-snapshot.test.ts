// staging-snapshot on real clusters: a source kept busy by pgbench and archiving into a folder (`cp %p`), the user's
// pg_basebackup of it, and staging copies linked from that backup with staging-link: one streaming from the source
// (external-streaming), one fed from the WAL folder (external-wal, PostgreSQL 15). Link writes the archive settings
// of snapshot.ts, so each staging copy archives what it replays into its stanza's repository.
// A snapshot is listed by info, restores, and the restore (recovery_target = immediate) equals the source once the
// source is idle and the staging copy has replayed it; its metadata is recorded; hooks run in order with their
// environment; a failing pre hook fails the snapshot and the post hook still runs; a disabled staging copy and a real
// break in the WAL folder (a missing segment) refuse the snapshot, the latter naming the expected WAL file.
// PostgreSQL 15 in full and 13 for the snapshots and their restore. pg_basebackup and pgbench are 15's (the npm
// servers ship none), which serve a 13 source as well.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chown, copyFile, readdir, readFile, stat } from 'node:fs/promises'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapshotMeta } from '../../src/commands/staging/snapshot.js'
import { lsnParse } from '../../src/pg/lsn.js'
import { walSegmentName, walSegmentNext } from '../../src/pg/wal.js'
import { Cluster, createCluster, dumpDatabase, runTool, runWalden, testDir } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'
import { sleep, waitUntil } from '../harness/staging.js'

const STANZA = 'stage'
const TOOLS_MAJOR = 15
const SEGMENT_SIZE = 16 * 1024 * 1024

/** Runs a PostgreSQL 15 client tool as postgres (pg_basebackup writes a folder walden reads as postgres). */
function toolAsPostgres(tool: string, args: readonly string[]): void {
  const bin = join('/usr/lib/postgresql', String(TOOLS_MAJOR), 'bin', tool)
  const result = spawnSync('runuser', ['-u', 'postgres', '--', bin, ...args], { encoding: 'utf8', cwd: '/tmp' })
  if (result.status !== 0) throw new Error(`${tool} ${args.join(' ')} exited with ${result.status}\n${result.stderr}`)
}

interface Setup {
  major: number
  dir: TestDir
  source: Cluster
  staging: Cluster
  configPath: string
  spoolPath: string
  /** The source's archived WAL (its archive_command copies here) and its pg_basebackup. */
  incoming: string
  backupPath: string
  /** walden as postgres with --config and --stanza (stage by default). */
  walden(args: readonly string[], stanza?: string): Promise<RunResult>
  caughtUp(staging?: Cluster): Promise<string>
  labels(stanza?: string): Promise<string[]>
  restoreAndDump(label: string, stanza?: string): Promise<string>
}

async function setUp(major: number): Promise<Setup> {
  const dir = await testDir(`walden-staging-snapshot-pg${major}`)
  const incoming = await dir.mkdir('incoming')
  const spoolPath = await dir.mkdir('spool')
  const configPath = join(dir.path, 'walden.conf')

  const source = await createCluster({
    major,
    dir,
    name: 'source',
    settings: { wal_level: 'replica', max_wal_senders: '5', archive_mode: 'on', archive_command: `test ! -f ${incoming}/%f && cp %p ${incoming}/%f` },
  })
  await source.start()
  const bench = await runTool({ binDir: `/usr/lib/postgresql/${TOOLS_MAJOR}/bin` } as Cluster, 'pgbench', ['-i', '-s', '1', '-q', '-h', source.socketDir, '-p', String(source.port), '-U', 'postgres', 'postgres'], { cwd: '/tmp' })
  assert.equal(bench.code, 0, bench.stderr)
  const backupPath = join(dir.path, 'backup')
  toolAsPostgres('pg_basebackup', ['-h', source.socketDir, '-p', String(source.port), '-U', 'postgres', '-D', backupPath, '-X', 'stream', '-c', 'fast'])

  await writeFile(
    configPath,
    [
      '[global]',
      `repo1-path=${await dir.mkdir('repo')}`,
      `lock-path=${await dir.mkdir('lock')}`,
      `log-path=${await dir.mkdir('log')}`,
      `spool-path=${spoolPath}`,
      'process-max=2',
      'archive-timeout=30',
      'log-level-file=detail',
      '',
    ].join('\n'),
  )

  const walden = (args: readonly string[], stanza = STANZA): Promise<RunResult> =>
    runWalden([`--config=${configPath}`, `--stanza=${stanza}`, ...args], { timeoutMs: 180_000 })

  // The staging copy: linked from the user's backup, then streaming from the source.
  const staging = await Cluster.adopt({ major, dir, name: 'staging' })
  const linked = await walden([
    'staging-link',
    '--staging-method=external-streaming',
    `--staging-path=${staging.dataDir}`,
    `--staging-port=${staging.port}`,
    `--staging-backup-path=${backupPath}`,
    `--staging-source=host=${source.socketDir} port=${source.port} user=postgres`,
    `--staging-setting=unix_socket_directories=${staging.socketDir}`,
  ])
  assert.equal(linked.code, 0, linked.stderr)
  // What link wrote from snapshot.ts: the staging copy archives what it replays into the stanza's repository.
  assert.equal(await staging.psqlScalar('show archive_mode'), 'always')
  assert.match(await staging.psqlScalar('show archive_command'), new RegExp(`--stanza=${STANZA} archive-push %p$`))

  let restores = 0
  const self: Setup = {
    major,
    dir,
    source,
    staging,
    configPath,
    spoolPath,
    incoming,
    backupPath,
    walden,
    async caughtUp(cluster = staging) {
      const target = await source.psqlScalar('select pg_current_wal_lsn()::text')
      await waitUntil('the staging copy to replay the source', async () => (await cluster.psqlScalar(`select (pg_last_wal_replay_lsn() >= '${target}')::text`)) === 'true')
      return target
    },
    async labels(stanza = STANZA) {
      const info = await walden(['info', '--output=json'], stanza)
      assert.ok(info.code === 0 || info.code === 51, info.stderr)
      return (JSON.parse(info.stdout) as Array<{ backup: Array<{ label: string }> }>)[0]!.backup.map((backup) => backup.label)
    },
    async restoreAndDump(label, stanza = STANZA) {
      const copy = await Cluster.adopt({ major, dir, name: `restored-${++restores}` })
      const restored = await walden([
        'restore', `--set=${label}`, `--pg1-path=${copy.dataDir}`, `--pg1-port=${copy.port}`, '--archive-mode=off',
        '--type=immediate', '--target-action=promote', `--recovery-option=unix_socket_directories=${copy.socketDir}`,
      ], stanza)
      assert.equal(restored.code, 0, restored.stderr)
      await copy.start()
      try {
        await copy.waitWritable(60_000)
        return await dumpDatabase(copy)
      } finally {
        await copy.stop()
      }
    },
  }
  return self
}

/** Runs pgbench against the source for `seconds`, two clients. */
async function busy(setup: Setup, seconds: number): Promise<void> {
  const tools = { binDir: `/usr/lib/postgresql/${TOOLS_MAJOR}/bin` } as Cluster
  const result = await runTool(tools, 'pgbench', ['-T', String(seconds), '-c', '2', '-n', '-h', setup.source.socketDir, '-p', String(setup.source.port), '-U', 'postgres', 'postgres'], { cwd: '/tmp' })
  assert.equal(result.code, 0, result.stderr)
}

async function metaOf(setup: Setup, label: string, stanza = STANZA): Promise<SnapshotMeta> {
  return JSON.parse(await readFile(join(setup.spoolPath, 'staging', 'snapshot', stanza, `${label}.json`), 'utf8')) as SnapshotMeta
}

async function jobsOf(setup: Setup, stanza = STANZA): Promise<Array<{ type: string; result: string; error: string | null; log: string }>> {
  const jobs = await setup.walden(['jobs', '--output=json'], stanza)
  assert.equal(jobs.code, 0, jobs.stderr)
  return JSON.parse(jobs.stdout) as Array<{ type: string; result: string; error: string | null; log: string }>
}

/** A snapshot taken while pgbench runs, then one of the idle, caught-up source, which the restore must equal. */
async function snapshotOfBusySource(setup: Setup): Promise<string> {
  // While the source is busy: the snapshot is a consistent backup of a moving standby (restored below by the next one).
  const running = busy(setup, 12)
  await sleep(3000)
  const during = await setup.walden(['staging-snapshot'])
  assert.equal(during.code, 0, during.stderr)
  await running

  // Idle source, a checkpoint there so the staging copy's next restartpoint flushes everything replayed.
  await setup.source.query('checkpoint')
  const sourceLsn = await setup.caughtUp()
  const started = Date.now()
  const snapshot = await setup.walden(['staging-snapshot'])
  assert.equal(snapshot.code, 0, snapshot.stderr)
  const label = /^snapshot (\S+) of stanza 'stage'$/m.exec(snapshot.stdout)?.[1]
  assert.ok(label !== undefined, snapshot.stdout)
  assert.deepEqual((await setup.labels()).slice(-2).length, 2)
  assert.equal((await setup.labels()).at(-1), label)

  // Metadata, each against what PostgreSQL says.
  const meta = await metaOf(setup, label)
  assert.equal(meta.label, label)
  assert.equal(meta.timeline, 1)
  assert.equal(meta.pgMajor, setup.major)
  assert.equal(String(meta.pgVersionNum), await setup.staging.psqlScalar(`select current_setting('server_version_num')`))
  assert.equal(meta.walSegmentSize, 16 * 1024 * 1024)
  assert.equal(meta.redoWal, walSegmentName(1, lsnParse(meta.redoLsn), meta.walSegmentSize))
  assert.ok(lsnParse(meta.replayLsn) >= lsnParse(sourceLsn), `replayed ${meta.replayLsn} before the source's ${sourceLsn}`)
  assert.ok(lsnParse(meta.consistentLsn) >= lsnParse(meta.redoLsn))
  const checkpointTime = Date.parse(meta.checkpointTime)
  assert.ok(checkpointTime <= started && checkpointTime > started - 10 * 60_000, meta.checkpointTime)
  const info = JSON.parse((await setup.walden(['info', '--output=json'])).stdout) as Array<{ backup: Array<{ label: string; lsn: { start: string; stop: string } }> }>
  const listed = info[0]!.backup.find((backup) => backup.label === label)!
  assert.equal(listed.lsn.start, meta.redoLsn)
  assert.equal(listed.lsn.stop, meta.consistentLsn)

  // The restore equals the source (idle since the snapshot).
  await sealed(setup, meta)
  assert.equal(await setup.restoreAndDump(label), await dumpDatabase(setup.source))
  return label
}

/**
 * recovery_target = immediate stops before the first record after the consistent point, so recovery must find one:
 * from a snapshot of an idle source the WAL ends right there. A WAL switch on the source (it changes no data) gives
 * that record, and once the staging copy archives the segment holding it, the restore reads it from the repository.
 */
async function sealed(setup: Setup, meta: SnapshotMeta, stanza = STANZA, deliver?: () => Promise<void>): Promise<void> {
  // A commit record first: a switch in a segment with nothing in it yet (right after an earlier switch) does nothing.
  await setup.source.query('select txid_current()')
  await setup.source.query('select pg_switch_wal()')
  const segment = walSegmentName(meta.timeline, lsnParse(meta.consistentLsn), meta.walSegmentSize)
  await waitUntil(`segment ${segment} in the repository`, async () => {
    await deliver?.()
    return ((await archiveMax(setup, stanza)) ?? '') >= segment
  })
}

async function archiveMax(setup: Setup, stanza = STANZA): Promise<string | null> {
  const out = JSON.parse((await setup.walden(['info', '--output=json'], stanza)).stdout) as Array<{ archive: Array<{ max: string | null }> }>
  return out[0]!.archive[0]?.max ?? null
}

for (const major of (process.env['STAGING_SNAPSHOT_MAJORS'] ?? '15,13').split(',').map(Number)) {
  describe(`staging-snapshot, PostgreSQL ${major}`, { concurrency: false }, () => {
    let setup: Setup

    before(async () => {
      setup = await setUp(major)
    })
    after(async () => {
      // staging-link started the staging cluster (pg_ctl), so the harness does not know to stop it.
      await setup?.staging.stop('immediate').catch(() => {})
      await setup?.dir.cleanup()
    })

    test('snapshots of a busy source are listed by info, carry their metadata, and restore equal to the source', async () => {
      await snapshotOfBusySource(setup)
      const jobs = (await jobsOf(setup)).filter((job) => job.type === 'SNAPSHOT')
      assert.deepEqual(jobs.map((job) => job.result), ['ok', 'ok'])
    })

    if (major !== 15) return

    test('the WAL the staging copy replays reaches the repository', async () => {
      const switched = await setup.source.psqlScalar('select pg_walfile_name(pg_switch_wal())')
      await setup.source.query('select txid_current()')
      await waitUntil(`segment ${switched} in the repository`, async () => ((await archiveMax(setup)) ?? '') >= switched)
    })

    test('hooks run in order with their environment; output goes to the job log', async () => {
      const out = join(setup.dir.path, 'hooks.out')
      const line = (name: string): string =>
        `echo "${name} hook=$WALDEN_HOOK stanza=$WALDEN_STANZA path=$WALDEN_STAGING_PATH port=$WALDEN_STAGING_PORT ` +
        `label=\${WALDEN_SNAPSHOT_LABEL-unset} stop=\${WALDEN_SNAPSHOT_STOP_LSN-unset} replay=\${WALDEN_REPLAY_LSN-unset} ` +
        `result=\${WALDEN_HOOK_RESULT-unset} secret=\${WALDEN_REPO1_CIPHER_PASS-none}" >> ${out}; echo "${name} says hello"`
      const result = await runWalden(
        [
          `--config=${setup.configPath}`, `--stanza=${STANZA}`, 'staging-snapshot',
          `--staging-hook-pre-snapshot=${line('pre1')}`, `--staging-hook-pre-snapshot=${line('pre2')}`, `--staging-hook-post-snapshot=${line('post1')}`,
        ],
        { env: { WALDEN_REPO1_CIPHER_PASS: 'not-for-hooks' }, timeoutMs: 180_000 },
      )
      // The repository has no cipher, so walden itself ignores the variable; the hooks must not see it either.
      assert.equal(result.code, 0, result.stderr)
      const label = (await setup.labels()).at(-1)!
      const meta = await metaOf(setup, label)
      const lines = (await readFile(out, 'utf8')).trim().split('\n')
      const common = `stanza=${STANZA} path=${setup.staging.dataDir} port=${setup.staging.port}`
      assert.equal(lines.length, 3, lines.join('\n'))
      assert.match(lines[0]!, new RegExp(`^pre1 hook=pre-snapshot ${common} label=unset stop=unset replay=[0-9A-F]+/[0-9A-F]+ result=unset secret=none$`))
      assert.match(lines[1]!, new RegExp(`^pre2 hook=pre-snapshot ${common} label=unset`))
      assert.equal(lines[2], `post1 hook=post-snapshot ${common} label=${label} stop=${meta.consistentLsn} replay=unset result=ok secret=none`)
      const job = (await jobsOf(setup)).at(-1)!
      assert.equal(job.type, 'SNAPSHOT')
      assert.equal(job.result, 'ok')
      const log = await readFile(job.log, 'utf8')
      assert.ok(log.indexOf('pre1 says hello') < log.indexOf('pre2 says hello') && log.indexOf('pre2 says hello') < log.indexOf('post1 says hello'), log)
      assert.match(log, new RegExp(`snapshot ${label} of stanza 'stage'`))
    })

    test('a failing pre hook fails the snapshot, takes none, and the post hook still runs', async () => {
      const out = join(setup.dir.path, 'failing.out')
      const before = await setup.labels()
      const result = await setup.walden([
        'staging-snapshot', '--staging-hook-pre-snapshot=echo pre ran >> ' + out + '; exit 3', '--staging-hook-pre-snapshot=echo never >> ' + out,
        `--staging-hook-post-snapshot=echo "post ran result=$WALDEN_HOOK_RESULT label=\${WALDEN_SNAPSHOT_LABEL-unset}" >> ${out}`,
      ])
      assert.equal(result.code, 96, result.stderr)
      assert.match(result.stderr, /ERROR: \[096\]: pre-snapshot hook 1 of 2 \(staging-hook-pre-snapshot\) exited with status 3$/m)
      assert.equal(await readFile(out, 'utf8'), 'pre ran\npost ran result=failed label=unset\n')
      assert.deepEqual(await setup.labels(), before)
      const job = (await jobsOf(setup)).at(-1)!
      assert.deepEqual([job.type, job.result, job.error], ['SNAPSHOT', 'failed', '[096]: pre-snapshot hook 1 of 2 (staging-hook-pre-snapshot) exited with status 3'])
    })

    test('a failing post hook fails the job, though the snapshot is taken', async () => {
      const before = await setup.labels()
      const result = await setup.walden(['staging-snapshot', '--staging-hook-post-snapshot=exit 7'])
      assert.equal(result.code, 96, result.stderr)
      assert.match(result.stderr, /post-snapshot hook 1 of 1 \(staging-hook-post-snapshot\) exited with status 7/)
      assert.equal((await setup.labels()).length, before.length + 1)
    })

    test('a disabled staging copy refuses the snapshot; enabled again, it snapshots', async () => {
      const before = await setup.labels()
      const disable = await setup.walden(['staging-disable'])
      assert.equal(disable.code, 0, disable.stderr)
      const disabled = await setup.walden(['staging-snapshot'])
      assert.equal(disabled.code, 92, disabled.stderr)
      assert.match(disabled.stderr, /ERROR: \[092\]: staging copy of stanza 'stage' is disabled, so no snapshot is taken$/m)
      assert.match(disabled.stderr, /HINT: run staging-enable first\./)
      assert.deepEqual(await setup.labels(), before)
      const enabled = await setup.walden(['staging-enable'])
      assert.equal(enabled.code, 0, enabled.stderr)
      await setup.caughtUp()
    })

    test('a WAL-folder staging copy with a missing segment refuses the snapshot, naming the expected file; repaired, it snapshots and restores', async () => {
      const walDir = await setup.dir.mkdir('wal')
      const chain = await Cluster.adopt({ major, dir: setup.dir, name: 'chain' })
      const postgres = await stat(setup.incoming)
      // The source's `cp` may still be writing a segment: only whole ones are handed on.
      const archived = async (name: string): Promise<boolean> =>
        !/^[0-9A-F]{24}$/.test(name) || (await stat(join(setup.incoming, name)).then((info) => info.size === SEGMENT_SIZE, () => false))
      const deliver = async (except: readonly string[] = []): Promise<void> => {
        const present = new Set(await readdir(walDir))
        for (const name of (await readdir(setup.incoming)).sort()) {
          if (present.has(name) || except.includes(name) || !(await archived(name))) continue
          // As the user's own copy job would, the files belong to the user the staging cluster runs as.
          await copyFile(join(setup.incoming, name), join(walDir, name))
          await chown(join(walDir, name), postgres.uid, postgres.gid)
        }
      }
      const switched = async (): Promise<string> => {
        await setup.source.query('select txid_current()')
        const segment = await setup.source.psqlScalar('select pg_walfile_name(pg_switch_wal())')
        await waitUntil(`'${segment}' archived by the source`, () => archived(segment))
        return segment
      }
      try {
        await switched()
        await deliver()
        const linked = await setup.walden([
          'staging-link', '--staging-method=external-wal', `--staging-path=${chain.dataDir}`, `--staging-port=${chain.port}`,
          `--staging-backup-path=${setup.backupPath}`, `--staging-wal-path=${walDir}`,
          `--staging-setting=unix_socket_directories=${chain.socketDir}`, '--staging-setting=wal_retrieve_retry_interval=1s',
        ], 'chain')
        assert.equal(linked.code, 0, linked.stderr)
        const newest = (await readdir(walDir)).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort().at(-1)!
        const expected = walSegmentNext(newest, SEGMENT_SIZE)
        assert.equal(await switched(), expected)
        await switched()
        await deliver([expected])
        await waitUntil('the WAL-folder staging cluster to stop at the gap', async () => !chain.isRunning())

        const out = join(setup.dir.path, 'chain-hooks.out')
        const refused = await setup.walden(['staging-snapshot', `--staging-hook-post-snapshot=echo "post result=$WALDEN_HOOK_RESULT" >> ${out}`], 'chain')
        assert.equal(refused.code, 92, refused.stderr)
        assert.match(refused.stderr, new RegExp(`ERROR: \\[092\\]: staging copy of stanza 'chain' has a fault, so no snapshot is taken: .*WAL file '${expected}'`))
        assert.match(refused.stderr, new RegExp(`HINT: place WAL file ${expected} in '${walDir}', then run staging-disable and staging-enable; or staging-resync\\.`))
        assert.equal(await readFile(out, 'utf8'), 'post result=failed\n')
        assert.deepEqual(await setup.labels('chain'), [])
        const job = (await jobsOf(setup, 'chain')).at(-1)!
        assert.equal(job.type, 'SNAPSHOT')
        assert.match(job.error ?? '', new RegExp(`^\\[092\\]: .*${expected}`))

        // The file put back, disable and enable: in sync again, and a snapshot of it restores equal to the source.
        await deliver()
        for (const command of ['staging-disable', 'staging-enable']) {
          const result = await setup.walden([command], 'chain')
          assert.equal(result.code, 0, `${command}: ${result.stderr}`)
        }
        await setup.source.query('checkpoint')
        await switched()
        await deliver()
        await setup.caughtUp(chain)
        const taken = await setup.walden(['staging-snapshot'], 'chain')
        assert.equal(taken.code, 0, taken.stderr)
        const label = (await setup.labels('chain')).at(-1)!
        const meta = await metaOf(setup, label, 'chain')
        assert.equal(meta.method, 'external-wal')
        await sealed(setup, meta, 'chain', () => deliver())
        assert.equal(await setup.restoreAndDump(label, 'chain'), await dumpDatabase(setup.source))
      } finally {
        await setup.walden(['staging-unlink', '--delete-data'], 'chain')
      }
    })

    test('a second snapshot after more work restores equal to the source again (an incremental one)', async () => {
      await busy(setup, 4)
      await setup.source.query('checkpoint')
      await setup.caughtUp()
      const result = await setup.walden(['staging-snapshot'])
      assert.equal(result.code, 0, result.stderr)
      const label = (await setup.labels()).at(-1)!
      assert.match(label, /I$/)
      await sealed(setup, await metaOf(setup, label))
      assert.equal(await setup.restoreAndDump(label), await dumpDatabase(setup.source))
    })

    test('--type=full takes a full snapshot, so retention has fulls to count; a clone of it equals the source', async () => {
      await setup.caughtUp()
      const result = await setup.walden(['staging-snapshot', '--type=full'])
      assert.equal(result.code, 0, result.stderr)
      const label = (await setup.labels()).at(-1)!
      assert.match(label, /^\d{8}-\d{6}F$/)
      // The same snapshot as a clone (this copy streams: the way 3 of the issue), against the idle source.
      const clone = await Cluster.adopt({ major: setup.major, dir: setup.dir, name: 'clone' })
      const created = await setup.walden(['clone-create', '--clone=qa', `--set=${label}`, `--clone-path=${clone.dataDir}`, `--clone-port=${clone.port}`, `--clone-setting=unix_socket_directories=${clone.socketDir}`])
      assert.equal(created.code, 0, created.stderr)
      assert.equal(await dumpDatabase(clone), await dumpDatabase(setup.source))
      assert.equal((await setup.walden(['clone-destroy', '--clone=qa'])).code, 0)
      const refused = await setup.walden(['staging-snapshot', '--type=time'])
      assert.equal(refused.code, 32, refused.stderr)
      assert.match(refused.stderr, /option 'type' on the command line must be one of 'full', 'diff', 'incr', not 'time'/)
    })
  })
}
