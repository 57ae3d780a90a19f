// check_pgbackrest (Debian's check-pgbackrest 2.3, the Nagios/Icinga plugin) against walden and against pgBackRest
// 2.45 on the same cluster and the same steps: its `retention` and `archives` services must give the same verdict
// (OK / WARNING / CRITICAL) and the same meaningful parts of the message for both. The plugin runs the tool as a shell
// command line (`<command> info --stanza=... --output=json`, `repo-ls archive/<stanza>/<id> --recurse`, `repo-get
// .../NNNNNNNN.history`, `version`). Its --command option names the tool; the plugin refuses any tool whose `version`
// is not 'pgBackRest' 2.33 or later, so walden is run as a user switching from pgBackRest installs it: through a link
// named pgbackrest, under which its `version` answers with the pgBackRest level it follows.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { waldenCommand } from '../harness/cluster.js'
import type { RunResult } from '../harness/cluster.js'
import { createTwinStanza, missingProgram, PGBACKREST, pgbackrestMissing, removeArchivedSegment, waldenAsPgbackrest } from '../harness/pgbackrest.js'
import type { TwinStanza } from '../harness/pgbackrest.js'
import { runAsPostgres } from '../harness/staging.js'

const MAJOR = 15
const CHECK_PGBACKREST = '/usr/bin/check_pgbackrest'
const missing = pgbackrestMissing() ?? missingProgram(CHECK_PGBACKREST, 'apt-get install check-pgbackrest')

type Tool = 'walden' | 'pgbackrest'
// pgBackRest first: its verdicts show the steps themselves are right before walden's are compared.
const TOOLS: readonly Tool[] = ['pgbackrest', 'walden']

/** The plugin's --output=json: one object per service run. */
interface Verdict {
  service: string
  status: { code: number; message: string }
  message?: string
  long_message?: Record<string, string>
}

interface InfoJson {
  archive: Array<{ id: string; min: string; max: string }>
  backup: Array<{ label: string; type: string; archive: { start: string; stop: string } }>
}

/** How many segments of 16 MB lie from `first` to `last`, both included, on one timeline. */
function segmentSpan(first: string, last: string): number {
  const position = (name: string): number => parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16)
  return position(last) - position(first) + 1
}

