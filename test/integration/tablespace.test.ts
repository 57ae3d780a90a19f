// A cluster with a tablespace, on PostgreSQL 15: the tablespace is backed up as a target of its own, a restore over
// its old, non-empty location is refused, and --tablespace-map moves it: the pg_tblspc link points at the new folder
// and the server reads the table from there. Restores use the default type (replay all archived WAL, then promote),
// as core-flow does.

import assert from 'node:assert/strict'
import { readdir, readlink, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { dumpDatabase } from '../harness/cluster.js'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15

/** Exit code, the exact first line on stderr, and no stack trace: what a refusal must look like. */
function assertRefused(result: { code: number; stderr: string }, code: number, firstLine: string): void {
  assert.equal(result.code, code, result.stderr)
  assert.equal(result.stderr.split('\n')[0], firstLine)
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

describe(`tablespaces on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let tablespaceDir: string
  let oid: string
  let dump: string

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR })
    tablespaceDir = await stanza.dir.mkdir('ts')
    await stanza.cluster.query(`create tablespace ts location '${tablespaceDir}'`)
    await stanza.cluster.query(
      `create table moved (id int primary key, note text) tablespace ts;
       insert into moved select n, 'note ' || n from generate_series(1, 5000) n;
       create index moved_note on moved (note) tablespace ts;`,
    )
    oid = await stanza.cluster.psqlScalar(`select oid from pg_tablespace where spcname = 'ts'`)
    await stanza.waldenOk(['stanza-create'])
    await stanza.waldenOk(['backup', '--type=full'])
    dump = await dumpDatabase(stanza.cluster)
    await stanza.waldenOk(['check']) // archives the segment that makes the backup consistent
    await stanza.cluster.stop()
    await rm(stanza.cluster.dataDir, { recursive: true, force: true })
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('the backup stores the tablespace under pg_tblspc/<oid> in the repository', async () => {
    const labels = (await readdir(join(stanza.repoPath, 'backup', 'demo'))).filter((entry) => entry.endsWith('F'))
    assert.equal(labels.length, 1)
    const stored = await readdir(join(stanza.repoPath, 'backup', 'demo', labels[0]!, 'pg_tblspc', oid))
    assert.match(stored.join(','), /^PG_15_\d+$/)
  })

  test('a restore over the non-empty original tablespace folder is refused', async () => {
    // The data folder is gone but the tablespace's old location still holds the cluster's files.
    assert.ok((await readdir(tablespaceDir)).length > 0)
    const [versionFolder] = await readdir(tablespaceDir)
    const result = await stanza.walden(['restore'])
    assertRefused(result, 40, `P00  ERROR: [040]: unable to restore tablespace 'ts' to '${join(tablespaceDir, versionFolder!)}' because it contains files`)
    assert.equal(
      result.stderr.split('\n')[1],
      `HINT: move it with --tablespace-map=ts=PATH to an empty folder, or give --delta if it is the tablespace of the cluster in '${stanza.cluster.dataDir}'.`,
    )
    // Nothing was written: the refusal comes before any folder is created.
    await assert.rejects(readdir(stanza.cluster.dataDir), /ENOENT/)

    // --delta does not make it acceptable: the empty data folder has no link to that location, so the files there
    // may be another cluster's (a running one's, even). Only ever restore into such a location by moving it.
    const delta = await stanza.walden(['restore', '--delta'])
    assertRefused(delta, 40, `P00  ERROR: [040]: unable to restore tablespace 'ts' to '${join(tablespaceDir, versionFolder!)}' because it contains files`)
    assert.match(delta.stderr, /HINT: these files do not belong to the cluster in '.*'; move the tablespace with --tablespace-map=ts=PATH to an empty folder\./)
    assert.ok((await readdir(join(tablespaceDir, versionFolder!))).length > 0, 'the files in the tablespace are untouched')
  })

  test('a --tablespace-map naming no tablespace of the backup is refused rather than ignored', async () => {
    // Ignoring a misspelt name would restore the tablespace to its old location instead of where the user asked.
    const label = (await readdir(join(stanza.repoPath, 'backup', 'demo'))).find((entry) => entry.endsWith('F'))
    const result = await stanza.walden(['restore', `--tablespace-map=tx=${join(stanza.dir.path, 'elsewhere')}`])
    assertRefused(result, 32, `P00  ERROR: [032]: option 'tablespace-map' names tablespace 'tx', but backup ${label} has no tablespace with that name or OID`)
    assert.equal(result.stderr.split('\n')[1], `HINT: the backup's tablespaces are 'ts' (OID ${oid}).`)
    await assert.rejects(readdir(stanza.cluster.dataDir), /ENOENT/)
  })

  test('--tablespace-map restores the tablespace to a new folder and the server reads it there', async () => {
    const moved = join(stanza.dir.path, 'ts-moved')
    await stanza.waldenOk(['restore', `--tablespace-map=ts=${moved}`])
    assert.equal(await readlink(join(stanza.cluster.dataDir, 'pg_tblspc', oid)), moved)
    assert.match((await readdir(moved)).join(','), /^PG_15_\d+$/)

    await stanza.cluster.start()
    await stanza.cluster.waitWritable()
    assert.equal(await stanza.cluster.psqlScalar(`select pg_tablespace_location(${oid})`), moved)
    assert.equal(await stanza.cluster.psqlScalar(`select count(*) from moved`), '5000')
    assert.equal(await stanza.cluster.psqlScalar(`select note from moved where id = 4321`), 'note 4321')
    assert.equal(await dumpDatabase(stanza.cluster), dump)
    // The index in the tablespace is usable, not just present.
    await stanza.cluster.query('set enable_seqscan = off')
    assert.equal(await stanza.cluster.psqlScalar(`select count(*) from moved where note = 'note 77'`), '1')
  })
})
