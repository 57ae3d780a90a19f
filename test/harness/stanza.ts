// A stanza for integration tests: a real cluster archiving through bin/walden into a repository in a temp folder,
// with a config file, all owned by postgres. `walden(...)` runs the CLI as PostgreSQL's own commands would run.

import { execFileSync } from 'node:child_process'
import { chmod, chown, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createCluster, runWalden, testDir, waldenCommand } from './cluster.js'
import type { Cluster, RunResult, TestDir } from './cluster.js'

export interface TestStanza {
  name: string
  dir: TestDir
  cluster: Cluster
  repoPath: string
  configPath: string
  lockPath: string
  /** Runs walden with --config and --stanza set; as postgres. */
  walden(args: readonly string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult>
  /** Runs walden and fails the test with its output when it does not exit 0. */
  waldenOk(args: readonly string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult>
  /**
   * Rewrites the config file with extra [global] lines; `repo1Lines`, when given, replace the stanza's repo1 lines from
   * now on (see TestStanzaOptions.repo1Lines).
   */
  writeConfig(extraGlobal?: string[], repo1Lines?: string[]): Promise<void>
}

export interface TestStanzaOptions {
  major: number
  name?: string
  compressType?: string
  processMax?: number
  checksums?: boolean
  /** Start the cluster (default true). */
  start?: boolean
  settings?: Record<string, string>
  /**
   * Lines that say where repo1 is, instead of `repo1-path=<a folder of the test>`: e.g. an S3 bucket (repo1-type=s3,
   * its bucket, endpoint, key and secret). With them the config file is owned by postgres with mode 0600, as a file
   * holding a secret must be; archive_command reads it as postgres, and the environment of the test never reaches
   * it, so the config file is where the server's walden finds the credentials.
   */
  repo1Lines?: string[]
}

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

export async function createTestStanza(options: TestStanzaOptions): Promise<TestStanza> {
  const name = options.name ?? 'demo'
  const dir = await testDir(`walden-${name}-pg${options.major}`)
  const repoPath = await dir.mkdir('repo')
  const lockPath = await dir.mkdir('lock')
  const logPath = await dir.mkdir('log')
  const configPath = join(dir.path, 'walden.conf')
  const cluster = await createCluster({
    major: options.major,
    dir,
    checksums: options.checksums ?? true,
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: `${waldenCommand()} --config=${configPath} --stanza=${name} archive-push %p`,
      ...options.settings,
    },
  })

  let repo1Lines = options.repo1Lines
  const writeConfig = async (extraGlobal: string[] = [], newRepo1Lines?: string[]): Promise<void> => {
    if (newRepo1Lines !== undefined) repo1Lines = newRepo1Lines
    const text = [
      '[global]',
      ...(repo1Lines ?? [`repo1-path=${repoPath}`]),
      `lock-path=${lockPath}`,
      `log-path=${logPath}`,
      `compress-type=${options.compressType ?? 'zst'}`,
      `process-max=${options.processMax ?? 2}`,
      'start-fast=y',
      'archive-timeout=30',
      ...extraGlobal,
      '',
      `[${name}]`,
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ].join('\n')
    await writeFile(configPath, text)
    if (repo1Lines === undefined) {
      // Owned by root, readable by postgres: walden only reads it.
      await chmod(configPath, 0o644)
    } else {
      // It may hold a secret: postgres's alone.
      const { uid, gid } = postgresIds()
      await chown(configPath, uid, gid)
      await chmod(configPath, 0o600)
    }
  }
  await writeConfig()
  if (options.start ?? true) {
    await cluster.start()
    // The port may change if the first one was taken; keep the config in step.
    await writeConfig()
  }

  const walden = (args: readonly string[], runOptions: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> =>
    runWalden([`--config=${configPath}`, `--stanza=${name}`, ...args], runOptions)
  const waldenOk = async (args: readonly string[], runOptions: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> => {
    const result = await walden(args, runOptions)
    if (result.code !== 0) {
      throw new Error(`walden ${args.join(' ')} exited with ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}\nserver log:\n${await cluster.logTail()}`)
    }
    return result
  }
  return { name, dir, cluster, repoPath, configPath, lockPath, walden, waldenOk, writeConfig }
}