describe(`check_pgbackrest against walden and pgBackRest on PostgreSQL ${MAJOR}`, { skip: missing }, () => {
  let twin: TwinStanza
  /** The command line the plugin gets for walden: Node and the link named pgbackrest. */
  let waldenAsPgbackrestCommand: string

  /** Runs one service of the plugin against one tool, as postgres (the repositories are postgres's). */
  async function check(tool: Tool, service: string, extra: readonly string[] = []): Promise<Verdict> {
    const config = tool === 'walden' ? twin.walden.configPath : twin.pgbrConfigPath
    const command = tool === 'walden' ? waldenAsPgbackrestCommand : PGBACKREST
    const result: RunResult = await runAsPostgres(CHECK_PGBACKREST, [
      `--stanza=${twin.walden.name}`,
      `--service=${service}`,
      `--config=${config}`,
      `--command=${command}`,
      '--output=json',
      ...extra,
    ])
    if (result.stderr.includes('FATAL: Unsupported pgBackRest version')) {
      // The plugin runs `<command> version`, strips 'pgBackRest ' and compares the rest with 2.33 as a number.
      const version = await runAsPostgres('/bin/sh', ['-c', `${command} version`])
      assert.fail(`check_pgbackrest refuses ${tool}'s version line ${JSON.stringify(version.stdout.trim())}: it takes the text after 'pgBackRest ' as a number that must be at least 2.33`)
    }
    let verdicts: Verdict[]
    try {
      verdicts = JSON.parse(result.stdout) as Verdict[]
    } catch {
      assert.fail(`check_pgbackrest --service=${service} against ${tool} printed no JSON (exit ${result.code}):\n${result.stdout}${result.stderr}`)
    }
    const verdict = verdicts[0]!
    assert.equal(result.code, verdict.status.code, `the exit status is the verdict (${tool}, ${service})`)
    return verdict
  }

  /** Both tools' verdicts for one service, each with its tool's name in failure messages. */
  async function checkBoth(service: string, extra: readonly string[] = []): Promise<Record<Tool, Verdict>> {
    const pgbackrest = await check('pgbackrest', service, extra)
    const walden = await check('walden', service, extra)
    return { walden, pgbackrest }
  }

  async function info(tool: Tool): Promise<InfoJson> {
    const result = tool === 'walden' ? await twin.walden.waldenOk(['info', '--output=json']) : await twin.pgbackrestOk(['info', '--output=json'])
    return (JSON.parse(result.stdout) as InfoJson[])[0]!
  }

  before(async () => {
    twin = await createTwinStanza({ major: MAJOR })
    // Node by absolute path: postgres's PATH need not find the Node this test runs with.
    waldenAsPgbackrestCommand = `${process.execPath} ${join(await waldenAsPgbackrest(twin.walden.dir), 'pgbackrest')}`
    await twin.walden.cluster.query(
      `create table accounts (id int primary key, balance numeric not null);
       insert into accounts select n, n * 10 from generate_series(1, 5000) n`,
    )
  })
  after(async () => {
    await twin?.walden.dir.cleanup()
  })

  test('full + incr with WAL archived: retention and archives OK for both, the same counts', async () => {
    await twin.pgbackrestOk(['backup', '--type=full'])
    await twin.walden.waldenOk(['backup', '--type=full'])
    await twin.walden.cluster.query('update accounts set balance = balance + 1 where id <= 500')
    await twin.switchWal()
    await twin.pgbackrestOk(['backup', '--type=incr'])
    await twin.walden.waldenOk(['backup', '--type=incr'])
    await twin.switchWal()
    await twin.switchWal()

    const retention = await checkBoth('retention', ['--retention-full=1', '--retention-incr=1'])
    for (const tool of TOOLS) {
      const verdict = retention[tool]
      assert.equal(verdict.status.message, 'OK', `${tool}: ${JSON.stringify(verdict)}`)
      assert.equal(verdict.message, 'backups policy checks ok', tool)
      assert.equal(verdict.long_message?.['full'], '1', tool)
      assert.equal(verdict.long_message?.['diff'], '0', tool)
      assert.equal(verdict.long_message?.['incr'], '1', tool)
      assert.equal(verdict.long_message?.['latest_bck_type'], 'incr', tool)
      assert.match(verdict.long_message?.['latest_bck'] ?? '', /^\d{8}-\d{6}F_\d{8}-\d{6}I$/, tool)
      assert.match(verdict.long_message?.['oldest_bck'] ?? '', /^\d{8}-\d{6}F$/, tool)
    }

    // The policy fails the same way for both when it asks for more than there is.
    const tooFew = await checkBoth('retention', ['--retention-full=2'])
    for (const tool of TOOLS) {
      assert.equal(tooFew[tool].status.message, 'CRITICAL', `${tool}: ${JSON.stringify(tooFew[tool])}`)
      assert.equal(tooFew[tool].message, 'not enough full backups: 2 required', tool)
    }

    const archives = await checkBoth('archives')
    for (const tool of TOOLS) {
      const verdict = archives[tool]
      assert.equal(verdict.status.message, 'OK', `${tool}: ${JSON.stringify(verdict)}`)
      // The plugin counts the segments from the oldest backup's start to the archive's newest. The two tools' oldest
      // backups start at different segments (they ran one after the other), so each count is checked against the
      // tool's own info.
      const own = await info(tool)
      const expected = segmentSpan(own.backup[0]!.archive.start, own.archive[0]!.max)
      assert.equal(verdict.long_message?.['num_unique_archives'], String(expected), `${tool}: ${JSON.stringify(verdict)}`)
      assert.match(verdict.message ?? '', new RegExp(`^${expected} unique WAL archived, latest archived since \\d+s$`), tool)
      assert.equal(verdict.long_message?.['max_wal'], own.archive[0]!.max, tool)
    }
  })

  test('after a timeline switch: both find the history file and check across it', async () => {
    const { cluster } = twin.walden
    // Archive recovery to the end of the archive, then a new timeline: the history file 00000002.history is archived
    // to both repositories by archive_command, as after any promotion.
    await cluster.stop()
    await cluster.configure({
      restore_command: `${waldenCommand()} --config=${twin.walden.configPath} --stanza=${twin.walden.name} archive-get %f "%p"`,
    })
    const signal = await runAsPostgres('touch', [join(cluster.dataDir, 'recovery.signal')])
    assert.equal(signal.code, 0, signal.stderr)
    await cluster.start()
    await cluster.waitWritable()
    assert.equal(await cluster.psqlScalar('select timeline_id from pg_control_checkpoint()'), '2')
    await twin.switchWal()
    await twin.switchWal()

    const archives = await checkBoth('archives')
    for (const tool of TOOLS) {
      const verdict = archives[tool]
      assert.equal(verdict.status.message, 'OK', `${tool}: ${JSON.stringify(verdict)}`)
      assert.match(verdict.long_message?.['max_wal'] ?? '', /^00000002/, tool)
      assert.match(verdict.long_message?.['min_wal'] ?? '', /^00000001/, tool)
    }
    assert.equal(archives.walden.long_message?.['max_wal'], archives.pgbackrest.long_message?.['max_wal'])

    const retention = await checkBoth('retention', ['--retention-full=1'])
    for (const tool of TOOLS) assert.equal(retention[tool].status.message, 'OK', `${tool}: ${JSON.stringify(retention[tool])}`)
  })

  test('with a segment missing after the latest backup: CRITICAL for both, naming the same segment', async () => {
    const missingSegment = await twin.switchWal()
    await twin.switchWal()
    await twin.switchWal()
    const archiveId = (await info('pgbackrest')).archive[0]!.id
    assert.equal((await info('walden')).archive[0]!.id, archiveId)
    assert.ok((await removeArchivedSegment(twin.walden.repoPath, twin.walden.name, archiveId, missingSegment)).length > 0)
    assert.ok((await removeArchivedSegment(twin.pgbrRepoPath, twin.walden.name, archiveId, missingSegment)).length > 0)

    const archives = await checkBoth('archives')
    for (const tool of TOOLS) {
      const verdict = archives[tool]
      assert.equal(verdict.status.message, 'CRITICAL', `${tool}: ${JSON.stringify(verdict)}`)
      assert.equal(verdict.message, `wrong sequence, 1 missing file(s) (${missingSegment} / ${missingSegment})`, tool)
      assert.equal(verdict.long_message?.['num_missing_archives'], '1', tool)
      assert.equal(verdict.long_message?.['oldest_missing_archive'], missingSegment, tool)
    }
  })
})
