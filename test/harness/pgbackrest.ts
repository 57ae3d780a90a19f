// One cluster backed up by walden and by pgBackRest side by side, for tests that run a pgBackRest tool (a monitoring
// plugin, an exporter, Patroni) against both and compare what it says. archive_command pushes every segment to both
// repositories, so the two archives hold the same WAL and both tools see the same timeline history; backups are
// taken by each tool in turn.

import { spawnSync } from 'node:child_process'
import { chmod, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { waldenCommand } from './cluster.js'
import type { TestDir } from './cluster.js'
import { waldenPackageRoot } from '../../src/pg/binaries.js'
import type { RunResult } from './cluster.js'
import { createTestStanza } from './stanza.js'
import type { TestStanza } from './stanza.js'
import { runAsPostgres, waitUntil } from './staging.js'

/** Debian's pgBackRest binary, the one .ci/run installs. */
export const PGBACKREST = '/usr/bin/pgbackrest'

/** The pgBackRest version the comparisons were written against. */
export const PGBACKREST_VERSION = '2.45'

/**
 * Why a pgBackRest tool cannot run here, or undefined when it can: a missing program is said in the test output
 * (the caller passes this to `skip`), never skipped silently.
 */
export function missingProgram(path: string, installHint: string): string | undefined {
  const found = spawnSync('test', ['-x', path])
  return found.status === 0 ? undefined : `${path} is not installed (${installHint}; .ci/run installs it)`
}

/** pgBackRest's own version line, e.g. 'pgBackRest 2.45', or why there is none. */
export function pgbackrestMissing(): string | undefined {
  const missing = missingProgram(PGBACKREST, 'apt-get install pgbackrest')
  if (missing !== undefined) return missing
  const version = spawnSync(PGBACKREST, ['version'], { encoding: 'utf8' }).stdout.trim()
  return version === `pgBackRest ${PGBACKREST_VERSION}`
    ? undefined
    : `${PGBACKREST} is '${version}', the comparisons were written for pgBackRest ${PGBACKREST_VERSION}`
}

export interface TwinStanza {
  /** The walden side: cluster, repository, config file and the walden runner. */
  walden: TestStanza
  pgbrConfigPath: string
  pgbrRepoPath: string
  /** Runs pgBackRest as postgres with --config and --stanza set. */
  pgbackrest(args: readonly string[]): Promise<RunResult>
  /** Runs pgBackRest and fails the test with its output when it does not exit 0. */
  pgbackrestOk(args: readonly string[]): Promise<RunResult>
  /** Switches to a new WAL segment (writing something first, so the switch is never a no-op) and waits until
   * both repositories hold it. */
  switchWal(): Promise<string>
  /** Rewrites pgBackRest's config (after the cluster's port changed). */
  writePgbrConfig(): Promise<void>
}

/**
 * A stanza named `name` in two repositories of one cluster: walden's (`walden.conf`) and pgBackRest's
 * (`pgbackrest.conf`), both created (stanza-create) and checked, the cluster running and archiving to both.
 */
export async function createTwinStanza(options: { major: number; name?: string; settings?: Record<string, string> }): Promise<TwinStanza> {
  const name = options.name ?? 'demo'
  const walden = await createTestStanza({ major: options.major, name, start: false, compressType: 'gz', settings: options.settings })
  const { dir, cluster } = walden
  const pgbrRepoPath = await dir.mkdir('pgbr-repo')
  const pgbrLockPath = await dir.mkdir('pgbr-lock')
  const pgbrLogPath = await dir.mkdir('pgbr-log')
  const pgbrSpoolPath = await dir.mkdir('pgbr-spool')
  const pgbrConfigPath = join(dir.path, 'pgbackrest.conf')

  const writePgbrConfig = async (): Promise<void> => {
    const text = [
      '[global]',
      `repo1-path=${pgbrRepoPath}`,
      `lock-path=${pgbrLockPath}`,
      `log-path=${pgbrLogPath}`,
      `spool-path=${pgbrSpoolPath}`,
      'compress-type=gz',
      'start-fast=y',
      'archive-timeout=30',
      'log-level-file=off',
      '',
      `[${name}]`,
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ].join('\n')
    await writeFile(pgbrConfigPath, text)
    await chmod(pgbrConfigPath, 0o644)
  }

  // Both pushes must succeed for PostgreSQL to count the segment archived; `&&` keeps a failure of either visible.
  await cluster.configure({
    archive_command:
      `${waldenCommand()} --config=${walden.configPath} --stanza=${name} archive-push %p` +
      ` && ${PGBACKREST} --config=${pgbrConfigPath} --stanza=${name} archive-push %p`,
  })
  await cluster.start()
  await walden.writeConfig()
  await writePgbrConfig()

  const pgbackrest = (args: readonly string[]): Promise<RunResult> =>
    runAsPostgres(PGBACKREST, [`--config=${pgbrConfigPath}`, `--stanza=${name}`, ...args])
  const pgbackrestOk = async (args: readonly string[]): Promise<RunResult> => {
    const result = await pgbackrest(args)
    if (result.code !== 0) {
      throw new Error(`pgbackrest ${args.join(' ')} exited with ${result.code}\n${result.stdout}${result.stderr}\n${await cluster.logTail()}`)
    }
    return result
  }

  const switchWal = async (): Promise<string> => {
    await cluster.query('create table if not exists twin_wal_filler (v int); insert into twin_wal_filler values (1)')
    const segment = await cluster.psqlScalar('select pg_walfile_name(pg_switch_wal())')
    await waitUntil(`segment ${segment} archived`, async () =>
      (await cluster.psqlScalar('select coalesce(last_archived_wal, \'\') from pg_stat_archiver')) >= segment)
    return segment
  }

  await walden.waldenOk(['stanza-create'])
  await pgbackrestOk(['stanza-create'])
  await walden.waldenOk(['check'])
  await pgbackrestOk(['check'])
  return { walden, pgbrConfigPath, pgbrRepoPath, pgbackrest, pgbackrestOk, switchWal, writePgbrConfig }
}

/** Removes one archived segment (every stored form of it) from a repository; returns the files removed. */
export async function removeArchivedSegment(repoPath: string, stanza: string, archiveId: string, segment: string): Promise<string[]> {
  const folder = join(repoPath, 'archive', stanza, archiveId, segment.slice(0, 16))
  const removed: string[] = []
  for (const entry of await readdir(folder)) {
    if (entry.startsWith(`${segment}-`)) {
      await rm(join(folder, entry))
      removed.push(entry)
    }
  }
  return removed
}

/**
 * A folder (in `dir`, owned by postgres) holding `pgbackrest`, a link to this checkout's bin/walden, as a team
 * switching from pgBackRest installs walden under the old name: tools that run `pgbackrest` from PATH (the exporter)
 * or gate on its version (check_pgbackrest) get walden, which answers `version` with the pgBackRest level it follows.
 * Returns the folder; the link itself is `<folder>/pgbackrest`.
 */
export async function waldenAsPgbackrest(dir: TestDir): Promise<string> {
  const folder = await dir.mkdir('walden-as-pgbackrest')
  await symlink(join(waldenPackageRoot(), 'bin', 'walden'), join(folder, 'pgbackrest'))
  return folder
}
