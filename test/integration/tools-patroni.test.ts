// Patroni (Debian's 3.0.2, with Debian's etcd 3.4 as its DCS through the v3 API) creating replicas with walden as
// its pgBackRest-style replica method, then a switchover; and the same steps with pgBackRest 2.45. Each run is a
// two-node cluster on loopback: node1 bootstraps and archives to the tool's repository, a full backup is taken,
// node2 is created by `<tool> restore --delta` alone (no basebackup fallback, so a failing restore fails the test),
// then patronictl switches the leader to node2 and node1 follows it. Both runs end with a running replica that has
// the primary's data.

import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { runWalden, testDir, waldenCommand } from '../harness/cluster.js'
import type { TestDir } from '../harness/cluster.js'
import { missingProgram, PGBACKREST, pgbackrestMissing } from '../harness/pgbackrest.js'
import { runAsPostgres, sleep, waitUntil } from '../harness/staging.js'

const MAJOR = 15
const BIN_DIR = `/usr/lib/postgresql/${MAJOR}/bin`
const missing =
  missingProgram('/usr/bin/patroni', 'apt-get install patroni') ??
  missingProgram('/usr/bin/etcd', 'apt-get install etcd-server') ??
  missingProgram(`${BIN_DIR}/postgres`, `apt-get install postgresql-${MAJOR}`) ??
  pgbackrestMissing()

type Tool = 'walden' | 'pgbackrest'

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolvePromise(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim())
  return { uid: id('-u'), gid: id('-g') }
}

/** A JSON string is a valid YAML scalar: every value below is written that way, so no path needs YAML quoting rules. */
const y = (value: string | number): string => JSON.stringify(String(value))

/** Processes this file started (etcd, Patroni): stopped by pid in after(), never by name. */
const started: ChildProcess[] = []

function startDaemon(command: string, args: readonly string[], logFile: string, asPostgres: boolean): ChildProcess {
  const { uid, gid } = postgresIds()
  const child = spawn(command, args, {
    ...(asPostgres ? { uid, gid } : {}),
    cwd: '/tmp',
    env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8', HOME: '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let log = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk))
  child.on('exit', () => void writeFile(logFile, log).catch(() => {}))
  const flush = setInterval(() => void writeFile(logFile, log).catch(() => {}), 1000)
  flush.unref()
  child.on('exit', () => clearInterval(flush))
  child.unref()
  started.push(child)
  return child
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolvePromise) => child.once('exit', () => resolvePromise()))
  child.ref()
  child.kill('SIGTERM')
  const timedOut = await Promise.race([exited.then(() => false), sleep(60_000).then(() => true)])
  if (timedOut) {
    child.kill('SIGKILL')
    await exited
  }
}

async function httpStatus(url: string): Promise<number> {
  return fetch(url, { signal: AbortSignal.timeout(3000) }).then((response) => response.status, () => 0)
}

interface Node {
  name: string
  dataDir: string
  socketDir: string
  pgPort: number
  restPort: number
  configFile: string
  process?: ChildProcess
}

