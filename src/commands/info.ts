// info: what the repository holds for each stanza (status, WAL archive range, backups), as text or pgBackRest's JSON.
//
// info reads only: info files, folder listings and lock files. It never opens WAL, so it is quick on a large archive,
// and a problem with one stanza is reported in that stanza's status (code 99) rather than aborting the others, so
// monitoring always gets a document to parse.

import { ERROR_CODES, fail, WaldenError } from '../common/errors.js'
import { lockHeld } from '../common/lock.js'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { archivedNameParse } from '../repo/archive.js'
import { layout } from '../repo/layout.js'
import { archiveInfoLoadIfExists, backupInfoLoadIfExists } from '../repo/stanza-info.js'
import type { Storage } from '../storage/storage.js'
import type { Command } from './command.js'
import { repoStorage } from './repo-storage.js'
import { archiveIdsNeeded, infoRenderJson, infoRenderText, stanzaReport } from './info-render.js'
import type { StanzaReport, WalRange } from './info-render.js'

const WAL_FOLDER = /^[0-9A-F]{16}$/
const WAL_SEGMENT = /^[0-9A-F]{24}$/

/** Segment names stored in one folder, sorted; .backup, .partial and anything unparseable are not segments. */
async function segmentsIn(repo: Storage, folder: string): Promise<string[]> {
  const names: string[] = []
  for (const entry of await repo.list(folder)) {
    const walName = archivedNameParse(entry)?.walName
    if (walName !== undefined && WAL_SEGMENT.test(walName)) names.push(walName)
  }
  return names.sort()
}

/**
 * Oldest and newest segment under an archive id, from listings alone: folders are named by the first 16 hex digits
 * of their segments, so only the first and last folders that hold any segment need to be listed.
 */
export async function walRange(repo: Storage, stanza: string, archiveId: string): Promise<WalRange> {
  const root = layout.archiveId(stanza, archiveId)
  const folders = (await repo.list(root)).filter((name) => WAL_FOLDER.test(name)).sort()
  let min: string | null = null
  let max: string | null = null
  let first = 0
  for (; first < folders.length && min === null; first++) {
    const segments = await segmentsIn(repo, `${root}/${folders[first]}`)
    if (segments.length > 0) {
      min = segments[0]!
      max = segments.at(-1)!
    }
  }
  // Newer folders, newest first, down to (not including) the one that gave min, whose last segment is already max.
  for (let index = folders.length - 1; index >= first; index--) {
    const segments = await segmentsIn(repo, `${root}/${folders[index]}`)
    if (segments.length > 0) {
      max = segments.at(-1)!
      break
    }
  }
  return { min, max }
}

/**
 * True when a live process holds the stanza's backup lock (backup, expire and stanza-create take it). info is for
 * monitoring and reports the repository even where it cannot ask (a user that may not use lock-path): not held.
 */
async function backupLockHeld(lockPath: string, stanza: string): Promise<boolean> {
  try {
    return lockHeld(lockPath, `${stanza}-backup`)
  } catch (error) {
    log.warn(`unable to tell whether the backup lock is held: ${(error as Error).message}`)
    return false
  }
}

/** One line per problem, in the form pgBackRest reports a repository error: "[KindError] message" plus hints. */
function errorText(error: unknown): string {
  if (error instanceof WaldenError) return `[${error.name}] ${error.message}${error.hint ? `\nHINT: ${error.hint}` : ''}`
  if (error instanceof Error) return `[${error.name}] ${error.message}`
  return String(error)
}

function errorCode(error: unknown): number {
  return error instanceof WaldenError ? error.code : ERROR_CODES.Unhandled
}

async function isFolder(repo: Storage, path: string): Promise<boolean> {
  return (await repo.info(path))?.type === 'path'
}

/** Stanzas in the repository: folders under backup/ and archive/ (a stanza may have lost one of the two). */
async function stanzaNames(repo: Storage): Promise<string[]> {
  const names = new Set<string>()
  for (const root of ['backup', 'archive']) {
    for (const name of await repo.list(root)) {
      if (await isFolder(repo, `${root}/${name}`)) names.add(name)
    }
  }
  return [...names].sort()
}

