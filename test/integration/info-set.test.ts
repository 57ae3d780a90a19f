// info --set and --type beside pgBackRest 2.45, on one real PostgreSQL 15 cluster that archives to both (pg_wal and a
// configuration file behind links, a database in a tablespace): walden and pgbackrest each back it up, and their
// info --set must show the same databases, links and tablespaces, in text and in JSON, with the same keys; --type
// narrows both the same way.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, readFile, rename, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createTestStanza } from '../harness/stanza.js'
import type { TestStanza } from '../harness/stanza.js'

const MAJOR = 15

interface BackupJson {
  label: string
  type: string
  [key: string]: unknown
}

describe(`info --set and --type beside pgBackRest 2.45 on PostgreSQL ${MAJOR}`, () => {
  let stanza: TestStanza
  let pgbrConfig: string

  const pgbackrest = (args: readonly string[]): string => {
    const result = spawnSync('runuser', ['-u', 'postgres', '--', 'pgbackrest', `--config=${pgbrConfig}`, `--stanza=${stanza.name}`, ...args], {
      cwd: '/tmp',
      encoding: 'utf8',
      timeout: 300_000,
    })
    if (result.status !== 0) throw new Error(`pgbackrest ${args.join(' ')} exited with ${result.status}:\n${result.stdout}${result.stderr}`)
    return result.stdout
  }
  const walden = async (args: readonly string[]): Promise<string> => (await stanza.waldenOk(args)).stdout
  const backupsOf = (json: string): BackupJson[] => (JSON.parse(json) as Array<{ backup: BackupJson[] }>)[0]!.backup

  before(async () => {
    stanza = await createTestStanza({ major: MAJOR, name: 'twin', start: false })
    const { cluster } = stanza
    const walElsewhere = join(await stanza.dir.mkdir('wal-elsewhere'), 'pg_wal')
    await rename(join(cluster.dataDir, 'pg_wal'), walElsewhere)
    await symlink(walElsewhere, join(cluster.dataDir, 'pg_wal'))
    const confElsewhere = join(await stanza.dir.mkdir('etc'), 'extra.conf')
    await writeFile(confElsewhere, "work_mem = '7MB'\n")
    await symlink(confElsewhere, join(cluster.dataDir, 'extra.conf'))
    pgbrConfig = join(stanza.dir.path, 'pgbackrest.conf')
    // Every segment goes to both archives; walden's own archive_command stays first.
    const waldenPush = /^archive_command = '(.*)'$/m.exec(await readFile(join(cluster.dataDir, 'postgresql.conf'), 'utf8'))![1]!
    await cluster.appendConf([`include 'extra.conf'`, `archive_command = '${waldenPush} && pgbackrest --config=${pgbrConfig} --stanza=${stanza.name} archive-push %p'`])
    await cluster.start()
    await stanza.writeConfig()
    const pgbrRepo = await stanza.dir.mkdir('pgbr-repo')
    await writeFile(
      pgbrConfig,
      [
        '[global]',
        `repo1-path=${pgbrRepo}`,
        `lock-path=${await stanza.dir.mkdir('pgbr-lock')}`,
        `log-path=${await stanza.dir.mkdir('pgbr-log')}`,
        'log-level-file=off',
        'repo1-retention-full=9',
        'start-fast=y',
        '',
        `[${stanza.name}]`,
        `pg1-path=${cluster.dataDir}`,
        `pg1-port=${cluster.port}`,
        `pg1-socket-path=${cluster.socketDir}`,
        '',
      ].join('\n'),
    )
    await chmod(pgbrConfig, 0o644)

    const tablespace = await stanza.dir.mkdir('ts1')
    await cluster.query(`create tablespace ts1 location '${tablespace}'`)
    await cluster.query('create database app tablespace ts1')
    await stanza.waldenOk(['stanza-create'])
    pgbackrest(['stanza-create'])
    for (const type of ['full', 'incr']) {
      await stanza.waldenOk(['backup', `--type=${type}`])
      pgbackrest(['backup', `--type=${type}`])
    }
  })
  after(async () => {
    await stanza?.dir.cleanup()
  })

  test('--set: the same databases, links and tablespaces, and the same keys, in JSON', async () => {
    for (const index of [0, 1]) {
      const ours = backupsOf(await walden(['info', '--output=json']))[index]!
      const theirs = backupsOf(pgbackrest(['info', '--output=json']))[index]!
      // Without --set neither has the detail.
      assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort())
      assert.equal('database-ref' in ours, false)
      const oursSet = backupsOf(await walden(['info', `--set=${ours.label}`, '--output=json']))[0]!
      const theirsSet = backupsOf(pgbackrest(['info', `--set=${theirs.label}`, '--output=json']))[0]!
      assert.deepEqual(Object.keys(oursSet).sort(), Object.keys(theirsSet).sort())
      for (const key of ['database-ref', 'link', 'tablespace']) assert.deepEqual(oursSet[key], theirsSet[key], key)
      // Not two empty lists that agree: the database in the tablespace and both links are there.
      assert.ok((oursSet['database-ref'] as Array<{ name: string }>).some((database) => database.name === 'app'))
      assert.equal((oursSet.link as unknown[]).length, 2)
    }
  })

  test('--set: the same lines in text, from the database list on', async () => {
    const detail = (text: string): string[] => {
      const lines = text.trimEnd().split('\n')
      return lines.slice(lines.findIndex((line) => line.includes('database list:')))
    }
    const ours = backupsOf(await walden(['info', '--output=json']))[1]!.label
    const theirs = backupsOf(pgbackrest(['info', '--output=json']))[1]!.label
    const oursText = detail(await walden(['info', `--set=${ours}`]))
    assert.deepEqual(oursText, detail(pgbackrest(['info', `--set=${theirs}`])))
    assert.match(oursText.join('\n'), /database list: app \(\d+\), postgres \(5\)\n {12}symlinks:\n {16}extra\.conf => .*\n {16}pg_wal => .*\n {12}tablespaces:\n {16}ts1 \(\d+\) => /)
  })

  test('--type: the same backups of each type', async () => {
    for (const type of ['full', 'diff', 'incr']) {
      const ours = backupsOf(await walden(['info', `--type=${type}`, '--output=json'])).map((backup) => backup.type)
      const theirs = backupsOf(pgbackrest(['info', `--type=${type}`, '--output=json'])).map((backup) => backup.type)
      assert.deepEqual(ours, theirs, type)
      assert.equal(ours.length, type === 'diff' ? 0 : 1)
    }
  })
})
