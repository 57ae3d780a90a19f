import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { hookError, hookEnvironment, hooksRun } from './hooks.js'
import type { HookContext } from './hooks.js'

const CONTEXT: HookContext = {
  stanza: 'demo',
  stagingPath: '/srv/staging',
  stagingPort: 6543,
  snapshot: { label: '20261203-101010F', startLsn: '0/3000028', stopLsn: '0/3000100', replayLsn: '0/3000100', timeline: 1 },
  result: 'ok',
}

/** Runs hooks and keeps the lines they wrote to the job log. */
async function runHooks(kind: 'pre-snapshot' | 'post-snapshot', commands: string[], baseEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH }) {
  const lines: string[] = []
  const failure = await hooksRun(kind, commands, CONTEXT, { output: (line) => lines.push(line), baseEnv })
  return { failure, output: lines.filter((line) => !/^(pre|post)-snapshot hook \d+ of \d+: (begin|end)/.test(line)), lines }
}

describe('hookEnvironment()', () => {
  test('walden values come in, walden secrets and PGPASSWORD stay out', () => {
    const env = hookEnvironment('post-snapshot', CONTEXT, { PATH: '/bin', WALDEN_REPO1_CIPHER_PASS: 'secret', PGPASSWORD: 'pw', HOME: '/home/x' })
    assert.equal(env.WALDEN_REPO1_CIPHER_PASS, undefined)
    assert.equal(env.PGPASSWORD, undefined)
    assert.equal(env.PATH, '/bin')
    assert.equal(env.HOME, '/home/x')
    assert.equal(env.WALDEN_HOOK, 'post-snapshot')
    assert.equal(env.WALDEN_STAGING_PORT, '6543')
    assert.equal(env.WALDEN_SNAPSHOT_LABEL, '20261203-101010F')
    assert.equal(env.WALDEN_SNAPSHOT_TIMELINE, '1')
    assert.equal(env.WALDEN_HOOK_RESULT, 'ok')
    // Unknown values are unset, not empty.
    assert.equal('WALDEN_CLONE_PATH' in env, false)
  })
})

describe('hooksRun()', () => {
  test('a hook sees its environment and its output reaches the log, stdout and stderr alike', async () => {
    const { failure, output } = await runHooks('pre-snapshot', ['echo "label=$WALDEN_SNAPSHOT_LABEL port=$WALDEN_STAGING_PORT"; echo oops >&2; printf tail'])
    assert.equal(failure, undefined)
    assert.deepEqual(output.sort(), ['label=20261203-101010F port=6543', 'oops', 'tail'].sort())
  })

  test('a value with shell syntax in it stays a value', async () => {
    const lines: string[] = []
    await hooksRun('pre-snapshot', ['printf "%s\\n" "$WALDEN_STAGING_PATH"'], { ...CONTEXT, stagingPath: "/srv/it's $(touch /tmp/x) `id`" }, { output: (line) => lines.push(line), baseEnv: {} })
    assert.ok(lines.includes("/srv/it's $(touch /tmp/x) `id`"), lines.join('\n'))
  })

  test('pre hooks run in order and stop at the first failure', async () => {
    const { failure, output } = await runHooks('pre-snapshot', ['echo one', 'echo two; exit 3', 'echo three'])
    assert.deepEqual(output, ['one', 'two'])
    assert.deepEqual(failure, { kind: 'pre-snapshot', number: 2, count: 3, reason: 'exited with status 3' })
    assert.equal(
      hookError(failure!).message,
      'pre-snapshot hook 2 of 3 (staging-hook-pre-snapshot) exited with status 3',
    )
    assert.equal(hookError(failure!).code, 96)
  })

  test('post hooks all run, and the first failure is reported', async () => {
    const { failure, output } = await runHooks('post-snapshot', ['exit 1', 'echo two', 'kill -KILL $$'])
    assert.deepEqual(output, ['two'])
    assert.deepEqual(failure, { kind: 'post-snapshot', number: 1, count: 3, reason: 'exited with status 1' })
  })

  test('a killed hook is a failure', async () => {
    const { failure } = await runHooks('pre-snapshot', ['kill -TERM $$'])
    assert.equal(failure?.reason, 'was killed by signal SIGTERM')
  })

  test('no hooks, no failure', async () => {
    const { failure, lines } = await runHooks('pre-snapshot', [])
    assert.equal(failure, undefined)
    assert.deepEqual(lines, [])
  })
})