describe(`Patroni ${'3.0'} with walden and with pgBackRest as the replica method (PostgreSQL ${MAJOR})`, { skip: missing }, () => {
  let dir: TestDir
  let etcdPort: number


  before(async () => {
    dir = await testDir('walden-patroni')
    etcdPort = await freePort()
    const peerPort = await freePort()
    const etcdData = await dir.mkdir('etcd')
    startDaemon(
      '/usr/bin/etcd',
      [
        '--name=walden-test',
        `--data-dir=${etcdData}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=walden-test=http://127.0.0.1:${peerPort}`,
      ],
      join(dir.path, 'etcd.log'),
      true,
    )
    await waitUntil('etcd to answer', async () => (await httpStatus(`http://127.0.0.1:${etcdPort}/health`)) === 200, 30_000)
  })

  after(async () => {
    for (const child of started.reverse()) await stopDaemon(child)
    await dir?.cleanup()
  })

  for (const tool of ['walden', 'pgbackrest'] as const satisfies readonly Tool[]) {
    test(`${tool}: replica created by ${tool} restore, then a switchover; the replica has the primary's data`, async (t) => {
      const base = await dir.mkdir(tool)
      const repo = await dir.mkdir(`${tool}/repo`)
      const lock = await dir.mkdir(`${tool}/lock`)
      const logDir = await dir.mkdir(`${tool}/log`)
      const spool = await dir.mkdir(`${tool}/spool`)
      const nodes: Node[] = []
      for (const name of ['node1', 'node2']) {
        nodes.push({
          name,
          dataDir: join(base, name),
          socketDir: await dir.mkdir(`${tool}/${name}.sock`),
          pgPort: await freePort(),
          restPort: await freePort(),
          configFile: join(base, `${name}.yml`),
        })
      }
      const [node1, node2] = nodes as [Node, Node]

      // One tool config per node: each names its own data folder, as on two machines.
      const toolConfig = (node: Node): string => join(base, `${tool}-${node.name}.conf`)
      for (const node of nodes) {
        const text = [
          '[global]',
          `repo1-path=${repo}`,
          `lock-path=${lock}`,
          `log-path=${logDir}`,
          ...(tool === 'pgbackrest' ? [`spool-path=${spool}`, 'log-level-file=off'] : []),
          'compress-type=gz',
          'start-fast=y',
          'archive-timeout=30',
          '',
          '[demo]',
          `pg1-path=${node.dataDir}`,
          `pg1-port=${node.pgPort}`,
          `pg1-socket-path=${node.socketDir}`,
          '',
        ].join('\n')
        await writeFile(toolConfig(node), text)
        await chmod(toolConfig(node), 0o644)
      }
      const toolCommand = (node: Node): string =>
        tool === 'walden' ? `${waldenCommand()} --config=${toolConfig(node)} --stanza=demo` : `${PGBACKREST} --config=${toolConfig(node)} --stanza=demo`
      const runTool = (node: Node, args: readonly string[]) =>
        tool === 'walden'
          ? runWalden([`--config=${toolConfig(node)}`, '--stanza=demo', ...args], { timeoutMs: 300_000 })
          : runAsPostgres(PGBACKREST, [`--config=${toolConfig(node)}`, '--stanza=demo', ...args])

      for (const node of nodes) {
        const yaml = [
          `scope: ${y(`walden-tools-${tool}`)}`,
          `namespace: ${y('/walden-test/')}`,
          `name: ${y(node.name)}`,
          'log:',
          '  level: INFO',
          'restapi:',
          `  listen: ${y(`127.0.0.1:${node.restPort}`)}`,
          `  connect_address: ${y(`127.0.0.1:${node.restPort}`)}`,
          'etcd3:',
          `  host: ${y(`127.0.0.1:${etcdPort}`)}`,
          'bootstrap:',
          '  dcs:',
          '    ttl: 20',
          '    loop_wait: 2',
          '    retry_timeout: 5',
          '    postgresql:',
          '      use_pg_rewind: false',
          '      parameters:',
          `        wal_level: ${y('replica')}`,
          `        archive_mode: ${y('on')}`,
          `        hot_standby: ${y('on')}`,
          `        max_wal_senders: ${y(10)}`,
          '  initdb:',
          `  - encoding: ${y('UTF8')}`,
          `  - locale: ${y('C')}`,
          '  - data-checksums',
          'postgresql:',
          `  listen: ${y(`127.0.0.1:${node.pgPort}`)}`,
          `  connect_address: ${y(`127.0.0.1:${node.pgPort}`)}`,
          `  data_dir: ${y(node.dataDir)}`,
          `  bin_dir: ${y(BIN_DIR)}`,
          `  pgpass: ${y(join(base, `${node.name}.pgpass`))}`,
          '  authentication:',
          `    superuser: {username: ${y('postgres')}, password: ${y('test-only')}}`,
          `    replication: {username: ${y('replicator')}, password: ${y('test-only')}}`,
          '  parameters:',
          `    unix_socket_directories: ${y(node.socketDir)}`,
          `    shared_buffers: ${y('32MB')}`,
          `    max_connections: ${y(20)}`,
          `    fsync: ${y('off')}`,
          `    archive_command: ${y(`${toolCommand(node)} archive-push %p`)}`,
          '  pg_hba:',
          `  - ${y('local all all trust')}`,
          `  - ${y('host all all 127.0.0.1/32 trust')}`,
          `  - ${y('host replication replicator 127.0.0.1/32 trust')}`,
          // The tool alone: were basebackup a fallback, a failing restore would go unnoticed.
          '  create_replica_methods:',
          `  - ${y(tool)}`,
          `  ${tool}:`,
          `    command: ${y(`${toolCommand(node)} restore --delta`)}`,
          '    keep_data: true',
          '    no_params: true',
          '',
        ].join('\n')
        await writeFile(node.configFile, yaml)
        await chmod(node.configFile, 0o644)
      }

      const startNode = (node: Node): void => {
        node.process = startDaemon('/usr/bin/patroni', [node.configFile], join(base, `${node.name}.patroni.log`), true)
      }
      const patroniLog = async (): Promise<string> => {
        const tails = await Promise.all(
          nodes.map(async (node) => `--- ${node.name} ---\n${(await readFile(join(base, `${node.name}.patroni.log`), 'utf8').catch(() => '')).split('\n').slice(-30).join('\n')}`),
        )
        return tails.join('\n')
      }
      const waitRole = async (node: Node, role: 'primary' | 'replica', timeoutMs = 120_000): Promise<void> => {
        try {
          await waitUntil(`${node.name} to be a running ${role}`, async () => (await httpStatus(`http://127.0.0.1:${node.restPort}/${role}`)) === 200, timeoutMs)
        } catch (error) {
          assert.fail(`${(error as Error).message}\n${await patroniLog()}`)
        }
      }
      const sql = async (node: Node, text: string): Promise<string[]> => {
        const client = new pg.Client({ host: node.socketDir, port: node.pgPort, user: 'postgres', database: 'postgres' })
        client.on('error', () => {})
        await client.connect()
        try {
          // Several statements give one result each; the last one's rows are wanted.
          const result = (await client.query<{ v: string }>(text)) as pg.QueryResult<{ v: string }> | Array<pg.QueryResult<{ v: string }>>
          const last = Array.isArray(result) ? result.at(-1) : result
          return (last?.rows ?? []).map((row) => String(row.v))
        } finally {
          await client.end().catch(() => {})
        }
      }

      // node1 bootstraps and archives; then the stanza and a full backup.
      startNode(node1)
      await waitRole(node1, 'primary')
      await sql(node1, `create table accounts (id int primary key, balance int); insert into accounts select n, n from generate_series(1, 1000) n`)
      for (const args of [['stanza-create'], ['check'], ['backup', '--type=full']]) {
        const result = await runTool(node1, args)
        assert.equal(result.code, 0, `${tool} ${args.join(' ')}:\n${result.stdout}${result.stderr}`)
      }
      // After the backup: reaches node2 by WAL (archive or streaming), not in the restored files.
      await sql(node1, 'insert into accounts select n, n from generate_series(1001, 1500) n')

      // node2 is created by the tool's restore into its (empty) data folder.
      const { uid, gid } = postgresIds()
      await mkdir(node2.dataDir, { mode: 0o700 })
      await chown(node2.dataDir, uid, gid)
      startNode(node2)
      await waitRole(node2, 'replica')
      // Patroni takes the recovery settings out of postgresql.auto.conf and writes its own, so its log is the
      // witness of which method made the replica.
      await waitUntil(`node2's log to name the replica method`, async () =>
        (await readFile(join(base, 'node2.patroni.log'), 'utf8')).includes(`replica has been created using ${tool}`), 10_000)
      await waitUntil('node2 to replay the rows written after the backup', async () => (await sql(node2, 'select count(*)::text as v from accounts'))[0] === '1500', 60_000)

      // Switchover: node2 leads, node1 follows it.
      const switchover = spawnSync('patronictl', ['-c', node1.configFile, 'switchover', '--leader', 'node1', '--candidate', 'node2', '--force'], {
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' },
        timeout: 120_000,
      })
      assert.equal(switchover.status, 0, `patronictl switchover:\n${switchover.stdout}${switchover.stderr}`)
      await waitRole(node2, 'primary')
      await waitRole(node1, 'replica')

      // The new primary's writes reach the old one, now its replica.
      await sql(node2, 'insert into accounts select n, n from generate_series(1501, 2000) n')
      await waitUntil('node1 to replay the new primary\'s rows', async () => (await sql(node1, 'select count(*)::text as v from accounts'))[0] === '2000', 60_000)
      const digest = 'select md5(string_agg(id::text || \':\' || balance::text, \',\' order by id)) as v from accounts'
      assert.deepEqual(await sql(node1, digest), await sql(node2, digest))
      assert.equal((await sql(node1, 'select pg_is_in_recovery()::text as v'))[0], 'true')

      // Both still up as leader and replica at the end (Patroni may restart a demoted node once to apply settings).
      await waitRole(node2, 'primary')
      await waitRole(node1, 'replica')
      await waitUntil('node1 to stream from node2', async () =>
        (await sql(node2, 'select count(*)::text as v from pg_stat_replication where state = \'streaming\''))[0] === '1', 60_000)

      // For the record (docs/monitoring.md quotes it): Patroni's own view of the two nodes, once each member's entry
      // in etcd says running (a member refreshes it once per loop, so it can trail the server by a loop or two).
      const patronictl = (args: readonly string[]) =>
        spawnSync('patronictl', ['-c', node1.configFile, ...args], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } })
      await waitUntil('patronictl list to show both members running', async () => {
        const members = JSON.parse(patronictl(['list', '--format', 'json']).stdout) as Array<{ Member: string; State: string }>
        return members.length === 2 && members.every((member) => member.State === 'running')
      }, 30_000)
      const list = patronictl(['list'])
      t.diagnostic(`patronictl list after the switchover (${tool}):`)
      for (const line of list.stdout.trimEnd().split('\n')) t.diagnostic(line)

      // The replica first: stopping the leader first would only make it promote on the way out.
      for (const node of [node1, node2]) if (node.process) await stopDaemon(node.process)
    })
  }
})
