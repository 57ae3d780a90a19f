// Writable clones (clone-create, clone-list, clone-destroy) from the snapshots in a stanza's repository, on
// PostgreSQL 15 and 13. The snapshots here are walden backups of a running cluster: a staging snapshot is such a
// backup (of the staging standby), so every clone path is the same from here on. staging-clone-staged.test.ts goes
// the whole way, from a linked staging copy and its snapshots.
//
// What each clone must equal is taken from the source itself: a pg_dump right before a snapshot (nothing is written
// between), and one between two writes around a recorded time for a clone at that time. Refusals are checked for
// their exact first line, their exit code, and that nothing was made: no folder content, no record, no server.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Cluster, dumpDatabase } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface CloneJson {
  name: string
  path: string
  port: number
  snapshot: string
  type: string
  target: string | null
  created: string
  ready: boolean
  running: boolean
}

/** Exit code, the exact first line on stderr (after the error code), and no stack trace. */
function assertRefused(result: RunResult, code: number, firstLine: string): void {
  assert.equal(result.code, code, `${result.stdout}\n${result.stderr}`)
  assert.equal(result.stderr.split('\n')[0], `P00  ERROR: [${String(code).padStart(3, '0')}]: ${firstLine}`)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Pids of processes whose command line names `path`: a clone's postmaster and its children. */
async function processesOf(path: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.split('\0').some((word) => word === path || word.startsWith(`${path}/`))) pids.push(Number(entry))
  }
  return pids
}

