// Lock files and stop files in lock-path (a folder private to walden's user: lock-path.ts).
//
// A lock is a kernel lock (an open file description lock, native/io) on a file named after it, held through a
// descriptor kept open for the life of the lock. The kernel drops it when the descriptor closes or the process dies,
// however it dies, before it is a zombie and whether or not its parent ever reaps it: a killed walden never blocks
// the next one, and nothing is decided from a pid (a pid outlives its process as a zombie, and is reused). The file
// also holds the owner's pid, only to say who holds it and for `walden stop --force` to signal it.
//
// Without native/io walden takes no locks at all (FileMissing) rather than fall back to pid files: a process using pid
// files and one using kernel locks would not see each other's locks, and two backups would run at once.

import { closeSync, constants, fchmodSync, fchownSync, fstatSync, ftruncateSync, lstatSync, openSync, readSync, readdirSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { nativeAddonLoad, nativeAddonPath } from '../io/native.js'
import { errnoCode, fail } from './errors.js'
import { lockFolder, userName } from './lock-path.js'
import type { LockFolder } from './lock-path.js'

export interface Lock {
  path: string
  release(): void
}

/** The mode of lock and stop files: the folder's user may write, its group may read (info tests a lock read-only). */
const LOCK_FILE_MODE = 0o640

/** Lock files this process holds, with the descriptor that holds each. */
const held = new Map<string, number>()

/**
 * Lock names are <stanza>-<type>; the types match LockType in config/commands.ts, plus the lock of the asynchronous
 * archive-get process (a standby that also archives runs both asynchronous processes at once) and the staging lock
 * every staging-* and clone-* operation on the stanza holds (commands/staging/state.ts).
 */
const LOCK_TYPES = ['archive', 'archive-get', 'backup', 'staging'] as const

// A lock file is removed on release, by a process that ends normally or on an error thrown past main. One left by a
// killed process is harmless: nobody holds its kernel lock, and the next process takes it.
process.on('exit', () => {
  for (const [path, fd] of held) release(path, fd)
})

interface KernelLocks {
  /** 0 taken, -1 held by another open file description, or an errno. */
  lockFile(fd: number, exclusive: boolean): number
  /** 0 free, -1 held by another open file description, or an errno. */
  lockTest(fd: number): number
}

/** Test hook: `hidden` behaves as if native/io were not built. */
export const lockForTest = { hidden: false }

function kernelLocks(): KernelLocks {
  const io = lockForTest.hidden ? undefined : nativeAddonLoad<KernelLocks>('io', 'lockTest')
  if (io === undefined) {
    fail('FileMissing', `walden's native part native/io is not built${nativeAddonPath('io') === undefined ? '' : ' with lock support'}: walden takes its locks through it`, {
      hint: 'build walden (npm run build) on a machine with a C compiler and the Node.js headers; without native/io walden cannot lock.',
    })
  }
  return io
}

function errnoText(errno: number): string {
  const name = Object.entries(constants).find(([key, value]) => key.startsWith('E') && value === errno)?.[0]
  return name ?? `errno ${errno}`
}

/** The pid a lock file names, if any (the holder writes it just after it takes the lock). */
function lockFilePid(fd: number): number | undefined {
  const buffer = Buffer.alloc(32)
  const length = readSync(fd, buffer, 0, buffer.length, 0)
  const pid = Number.parseInt(buffer.subarray(0, length).toString('utf8'), 10)
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

function release(path: string, fd: number): void {
  held.delete(path)
  // Removed while still locked, then closed: a process that opened the file meanwhile and gets the lock on close
  // sees that its file is no longer the one at the path, and starts again (lockAcquire).
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
  try {
    closeSync(fd)
  } catch {
    // already closed
  }
}

/**
 * Opens a lock file without following a symbolic link, and checks it is a plain file of ours (or of the folder's
 * owner, for root) with no other name: root must not write its pid through a hard link into some other file.
 */
function lockFileOpen(folder: LockFolder, path: string, flags: number): number | undefined {
  let fd: number
  try {
    fd = openSync(path, flags | constants.O_NOFOLLOW, LOCK_FILE_MODE)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    fail('FileOpen', `unable to open lock file '${path}': ${(error as Error).message}`, {
      hint: errnoCode(error) === 'ELOOP' ? 'a lock file is never a symbolic link: remove it.' : undefined,
    })
  }
  const info = fstatSync(fd)
  const me = process.geteuid?.() ?? info.uid
  if (!info.isFile() || info.nlink > 1 || (info.uid !== me && info.uid !== folder.uid)) {
    closeSync(fd)
    fail('FileInvalid', `lock file '${path}' is not a plain file of walden's user (owner uid ${info.uid}, ${info.nlink} links)`, {
      hint: 'remove it; walden creates it again.',
    })
  }
  if (flags & constants.O_CREAT) {
    // Root's files in the service user's folder become that user's, so its processes can take them in turn.
    if (info.uid !== folder.uid && me === 0) fchownSync(fd, folder.uid, folder.gid)
    if ((info.mode & 0o777) !== LOCK_FILE_MODE) fchmodSync(fd, LOCK_FILE_MODE)
  }
  return fd
}

/** Whether `fd` is still the file at `path`: a releasing holder removes it before it lets go. */
function stillAtPath(fd: number, path: string): boolean {
  const open = fstatSync(fd)
  const current = lstatSync(path, { throwIfNoEntry: false })
  return current !== undefined && current.ino === open.ino && current.dev === open.dev
}

/** Takes the named lock (e.g. 'demo-backup') or fails naming the process that holds it. */
export async function lockAcquire(lockPath: string, name: string): Promise<Lock> {
  const io = kernelLocks()
  const folder = lockFolder(lockPath, true)!
  const path = join(folder.path, `${name}.lock`)
  // More than one round only when the file was removed under us by a holder releasing it.
  for (let attempt = 0; attempt < 10; attempt++) {
    const fd = lockFileOpen(folder, path, constants.O_RDWR | constants.O_CREAT)
    // ENOENT despite O_CREAT: the folder itself was removed after its check.
    if (fd === undefined) fail('FileOpen', `unable to create lock file '${path}': lock-path was removed`, { hint: 'try again.' })
    const result = io.lockFile(fd, true)
    if (result === -1) {
      const pid = lockFilePid(fd)
      closeSync(fd)
      fail('LockAcquire', `unable to acquire lock '${name}': held by ${pid === undefined ? 'another walden process' : `walden process ${pid}`}`, {
        hint: 'wait for it to finish, or end it with `walden stop --force`.',
      })
    }
    if (result !== 0) {
      closeSync(fd)
      fail('LockAcquire', `unable to lock '${path}': ${errnoText(result)}`, {
        hint: 'lock-path must be on a local file system that supports open file description locks (Linux 3.15 or later).',
      })
    }
    if (!stillAtPath(fd, path)) {
      closeSync(fd)
      continue
    }
    // Ours: replace the pid of any earlier holder (one that was killed left its file) with ours.
    ftruncateSync(fd, 0)
    writeSync(fd, `${process.pid}\n`, 0)
    held.set(path, fd)
    return {
      path,
      release(): void {
        if (held.get(path) === fd) release(path, fd)
      },
    }
  }
  fail('LockAcquire', `unable to acquire lock '${name}': its file keeps being replaced`, { hint: 'try again.' })
}

/** The pid of the process holding the lock file, or 0 when it is held and names no pid, or undefined when free. */
function lockFileHolder(io: KernelLocks, folder: LockFolder, path: string): number | undefined {
  const fd = lockFileOpen(folder, path, constants.O_RDONLY)
  if (fd === undefined) return undefined
  try {
    // A test, not a lock: asking must never make a process that takes the lock at the same moment fail.
    const result = io.lockTest(fd)
    if (result > 0) fail('FileRead', `unable to test lock '${path}': ${errnoText(result)}`)
    return result === 0 ? undefined : (lockFilePid(fd) ?? 0)
  } finally {
    closeSync(fd)
  }
}

/** Whether a live process (this one included) holds the named lock (e.g. 'demo-archive'). */
export function lockHeld(lockPath: string, name: string): boolean {
  const io = kernelLocks()
  const folder = lockFolder(lockPath, false)
  return folder !== undefined && lockFileHolder(io, folder, join(folder.path, `${name}.lock`)) !== undefined
}

/** Pids of other walden processes that hold locks of the stanza (or of any stanza). */
export async function lockHolders(lockPath: string, stanza?: string): Promise<number[]> {
  const io = kernelLocks()
  const folder = lockFolder(lockPath, false)
  if (folder === undefined) return []
  const pids: number[] = []
  for (const entry of readdirSync(folder.path)) {
    // Exact names: stanza names may contain '-', so 'demo' must not match 'demo-2-backup.lock'.
    const ours = stanza === undefined ? entry.endsWith('.lock') : LOCK_TYPES.some((type) => entry === `${stanza}-${type}.lock`)
    if (!ours) continue
    const pid = lockFileHolder(io, folder, join(folder.path, entry))
    if (pid !== undefined && pid !== 0 && pid !== process.pid) pids.push(pid)
  }
  return pids
}

/** True for a process that exists (a zombie included); for postmaster.pid, not for walden's locks. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return errnoCode(error) === 'EPERM'
  }
}

function stopFile(folder: string, stanza?: string): string {
  return join(folder, stanza === undefined ? 'all.stop' : `${stanza}.stop`)
}

export async function stopFileCreate(lockPath: string, stanza?: string): Promise<boolean> {
  const folder = lockFolder(lockPath, true)!
  const path = stopFile(folder.path, stanza)
  let fd: number
  try {
    // O_EXCL: never through a symbolic link someone put in its place.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, LOCK_FILE_MODE)
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false
    fail('FileWrite', `unable to create stop file '${path}': ${(error as Error).message}`)
  }
  try {
    if (process.geteuid?.() === 0 && folder.uid !== 0) fchownSync(fd, folder.uid, folder.gid)
    fchmodSync(fd, LOCK_FILE_MODE)
  } finally {
    closeSync(fd)
  }
  return true
}

export async function stopFileRemove(lockPath: string, stanza?: string): Promise<boolean> {
  const folder = lockFolder(lockPath, false)
  if (folder === undefined) return false
  const path = stopFile(folder.path, stanza)
  try {
    unlinkSync(path)
    return true
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false
    fail('FileWrite', `unable to remove stop file '${path}': ${(error as Error).message}`)
  }
}

/** Fails when `walden stop` is in effect for all stanzas or for this one. */
export async function stopFileCheck(lockPath: string, stanza?: string): Promise<void> {
  // Synchronous: every command checks this, archive-push once per WAL segment, and a few stats are cheaper than
  // round trips through the thread pool.
  const folder = lockFolder(lockPath, false)
  if (folder === undefined) return
  const scopes = stanza === undefined ? [undefined] : [undefined, stanza]
  for (const scope of scopes) {
    const path = stopFile(folder.path, scope)
    const info = lstatSync(path, { throwIfNoEntry: false })
    if (info === undefined) continue
    // Only walden's user (or root, whose stop files are that user's) makes stop files. One of another user can only
    // have been left while lock-path was open to all: it is neither obeyed nor ignored in silence.
    if (info.uid !== folder.uid && info.uid !== process.geteuid?.()) {
      fail('FileInvalid', `stop file '${path}' belongs to ${userName(info.uid)}, not to walden's user`, {
        hint: 'another user may have put it there while lock-path was open to all: check, then remove it.',
      })
    }
    fail('Stop', scope === undefined ? 'stop file exists for all stanzas' : `stop file exists for stanza '${scope}'`, {
      hint: `run \`walden ${scope === undefined ? '' : `--stanza=${scope} `}start\` to allow walden commands again.`,
    })
  }
}
