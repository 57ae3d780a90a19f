// A stanza for integration tests: a real cluster archiving through bin/walden into a repository in a temp folder,
// with a config file, all owned by postgres. `walden(...)` runs the CLI as PostgreSQL's own commands would run.

import { chmod, writeFile } from 'node:fs/promises'
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
  /** Rewrites the config file with extra [global] lines. */
  writeConfig(extraGlobal?: string[]): Promise<void>
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

  const writeConfig = async (extraGlobal: string[] = []): Promise<void> => {
    const text = [
      '[global]',
      `repo1-path=${repoPath}`,
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
    // Owned by root, readable by postgres: walden only reads it.
    await chmod(configPath, 0o644)
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
