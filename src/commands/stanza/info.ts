// info: what the repositories hold for each stanza (status, WAL archive range, backups), as text or pgBackRest's JSON.
// Every configured repository is shown (or the one --repo names), each read with its own keys; a stanza's entry holds
// each repository's part, and a repository that cannot be read is reported in its own status, not as a failure of the
// others.
//
// info reads only: info files, folder listings and lock files. It never opens WAL, so it is quick on a large archive,
// and a problem with one stanza is reported in that stanza's status (code 99) rather than aborting the others, so
// monitoring always gets a document to parse.

import { ERROR_CODES, fail, WaldenError } from '../../common/errors.js'
import { lockHeld } from '../../common/lock.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { archivedNameParse } from '../../repo/archive.js'
import { layout } from '../../repo/layout.js'
import type { BackupType } from '../../repo/label.js'
import { manifestLoad } from '../../repo/manifest.js'
import { archiveInfoLoadIfExists, backupInfoLoadIfExists } from '../../repo/stanza-info.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { repoSelected, repoStorage } from '../repo-storage.js'
import { archiveIdsNeeded, backupDetailOf, infoRenderJson, infoRenderText, stanzaReport, stanzaView } from './info-render.js'
import type { StanzaReport, StanzaView, WalRange } from './info-render.js'
import { cipherUse } from '../../repo/cipher.js'

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

/** One stanza in one repository; its keys must be the ones in use (cipherUse). */
async function stanzaCollect(
  repo: Storage,
  repoKey: number,
  locked: boolean,
  name: string,
  options: { set?: string; type?: BackupType },
): Promise<StanzaReport> {
  const { set, type } = options
  try {
    const exists = (await isFolder(repo, layout.backupRoot(name))) || (await isFolder(repo, layout.archiveRoot(name)))
    if (!exists) return stanzaReport({ name, repoKey, exists, backupLockHeld: locked })
    const backupInfo = await backupInfoLoadIfExists(repo, name)
    if (!backupInfo) return stanzaReport({ name, repoKey, exists, backupLockHeld: locked })
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
    // --set shows what only the backup's manifest knows: its databases, links and tablespaces.
    const setDetail = set !== undefined && backupInfo.backups.some((backup) => backup.label === set) ? backupDetailOf(await manifestLoad(repo, name, set)) : undefined
    return stanzaReport({
      name,
      repoKey,
      exists,
      backupInfo,
      archiveInfo,
      walRanges,
      backupLockHeld: locked,
      ...(set !== undefined ? { set } : {}),
      ...(setDetail !== undefined ? { setDetail } : {}),
      ...(type !== undefined ? { type } : {}),
    })
  } catch (error) {
    return stanzaReport({ name, repoKey, exists: true, backupLockHeld: locked, error: errorText(error), errorCode: errorCode(error) })
  }
}

/** A repository info reads: its number, and its storage or why it could not be opened. */
export interface InfoRepo {
  key: number
  storage?: Storage
  error?: unknown
  /** Makes this repository's keys the ones in use, before its info files are read. */
  use: () => void
}

/** Views of one stanza, or of every stanza in any of the repositories, each with every repository's report. */
export async function infoCollect(
  repos: readonly InfoRepo[],
  lockPath: string,
  options: { stanza?: string; set?: string; type?: BackupType } = {},
): Promise<StanzaView[]> {
  // A repository that cannot be listed shows its error in each stanza the others hold.
  const unreadable = new Map<number, unknown>()
  for (const repo of repos) if (repo.error !== undefined || !repo.storage) unreadable.set(repo.key, repo.error)
  let names: string[]
  if (options.stanza !== undefined) {
    names = [options.stanza]
  } else {
    const found = new Set<string>()
    for (const repo of repos) {
      if (unreadable.has(repo.key)) continue
      try {
        for (const name of await stanzaNames(repo.storage!)) found.add(name)
      } catch (error) {
        unreadable.set(repo.key, error)
      }
    }
    names = [...found].sort()
    // Nothing readable and something unreadable: one entry, named as pgBackRest names it, so monitoring sees code 99.
    if (names.length === 0 && unreadable.size > 0) names = [INVALID_STANZA]
  }
  const views: StanzaView[] = []
  for (const name of names) {
    const locked = name === INVALID_STANZA ? false : await backupLockHeld(lockPath, name)
    const reports: StanzaReport[] = []
    for (const repo of repos) {
      if (unreadable.has(repo.key)) {
        const error = unreadable.get(repo.key)
        reports.push(stanzaReport({ name, repoKey: repo.key, exists: true, backupLockHeld: locked, error: errorText(error), errorCode: errorCode(error) }))
      } else if (name === INVALID_STANZA) {
        reports.push(stanzaReport({ name, repoKey: repo.key, exists: false, backupLockHeld: locked }))
      } else {
        repo.use()
        reports.push(
          await stanzaCollect(repo.storage!, repo.key, locked, name, {
            ...(options.set !== undefined ? { set: options.set } : {}),
            ...(options.type !== undefined ? { type: options.type } : {}),
          }),
        )
      }
    }
    // --set names a backup of one repository: the others, which do not hold it, are not in error for that.
    if (options.set !== undefined && reports.some((report) => report.code === 0)) {
      for (const report of reports) if (report.code === 6) report.code = 0
    }
    views.push(stanzaView(reports))
  }
  return views
}