function cloneSuite(major: number, full: boolean): void {
  describe(`clones on PostgreSQL ${major}`, () => {
    let stanza: TestStanza
    let firstSnapshot: string
    let secondSnapshot: string
    let dumpAtFirst: string
    let dumpAtTime: string
    let betweenTime: string
    let betweenLsn: string
    let beforeXid: string
    const clones = new Map<string, Cluster>()

    const backup = async (): Promise<string> => {
      const result = await stanza.waldenOk(['backup', '--type=full', '--log-level-console=info'])
      return /backup begin: \w+ backup (\S+), start LSN/.exec(result.stderr)![1]!
    }
    /** A handle on a clone to be: its folder, socket folder and a free port (nothing created yet). */
    const cloneHandle = async (name: string): Promise<Cluster> => {
      const handle = await Cluster.adopt({ major, dir: stanza.dir, name: `clone-${name}` })
      clones.set(name, handle)
      return handle
    }
    /** clone-create's arguments for a handle; its socket folder comes in as a clone setting. */
    const createArgs = (name: string, handle: Cluster, extra: readonly string[] = []): string[] => [
      'clone-create',
      `--clone=${name}`,
      `--clone-path=${handle.dataDir}`,
      `--clone-port=${handle.port}`,
      `--clone-setting=unix_socket_directories=${handle.socketDir}`,
      ...extra,
    ]
    const cloneList = async (): Promise<CloneJson[]> => JSON.parse((await stanza.waldenOk(['clone-list', '--output=json'])).stdout) as CloneJson[]
    /** Refused, and nothing of the clone made. */
    const assertNothingMade = async (name: string, handle: Cluster): Promise<void> => {
      assert.ok(!(await cloneList()).some((clone) => clone.name === name), 'no record')
      assert.deepEqual(await readdir(handle.dataDir).catch(() => []), [], 'no files')
      assert.equal(handle.isRunning(), false, 'no server')
    }

    before(async () => {
      stanza = await createTestStanza({ major, name: `clone${major}` })
      const spool = await stanza.dir.mkdir('spool')
      await stanza.writeConfig([`spool-path=${spool}`])
      await stanza.cluster.query('create table events (id serial primary key, note text not null)')
      await stanza.cluster.query("insert into events (note) select 'base ' || g from generate_series(1, 1000) g")
      await stanza.waldenOk(['stanza-create'])
      dumpAtFirst = await dumpDatabase(stanza.cluster)
      firstSnapshot = await backup()

      // Two writes with a recorded time between them, each its own commit, and nothing else writing. Their ids are
      // given, not drawn: a sequence is WAL-logged 32 values ahead, so a clone that replays a nextval() rightly shows a
      // last_value the source does not, and the dumps would differ in that alone.
      beforeXid = await stanza.cluster.psqlScalar("with written as (insert into events (id, note) values (1001, 'before the time')) select txid_current()::text")
      betweenLsn = await stanza.cluster.psqlScalar('select pg_current_wal_lsn()::text')
      dumpAtTime = await dumpDatabase(stanza.cluster)
      await sleep(1100)
      betweenTime = await stanza.cluster.psqlScalar(`select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
      await stanza.cluster.query("select pg_create_restore_point('between')")
      await sleep(1100)
      await stanza.cluster.query("insert into events (id, note) values (1002, 'after the time')")
      secondSnapshot = await backup()
      // The second write's commit, archived: what a time target needs after it.
      await stanza.waldenOk(['check'])
    })
    after(async () => {
      for (const handle of clones.values()) await handle.stop().catch(() => {})
      await stanza?.dir.cleanup()
    })

    test('a clone from a snapshot equals the source at that snapshot, starts writable, and is listed', async () => {
      const handle = await cloneHandle('first')
      await stanza.waldenOk(createArgs('first', handle, [`--set=${firstSnapshot}`]))
      assert.equal(handle.isRunning(), true)
      assert.equal(await handle.psqlScalar('select pg_is_in_recovery()::text'), 'false')
      assert.equal(await dumpDatabase(handle), dumpAtFirst)
      assert.equal(await handle.psqlScalar('show archive_mode'), 'off')
      assert.equal(await handle.psqlScalar('show primary_conninfo'), '')
      const listed = (await cloneList()).find((clone) => clone.name === 'first')
      assert.deepEqual(
        { ...listed, created: typeof listed?.created },
        { name: 'first', path: handle.dataDir, port: handle.port, snapshot: firstSnapshot, type: 'immediate', target: null, created: 'string', ready: true, running: true, image: null },
      )
    })

    test('a clone at a time between two snapshots equals the source at that time', async () => {
      const handle = await cloneHandle('attime')
      await stanza.waldenOk(createArgs('attime', handle, ['--type=time', `--target=${betweenTime}`]))
      assert.equal(await dumpDatabase(handle), dumpAtTime)
      const listed = (await cloneList()).find((clone) => clone.name === 'attime')
      assert.equal(listed?.snapshot, firstSnapshot)
      assert.deepEqual([listed?.type, listed?.target], ['time', betweenTime])
    })

    if (full) {
      test('a clone at a restore point (--type=name) equals the source there', async () => {
        const handle = await cloneHandle('atname')
        await stanza.waldenOk(createArgs('atname', handle, ['--type=name', '--target=between', `--set=${firstSnapshot}`]))
        assert.equal(await dumpDatabase(handle), dumpAtTime)
        await stanza.waldenOk(['clone-destroy', '--clone=atname'])
      })

      test('clones at an LSN and at a transaction (--type=lsn, --type=xid) equal the source there', async () => {
        const atLsn = await cloneHandle('atlsn')
        await stanza.waldenOk(createArgs('atlsn', atLsn, ['--type=lsn', `--target=${betweenLsn}`]))
        assert.equal(await dumpDatabase(atLsn), dumpAtTime)
        await stanza.waldenOk(['clone-destroy', '--clone=atlsn'])
        const atXid = await cloneHandle('atxid')
        await stanza.waldenOk(createArgs('atxid', atXid, ['--type=xid', `--target=${beforeXid}`, `--set=${firstSnapshot}`]))
        assert.equal(await dumpDatabase(atXid), dumpAtTime)
        await stanza.waldenOk(['clone-destroy', '--clone=atxid'])
        // Past the WAL for both: an LSN far ahead, a transaction that never ended.
        const refused = await cloneHandle('lsnfar')
        let result = await stanza.walden(createArgs('lsnfar', refused, ['--type=lsn', '--target=5/0']))
        assert.equal(result.code, 51, result.stderr)
        assert.match(result.stderr.split('\n')[0]!, new RegExp(`target lsn '5/0' is past the available WAL: the archived WAL after snapshot ${secondSnapshot} ends at [0-9A-F]+/[0-9A-F]+ \\(segment [0-9A-F]{24}\\)$`))
        result = await stanza.walden(createArgs('lsnfar', refused, ['--type=xid', '--target=999999']))
        assert.equal(result.code, 51, result.stderr)
        assert.match(result.stderr.split('\n')[0]!, new RegExp(`target xid '999999' is past the available WAL: transaction 999999 did not end after snapshot ${secondSnapshot} in the archived WAL`))
        await assertNothingMade('lsnfar', refused)
      })
    }

    test('clones are writable and independent of each other and of the source', async () => {
      const first = clones.get('first')!
      const other = await cloneHandle('other')
      await stanza.waldenOk(createArgs('other', other))
      assert.equal((await cloneList()).find((clone) => clone.name === 'other')?.snapshot, secondSnapshot, 'the newest snapshot by default')
      await first.query("insert into events (id, note) values (5001, 'only in first')")
      await other.query("insert into events (id, note) values (5001, 'only in other')")
      const notes = async (cluster: Cluster): Promise<string> => cluster.psqlScalar("select string_agg(note, ',' order by id) from events where note like 'only%'")
      assert.equal(await notes(first), 'only in first')
      assert.equal(await notes(other), 'only in other')
      assert.equal(await notes(stanza.cluster), '')
      // A clone has the source's system identifier: WAL it archived would land in the stanza's archive as if the
      // staging copy wrote it. Its new timeline (2) must never show up there, even after a WAL switch.
      await first.query('select pg_switch_wal()')
      await other.query('select pg_switch_wal()')
      await sleep(3000)
      const archiveDir = join(stanza.repoPath, 'archive', stanza.name, `${major}-1`)
      const entries = await readdir(archiveDir)
      assert.deepEqual(entries.filter((entry) => entry.startsWith('00000002')), [], 'nothing of the clones\' timeline archived')
    })

    test('clone settings are applied; a setting walden owns is refused', async () => {
      const handle = await cloneHandle('tuned')
      await stanza.waldenOk(createArgs('tuned', handle, ['--clone-setting=work_mem=7MB', '--clone-setting=application_name=qa clone']))
      assert.equal(await handle.psqlScalar('show work_mem'), '7MB')
      assert.equal(await handle.psqlScalar('show application_name'), 'qa clone')
      const refused = await cloneHandle('owned')
      const result = await stanza.walden(createArgs('owned', refused, ['--clone-setting=archive_mode=on']))
      assert.equal(result.code, 32, result.stderr)
      assertRefused(result, 32, "clone-setting 'archive_mode' is a setting walden owns on this cluster and cannot be set")
      await assertNothingMade('owned', refused)
    })

    test('refusals, each before anything is made', async () => {
      const handle = await cloneHandle('refused')
      const source = stanza.cluster
      const first = clones.get('first')!

      let result = await stanza.walden(['clone-create', '--clone=refused', `--clone-path=${handle.dataDir}`, `--clone-port=${source.port}`])
      assert.equal(result.code, 32, result.stderr)
      assert.ok(result.stderr.startsWith(`P00  ERROR: [032]: clone-port ${source.port} is in use: `), result.stderr)
      await assertNothingMade('refused', handle)

      result = await stanza.walden(['clone-create', '--clone=refused', `--clone-path=${handle.dataDir}`, `--clone-port=${first.port}`])
      assertRefused(result, 32, `clone-port ${first.port} is assigned to clone 'first' of stanza '${stanza.name}' on this host`)
      await assertNothingMade('refused', handle)

      result = await stanza.walden(createArgs('first', handle))
      assertRefused(result, 32, `clone 'first' already exists (in '${first.dataDir}')`)
      await assertNothingMade('refused', handle)

      result = await stanza.walden(createArgs('refused', handle, ['--type=time', '--target=2020-01-01 00:00:00+00']))
      assertRefused(result, 51, `target time '2020-01-01 00:00:00+00' is before the oldest snapshot, ${firstSnapshot}`)
      await assertNothingMade('refused', handle)

      result = await stanza.walden(createArgs('refused', handle, ['--type=time', '--target=2020-01-01 00:00:00+00', `--set=${secondSnapshot}`]))
      assertRefused(result, 51, `target time '2020-01-01 00:00:00+00' is before snapshot ${secondSnapshot} is consistent`)
      await assertNothingMade('refused', handle)

      // Past the WAL: after the second snapshot no transaction ended at all; after the first, the last one did before
      // the target. PostgreSQL would replay to the end of the archive and fail.
      const future = new Date(Date.now() + 3_600_000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '+00')
      result = await stanza.walden(createArgs('refused', handle, ['--type=time', `--target=${future}`]))
      assert.equal(result.code, 51, result.stderr)
      assert.match(result.stderr.split('\n')[0]!, new RegExp(`target time '${future.replace('+', '\\+')}' is past the available WAL: no transaction ended after snapshot ${secondSnapshot} in the archived WAL \\(up to segment [0-9A-F]{24}\\)$`))
      await assertNothingMade('refused', handle)
      result = await stanza.walden(createArgs('refused', handle, ['--type=time', `--target=${future}`, `--set=${firstSnapshot}`]))
      assert.equal(result.code, 51, result.stderr)
      assert.match(result.stderr.split('\n')[0]!, new RegExp(`target time '${future.replace('+', '\\+')}' is past the available WAL: the last transaction archived after snapshot ${firstSnapshot} ended at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(segment [0-9A-F]{24}\\)$`))
      await assertNothingMade('refused', handle)

      result = await stanza.walden(createArgs('refused', handle, ['--type=name', '--target=never-made']))
      assert.equal(result.code, 51, result.stderr)
      assert.match(result.stderr.split('\n')[0]!, /target name 'never-made' is past the available WAL: restore point 'never-made' was not created after snapshot/)
      await assertNothingMade('refused', handle)

      // The attack: pg_ctl starts the postmaster through sh with the folder in double quotes, so a folder named with
      // "$(...)" would run a command as postgres. It is refused before anything is made, and nothing runs.
      const marker = join(stanza.dir.path, 'INJECTED')
      const hostile = join(stanza.dir.path, `clone"$(touch ${marker})"x`)
      result = await stanza.walden(['clone-create', '--clone=hostile', `--clone-path=${hostile}`, `--clone-port=${handle.port}`])
      assertRefused(result, 32, `clone-path '${hostile}' contains '"', which pg_ctl would hand to the shell`)
      assert.equal(existsSync(marker), false, 'no command ran')
      assert.equal(existsSync(hostile), false, 'no folder was made')
      assert.ok(!(await cloneList()).some((clone) => clone.name === 'hostile'))

      // A folder with something in it is never written into.
      const busy = await cloneHandle('busy')
      await stanza.dir.mkdir('clone-busy')
      await stanza.dir.mkdir('clone-busy/keep')
      result = await stanza.walden(createArgs('busy', busy))
      assertRefused(result, 40, `clone path '${busy.dataDir}' is not empty`)
      assert.deepEqual(await readdir(busy.dataDir), ['keep'])
      assert.ok(!(await cloneList()).some((clone) => clone.name === 'busy'))
    })

    test('clone-destroy leaves nothing behind: no server, no folder, no record; and it refuses another folder', async () => {
      const handle = clones.get('attime')!
      assert.ok((await processesOf(handle.dataDir)).length > 0, 'the clone runs before')
      let result = await stanza.walden(['clone-destroy', '--clone=attime', `--clone-path=${stanza.cluster.dataDir}`])
      assertRefused(result, 32, `clone-path '${stanza.cluster.dataDir}' is not the folder of clone 'attime' ('${handle.dataDir}')`)
      assert.equal(handle.isRunning(), true)
      await stanza.waldenOk(['clone-destroy', '--clone=attime'])
      assert.deepEqual(await processesOf(handle.dataDir), [])
      assert.equal(await exists(handle.dataDir), false)
      assert.ok(!(await cloneList()).some((clone) => clone.name === 'attime'))
      // Its port is free again for the next clone.
      const again = await cloneHandle('again')
      result = await stanza.walden(['clone-create', '--clone=again', `--clone-path=${again.dataDir}`, `--clone-port=${handle.port}`, `--clone-setting=unix_socket_directories=${again.socketDir}`])
      assert.equal(result.code, 0, result.stderr)
      await stanza.waldenOk(['clone-destroy', '--clone=again'])
      result = await stanza.walden(['clone-destroy', '--clone=attime'])
      assertRefused(result, 55, `clone 'attime' does not exist`)
      // Each run is a job: the clones made, the destroys, the refusals with their errors.
      const jobs = JSON.parse((await stanza.waldenOk(['jobs', '--output=json'])).stdout) as Array<{ type: string; clone?: string; result: string; error: string | null }>
      const of = (clone: string): string[] => jobs.filter((job) => job.clone === clone).map((job) => `${job.type} ${job.result}`)
      assert.deepEqual(of('attime'), ['CLONE ok', 'CLONE_DESTROY failed', 'CLONE_DESTROY ok', 'CLONE_DESTROY failed'])
      assert.deepEqual(of('again'), ['CLONE ok', 'CLONE_DESTROY ok'])
      assert.ok(jobs.some((job) => job.type === 'CLONE' && job.clone === 'first' && job.result === 'failed' && job.error?.startsWith("[032]: clone 'first' already exists")))
    })

    test('a clone-create killed (SIGKILL) mid-way is listed as incomplete, and clone-destroy removes what it made', async () => {
      const handle = await cloneHandle('killed')
      const running = stanza.walden(createArgs('killed', handle))
      const record = join(stanza.dir.path, 'spool', 'staging', 'clone', stanza.name, 'killed.json')
      // The record is written before the restore starts: kill walden then, in the middle of the work.
      for (const deadline = Date.now() + 60_000; !(await exists(record)); ) {
        assert.ok(Date.now() < deadline, 'clone-create wrote its record')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      // walden's node process (and the runuser the harness started it through): their arguments name the clone.
      const walden = await processesOf('--clone=killed')
      assert.ok(walden.length > 0, 'the clone-create process is found')
      for (const pid of walden) process.kill(pid, 'SIGKILL')
      assert.notEqual((await running).code, 0)
      const listed = (await cloneList()).find((clone) => clone.name === 'killed')
      assert.equal(listed?.ready, false)
      assert.match((await stanza.waldenOk(['clone-list'])).stdout, /^killed\s+\d+\s+incomplete\s/m)
      await stanza.waldenOk(['clone-destroy', '--clone=killed'])
      assert.deepEqual(await processesOf(handle.dataDir), [])
      assert.equal(await exists(handle.dataDir), false)
      assert.ok(!(await cloneList()).some((clone) => clone.name === 'killed'))
    })

    if (full) {
      test('the configure-clone hook runs after the start, with the clone in its environment', async () => {
        const handle = await cloneHandle('hooked')
        const out = join(stanza.dir.path, 'hook.out')
        const hook = `env | grep ^WALDEN_ | sort > ${out}; "${handle.binDir}/psql" -h ${handle.socketDir} -p "$WALDEN_CLONE_PORT" -U postgres -d postgres -Atc 'select pg_is_in_recovery()' >> ${out}`
        await stanza.waldenOk(createArgs('hooked', handle, [`--clone-hook-configure=${hook}`]))
        const text = await readFile(out, 'utf8')
        assert.match(text, new RegExp(`^WALDEN_CLONE=hooked$`, 'm'))
        assert.match(text, new RegExp(`^WALDEN_CLONE_PATH=${handle.dataDir}$`, 'm'))
        assert.match(text, new RegExp(`^WALDEN_CLONE_PORT=${handle.port}$`, 'm'))
        assert.match(text, new RegExp(`^WALDEN_SNAPSHOT_LABEL=${secondSnapshot}$`, 'm'))
        assert.match(text, /^f$/m, 'the clone had promoted when the hook ran')
        // A failing hook fails the clone, and the clone is removed.
        const failing = await cloneHandle('hookfail')
        const result = await stanza.walden(createArgs('hookfail', failing, ['--clone-hook-configure=echo nope; exit 3']))
        assert.equal(result.code, 96, result.stderr)
        assert.match(result.stderr, /ERROR: \[096\]: configure-clone hook 1 of 1 \(clone-hook-configure\) exited with status 3\n/)
        assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
        // The CLONE job says so, and its log holds the hook's output.
        const jobs = JSON.parse((await stanza.waldenOk(['jobs', '--output=json'])).stdout) as Array<{ type: string; clone?: string; result: string; error: string | null; log: string }>
        const job = jobs.filter((entry) => entry.type === 'CLONE' && entry.clone === 'hookfail').at(-1)!
        assert.equal(job.result, 'failed')
        assert.equal(job.error, '[096]: configure-clone hook 1 of 1 (clone-hook-configure) exited with status 3')
        assert.match(await readFile(job.log, 'utf8'), /^nope$/m)
        await assertNothingMade('hookfail', failing)
        assert.equal(await exists(failing.dataDir), false)
      })
    }
  })
}

cloneSuite(15, true)
cloneSuite(13, false)
