// Hooks: the user's shell commands run around a staging operation (pre/post snapshot) or a clone (configure clone).
//
// Each hook is given to /bin/sh -c exactly as the user wrote it, as the OS user walden runs as. walden never puts a
// value of its own into the command text (a label or a path with a quote in it would become shell syntax): every value
// a hook may want comes through the environment, as WALDEN_* variables (hookEnvironment says which). Output, stdout and
// stderr, goes line by line to the caller's sink (the job's log). Exit status 0 is success; anything else, a signal,
// or a hook that cannot be started is a failure.
//
// Pre hooks stop at the first failure: what follows them (the snapshot, the later pre hooks) may depend on them.
// Post hooks all run, whatever failed before them, since their job is to undo what a pre hook did.
//
// The environment is walden's own minus its secrets: every WALDEN_* variable walden was started with (repository keys
// and passwords may be among them) and PGPASSWORD are removed before walden's hook variables are added. The user's
// hook text itself is never logged or put in an error (it may hold whatever the user wrote there); a hook is named by
// its kind and number.

import { spawn } from 'node:child_process'
import { WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'

/** When a hook runs. The name is WALDEN_HOOK in its environment. */
export type HookKind = 'pre-snapshot' | 'post-snapshot' | 'configure-clone'

/** The option each kind of hook is set with, for messages. */
export const HOOK_OPTIONS: Readonly<Record<HookKind, string>> = {
  'pre-snapshot': 'staging-hook-pre-snapshot',
  'post-snapshot': 'staging-hook-post-snapshot',
  'configure-clone': 'clone-hook-configure',
}

/** What a hook is told about the operation it runs in; each field becomes one variable when known. */
export interface HookContext {
  stanza: string
  /** staging-path: the staging cluster's data folder. */
  stagingPath?: string
  /** staging-port: the staging cluster's port. */
  stagingPort?: number
  /** The snapshot being taken (post-snapshot, once known), or the one a clone is made from. */
  snapshot?: {
    label?: string
    startLsn?: string
    stopLsn?: string
    /** The staging cluster's last replayed LSN at the snapshot. */
    replayLsn?: string
    timeline?: number
  }
  /** The staging cluster's last replayed LSN when the hook starts (pre-snapshot). */
  replayLsn?: string
  clone?: { name: string; path: string; port: number }
  /** Post hooks: whether the operation and its pre hooks succeeded. */
  result?: 'ok' | 'failed'
  /** The job the hook runs in (jobs.ts), for a hook that wants to name it. */
  jobId?: string
}

/** Variables of walden's environment never handed to a hook: walden's options (secrets among them) and libpq's password. */
const WITHHELD = (name: string): boolean => name.startsWith('WALDEN_') || name === 'PGPASSWORD'

/**
 * The environment a hook runs with: walden's own without its secrets, plus
 * - WALDEN_HOOK: pre-snapshot, post-snapshot or configure-clone;
 * - WALDEN_STANZA, WALDEN_STAGING_PATH, WALDEN_STAGING_PORT;
 * - WALDEN_REPLAY_LSN: the staging cluster's last replayed LSN when the hook starts (pre-snapshot);
 * - WALDEN_SNAPSHOT_LABEL, WALDEN_SNAPSHOT_START_LSN, WALDEN_SNAPSHOT_STOP_LSN, WALDEN_SNAPSHOT_REPLAY_LSN,
 *   WALDEN_SNAPSHOT_TIMELINE: the snapshot taken (post-snapshot, when it was taken) or cloned (configure-clone);
 * - WALDEN_CLONE, WALDEN_CLONE_PATH, WALDEN_CLONE_PORT: the clone (configure-clone);
 * - WALDEN_HOOK_RESULT: ok or failed, whether the operation and its pre hooks succeeded (post hooks);
 * - WALDEN_JOB_ID: the job the hook runs in.
 * A variable whose value is not known is not set (never set empty), so `${WALDEN_SNAPSHOT_LABEL:?}` catches it.
 */
export function hookEnvironment(kind: HookKind, context: HookContext, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(base)) if (!WITHHELD(name) && value !== undefined) env[name] = value
  const set = (name: string, value: string | number | undefined): void => {
    if (value !== undefined) env[name] = String(value)
  }
  set('WALDEN_HOOK', kind)
  set('WALDEN_STANZA', context.stanza)
  set('WALDEN_STAGING_PATH', context.stagingPath)
  set('WALDEN_STAGING_PORT', context.stagingPort)
  set('WALDEN_REPLAY_LSN', context.replayLsn)
  set('WALDEN_SNAPSHOT_LABEL', context.snapshot?.label)
  set('WALDEN_SNAPSHOT_START_LSN', context.snapshot?.startLsn)
  set('WALDEN_SNAPSHOT_STOP_LSN', context.snapshot?.stopLsn)
  set('WALDEN_SNAPSHOT_REPLAY_LSN', context.snapshot?.replayLsn)
  set('WALDEN_SNAPSHOT_TIMELINE', context.snapshot?.timeline)
  set('WALDEN_CLONE', context.clone?.name)
  set('WALDEN_CLONE_PATH', context.clone?.path)
  set('WALDEN_CLONE_PORT', context.clone?.port)
  set('WALDEN_HOOK_RESULT', context.result)
  set('WALDEN_JOB_ID', context.jobId)
  return env
}

