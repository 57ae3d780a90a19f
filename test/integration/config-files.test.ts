// A cluster laid out as Debian does it: postgresql.conf, pg_hba.conf, pg_ident.conf and a conf.d include outside
// the data folder (the server started with -c config_file=...). Backups keep those files; restore puts them back
// only when asked, into a folder or where they were, keeping aside what it would otherwise overwrite, and --start
// starts the restored server with the restored postgresql.conf.

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, chown, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { Cluster, dumpDatabase } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15

describe('configuration files outside the data folder', { concurrency: false }, () => {
  let stanza: TestStanza
  let cluster: Cluster
  let etc: string
  const names = ['conf.d/extra.conf', 'pg_hba.conf', 'pg_ident.conf', 'postgresql.conf']
  const originals = new Map<string, string>()

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'deb' })
    cluster = stanza.cluster
    await cluster.stop()
    etc = await stanza.dir.mkdir('etc')
    await stanza.dir.mkdir('etc/conf.d')
    const postgresUid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim())
    for (const name of ['postgresql.conf', 'pg_hba.conf', 'pg_ident.conf']) await rename(join(cluster.dataDir, name), join(etc, name))
    // As Debian writes it: postgresql.conf names its data folder.
    await appendFile(join(etc, 'postgresql.conf'), `\ndata_directory = '${cluster.dataDir}'\nhba_file = '${etc}/pg_hba.conf'\nident_file = '${etc}/pg_ident.conf'\ninclude_dir = 'conf.d'\n`)
    await writeFile(join(etc, 'conf.d/extra.conf'), "work_mem = '7MB'\n", { mode: 0o640 })
    await chown(join(etc, 'conf.d/extra.conf'), postgresUid, -1)
    cluster.serverArgs = ['-c', `config_file=${etc}/postgresql.conf`]
    await cluster.start()
    for (const name of names) originals.set(name, await readFile(join(etc, name), 'utf8'))

    await cluster.query('create table things (id int primary key, note text)')
    await cluster.query(`insert into things select i, 'row ' || i from generate_series(1, 100) i`)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])
  })

  after(async () => {
    await cluster?.stop().catch(() => {})
    await stanza?.dir.cleanup()
  })

  test('the cluster reads its configuration from outside the data folder', async () => {
    assert.equal(await cluster.psqlScalar('show config_file'), `${etc}/postgresql.conf`)
    assert.equal(await cluster.psqlScalar('show hba_file'), `${etc}/pg_hba.conf`)
    assert.equal(await cluster.psqlScalar('show work_mem'), '7MB')
    await assert.rejects(stat(join(cluster.dataDir, 'postgresql.conf')), { code: 'ENOENT' })
  })

  test('without --config-restore a restore says the backup has them and writes none', async () => {
    const target = join(stanza.dir.path, 'copy-plain')
    const restored = await stanza.walden(['restore', `--pg1-path=${target}`, '--log-level-console=info'])
    assert.equal(restored.code, 0, restored.stderr)
    assert.match(restored.stderr, /holds 4 configuration file\(s\) from outside the data folder .*'.*\/etc\/pg_hba\.conf'.*give --config-restore=original or --config-restore=FOLDER/)
    for (const name of names) assert.equal(await readFile(join(etc, name), 'utf8'), originals.get(name))
  })

  test('--config-restore=FOLDER writes them there with their layout and modes; --start runs the copy on its own folder', async () => {
    const folder = join(stanza.dir.path, 'restored-etc')
    const copy = await Cluster.adopt({ major: MAJOR, dir: stanza.dir, name: 'copy-folder' })
    try {
      const restored = await stanza.walden([
        'restore',
        `--pg1-path=${copy.dataDir}`,
        `--pg1-port=${copy.port}`,
        `--recovery-option=unix_socket_directories=${copy.socketDir}`,
        `--config-restore=${folder}`,
        '--archive-mode=off',
        '--start',
      ])
      assert.equal(restored.code, 0, restored.stderr)
      for (const name of names) {
        assert.equal(await readFile(join(folder, name), 'utf8'), originals.get(name), name)
        assert.equal((await stat(join(folder, name))).mode & 0o777, (await stat(join(etc, name))).mode & 0o777, name)
      }
      // The restored postgresql.conf still names the original's data folder; the copy must not run on it.
      assert.equal(await copy.psqlScalar('show data_directory'), copy.dataDir)
      assert.equal(await copy.psqlScalar('show config_file'), join(folder, 'postgresql.conf'))
      assert.ok(cluster.isRunning(), 'the original still runs')
    } finally {
      await copy.stop()
    }
  })

  test('--config-restore that is neither original nor an absolute folder is refused before anything is written', async () => {
    const target = join(stanza.dir.path, 'copy-refused')
    const refused = await stanza.walden(['restore', `--pg1-path=${target}`, '--config-restore=relative/etc'])
    assert.equal(refused.code, 32, refused.stderr)
    assert.match(refused.stderr, /config-restore 'relative\/etc' is neither 'original' nor an absolute folder/)
    await assert.rejects(stat(target), { code: 'ENOENT' })
  })

  test('after losing the data folder and pg_hba.conf, --config-restore=original --start brings the cluster back as it was', async () => {
    await cluster.query(`insert into things values (101, 'after the backup')`)
    await stanza.waldenOk(['check']) // the WAL with the new row reaches the archive
    const dump = await dumpDatabase(cluster)
    await cluster.stop()
    await rm(cluster.dataDir, { recursive: true })
    await rm(join(etc, 'pg_hba.conf'))
    await appendFile(join(etc, 'postgresql.conf'), '# a local edit since the backup\n')
    const edited = await readFile(join(etc, 'postgresql.conf'), 'utf8')

    const restored = await stanza.walden(['restore', '--config-restore=original', '--start'])
    assert.equal(restored.code, 0, restored.stderr)
    // The edited file is not overwritten silently: it is kept aside, with a warning.
    const aside = (await readdir(etc)).filter((name) => /^postgresql\.conf\.\d{8}-\d{6}$/.test(name))
    assert.equal(aside.length, 1, (await readdir(etc)).join(', '))
    assert.match(restored.stderr, new RegExp(`configuration file '${etc}/postgresql\\.conf' differs from the backup's: kept as '${etc}/${aside[0]!.replaceAll('.', '\\.')}'`))
    assert.equal(await readFile(join(etc, aside[0]!), 'utf8'), edited)
    for (const name of names) assert.equal(await readFile(join(etc, name), 'utf8'), originals.get(name), name)

    assert.ok(cluster.isRunning(), 'restore --start started the server')
    await cluster.waitWritable()
    assert.equal(await cluster.psqlScalar('show config_file'), `${etc}/postgresql.conf`)
    assert.equal(await cluster.psqlScalar('show work_mem'), '7MB')
    assert.equal(await dumpDatabase(cluster), dump)
  })
})
