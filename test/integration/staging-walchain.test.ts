// The WAL chain of a staging copy fed from a folder (external-wal), on real clusters. The source archives with
// `cp %p INCOMING/%f`; the test hands files from there to the staging copy's WAL folder itself, so it decides which
// segment is missing, replaced or cut short. Each break must stop the staging cluster (INACTIVE) within a minute,
// with staging-status naming the expected WAL file in JSON and text and exiting 94; after the real file is put back,
// staging-disable and staging-enable bring it back ACTIVE and caught up. PostgreSQL 15 (gap, another cluster's
// segment, a truncated segment) and 13 (gap). On 15 also a streaming copy (external-streaming): the source stopped is a
// fault, INACTIVE, cleared when streaming resumes. pg_basebackup is Debian's PostgreSQL 15, which serves a 13 server too.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, copyFile, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { walSegmentNext } from '../../src/pg/wal.js'
import { availableMajors, Cluster, createCluster, runWalden, testDir } from '../harness/cluster.js'
import type { RunResult, TestDir } from '../harness/cluster.js'
import { clientBin, runAsPostgres, waitUntil } from '../harness/staging.js'

const SEGMENT_SIZE = 16 * 1024 * 1024
interface Status {
  status: string
  reason: string | null
  method: string
  running: boolean
  fault: string | null
  'expected-wal': string | null
  'replay-lsn': string | null
  'lag-bytes': number | null
  'newest-wal': string | null
}

