// Backups from a standby (backup-standby), on one host: a primary archiving through walden and a streaming standby
// made by standby-create. y reads relation files from the standby while the backup starts and stops on the primary;
// a paused standby makes y fail and prefer fall back; a pg2 of another cluster is refused; only backs up the standby
// with the primary stopped. Every backup is restored into a fresh cluster that must start and dump equal. No table
// has a sequence: a sequence restored from WAL is legitimately ahead of the running server's.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Cluster, createCluster, dumpDatabase } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    if (await check().catch(() => false)) return
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

describe('backup-standby: backups from a standby', { concurrency: false }, () => {
  let stanza: TestStanza
  let primary: Cluster
  let standby: Cluster
  let restores = 0

  /** The standby as pg2, on the command line (pg2-path may only be in a stanza section of the config file). */
  const pg2 = (): string[] => [`--pg2-path=${standby.dataDir}`, `--pg2-port=${standby.port}`, `--pg2-socket-path=${standby.socketDir}`]
  const caughtUp = async (): Promise<void> => {
    const target = await primary.psqlScalar('select pg_current_wal_lsn()::text')
    await waitUntil('the standby to replay the primary', async () => (await standby.psqlScalar(`select (pg_last_wal_replay_lsn() >= '${target}')::text`)) === 'true').catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}\n--- standby log ---\n${await standby.logTail()}`)
    })
  }
  /** Restores a backup into a fresh cluster, starts it, and returns its dump. */
  const restoreAndDump = async (set: string, args: readonly string[] = []): Promise<string> => {
    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: `restored-${++restores}` })
    const restored = await stanza.walden([
      'restore', `--set=${set}`, `--pg1-path=${copy.dataDir}`, `--pg1-port=${copy.port}`, '--archive-mode=off',
      `--recovery-option=unix_socket_directories=${copy.socketDir}`, ...args,
    ])
    assert.equal(restored.code, 0, restored.stderr)
    await copy.start()
    try {
      await copy.waitWritable(60_000)
      return await dumpDatabase(copy)
    } finally {
      await copy.stop()
    }
  }
  const newestLabel = async (): Promise<string> => {
    const info = JSON.parse((await stanza.waldenOk(['info', '--output=json'])).stdout) as Array<{ backup: Array<{ label: string }> }>
    return info[0]!.backup.at(-1)!.label
  }

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'standby', settings: { hot_standby: 'on', wal_keep_size: '128MB' } })
    primary = stanza.cluster
    await primary.query(`create table accounts (id int primary key, balance bigint not null)`)
    await primary.query(`insert into accounts select n, 0 from generate_series(1, 10000) n`)
    await primary.query(`create table history (account int not null, delta int not null)`)
    // A table nothing writes: its file on the primary is made unreadable to prove where the backup read it from.
    await primary.query(`create table cold (id int, note text) with (autovacuum_enabled = off)`)
    await primary.query(`insert into cold select n, repeat('c', 100) from generate_series(1, 5000) n`)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])

    standby = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'pg-standby' })
    const created = await stanza.walden([
      'standby-create', `--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`, `--primary-conninfo=host=127.0.0.1 port=${primary.port} user=postgres`,
    ])
    assert.equal(created.code, 0, created.stderr)
    await standby.configure({ unix_socket_directories: standby.socketDir })
    await standby.start()
    await caughtUp()
  })

  after(async () => {
    if (process.env['DEBUG_KEEP'] !== undefined) {
      console.log(await primary.logTail(60), await standby.logTail(60))
    }
    await stanza?.dir.cleanup()
  })

  test('y: relation files come from the standby; one unreadable on the primary is still backed up', async () => {
    // The cold table's file, flushed on both clusters, then unreadable on the primary only.
    await primary.query('checkpoint')
    await caughtUp()
    await standby.query('checkpoint')
    const coldFile = join(primary.dataDir, await primary.psqlScalar(`select pg_relation_filepath('cold')`))
    await chmod(coldFile, 0o000)
    try {
      // A backup from the primary alone must fail on that file: the proof below could not pass by accident.
      const fromPrimary = await stanza.walden(['backup', '--type=full'])
      assert.equal(fromPrimary.code, 41, fromPrimary.stderr)
      assert.match(fromPrimary.stderr, new RegExp(`${coldFile.replaceAll('/', '\\/')}.*permission denied`))

      const backup = await stanza.walden(['backup', '--type=full', '--backup-standby=y', '--log-level-console=info', ...pg2()])
      assert.equal(backup.code, 0, backup.stderr)
      assert.match(backup.stderr, /relation files are read from the standby pg2 '.*pg-standby', the rest from pg1/)
      assert.match(backup.stderr, /backup-standby: .* read from pg2 '.*pg-standby', .* from pg1/)
    } finally {
      // (That backup records the mode the file had on the primary, 0000; the next test restores its own backup.)
      await chmod(coldFile, 0o600)
    }
    const info = await stanza.waldenOk(['info'])
    assert.match(info.stdout, /backup-standby: y, run on pg1, relation files from pg2/)
  })

  test('y while pgbench-like writes run: the restore equals the primary', async () => {
    let writing = true
    const writer = (async () => {
      const client = await primary.connect()
      try {
        for (let round = 0; writing || round < 50; round++) {
          const id = 1 + ((round * 7919) % 10000)
          await client.query('begin')
          await client.query('update accounts set balance = balance + $2 where id = $1', [id, round])
          await client.query('insert into history (account, delta) values ($1, $2)', [id, round])
          await client.query('commit')
        }
      } finally {
        await client.end()
      }
    })()
    const backup = await stanza.walden(['backup', '--type=full', '--backup-standby=y', ...pg2()])
    writing = false
    await writer
    assert.equal(backup.code, 0, backup.stderr)
    const label = await newestLabel()
    const expected = await dumpDatabase(primary)
    await stanza.waldenOk(['check'])
    assert.equal(await restoreAndDump(label), expected)
    // The writes really overlapped the backup: rows were committed between its start and stop.
    const written = Number(await primary.psqlScalar('select count(*) from history'))
    assert.ok(written > 50, `only ${written} writes`)
  })

  test('a standby whose replay is paused: y waits, then fails clearly; prefer falls back to the primary', async () => {
    await standby.query('select pg_wal_replay_pause()')
    try {
      const started = Date.now()
      const refused = await stanza.walden(['backup', '--type=incr', '--backup-standby=y', '--archive-timeout=4', ...pg2()])
      assert.equal(refused.code, 90, refused.stderr)
      assert.ok(Date.now() - started >= 4000, 'it waited for the standby')
      assert.match(refused.stderr, /pg2 at .* did not replay to the backup's start LSN [0-9A-F]+\/[0-9A-F]+ within 4 second\(s\): replayed to [0-9A-F]+\/[0-9A-F]+, and its replay is paused/)
      assert.match(refused.stderr, /HINT: resume replay on the standby/)

      const fallback = await stanza.walden(['backup', '--type=incr', '--backup-standby=prefer', '--archive-timeout=4', '--log-level-console=info', ...pg2()])
      assert.equal(fallback.code, 0, fallback.stderr)
      assert.match(fallback.stderr, /WARN: backup-standby=prefer: the standby pg2 is not usable \(pg2 at .* replay is paused\); the files are copied from the primary pg1/)
      assert.doesNotMatch(fallback.stderr, /read from pg2/)
    } finally {
      await standby.query('select pg_wal_replay_resume()')
    }
    const info = await stanza.waldenOk(['info'])
    assert.match(info.stdout, /backup-standby: prefer, run on pg1, relation files from pg1/)
    const label = await newestLabel()
    const expected = await dumpDatabase(primary)
    await stanza.waldenOk(['check'])
    assert.equal(await restoreAndDump(label), expected)
  })

  test('prefer with the standby down copies from the primary and says why', async () => {
    await standby.stop()
    try {
      const fallback = await stanza.walden(['backup', '--type=incr', '--backup-standby=prefer', ...pg2()])
      assert.equal(fallback.code, 0, fallback.stderr)
      assert.match(fallback.stderr, /WARN: backup-standby=prefer: no usable standby \(pg2: unable to connect to PostgreSQL at socket .*\); the files are copied from the primary pg1/)
      const refused = await stanza.walden(['backup', '--type=incr', '--backup-standby=y', ...pg2()])
      assert.equal(refused.code, 56, refused.stderr)
      assert.match(refused.stderr, /backup-standby=y found no usable standby: pg2: unable to connect/)
    } finally {
      await standby.start()
    }
  })

  test('check with backup-standby names the standby the backup would use, and fails as the backup would without one', async () => {
    const ok = await stanza.walden(['check', '--backup-standby=y', ...pg2()])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, new RegExp(`backup-standby=y: standby pg2 '${standby.dataDir}' is in recovery, of this cluster`))
    await standby.stop()
    try {
      const refused = await stanza.walden(['check', '--backup-standby=y', ...pg2()])
      assert.equal(refused.code, 56, refused.stderr)
      assert.match(refused.stderr, /backup-standby=y found no usable standby: pg2: unable to connect/)
      const warned = await stanza.walden(['check', '--backup-standby=prefer', ...pg2()])
      assert.equal(warned.code, 0, warned.stderr)
      assert.match(warned.stderr, /WARN: backup-standby=prefer: no usable standby \(pg2: unable to connect/)
    } finally {
      await standby.start()
    }
  })

  test('a pg2 that is another cluster is refused', async () => {
    // Another cluster, also in recovery (an empty standby.signal and no WAL source), so only its identity differs.
    // The real standby is stopped meanwhile: two clusters at a time on the CI machine.
    await standby.stop()
    const other = await createCluster({ major: MAJOR, dir: stanza.dir, name: 'other-cluster', settings: { hot_standby: 'on' } })
    // Started once as a primary first: pg_control must record this max_connections, which a standby needs to match.
    await other.start()
    await other.stop()
    await writeFile(join(other.dataDir, 'standby.signal'), '')
    await chmod(join(other.dataDir, 'standby.signal'), 0o600)
    const { execFileSync } = await import('node:child_process')
    execFileSync('chown', ['postgres:postgres', join(other.dataDir, 'standby.signal')])
    await other.start()
    try {
      const args = [`--pg2-path=${other.dataDir}`, `--pg2-port=${other.port}`, `--pg2-socket-path=${other.socketDir}`]
      for (const mode of ['y', 'prefer']) {
        const refused = await stanza.walden(['backup', '--type=incr', `--backup-standby=${mode}`, ...args])
        assert.equal(refused.code, 58, refused.stderr)
        assert.match(refused.stderr, /pg2 '.*other-cluster' is not a standby of the cluster at pg1 '.*': system identifier \d+, version 15 against \d+, version 15/)
      }
    } finally {
      await other.stop()
      await standby.start()
    }
  })

  test('only: with the primary stopped, the standby is backed up alone and the restore equals it', async () => {
    await primary.query(`insert into history (account, delta) select n, -n from generate_series(1, 2000) n`)
    await caughtUp()
    await primary.stop()

    // Where the primary's socket was, a listener that counts who knocks: the backup must never try pg1.
    let knocks = 0
    const listener = createServer((socket) => {
      knocks++
      socket.destroy()
    })
    const socketFile = join(primary.socketDir, `.s.PGSQL.${primary.port}`)
    await new Promise<void>((resolve) => listener.listen(socketFile, resolve))
    await chmod(socketFile, 0o777)
    let backup
    try {
      backup = await stanza.walden(['backup', '--type=full', '--backup-standby=only', '--log-level-console=info', ...pg2()])
      // The listener does see a connection to pg1, as a check that it works.
      const check = await stanza.walden(['backup', '--type=full'])
      assert.equal(check.code, 56, check.stderr)
    } finally {
      await new Promise<void>((resolve) => listener.close(() => resolve()))
    }
    assert.equal(knocks, 1, 'only the check connected to pg1')
    assert.equal(backup.code, 0, backup.stderr)
    assert.match(backup.stderr, /start LSN [0-9A-F/]+ on the standby pg2/)
    assert.match(backup.stderr, /WAL [0-9A-F]{24} to [0-9A-F]{24}, copied into the backup from the standby/)
    const info = await stanza.waldenOk(['info'])
    assert.match(info.stdout, /backup-standby: only, run on pg2, relation files from pg2/)

    // The backup holds its own WAL, so verify does not count the segments the archive lacks against it.
    const verified = await stanza.walden(['verify'])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)

    const label = await newestLabel()
    const expected = await dumpDatabase(standby)
    assert.equal(await restoreAndDump(label), expected)
    await primary.start()
  })
})
