// Links in the data folder (pg_wal on another disk, a configuration file kept elsewhere) are backed up as what
// they point to and restored as plain folders and files: recreating a link could point a restored copy at the live
// cluster's files on the same host.

import assert from 'node:assert/strict'
import { lstat, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { dumpDatabase } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

let stanza: TestStanza | undefined
after(async () => stanza?.dir.cleanup())

test('pg_wal and a configuration file behind links come back as a plain folder and a plain file', async () => {
  stanza = await createTestStanza({ major: 15, start: false })
  const { cluster } = stanza
  const walElsewhere = join(await stanza.dir.mkdir('wal-elsewhere'), 'pg_wal')
  await rename(join(cluster.dataDir, 'pg_wal'), walElsewhere)
  await symlink(walElsewhere, join(cluster.dataDir, 'pg_wal'))
  const confElsewhere = join(await stanza.dir.mkdir('etc'), 'extra.conf')
  await writeFile(confElsewhere, "work_mem = '7MB'\n")
  await symlink(confElsewhere, join(cluster.dataDir, 'extra.conf'))
  await cluster.appendConf("include 'extra.conf'")
  await cluster.start()
  await stanza.writeConfig()

  await cluster.query(`create table t as select n from generate_series(1, 1000) n`)
  await stanza.waldenOk(['stanza-create'])
  await stanza.waldenOk(['backup', '--type=full'])
  const expected = await dumpDatabase(cluster)
  await stanza.waldenOk(['check'])
  await cluster.stop()
  const walBefore = (await readdir(walElsewhere)).sort()

  await rm(cluster.dataDir, { recursive: true, force: true })
  const restore = await stanza.waldenOk(['restore', '--log-level-console=info'])
  assert.match(restore.stderr, /restored as plain folders and files: 'extra.conf' \(was a link to '.*etc\/extra.conf'\), 'pg_wal' \(was a link to '.*wal-elsewhere\/pg_wal'\)/)
  assert.ok((await lstat(join(cluster.dataDir, 'pg_wal'))).isDirectory(), 'pg_wal is a folder, not a link to the old WAL')
  assert.ok((await lstat(join(cluster.dataDir, 'extra.conf'))).isFile(), 'extra.conf is a file')
  assert.equal(await readFile(join(cluster.dataDir, 'extra.conf'), 'utf8'), "work_mem = '7MB'\n")

  await cluster.start()
  await cluster.waitWritable()
  assert.equal(await dumpDatabase(cluster), expected)
  assert.equal(await cluster.psqlScalar('show work_mem'), '7MB')
  // The restored cluster wrote its WAL in its own folder, not in the one the link pointed at.
  assert.deepEqual((await readdir(walElsewhere)).sort(), walBefore)
})