for (const major of [15, 13]) {
  describe(`staging WAL chain on PostgreSQL ${major}`, { concurrency: false }, () => {
    let work: TestDir
    let source: Cluster
    let staging: Cluster
    let incoming: string
    let walDir: string
    let configPath: string
    let logPath: string
    let backup: string
    let streamer: Cluster | undefined
    let notes = 0

    const walden = (args: readonly string[], stanza = 'chain'): Promise<RunResult> =>
      runWalden([`--config=${configPath}`, `--stanza=${stanza}`, ...args], { timeoutMs: 180_000 })
    const waldenOk = async (args: readonly string[]): Promise<RunResult> => {
      const result = await walden(args)
      assert.equal(result.code, 0, `walden ${args.join(' ')}\n${result.stdout}\n${result.stderr}`)
      return result
    }
    const status = async (): Promise<{ code: number; json: Status }> => {
      const result = await walden(['staging-status', '--output=json'])
      return { code: result.code, json: JSON.parse(result.stdout) as Status }
    }

    /** Writes a row on the source and switches WAL; returns the row's text and the segment it was archived in. */
    const writeAndSwitch = async (): Promise<{ note: string; segment: string }> => {
      const note = `note-${++notes}`
      await source.query('insert into chain_notes values ($1)', [note])
      const segment = await source.psqlScalar('select pg_walfile_name(pg_switch_wal())')
      // The archiver counts a segment once its `cp` has finished; the file shows up in the folder before that.
      await waitUntil(`'${segment}' archived`, async () => (await source.psqlScalar('select last_archived_wal from pg_stat_archiver')) >= segment)
      return { note, segment }
    }
    /** Copies a file into the WAL folder, readable by the staging cluster's OS user (the copy is root's). */
    const place = async (from: string, name: string): Promise<void> => {
      await copyFile(from, join(walDir, name))
      await chmod(join(walDir, name), 0o644)
    }
    /** Hands every archived file the WAL folder lacks to it, except `except`. */
    const deliver = async (except: readonly string[] = []): Promise<void> => {
      const present = new Set(await readdir(walDir))
      for (const name of (await readdir(incoming)).sort()) {
        if (!present.has(name) && !except.includes(name)) await place(join(incoming, name), name)
      }
    }
    const visible = async (note: string): Promise<boolean> => (await staging.psqlScalar('select count(*) from chain_notes where note = $1', [note])) === '1'

    /** The staging copy stops by itself, and staging-status names `expected` in JSON and text, exiting 94. */
    const assertBroken = async (expected: string, why: RegExp): Promise<void> => {
      const started = Date.now()
      // The bound: INACTIVE within a minute.
      await waitUntil('the staging cluster to stop after the break', async () => !staging.isRunning(), 60_000)
      assert.ok(Date.now() - started < 60_000)
      const { code, json } = await status()
      assert.equal(code, 94)
      assert.equal(json.status, 'INACTIVE')
      assert.equal(json.running, false)
      assert.equal(json['expected-wal'], expected)
      assert.match(json.fault ?? '', new RegExp(`WAL file '${expected}'`))
      assert.match(json.fault ?? '', why)
      const text = await walden(['staging-status'])
      assert.equal(text.code, 94)
      assert.match(text.stdout, /status: INACTIVE/)
      assert.match(text.stdout, new RegExp(`expected WAL: ${expected}`))
      assert.match(text.stdout, new RegExp(`fault: WAL file '${expected}'`))
      assert.match(text.stderr, new RegExp(`staging copy of stanza 'chain' is INACTIVE: WAL file '${expected}'`))
      // PostgreSQL's log has walden's refusal, naming the expected file.
      assert.match(await readFile(join(logPath, 'chain-postgresql-staging.log'), 'utf8'), new RegExp(`staging copy of stanza 'chain' stopped: expected WAL file '${expected}'`))
    }
    /** The real file back in place, disable and enable: ACTIVE again, and `note` replayed. */
    const repairAndResume = async (note: string): Promise<void> => {
      await deliver()
      await waldenOk(['staging-disable'])
      await waldenOk(['staging-enable'])
      await waitUntil(`row '${note}' on the staging copy`, () => visible(note))
      const { code, json } = await status()
      assert.equal(code, 0, JSON.stringify(json))
      assert.equal(json.status, 'ACTIVE')
      assert.equal(json.fault, null)
    }
    /** Waits until the staging copy has asked for the file after the newest in its folder, and returns that name. */
    const expectedNext = async (): Promise<string> => {
      const newest = (await readdir(walDir)).filter((name) => /^[0-9A-F]{24}(\.gz)?$/.test(name)).map((name) => name.slice(0, 24)).sort().at(-1)!
      const expected = walSegmentNext(newest, SEGMENT_SIZE)
      await waitUntil(`staging-status to expect '${expected}'`, async () => (await status()).json['expected-wal'] === expected)
      return expected
    }

    before(async () => {
      assert.ok((await availableMajors()).includes(major), `PostgreSQL ${major} is installed`)
      work = await testDir(`walden-walchain-pg${major}`)
      incoming = await work.mkdir('incoming')
      walDir = await work.mkdir('wal')
      logPath = await work.mkdir('log')
      source = await createCluster({
        major,
        dir: work,
        name: 'source',
        settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `test ! -f ${incoming}/%f && cp %p ${incoming}/%f`, max_wal_senders: '4', wal_keep_size: '256MB' },
      })
      await source.start()
      await source.query('create table chain_notes (note text primary key)')
      configPath = join(work.path, 'walden.conf')
      await writeFile(
        configPath,
        ['[global]', `repo1-path=${await work.mkdir('repo')}`, `lock-path=${await work.mkdir('lock')}`, `log-path=${logPath}`, `spool-path=${await work.mkdir('spool')}`, 'backup-standby=only', ''].join('\n'),
      )
      backup = join(work.path, 'backup')
      const bin = await clientBin()
      const taken = await runAsPostgres(join(bin, 'pg_basebackup'), ['-h', source.socketDir, '-p', String(source.port), '-U', 'postgres', '-D', backup, '-F', 'p', '-X', 'stream', '-c', 'fast'])
      assert.equal(taken.code, 0, taken.stderr)
      staging = await Cluster.adopt({ major, dir: work, name: 'staging' })
      await deliver()
      await waldenOk([
        'staging-link',
        '--staging-method=external-wal',
        `--staging-path=${staging.dataDir}`,
        `--staging-port=${staging.port}`,
        `--staging-backup-path=${backup}`,
        `--staging-wal-path=${walDir}`,
        `--staging-setting=unix_socket_directories=${staging.socketDir}`,
        // A quick retry keeps the test short; PostgreSQL's default is 5s.
        '--staging-setting=wal_retrieve_retry_interval=1s',
      ])
    })

    after(async () => {
      await staging?.stop('immediate').catch(() => {})
      await streamer?.stop('immediate').catch(() => {})
      await work?.cleanup()
    })

    test('files placed in order are served (one gzip-compressed): ACTIVE, caught up, the next file expected', async () => {
      const { note, segment } = await writeAndSwitch()
      // The folder may hold a compressed copy instead of the plain file.
      await writeFile(join(walDir, `${segment}.gz`), gzipSync(await readFile(join(incoming, segment))), { mode: 0o644 })
      await deliver([segment])
      await waitUntil(`row '${note}' on the staging copy`, () => visible(note))
      const expected = await expectedNext()
      const { code, json } = await status()
      assert.equal(code, 0)
      assert.equal(json.status, 'ACTIVE')
      assert.equal(json.method, 'external-wal')
      assert.equal(json.fault, null)
      assert.equal(json['lag-bytes'], 0)
      assert.equal(walSegmentNext(json['newest-wal']!, SEGMENT_SIZE), expected)
      const text = await walden(['staging-status'])
      assert.equal(text.code, 0, text.stderr)
      assert.match(text.stdout, /status: ACTIVE\n/)
      assert.match(text.stdout, new RegExp(`expected WAL: ${expected}`))
      const none = await walden(['staging-status'], 'nothing-here')
      assert.equal(none.code, 55)
      assert.match(none.stderr, /stanza 'nothing-here' has no staging copy on this host/)
    })

    test('a segment missing while later ones are there: INACTIVE, the expected file named; put back, ACTIVE again', async () => {
      const expected = await expectedNext()
      const first = await writeAndSwitch()
      assert.equal(first.segment, expected)
      const second = await writeAndSwitch()
      await deliver([expected])
      await assertBroken(expected, new RegExp(`missing from the WAL folder, but later WAL file '${second.segment}' is there`))
      await repairAndResume(second.note)
    })

    if (major !== 15) return

    test("a segment of another cluster under the expected name: INACTIVE, named; the real one, ACTIVE again", async () => {
      const expected = await expectedNext()
      const other = await createCluster({ major, dir: work, name: 'other', settings: { wal_keep_size: '1GB' } })
      try {
        await other.start()
        // The other cluster writes WAL until it has a segment at the same position.
        await other.query('create table filler (n int)')
        for (let round = 0; round < 40; round++) {
          const name = await other.psqlScalar("select pg_walfile_name(pg_current_wal_lsn())")
          if (name > expected) break
          await other.query('insert into filler values (1)')
          await other.query('select pg_switch_wal()')
        }
        await other.query('checkpoint')
        await place(join(other.dataDir, 'pg_wal', expected), expected)
      } finally {
        await other.destroy()
      }
      const written = await writeAndSwitch()
      await assertBroken(expected, /is WAL of system \d+, not of the staging cluster \(system \d+\)/)
      await place(join(incoming, expected), expected)
      await repairAndResume(written.note)
    })

    test('a truncated segment under the expected name: INACTIVE, named; the whole one, ACTIVE again', async () => {
      const expected = await expectedNext()
      const written = await writeAndSwitch()
      assert.equal(written.segment, expected)
      const whole = await readFile(join(incoming, expected))
      await writeFile(join(walDir, expected), whole.subarray(0, whole.length / 2), { mode: 0o644 })
      await assertBroken(expected, new RegExp(`is ${whole.length / 2} bytes, expected ${whole.length}`))
      await place(join(incoming, expected), expected)
      await repairAndResume(written.note)
    })

    test('streaming (external-streaming): ACTIVE while it streams; the source stopped is a fault (INACTIVE, 94) that clears when streaming resumes', async () => {
      streamer = await Cluster.adopt({ major, dir: work, name: 'streamer' })
      const linked = await walden(
        [
          'staging-link',
          '--staging-method=external-streaming',
          `--staging-path=${streamer.dataDir}`,
          `--staging-port=${streamer.port}`,
          `--staging-backup-path=${backup}`,
          `--staging-source=host=127.0.0.1 port=${source.port} user=postgres`,
          `--staging-setting=unix_socket_directories=${streamer.socketDir}`,
          '--staging-setting=wal_retrieve_retry_interval=1s',
        ],
        'stream',
      )
      assert.equal(linked.code, 0, linked.stderr)
      const streamStatus = async (): Promise<{ code: number; json: Status & { receiver: { status: string } | null } }> => {
        const result = await walden(['staging-status', '--output=json'], 'stream')
        return { code: result.code, json: JSON.parse(result.stdout) as Status & { receiver: { status: string } | null } }
      }
      await waitUntil('the streaming copy ACTIVE', async () => {
        const { code, json } = await streamStatus()
        return code === 0 && json.status === 'ACTIVE' && json.receiver?.status === 'streaming'
      })
      const active = (await streamStatus()).json
      assert.equal(active.method, 'external-streaming')
      assert.equal(active['expected-wal'], null)
      assert.equal(typeof active['lag-bytes'], 'number')

      await source.stop()
      try {
        await waitUntil('a streaming fault', async () => (await streamStatus()).code === 94, 90_000)
        const { json } = await streamStatus()
        assert.equal(json.status, 'INACTIVE')
        assert.equal(json.running, true)
        assert.match(json.fault ?? '', /^streaming from the source has stopped: the WAL receiver is (not running|'[a-z]+')/)
        const text = await walden(['staging-status'], 'stream')
        assert.equal(text.code, 94)
        assert.match(text.stdout, /fault: streaming from the source has stopped/)
        // Recorded, so that a snapshot is refused while it stands.
        const record = JSON.parse(await readFile(join(work.path, 'spool', 'staging', 'copy', 'stream.json'), 'utf8')) as { fault?: { message: string } }
        assert.match(record.fault?.message ?? '', /^streaming from the source has stopped/)
        const snapshot = await walden(['staging-snapshot'], 'stream')
        assert.equal(snapshot.code, 92, snapshot.stderr)
        assert.match(snapshot.stderr, /staging copy of stanza 'stream' has a fault, so no snapshot is taken: streaming from the source has stopped/)
      } finally {
        await source.start()
      }
      await waitUntil('streaming again, the fault cleared', async () => {
        const { code, json } = await streamStatus()
        return code === 0 && json.fault === null
      }, 90_000)
      const { note } = await writeAndSwitch()
      await waitUntil(`row '${note}' streamed`, async () => (await streamer!.psqlScalar('select count(*) from chain_notes where note = $1', [note])) === '1')
    })

    test('a timeline switch on the source: the history file is served and the copy follows the new timeline', async () => {
      // A standby of the source that archives into the same folder once promoted (archive_mode=on: its history file,
      // the old timeline's last segment as .partial, then the new timeline's segments).
      const promoted = await Cluster.adopt({ major, dir: work, name: 'promoted' })
      try {
        const taken = await runAsPostgres(join(await clientBin(), 'pg_basebackup'), ['-h', source.socketDir, '-p', String(source.port), '-U', 'postgres', '-D', promoted.dataDir, '-F', 'p', '-X', 'stream', '-c', 'fast', '-R'])
        assert.equal(taken.code, 0, taken.stderr)
        await promoted.configure({ port: String(promoted.port), unix_socket_directories: promoted.socketDir })
        await promoted.start()
        // The staging copy has everything archived so far and waits for the next segment of timeline 1.
        const before = await writeAndSwitch()
        await deliver()
        await waitUntil(`row '${before.note}' on the staging copy`, () => visible(before.note))
        // A row only in the old timeline's unfinished segment, which the old source never archives.
        await source.query("insert into chain_notes values ('tl1-tail')")
        const end = await source.psqlScalar('select pg_current_wal_lsn()::text')
        await waitUntil('the standby to replay the tail', async () => (await promoted.psqlScalar(`select (pg_last_wal_replay_lsn() >= '${end}')::text`)) === 'true')
        await source.stop('immediate')
        await promoted.query('select pg_promote()')
        await waitUntil('the promotion', async () => (await promoted.psqlScalar('select pg_is_in_recovery()::text')) === 'false')
        await promoted.query("insert into chain_notes values ('tl2-row')")
        const first = await promoted.psqlScalar('select pg_walfile_name(pg_switch_wal())')
        assert.match(first, /^00000002/)
        await waitUntil(`'${first}' archived`, async () => (await promoted.psqlScalar('select last_archived_wal from pg_stat_archiver')) >= first)
        assert.ok((await readdir(incoming)).includes('00000002.history'))
        await deliver()
        await waitUntil("row 'tl2-row' on the staging copy", () => visible('tl2-row'))
        assert.ok(await visible('tl1-tail'))
        const { code, json } = await status()
        assert.equal(code, 0, JSON.stringify(json))
        assert.match(json['expected-wal'] ?? '', /^00000002/)
      } finally {
        await promoted.stop('immediate').catch(() => {})
      }
    })
  })
}