/** Where a hook's output goes: one call per line, without its newline. */
export type HookOutput = (line: string) => void

export interface HookRunOptions {
  /** The job log; each line is also logged at detail level. */
  output: HookOutput
  /** The environment to start from; process.env by default. */
  baseEnv?: NodeJS.ProcessEnv
}

/** One hook that did not succeed. */
export interface HookFailure {
  kind: HookKind
  /** 1-based, in the order the hooks were given. */
  number: number
  count: number
  /** 'exited with status 3', 'was killed by signal SIGKILL', 'could not be started: ...'. */
  reason: string
}

/** The error a failed hook is reported with: names the hook by kind, number and option, never by its text. */
export function hookError(failure: HookFailure): WaldenError {
  const option = HOOK_OPTIONS[failure.kind]
  return new WaldenError('HookFailed', `${failure.kind} hook ${failure.number} of ${failure.count} (${option}) ${failure.reason}`, {
    hint: "its output is in the job's log (walden jobs); fix the hook or remove it from " + `${option}.`,
  })
}

/** Runs one hook to its end; resolves with the reason it failed, or undefined on exit status 0. */
function hookRunOne(command: string, env: NodeJS.ProcessEnv, output: HookOutput): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false
    const finish = (reason: string | undefined): void => {
      if (settled) return
      settled = true
      resolve(reason)
    }
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    // stdout and stderr interleave as the hook writes them; each is cut into lines on its own so a line is never split.
    const pending = { stdout: '', stderr: '' }
    const take = (stream: 'stdout' | 'stderr', chunk: string): void => {
      const lines = (pending[stream] + chunk).split('\n')
      pending[stream] = lines.pop()!
      for (const line of lines) output(line)
    }
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => take('stdout', chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => take('stderr', chunk))
    child.on('error', (error) => finish(`could not be started: ${error.message}`))
    // 'close', not 'exit': the output streams are drained by then, so the log holds every line before the verdict.
    child.on('close', (code, signal) => {
      for (const stream of ['stdout', 'stderr'] as const) if (pending[stream] !== '') output(pending[stream])
      if (signal !== null) finish(`was killed by signal ${signal}`)
      else finish(code === 0 ? undefined : `exited with status ${code}`)
    })
  })
}

/**
 * Runs the hooks of one kind in order. Pre hooks (and configure-clone) stop at the first failure; post hooks all run.
 * Resolves with the first failure, or undefined when every hook exited 0 (or there were none); never rejects, so a
 * caller can always go on to its post hooks.
 */
export async function hooksRun(kind: HookKind, commands: readonly string[], context: HookContext, options: HookRunOptions): Promise<HookFailure | undefined> {
  const env = hookEnvironment(kind, context, options.baseEnv)
  const runAll = kind === 'post-snapshot'
  let first: HookFailure | undefined
  for (const [index, command] of commands.entries()) {
    const name = `${kind} hook ${index + 1} of ${commands.length}`
    options.output(`${name}: begin`)
    const started = Date.now()
    const reason = await hookRunOne(command, env, (line) => {
      options.output(line)
      log.detail(`${name}: ${line}`)
    })
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    if (reason === undefined) {
      options.output(`${name}: end: exit status 0 after ${seconds}s`)
      log.info(`${name} succeeded in ${seconds}s`)
      continue
    }
    options.output(`${name}: end: ${reason} after ${seconds}s`)
    const failure: HookFailure = { kind, number: index + 1, count: commands.length, reason }
    log.error(hookError(failure).message)
    first ??= failure
    if (!runAll) break
  }
  return first
}
