// PostgreSQL clusters for the benchmark: the source cluster (initdb with data checksums, pgbench data, archiving
// into both tools' repositories) and restored copies started only to check they work.

import { appendFile, chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BenchError, IS_ROOT, measure, requestMark, run, RUN_USER, runSyncQuiet, say, tail } from './proc.mjs'

/** Data folders of servers that may be running, stopped by the clean-up whatever ends the bench. */
export const runningServers = new Set()

export function stopAllServersSync(pgBin) {
  for (const dataDir of runningServers) {
    runSyncQuiet(join(pgBin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'])
  }
  runningServers.clear()
}

let ownerIds
/** uid/gid of the cluster owner (postgres when root, else ourselves). */
export async function ownerIdsGet() {
  if (ownerIds) return ownerIds
  if (!IS_ROOT) return (ownerIds = { uid: process.getuid(), gid: process.getgid() })
  const { stdout: uid } = await run('id', ['-u', RUN_USER], { owner: false })
  const { stdout: gid } = await run('id', ['-g', RUN_USER], { owner: false })
  return (ownerIds = { uid: Number(uid), gid: Number(gid) })
}

/** A folder owned by the cluster owner. */
export async function ownedFolder(path, mode = 0o700) {
  await mkdir(path, { recursive: true })
  const { uid, gid } = await ownerIdsGet()
  await chown(path, uid, gid)
  await chmod(path, mode)
  return path
}

/** A file owned by the cluster owner. */
export async function ownedFile(path, content, mode = 0o600) {
  await writeFile(path, content)
  const { uid, gid } = await ownerIdsGet()
  await chown(path, uid, gid)
  await chmod(path, mode)
  return path
}

export class Server {
  /** @param {{ pgBin: string, dataDir: string, port: number, socketDir: string, logFile: string }} options */
  constructor(options) {
    Object.assign(this, options)
  }

  get ctl() {
    return join(this.pgBin, 'pg_ctl')
  }

  async start() {
    runningServers.add(this.dataDir)
    const result = await run(this.ctl, ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '3600'], {
      allowFail: true,
      // Own session, so Ctrl-C reaches the bench, not the server, and the clean-up can stop it properly.
      detached: true,
    })
    if (result.code !== 0) {
      throw new BenchError(`PostgreSQL did not start on ${this.dataDir}\n${tail(result.stdout + result.stderr)}\n  server log:\n${await this.logTail()}`)
    }
  }

  async stop(mode = 'fast') {
    await run(this.ctl, ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '600'], { detached: true, allowFail: true })
    runningServers.delete(this.dataDir)
  }

  async logTail(lines = 30) {
    const text = await readFile(this.logFile, 'utf8').catch(() => '')
    return tail(text, lines)
  }

  /** Runs SQL through psql; returns trimmed unaligned output. */
  async sql(query, options = {}) {
    const { stdout } = await run(
      join(this.pgBin, 'psql'),
      ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', options.db ?? 'postgres', '-c', query],
      { what: `psql: ${query.slice(0, 80)}`, allowFail: options.allowFail ?? false, timeoutMs: options.timeoutMs },
    )
    return stdout.trim()
  }

  /** Waits until the server log matches `pattern`; returns the match. */
  async logWait(pattern, timeoutMs) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const text = await readFile(this.logFile, 'utf8').catch(() => '')
      const match = pattern.exec(text)
      if (match) return match
      if (/FATAL:  (?!the database system is (starting up|not yet accepting))/.test(text) || /PANIC:/.test(text)) {
        throw new BenchError(`server on ${this.dataDir} failed\n${await this.logTail()}`)
      }
      if (Date.now() > deadline) throw new BenchError(`server on ${this.dataDir}: no '${pattern.source}' in its log in time\n${await this.logTail()}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** Waits until the server answers and is out of recovery (promoted). */
  async waitPromoted(timeoutMs = 3_600_000, pollMs = 100) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const { code, stdout } = await run(
        join(this.pgBin, 'psql'),
        ['-X', '-A', '-t', '-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-c', 'select pg_is_in_recovery()'],
        { allowFail: true, timeoutMs: 10_000 },
      )
      if (code === 0 && stdout.trim() === 'f') return
      if (Date.now() > deadline) throw new BenchError(`server on ${this.dataDir} did not finish recovery in time\n${await this.logTail()}`)
      await new Promise((resolve) => setTimeout(resolve, pollMs))
    }
  }

  /**
   * Starts the server in the foreground under measure.py and times its recovery: from start until it is out of
   * recovery. Resolves to { wallS, cpuS } (CPU of the server and everything it ran, restore_command included, up to
   * that point), after stopping the server.
   */
  async timeRecovery() {
    runningServers.add(this.dataDir)
    let markFile
    await rm(this.logFile, { force: true })
    const startedAt = Date.now()
    // pg_ctl starts the server and returns; the postmaster, orphaned, is re-parented to measure.py (a subreaper), which
    // therefore measures the server and everything it runs until it stops.
    const measured = measure(this.ctl, ['start', '-D', this.dataDir, '-l', this.logFile], {
      what: `pg_ctl start -D ${this.dataDir}`,
      intervalS: 0.05,
      onStart: (file) => (markFile = file),
    })
    let failure
    let wallS
    try {
      // The end of recovery is read from the server log (its own millisecond timestamp), not by polling with
      // connections: every refused connection forks a backend, which would add to the CPU measured and compete
      // with the replay.
      const ready = await this.logWait(/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] LOG:  database system is ready to accept connections$/m, 3_600_000)
      wallS = (Date.parse(`${ready[1].replace(' ', 'T')}Z`) - startedAt) / 1000
      await requestMark(markFile)
      // measure.py checks for the mark every 50 ms.
      await new Promise((resolve) => setTimeout(resolve, 250))
    } catch (error) {
      failure = error
    }
    await this.stop('fast')
    const result = await measured
    if (failure) throw failure
    return { wallS, cpuS: result.mark?.cpu_s ?? result.cpuS, rssBytes: null, markWallS: result.mark?.wall_s }
  }
}

/** Settings appended to a restored cluster so it can start next to the source without touching its archive. */
export async function restoredConfAppend(dataDir, port, socketDir) {
  await appendFile(
    join(dataDir, 'postgresql.auto.conf'),
    `\n# added by walden bench: run beside the source cluster, archive nothing\nport = ${port}\nunix_socket_directories = '${socketDir}'\narchive_mode = off\n`,
  )
}

