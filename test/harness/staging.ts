// What the staging tests share: polling until a condition holds, Debian's client tools (pg_basebackup, pgbench),
// and running a tool as postgres (pg_basebackup writes folders walden then reads as postgres).

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pgBinDirs } from '../../src/pg/binaries.js'
import type { RunResult } from './cluster.js'

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every 250 ms until it is true (an error counts as false); fails the test after `timeoutMs`. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(250)) {
    if (await check().catch(() => false)) return
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Debian's client tools (pg_basebackup, pgbench): the bin folder of the newest major that has them. */
export async function clientBin(): Promise<string> {
  for (const [, dir] of [...(await pgBinDirs())].reverse()) {
    if (await stat(join(dir, 'pg_basebackup')).then(() => true, () => false)) return dir
  }
  throw new Error('no pg_basebackup found: install postgresql-client (Debian) to run this test')
}

/** Runs a tool as postgres; resolves with its exit code and output. */
export function runAsPostgres(command: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('runuser', ['-u', 'postgres', '--', command, ...args], { cwd: '/tmp', env: { ...process.env, LC_ALL: 'C' } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code, signal) => resolvePromise({ code: code ?? 128, signal, stdout, stderr }))
  })
}