/** The stanza name pgBackRest reports a repository under when it cannot be read at all. */
const INVALID_STANZA = '[invalid]'

export const info: Command = {
  async run(cfg: Config) {
    const stanza = cfg.string('stanza')
    const set = cfg.string('set')
    const type = cfg.string('type') as BackupType | undefined
    if (set !== undefined && stanza === undefined) {
      fail('OptionInvalid', "option 'set' not valid without option 'stanza'", { hint: 'give --stanza=NAME with --set.' })
    }
    const repos: InfoRepo[] = []
    for (const key of repoSelected(cfg)) {
      const use = (): void => cipherUse(key)
      try {
        repos.push({ key, storage: await repoStorage(cfg, key), use })
      } catch (error) {
        repos.push({ key, error, use })
      }
    }
    const views = await infoCollect(repos, cfg.string('lock-path') ?? '/tmp/walden', {
      ...(stanza !== undefined ? { stanza } : {}),
      ...(set !== undefined ? { set } : {}),
      ...(type !== undefined ? { type } : {}),
    })
    const output =
      cfg.string('output') === 'json'
        ? `${infoRenderJson(views)}\n`
        : infoRenderText(views, { ...(set !== undefined ? { set } : {}), several: repos.length > 1 })
    process.stdout.write(output)
    return infoExitCode(views)
  },
}

/**
 * info's exit status: 0 when every stanza listed is ok in every repository shown, else the code of the first
 * repository in error of the first stanza in error, after the whole report has been printed (text or JSON, every
 * stanza), so a monitoring script can rely on the exit status alone and still parse the document. pgBackRest exits 0
 * here, which lets an unreadable or unmounted repository pass a check that looks only at the status. The codes are
 * those the same problem gives elsewhere:
 * - 99, the stanza could not be read (damaged info files, permissions): that error's own code, e.g. 26 (Checksum)
 *   when both copies of backup.info are damaged; 124 (Unhandled) for an unexpected error;
 * - 1 missing stanza path, 3 missing stanza data (info files gone, a half-deleted stanza): 103 (RepoInvalid), as
 *   `backup --stanza=NAME` for a stanza that does not exist;
 * - 2 no valid backups, 6 the --set backup does not exist: 51 (BackupMismatch), as restore in the same case;
 * - 5 the repositories name different clusters as the stanza's: 44 (ArchiveMismatch), as archive-push then fails.
 * An empty repository (no stanzas, no --stanza) is not an error.
 */
export function infoExitCode(views: readonly StanzaView[]): number {
  for (const view of views) {
    if (view.code === 0) continue
    const failed = view.repos.find((report) => report.code !== 0)
    if (failed === undefined) return ERROR_CODES.ArchiveMismatch
    switch (failed.code) {
      case 99:
        return failed.errorCode ?? ERROR_CODES.Unhandled
      case 1:
      case 3:
        return ERROR_CODES.RepoInvalid
      case 2:
      case 6:
        return ERROR_CODES.BackupMismatch
      default:
        return ERROR_CODES.ArchiveMismatch
    }
  }
  return 0
}
