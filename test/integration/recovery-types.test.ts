// The recovery types end to end, the backup lock, pg1-path identity checks and retention, on one PostgreSQL 15
// stanza. Tests run in order and share the stanza; each starts from a running primary and leaves one behind.
//
// Each recovery test writes rows to `events` on both sides of its target, archives them (`walden check` switches
// WAL and waits for the segment), stops the server, restores over the same folder with --delta and checks exactly
// which rows survived: the restored data itself proves where recovery stopped. A target that restores without
// promoting would leave the server paused in recovery, so every target restore uses --target-action=promote and
// waits until pg_is_in_recovery() is false. Every promotion starts a new timeline; its history file is waited for in
// the archive before the next restore, because PostgreSQL picks a new timeline id by probing the archive, and a
// missing history file would make two different timelines share one id.

import assert from 'node:assert/strict'
import { chmod, copyFile, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createCluster } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface BackupJson {
  label: string
  type: string
  prior: string | null
  archive: { start: string; stop: string }
}

/** Exit code, the exact first line (and HINT line, if given) on stderr, and no stack trace. */
function assertRefused(result: RunResult, code: number, firstLine: string, hint?: string): void {
  assert.equal(result.code, code, result.stderr)
  const lines = result.stderr.split('\n')
  assert.equal(lines[0], firstLine)
  if (hint !== undefined) assert.equal(lines[1], `HINT: ${hint}`)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** A WAL segment's position across timelines (log and segment number) as a number, for range checks. */
function segmentPosition(walName: string): number {
  return Number.parseInt(walName.slice(8, 16), 16) * 0x100 + Number.parseInt(walName.slice(16, 24), 16)
}

const hex8 = (value: number): string => value.toString(16).toUpperCase().padStart(8, '0')

describe(`recovery types, locking and retention on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let firstFull: string
  let archiveDir: string // <repo>/archive/demo/15-1

  const sql = (text: string, params?: unknown[]): Promise<string> => stanza.cluster.psqlScalar(text, params)
  const insert = async (note: string): Promise<void> => {
    await stanza.cluster.query('insert into events (note) values ($1)', [note])
  }
  /** Every row of events, oldest first: each test states exactly which rows the restored cluster must hold. */
  const notes = async (): Promise<string[]> =>
    (await stanza.cluster.query<{ note: string }>('select note from events order by id')).map((row) => row.note)

  const backups = async (): Promise<BackupJson[]> => {
    const parsed = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<{ backup: BackupJson[] }>
    return parsed[0]!.backup
  }
  /** Takes a backup and returns its label, read from the backup's own log line (no extra `info` run). */
  const backup = async (args: readonly string[]): Promise<string> => {
    const result = await stanza.waldenOk(['backup', ...args, '--log-level-console=info'])
    return /backup begin: \w+ backup (\S+), start LSN/.exec(result.stderr)![1]!
  }

  /** The timeline the server writes on, as pg_control records it (after a checkpoint, which promotion only requests). */
  const timeline = async (): Promise<number> => {
    await stanza.cluster.query('checkpoint')
    return Number(await sql('select timeline_id from pg_control_checkpoint()'))
  }

  /** Names of the stored files in the archive: history files at the top, segments in their 16-hex-digit folders. */
  const archived = async (): Promise<string[]> => {
    const names: string[] = []
    for (const entry of await readdir(archiveDir)) {
      if (/^[0-9A-F]{16}$/.test(entry)) names.push(...(await readdir(join(archiveDir, entry))))
      else names.push(entry)
    }
    return names
  }

  /** Waits until a timeline's history file is in the archive. */
  const waitHistoryArchived = async (tli: number): Promise<void> => {
    for (let attempt = 0; attempt < 300; attempt++) {
      if ((await archived()).some((name) => name.startsWith(`${hex8(tli)}.history.sha256-`))) return
      await sleep(100)
    }
    throw new Error(`${hex8(tli)}.history did not reach the archive\n${await stanza.cluster.logTail()}`)
  }

  /** Waits until recovery has finished and the new timeline's history file is archived; returns the timeline. */
  const waitPromoted = async (): Promise<number> => {
    await stanza.cluster.waitWritable()
    const tli = await timeline()
    await waitHistoryArchived(tli)
    return tli
  }

  /** Stops the server, restores over its folder with --delta and the given options, starts it. */
  const restoreAndStart = async (args: readonly string[]): Promise<void> => {
    await stanza.cluster.stop()
    await stanza.waldenOk(['restore', '--delta', ...args])
    await stanza.cluster.start()
  }

  /** Parent timelines listed in a timeline's history file in pg_wal: the path recovery followed to get there. */
  const historyParents = async (tli: number): Promise<number[]> => {
    const text = await readFile(join(stanza.cluster.dataDir, 'pg_wal', `${hex8(tli)}.history`), 'utf8')
    return text
      .split('\n')
      .filter((line) => /^\d+\t/.test(line))
      .map((line) => Number(line.split('\t')[0]))
  }

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR })
    archiveDir = join(stanza.repoPath, 'archive', 'demo', `${MAJOR}-1`)
    await stanza.cluster.query(`create table events (id serial primary key, note text not null); insert into events (note) values ('base')`)
    await stanza.waldenOk(['stanza-create'])
    firstFull = await backup(['--type=full'])
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('--target-timeline: latest follows a promotion onto the new timeline, current stays on the backup\'s', async () => {
    const base = await timeline()
    // Timeline base: fork-before, restore point 'fork', base-only. Archived, then a PITR to 'fork' promotes to
    // base + 1, where branch-only is written.
    await insert('fork-before')
    await sql(`select pg_create_restore_point('fork')::text`)
    await insert('base-only')
    await stanza.waldenOk(['check'])
    await restoreAndStart(['--type=name', '--target=fork', '--target-action=promote'])
    assert.equal(await waitPromoted(), base + 1)
    assert.deepEqual(await notes(), ['base', 'fork-before'])
    await insert('branch-only')
    await stanza.waldenOk(['check'])

    // The original backup (taken on timeline base) with latest: recovery switches to base + 1 at the fork and
    // replays branch-only; base-only, written on the old timeline after the fork, is not on that path.
    await restoreAndStart([`--set=${firstFull}`, '--target-timeline=latest'])
    const latest = await waitPromoted()
    assert.equal(latest, base + 2)
    assert.deepEqual(await historyParents(latest), [base, base + 1])
    assert.deepEqual(await notes(), ['base', 'fork-before', 'branch-only'])

    // The same backup with current: recovery replays timeline base to the end of its archived WAL and never
    // switches, so branch-only is absent and base-only is back.
    await restoreAndStart([`--set=${firstFull}`, '--target-timeline=current'])
    const current = await waitPromoted()
    assert.equal(current, base + 3, 'a new timeline past every archived one')
    assert.deepEqual(await historyParents(current), [base])
    assert.deepEqual(await notes(), ['base', 'fork-before', 'base-only'])
  })

  test('--type=immediate stops at the end of the backup: rows written after it are not replayed', async () => {
    await backup(['--type=incr'])
    const before = await notes()
    await insert('after-backup')
    await stanza.waldenOk(['check']) // the row is in the archive, so only the target can keep it out
    await restoreAndStart(['--type=immediate', '--target-action=promote'])
    await waitPromoted()
    assert.deepEqual(await notes(), before)
  })

  test('--type=xid stops after the transaction; with --target-exclusive just before it', async () => {
    await backup(['--type=incr'])
    const before = await notes()
    await stanza.cluster.query('begin')
    await insert('xid-a')
    const xid = await sql('select txid_current()::text')
    await stanza.cluster.query('commit')
    await insert('xid-b')
    await stanza.waldenOk(['check'])

    await restoreAndStart(['--type=xid', `--target=${xid}`, '--target-action=promote'])
    await waitPromoted()
    assert.deepEqual(await notes(), [...before, 'xid-a'])

    // The commit of xid is still on the path recovery follows (the promotion above forked right after it).
    await restoreAndStart(['--type=xid', `--target=${xid}`, '--target-exclusive', '--target-action=promote'])
    await waitPromoted()
    assert.deepEqual(await notes(), before)
  })

  test('--type=name stops at the named restore point', async () => {
    await backup(['--type=incr'])
    const before = await notes()
    await insert('name-a')
    await sql(`select pg_create_restore_point('before-b')::text`)
    await insert('name-b')
    await stanza.waldenOk(['check'])
    await restoreAndStart(['--type=name', '--target=before-b', '--target-action=promote'])
    await waitPromoted()
    assert.deepEqual(await notes(), [...before, 'name-a'])
  })

  test('--type=lsn stops at the LSN; a target that is not an LSN is refused before the folder is touched', async () => {
    await backup(['--type=incr'])
    const before = await notes()
    await insert('lsn-a')
    // Both inserts commit, which flushes WAL: this is past lsn-a's commit record and before lsn-b's.
    const lsn = await sql('select pg_current_wal_lsn()::text')
    await insert('lsn-b')
    await stanza.waldenOk(['check'])
    await stanza.cluster.stop()

    // Asserted at the end, so a wrong answer here does not leave the later tests without a server.
    const refused = await stanza.walden(['restore', '--delta', '--type=lsn', '--target=not-an-lsn', '--target-action=promote'])
    const untouched = await exists(join(stanza.cluster.dataDir, 'global', 'pg_control'))

    await restoreAndStart(['--type=lsn', `--target=${lsn}`, '--target-action=promote'])
    await waitPromoted()
    assert.deepEqual(await notes(), [...before, 'lsn-a'])

    // An option value of the wrong type: OptionInvalidValue, like an unparsable --target for --type=time.
    assertRefused(
      refused,
      32,
      `P00  ERROR: [032]: target lsn 'not-an-lsn' is not an LSN`,
      'give it as PostgreSQL prints one, e.g. --target=0/3000028.',
    )
    assert.ok(untouched, 'the refused restore left the data folder alone')
  })

  test('--type=standby into the same folder starts a read-only standby with the archived data', async () => {
    await backup(['--type=incr'])
    await insert('standby-row')
    const expected = await notes()
    await stanza.waldenOk(['check'])

    await restoreAndStart(['--type=standby'])
    try {
      assert.ok(await exists(join(stanza.cluster.dataDir, 'standby.signal')))
      assert.equal(await exists(join(stanza.cluster.dataDir, 'recovery.signal')), false)
      assert.equal(await sql('select pg_is_in_recovery()::text'), 'true')
      // A standby opens at consistency (the end of the backup) and goes on replaying: wait for the archived row.
      for (let attempt = 0; attempt < 300 && (await sql(`select count(*) from events where note = 'standby-row'`)) !== '1'; attempt++) {
        await sleep(100)
      }
      assert.deepEqual(await notes(), expected)
      await assert.rejects(stanza.cluster.query(`insert into events (note) values ('on the standby')`), {
        message: 'cannot execute INSERT in a read-only transaction',
      })
      // Still a standby with all the archive replayed: it does not promote by itself at the end of the archive.
      assert.equal(await sql('select pg_is_in_recovery()::text'), 'true')
    } finally {
      // Back to a primary for the tests that follow, even when an assertion above failed: a default restore
      // replays the whole archive and promotes.
      await restoreAndStart([])
      await waitPromoted()
    }
    assert.equal(await exists(join(stanza.cluster.dataDir, 'standby.signal')), false)
    assert.deepEqual(await notes(), expected)
  })

  test('a second backup while one runs is refused naming the first one\'s pid; the first completes', async () => {
    // A big, barely compressible table and gzip level 9 on one process: the first backup runs for seconds.
    await stanza.cluster.query(`create table bulk as select n, md5(n::text) as h from generate_series(1, 400000) n`)
    const labelsBefore = (await backups()).map((item) => item.label)
    const lockFile = join(stanza.lockPath, 'demo-backup.lock')
    const first = stanza.walden(['backup', '--type=full', '--process-max=1', '--compress-type=gz', '--compress-level=9'])
    // The lock file holds the owner's pid (walden itself; runuser is only its parent), then a space or a newline.
    let lockText = ''
    for (let attempt = 0; attempt < 400 && !/^\d+[ \n]/.test(lockText); attempt++) {
      await sleep(25)
      lockText = await readFile(lockFile, 'utf8').catch(() => '')
    }
    assert.match(lockText, /^\d+[ \n]/, 'the first backup took its lock')
    const pid = Number.parseInt(lockText, 10)

    const second = await stanza.walden(['backup', '--type=incr'])
    // The refusal only proves something if the first backup still held the lock when the second one asked.
    const stillHeld = (await readFile(lockFile, 'utf8').catch(() => 'gone')) === lockText
    const firstResult = await first
    assert.ok(stillHeld, 'the first backup was still running when the second one finished')
    assertRefused(
      second,
      50,
      `P00  ERROR: [050]: unable to acquire lock 'demo-backup': held by walden process ${pid}`,
      'wait for it to finish, or end it with `walden stop --force`.',
    )

    assert.equal(firstResult.code, 0, firstResult.stderr)
    assert.equal(await exists(lockFile), false, 'the lock is released')
    const added = (await backups()).filter((item) => !labelsBefore.includes(item.label))
    assert.deepEqual(added.map((item) => item.type), ['full'], 'only the first backup was recorded')
    await stanza.cluster.query('drop table bulk') // keeps the later backups small
  })

  test('stanza-create and check refuse a pg1-path that is not the server\'s data directory', async () => {
    const where = `socket '${stanza.cluster.socketDir}/.s.PGSQL.${stanza.cluster.port}'`
    const refusal = (path: string): string =>
      `P00  ERROR: [058]: pg1-path '${path}' is not the data directory '${stanza.cluster.dataDir}' of the server at ${where}`
    const hint = 'point pg1-path and pg1-port (or pg1-socket-path) at the same cluster.'

    // Another cluster's folder (initdb'd, not running) while the configured port reaches this stanza's server.
    const other = await createCluster({ major: MAJOR, dir: stanza.dir, name: 'other' })
    assertRefused(await stanza.walden(['stanza-create', `--pg1-path=${other.dataDir}`]), 58, refusal(other.dataDir), hint)
    assertRefused(await stanza.walden(['check', `--pg1-path=${other.dataDir}`]), 58, refusal(other.dataDir), hint)

    // A stale copy of this very cluster: its pg_control matches the stanza, so only the data_directory check can
    // tell that walden would back up the wrong folder.
    const copy = await stanza.dir.mkdir('stale-copy')
    await stanza.dir.mkdir('stale-copy/global')
    await copyFile(join(stanza.cluster.dataDir, 'global', 'pg_control'), join(copy, 'global', 'pg_control'))
    await chmod(join(copy, 'global', 'pg_control'), 0o644) // copied by root; walden runs as postgres
    assertRefused(await stanza.walden(['check', `--pg1-path=${copy}`]), 58, refusal(copy), hint)
    assertRefused(await stanza.walden(['stanza-create', `--pg1-path=${copy}`]), 58, refusal(copy), hint)
  })

  test('repo1-retention-diff=1: a newer diff expires the older one and the incr built on it', async () => {
    await stanza.writeConfig(['repo1-retention-diff=1'])
    try {
      // The diffs build on the newest full, whichever test took it.
      const others = (await backups()).map((item) => item.label)
      await insert('retention-diff-1')
      const diff1 = await backup(['--type=diff'])
      await insert('retention-incr')
      const incr = await backup(['--type=incr'])
      const middle = await backups()
      assert.deepEqual(middle.map((item) => item.label), [...others, diff1, incr], 'one diff is within the limit')
      assert.equal(middle.at(-1)!.prior, diff1, 'the incr builds on the first diff')
      await insert('retention-diff-2')
      const result = await stanza.waldenOk(['backup', '--type=diff', '--log-level-console=info'])
      const diff2 = /backup begin: diff backup (\S+),/.exec(result.stderr)![1]!

      const after = await backups()
      assert.deepEqual(after.map((item) => item.label), [...others, diff2])
      assert.equal(after.at(-1)!.prior, middle.at(-2)!.prior, 'both diffs build on the same full')
      assert.ok(result.stderr.includes(`P00   INFO: expired backup ${diff1}\n`), result.stderr)
      assert.ok(result.stderr.includes(`P00   INFO: expired backup ${incr}\n`), result.stderr)
      const folders = await readdir(join(stanza.repoPath, 'backup', 'demo'))
      assert.equal(folders.includes(diff1), false)
      assert.equal(folders.includes(incr), false)
      assert.ok(folders.includes(diff2))
    } finally {
      await stanza.writeConfig()
    }
  })

  test('repo1-retention-archive=1: WAL between two fulls goes, the older full keeps its own WAL and restores', async () => {
    await stanza.writeConfig(['repo1-retention-full=2', 'repo1-retention-archive=1'])
    try {
      await insert('in-full-a')
      await backup(['--type=full'])
      const expected = await notes()
      // Two segments of WAL after full A, archived: only point-in-time recovery from A would need them.
      const between: string[] = []
      for (const note of ['after-full-a-1', 'after-full-a-2']) {
        await insert(note)
        between.push(/WAL segment ([0-9A-F]{24}) archived/.exec((await stanza.waldenOk(['check'])).stdout)![1]!)
      }
      await backup(['--type=full'])

      const [fullA, fullB, ...rest] = await backups()
      assert.equal(rest.length, 0, 'repo1-retention-full=2 keeps the two newest fulls and nothing that depends on older ones')
      assert.equal(fullA!.type, 'full')
      assert.equal(fullB!.type, 'full')
      const [aStart, aStop, bStart] = [fullA!.archive.start, fullA!.archive.stop, fullB!.archive.start]
      for (const segment of between) {
        assert.ok(segmentPosition(segment) > segmentPosition(aStop) && segmentPosition(segment) < segmentPosition(bStart), `${segment} lies between the fulls`)
      }

      const names = await archived()
      const segments = names.filter((name) => /^[0-9A-F]{24}-/.test(name)).map((name) => name.slice(0, 24))
      for (const segment of between) assert.equal(segments.includes(segment), false, `${segment} expired`)
      // Full A's own WAL, start to stop, is all there: without it A could not be made consistent.
      for (let position = segmentPosition(aStart); position <= segmentPosition(aStop); position++) {
        const name = `${aStart.slice(0, 8)}${hex8(Math.floor(position / 0x100))}${hex8(position % 0x100)}`
        assert.ok(segments.includes(name), `${name} of full A is kept`)
      }
      // Nothing else is older than full B's start; timeline history files all stay.
      for (const segment of segments) {
        const position = segmentPosition(segment)
        const inA = segment.slice(0, 8) === aStart.slice(0, 8) && position >= segmentPosition(aStart) && position <= segmentPosition(aStop)
        assert.ok(inA || position >= segmentPosition(bStart), `${segment} should have expired`)
      }
      const tli = await timeline()
      for (let history = 2; history <= tli; history++) {
        assert.ok(names.includes(`${hex8(history)}.history`), `${hex8(history)}.history is kept`)
        assert.ok(names.some((name) => name.startsWith(`${hex8(history)}.history.sha256-`)), `${hex8(history)}.history's checksum record is kept`)
      }

      await restoreAndStart([`--set=${fullA!.label}`, '--type=immediate', '--target-action=promote'])
      await waitPromoted()
      assert.deepEqual(await notes(), expected)
    } finally {
      await stanza.writeConfig()
    }
  })
})