/**
 * Creates, configures and starts a source cluster (empty: create the stanzas, then pgbenchLoad). `settings` are more
 * postgresql.conf lines after the bench's own (later lines win); `hba`, when given, is the whole pg_hba.conf.
 */
export async function sourceClusterCreate({ pgBin, dataDir, port, socketDir, logFile, archiveCommand, settings = [], hba }) {
  await rm(dataDir, { recursive: true, force: true })
  await ownedFolder(dataDir)
  await run(join(pgBin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--data-checksums', '--encoding=UTF8', '--locale=C'], {
    what: 'initdb',
  })
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    [
      '',
      '# walden bench',
      `port = ${port}`,
      "listen_addresses = ''",
      `unix_socket_directories = '${socketDir}'`,
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = '${archiveCommand}'`,
      'max_wal_size = 2GB',
      'checkpoint_timeout = 30min',
      'shared_buffers = 256MB',
      "log_line_prefix = '%m [%p] '",
      "log_timezone = 'UTC'",
      // Only the bench writes: WAL volume and changed files are the same for both tools, run after run.
      'autovacuum = off',
      ...settings,
      '',
    ].join('\n'),
  )
  if (hba !== undefined) await ownedFile(join(dataDir, 'pg_hba.conf'), [...hba, ''].join('\n'))
  const server = new Server({ pgBin, dataDir, port, socketDir, logFile })
  await server.start()
  return server
}

/** pgbench -i at `scale`, then VACUUM ANALYZE and a checkpoint. */
export async function pgbenchLoad(server, scale) {
  const { pgBin, socketDir, port } = server
  say(`pgbench -i -s ${scale} (about ${Math.round(scale * 15)} MB)`)
  const t0 = Date.now()
  await run(join(pgBin, 'pgbench'), ['-i', '-s', String(scale), '-q', '-h', socketDir, '-p', String(port), '-U', 'postgres', 'postgres'], {
    what: 'pgbench -i',
  })
  await server.sql('VACUUM ANALYZE')
  await server.sql('CHECKPOINT')
  say(`pgbench data loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${await server.sql("select pg_size_pretty(pg_database_size('postgres'))")}`)
}

/**
 * Waits until the archiver has stored every segment written so far (after a pg_switch_wal). Without it the first
 * timed backup after the load also waits for the load's WAL to be archived, which with repositories in S3 takes
 * several seconds, charged to whichever tool goes first.
 */
export async function archiverCatchUp(server, timeoutMs = 600_000) {
  const last = await server.sql('select pg_walfile_name(pg_switch_wal())')
  const t0 = Date.now()
  for (;;) {
    const archived = await server.sql('select coalesce(last_archived_wal, \'\') from pg_stat_archiver')
    if (archived.length === last.length && archived >= last) return
    if (Date.now() - t0 > timeoutMs) throw new BenchError(`the archiver did not reach ${last} (at ${archived || 'nothing'}); see ${server.logFile}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
