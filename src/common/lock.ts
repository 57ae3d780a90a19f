// Lock files and stop files in lock-path.
//
// Node has no flock(), so a lock is a file created with O_EXCL holding the owner's pid. A lock whose owner is gone
// (killed, crashed) is stale and taken over: a SIGKILLed backup must not block the next one forever.

import { existsSync, readFileSync, unlinkSync } from 'node:fs'
import { chmod, mkdir, open, readdir, rmdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from './errors.js'

export interface Lock {
  path: string
  release(): void
}

const held = new Set<string>()

/**
 * Lock names are <stanza>-<type>; the types match LockType in config/commands.ts, plus the lock of the asynchronous
 * archive-get process (a standby that also archives runs both asynchronous processes at once).
 */
const LOCK_TYPES = ['archive', 'archive-get', 'backup'] as const

// Locks are released when the process exits for any reason, including an error thrown past main.
process.on('exit', () => {
  for (const path of held) {
    try {
      unlinkSync(path)
    } catch {
      // already gone
    }
  }
})

/** Creates lock-path so every user that runs walden on this host can create its locks in it (mode 1777, like /tmp). */
async function lockPathEnsure(lockPath: string): Promise<void> {
  try {
    await mkdir(lockPath, { recursive: true })
    await chmod(lockPath, 0o1777).catch(() => undefined)
  } catch (error) {
    fail('FileWrite', `unable to create lock path '${lockPath}': ${(error as Error).message}`, {
      hint: 'set lock-path in [global] to a folder walden may write.',
    })
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return errnoCode(error) === 'EPERM'
  }
}

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22), telling a reused pid apart. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

interface LockOwner {
  pid: number
  startTime?: string
}

function lockOwner(path: string): LockOwner | undefined {
  try {
    const [pid, startTime] = readFileSync(path, 'utf8').trim().split(' ')
    const number = Number.parseInt(pid ?? '', 10)
    return Number.isFinite(number) ? { pid: number, ...(startTime ? { startTime } : {}) } : undefined
  } catch {
    return undefined
  }
}

/** The owner still runs: its pid is alive and, where /proc tells, it is the same process that took the lock. */
function ownerAlive(owner: LockOwner): boolean {
  if (!pidAlive(owner.pid)) return false
  const startTime = processStartTime(owner.pid)
  return owner.startTime === undefined || startTime === undefined || startTime === owner.startTime
}

const TAKEOVER_STALE_MS = 10_000

/**
 * Removes a stale lock so that exactly one process may then create it. Two processes that both find the same stale
 * lock must not both remove it: the second could remove the lock the first has just taken. The removal is
 * therefore serialised through a takeover folder (mkdir is atomic); a takeover folder left by a process killed
 * mid-takeover is itself stale after a few seconds.
 */
async function lockTakeOver(path: string, stale: LockOwner | undefined): Promise<void> {
  const takeover = `${path}.takeover`
  try {
    await mkdir(takeover)
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw error
    const age = Date.now() - (await stat(takeover).then((info) => info.mtimeMs, () => Date.now()))
    if (age > TAKEOVER_STALE_MS) await rmdir(takeover).catch(() => undefined)
    return
  }
  try {
    // Still the same stale lock? Another process may have completed a takeover meanwhile.
    const current = lockOwner(path)
    if (current?.pid === stale?.pid && current?.startTime === stale?.startTime) await unlink(path).catch(() => undefined)
  } finally {
    await rmdir(takeover).catch(() => undefined)
  }
}

/** Takes the named lock (e.g. 'demo-backup') or fails naming the process that holds it. */
export async function lockAcquire(lockPath: string, name: string): Promise<Lock> {
  await lockPathEnsure(lockPath)
  const path = join(lockPath, `${name}.lock`)
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644)
      await handle.writeFile(`${process.pid} ${processStartTime(process.pid) ?? ''}\n`)
      await handle.close()
      held.add(path)
      return {
        path,
        release(): void {
          held.delete(path)
          try {
            unlinkSync(path)
          } catch {
            // already gone
          }
        },
      }
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') {
        fail('LockAcquire', `unable to create lock file '${path}': ${(error as Error).message}`)
      }
      const owner = lockOwner(path)
      if (owner !== undefined && ownerAlive(owner)) {
        fail('LockAcquire', `unable to acquire lock '${name}': held by walden process ${owner.pid}`, {
          hint: 'wait for it to finish, or end it with `walden stop --force`.',
        })
      }
      // Stale: the owner is gone (killed, crashed) or its pid now belongs to another process.
      await lockTakeOver(path, owner)
      await new Promise((resolve) => setTimeout(resolve, 20 * (attempt + 1)))
    }
  }
  fail('LockAcquire', `unable to acquire lock '${name}': another process is taking it over`, { hint: 'try again.' })
}

/** Whether a live process holds the named lock (e.g. 'demo-archive'); a stale lock file does not count. */
export function lockHeld(lockPath: string, name: string): boolean {
  const owner = lockOwner(join(lockPath, `${name}.lock`))
  return owner !== undefined && ownerAlive(owner)
}

/** Pids of live walden processes holding locks of the stanza (or of any stanza). */
export async function lockHolders(lockPath: string, stanza?: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir(lockPath).catch(() => [] as string[])) {
    // Exact names: stanza names may contain '-', so 'demo' must not match 'demo-2-backup.lock'.
    const ours = stanza === undefined ? entry.endsWith('.lock') : LOCK_TYPES.some((type) => entry === `${stanza}-${type}.lock`)
    if (!ours) continue
    const owner = lockOwner(join(lockPath, entry))
    if (owner !== undefined && owner.pid !== process.pid && ownerAlive(owner)) pids.push(owner.pid)
  }
  return pids
}

function stopFile(lockPath: string, stanza?: string): string {
  return join(lockPath, stanza === undefined ? 'all.stop' : `${stanza}.stop`)
}

export async function stopFileCreate(lockPath: string, stanza?: string): Promise<boolean> {
  await lockPathEnsure(lockPath)
  const path = stopFile(lockPath, stanza)
  try {
    await writeFile(path, '', { flag: 'wx', mode: 0o644 })
    return true
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false
    fail('FileWrite', `unable to create stop file '${path}': ${(error as Error).message}`)
  }
}

export async function stopFileRemove(lockPath: string, stanza?: string): Promise<boolean> {
  try {
    await unlink(stopFile(lockPath, stanza))
    return true
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false
    fail('FileWrite', `unable to remove stop file '${stopFile(lockPath, stanza)}': ${(error as Error).message}`)
  }
}

/** Fails when `walden stop` is in effect for all stanzas or for this one. */
export async function stopFileCheck(lockPath: string, stanza?: string): Promise<void> {
  const scopes = stanza === undefined ? [undefined] : [undefined, stanza]
  for (const scope of scopes) {
    // Synchronous: every command checks this, archive-push once per WAL segment, and a stat is cheaper than a
    // round trip through the thread pool.
    if (!existsSync(stopFile(lockPath, scope))) continue
    fail('Stop', scope === undefined ? 'stop file exists for all stanzas' : `stop file exists for stanza '${scope}'`, {
      hint: `run \`walden ${scope === undefined ? '' : `--stanza=${scope} `}start\` to allow walden commands again.`,
    })
  }
}