async function stanzaCollect(repo: Storage, lockPath: string, name: string, set: string | undefined): Promise<StanzaReport> {
  const locked = await backupLockHeld(lockPath, name)
  try {
    const exists = (await isFolder(repo, layout.backupRoot(name))) || (await isFolder(repo, layout.archiveRoot(name)))
    if (!exists) return stanzaReport({ name, exists, backupLockHeld: locked })
    const backupInfo = await backupInfoLoadIfExists(repo, name)
    if (!backupInfo) return stanzaReport({ name, exists, backupLockHeld: locked })
    const archiveInfo = await archiveInfoLoadIfExists(repo, name)
    if (!archiveInfo) {
      // backup.info without archive.info is a damaged stanza, not a new one: say which file is missing.
      fail('FileMissing', `unable to load info file '${repo.describe(layout.archiveInfo(name))}' or its .copy`, {
        hint: `has a stanza-create been performed? Run \`walden --stanza=${name} stanza-create\` to re-create it.`,
      })
    }
    const walRanges = new Map<string, WalRange>()
    for (const archiveId of archiveIdsNeeded(backupInfo, archiveInfo)) {
      walRanges.set(archiveId, await walRange(repo, name, archiveId))
    }
    return stanzaReport({
      name,
      exists,
      backupInfo,
      archiveInfo,
      walRanges,
      backupLockHeld: locked,
      ...(set !== undefined ? { set } : {}),
    })
  } catch (error) {
    return stanzaReport({ name, exists: true, backupLockHeld: locked, error: errorText(error), errorCode: errorCode(error) })
  }
}

/** Reports for one stanza, or for every stanza in the repository. */
export async function infoCollect(
  repo: Storage,
  lockPath: string,
  options: { stanza?: string; set?: string } = {},
): Promise<StanzaReport[]> {
  let names: string[]
  if (options.stanza !== undefined) {
    names = [options.stanza]
  } else {
    try {
      names = await stanzaNames(repo)
    } catch (error) {
      // The repository itself cannot be read: one report, named as pgBackRest names it, so monitoring sees code 99.
      return [stanzaReport({ name: '[invalid]', exists: true, error: errorText(error), errorCode: errorCode(error) })]
    }
  }
  const reports: StanzaReport[] = []
  for (const name of names) reports.push(await stanzaCollect(repo, lockPath, name, options.set))
  return reports
}

export const info: Command = {
  async run(cfg: Config) {
    const stanza = cfg.string('stanza')
    const set = cfg.string('set')
    if (set !== undefined && stanza === undefined) {
      fail('OptionInvalid', "option 'set' not valid without option 'stanza'", { hint: 'give --stanza=NAME with --set.' })
    }
    const reports = await infoCollect(await repoStorage(cfg), cfg.string('lock-path') ?? '/tmp/walden', {
      ...(stanza !== undefined ? { stanza } : {}),
      ...(set !== undefined ? { set } : {}),
    })
    const output =
      cfg.string('output') === 'json' ? `${infoRenderJson(reports)}\n` : infoRenderText(reports, set !== undefined ? { set } : {})
    process.stdout.write(output)
    return infoExitCode(reports)
  },
}

/**
 * info's exit status: 0 when every stanza listed is ok, else the code of the first stanza whose status is an error,
 * after the whole report has been printed (text or JSON, every stanza), so a monitoring script can rely on the exit
 * status alone and still parse the document. pgBackRest exits 0 here, which lets an unreadable or unmounted
 * repository pass a check that looks only at the status. The codes are those the same problem gives elsewhere:
 * - 99, the stanza could not be read (damaged info files, permissions): that error's own code, e.g. 26 (Checksum)
 *   when both copies of backup.info are damaged; 124 (Unhandled) for an unexpected error;
 * - 1 missing stanza path, 3 missing stanza data (info files gone, a half-deleted stanza): 103 (RepoInvalid), as
 *   `backup --stanza=NAME` for a stanza that does not exist;
 * - 2 no valid backups, 6 the --set backup does not exist: 51 (BackupMismatch), as restore in the same case.
 * An empty repository (no stanzas, no --stanza) is not an error.
 */
export function infoExitCode(reports: readonly StanzaReport[]): number {
  const failed = reports.find((report) => report.code !== 0)
  if (failed === undefined) return 0
  switch (failed.code) {
    case 0:
      return 0
    case 99:
      return failed.errorCode ?? ERROR_CODES.Unhandled
    case 1:
    case 3:
      return ERROR_CODES.RepoInvalid
    case 2:
    case 6:
      return ERROR_CODES.BackupMismatch
  }
}
