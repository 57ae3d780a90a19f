// Lock files and stop files in lock-path.
//
// Node has no flock(), so a lock is a file created with O_EXCL holding the owner's pid. A lock whose owner is gone
// (killed, crashed) is stale and taken over: a SIGKILLed backup must not block the next one forever.

import { readFileSync, unlinkSync } from 'node:fs'
import { chmod, mkdir, open, readdir, readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from './errors.js'

export interface Lock {
  path: string
  release(): void
}

const held = new Set<string>()

/** Lock names are <stanza>-<type>; the types match LockType in config/commands.ts. */
const LOCK_TYPES = ['archive', 'backup'] as const

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

function lockOwner(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10)
    return Number.isFinite(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

/** Takes the named lock (e.g. 'demo-backup') or fails naming the process that holds it. */
export async function lockAcquire(lockPath: string, name: string): Promise<Lock> {
  await lockPathEnsure(lockPath)
  const path = join(lockPath, `${name}.lock`)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644)
      await handle.writeFile(`${process.pid}\n`)
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
      if (owner !== undefined && pidAlive(owner)) {
        fail('LockAcquire', `unable to acquire lock '${name}': held by walden process ${owner}`, {
          hint: 'wait for it to finish, or end it with `walden stop --force`.',
        })
      }
      // Stale: the owner is gone. Remove and try again; O_EXCL decides if two processes race for it.
      await unlink(path).catch(() => undefined)
    }
  }
  fail('LockAcquire', `unable to acquire lock '${name}'`)
}

/** Pids of live walden processes holding locks of the stanza (or of any stanza). */
export async function lockHolders(lockPath: string, stanza?: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir(lockPath).catch(() => [] as string[])) {
    // Exact names: stanza names may contain '-', so 'demo' must not match 'demo-2-backup.lock'.
    const ours = stanza === undefined ? entry.endsWith('.lock') : LOCK_TYPES.some((type) => entry === `${stanza}-${type}.lock`)
    if (!ours) continue
    const pid = lockOwner(join(lockPath, entry))
    if (pid !== undefined && pid !== process.pid && pidAlive(pid)) pids.push(pid)
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
    const exists = await readFile(stopFile(lockPath, scope)).then(
      () => true,
      () => false,
    )
    if (!exists) continue
    fail('Stop', scope === undefined ? 'stop file exists for all stanzas' : `stop file exists for stanza '${scope}'`, {
      hint: `run \`walden ${scope === undefined ? '' : `--stanza=${scope} `}start\` to allow walden commands again.`,
    })
  }
}
