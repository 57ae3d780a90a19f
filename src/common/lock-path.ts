// lock-path, the folder of walden's lock files and stop files, and why walden trusts it.
//
// Whoever may write in that folder may stop walden for every cluster (a stop file) or let two backups run at once
// (remove a lock file while it is held and a second process creates a new one). So the folder must belong to the
// user that runs walden, be writable by nobody else, and be reached through folders nobody else may rename it in:
// a folder in /tmp (writable by all, but sticky) is fine as long as it is ours and not a symbolic link.
//
// root and the service user (postgres) may both run walden on one host, and every walden process must use the same
// folder for the locks to exclude each other. root may therefore use a folder that belongs to another user (root
// can write anywhere anyway, so trusting that user's folder gives the user nothing new, as long as root follows no
// symbolic link and writes into no hard link there: see lock.ts); it makes the files it creates there that user's,
// so that the service user's own processes can take turns on them and remove root's stop files.

import { chmodSync, lstatSync, mkdirSync, readFileSync, realpathSync } from 'node:fs'
import type { Stats } from 'node:fs'
import { userInfo } from 'node:os'
import { dirname, resolve, sep } from 'node:path'
import { errnoCode, fail } from './errors.js'
import { log } from './log.js'

/** The mode of a lock folder walden creates: its user's alone, readable by its group (monitoring reads locks). */
export const LOCK_PATH_MODE = 0o750

/** A lock folder that passed the checks: files in it are made owner's (uid, gid). */
export interface LockFolder {
  path: string
  uid: number
  gid: number
}

/** A user's name from /etc/passwd, for messages; `uid N` where there is none. */
export function userName(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const fields = line.split(':')
      if (fields[2] === String(uid) && fields[0]) return fields[0]
    }
  } catch {
    // no /etc/passwd (a minimal container): the number has to do
  }
  return `uid ${uid}`
}

function modeText(info: Stats): string {
  return (info.mode & 0o7777).toString(8).padStart(4, '0')
}

function euid(): number {
  return process.geteuid?.() ?? userInfo().uid
}

/** Writable by group or others, without the sticky bit that keeps them from renaming or removing others' entries. */
function openToOthers(info: Stats): boolean {
  return (info.mode & 0o022) !== 0 && (info.mode & 0o1000) === 0
}

function refuse(path: string, problem: string, fix: string): never {
  fail('FileInvalid', `lock-path '${path}' cannot be trusted: ${problem}`, {
    hint: `walden's lock folder must belong to the user that runs walden and be writable by no one else; ${fix}, or set lock-path in [global] to another folder.`,
  })
}

/**
 * Checks the folder itself (lstat: a symbolic link is refused, never followed) and every folder above it: each must
 * belong to root, to us or to the lock folder's owner, and be writable by nobody else unless it is sticky.
 */
function folderCheck(path: string, info: Stats): LockFolder {
  const me = euid()
  // A function: /etc/passwd is read only for a message.
  const fix = (): string => `remove it (walden creates it again) or run \`chown ${userName(me)} '${path}' && chmod ${LOCK_PATH_MODE.toString(8)} '${path}'\``
  if (info.isSymbolicLink()) refuse(path, 'it is a symbolic link', `remove the link`)
  if (!info.isDirectory()) refuse(path, 'it is not a folder', 'remove it')
  if (info.uid !== me && me !== 0) {
    refuse(path, `it belongs to ${userName(info.uid)}, not to ${userName(me)} that runs walden (mode ${modeText(info)})`, `run walden as ${userName(info.uid)}, or ${fix()}`)
  }
  const trusted = new Set([0, me, info.uid])
  // The path as written may pass through symbolic links; whoever owns one may point it elsewhere between this check
  // and the next open, so every link on the way must be root's, ours or the folder owner's. (The folders the links
  // lead to are checked below, on the real path.)
  for (let folder = dirname(path); folder !== dirname(folder); folder = dirname(folder)) {
    const step = lstatSync(folder, { throwIfNoEntry: false })
    if (step?.isSymbolicLink() && !trusted.has(step.uid)) {
      refuse(path, `it is reached through the symbolic link '${folder}' of ${userName(step.uid)}, who could point it elsewhere`, 'give lock-path without that link')
    }
  }
  let parent: string
  try {
    parent = realpathSync.native(dirname(path))
  } catch (error) {
    fail('FileOpen', `unable to resolve the folder above lock-path '${path}': ${(error as Error).message}`)
  }
  for (let folder = parent; ; folder = dirname(folder)) {
    const above = lstatSync(folder)
    if (!trusted.has(above.uid) || openToOthers(above)) {
      refuse(path, `it is inside '${folder}' (owner ${userName(above.uid)}, mode ${modeText(above)}), where another user could replace it`, 'move it to a folder only root or its owner may change')
    }
    if (folder === sep || folder === dirname(folder)) break
  }
  if ((info.mode & 0o022) !== 0) {
    if (info.uid !== me) {
      refuse(path, `others may write in it (mode ${modeText(info)}, owner ${userName(info.uid)})`, `run \`chmod ${LOCK_PATH_MODE.toString(8)} '${path}'\` as ${userName(info.uid)} after checking what is in it`)
    }
    // Ours, and open to others: walden made lock-path 1777 before it was private. Closed here, so that an upgrade
    // does not stop archiving (the folders above passed, so nobody swapped it since the lstat); what others may have
    // left in it meanwhile is refused where it is used (a lock or stop file not ours or the owner's: lock.ts).
    chmodSync(path, LOCK_PATH_MODE)
    log.warn(`lock-path '${path}' was open to others (mode ${modeText(info)}); walden made it private (mode 0${LOCK_PATH_MODE.toString(8)})`)
  }
  return { path, uid: info.uid, gid: info.gid }
}

/**
 * The checked lock folder; created (mode 0750 whatever the umask) when `create` is set, undefined when it does not
 * exist and `create` is not set. Synchronous: archive-push checks for stop files once per WAL segment.
 */
export function lockFolder(lockPath: string, create: boolean): LockFolder | undefined {
  const path = resolve(lockPath)
  let info = lstatSync(path, { throwIfNoEntry: false })
  if (info === undefined) {
    if (!create) return undefined
    try {
      // Folders above it: anyone may pass, only we may change them (with umask 000 they would be writable by all,
      // and then refused below).
      mkdirSync(dirname(path), { recursive: true, mode: 0o755 })
      mkdirSync(path, { mode: LOCK_PATH_MODE })
      // mkdir's mode passes through the umask; a umask of 077 would leave the group out, one of 277 would lock us out.
      chmodSync(path, LOCK_PATH_MODE)
    } catch (error) {
      // Another walden created it meanwhile: check that one.
      if (errnoCode(error) !== 'EEXIST') {
        fail('FileWrite', `unable to create lock-path '${path}': ${(error as Error).message}`, {
          hint: 'set lock-path in [global] to a folder walden may create.',
        })
      }
    }
    info = lstatSync(path)
  }
  return folderCheck(path, info)
}
