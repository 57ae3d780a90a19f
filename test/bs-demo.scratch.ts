// Scratch: produces the README's example output. Not committed.
import { Cluster } from './harness/cluster.js'
import { createTestStanza } from './harness/stanza.js'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const stanza = await createTestStanza({ major: 15, name: 'main', settings: { hot_standby: 'on', wal_keep_size: '128MB' } })
const primary = stanza.cluster
try {
  await primary.query(`create table accounts (id int primary key, balance bigint not null); insert into accounts select n, 0 from generate_series(1, 100000) n`)
  await stanza.waldenOk(['stanza-create'])
  await stanza.waldenOk(['backup', '--type=full'])
  const standby = await Cluster.adopt({ major: 15, dir: stanza.dir, name: 'standby' })
  await stanza.waldenOk(['standby-create', `--pg1-path=${standby.dataDir}`, `--pg1-port=${standby.port}`, `--primary-conninfo=host=127.0.0.1 port=${primary.port} user=postgres`])
  await standby.configure({ unix_socket_directories: standby.socketDir })
  await standby.start()
  await sleep(2000)
  const pg2 = [`--pg2-path=${standby.dataDir}`, `--pg2-port=${standby.port}`, `--pg2-socket-path=${standby.socketDir}`]
  const show = (label: string, r: { code: number; stdout: string; stderr: string }) => console.log(`#### ${label} (exit ${r.code})\n${r.stdout}${r.stderr}`)
  console.log('DIR', stanza.dir.path, 'primary port', primary.port, 'standby port', standby.port)
  show('y', await stanza.walden(['backup', '--type=incr', '--backup-standby=y', '--log-level-console=info', ...pg2]))
  await standby.query('select pg_wal_replay_pause()')
  show('y paused', await stanza.walden(['backup', '--type=incr', '--backup-standby=y', '--archive-timeout=5', ...pg2]))
  show('prefer paused', await stanza.walden(['backup', '--type=incr', '--backup-standby=prefer', '--archive-timeout=5', ...pg2]))
  await standby.query('select pg_wal_replay_resume()')
  await sleep(1000)
  await primary.stop()
  show('only', await stanza.walden(['backup', '--type=full', '--backup-standby=only', '--log-level-console=info', ...pg2]))
  show('info', await stanza.walden(['info']))
  await standby.stop()
} finally {
  await stanza.dir.cleanup()
}
