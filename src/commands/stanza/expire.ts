// expire: applies the retention policy to backups and archived WAL, in every configured repository (or the one --repo
// names), each with its own repoN-retention-* settings: a nearby disk may keep a week while object storage keeps a
// year.
//
// backup.info is rewritten before anything is deleted, so a crash mid-expire leaves only unreferenced folders,
// which the next backup removes; it never leaves backup.info pointing at deleted files.

import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { repoOption } from '../../config/options.js'
import type { RepoIndex } from '../../config/options.js'
import { archiveEntryParse } from '../../repo/archive.js'
import { layout } from '../../repo/layout.js'
import { backupsToExpire, walKeepPredicate } from '../../repo/retention.js'
import type { RetentionPolicy } from '../../repo/retention.js'
import { archiveIdOf, archiveInfoLoad, backupInfoLoad, backupInfoSave } from '../../repo/stanza-info.js'
import { pgbrRepoWriteRefuse } from '../../repo/pgbackrest/info.js'
import { stanzaTemporaryClean } from '../../repo/temporary.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { repoFailureOf, repoFailuresError, repoPrefix } from '../repo-failures.js'
import type { RepoFailure } from '../repo-failures.js'
import { repoOpen, repoSelected } from '../repo-storage.js'

const STALE_TEMPORARY_MS = 3600_000

/** Repository `index`'s retention settings (repoN-retention-*). */
export function retentionPolicy(cfg: Config, index: RepoIndex): RetentionPolicy {
  const option = (suffix: 'retention-full' | 'retention-diff' | 'retention-archive') => repoOption(index, suffix)
  return {
    fullType: (cfg.string(repoOption(index, 'retention-full-type')) ?? 'count') as 'count' | 'time',
    ...(cfg.has(option('retention-full')) ? { full: cfg.number(option('retention-full'))! } : {}),
    ...(cfg.has(option('retention-diff')) ? { diff: cfg.number(option('retention-diff'))! } : {}),
    ...(cfg.has(option('retention-archive')) ? { archive: cfg.number(option('retention-archive'))! } : {}),
  }
}

/**
 * Expires repository `index` (by default the first one the command works on, which is the one backup wrote to), with
 * that repository's retention settings. Its cipher must be the one in use (repoOpen). Runs under the stanza's backup
 * lock (expire, and backup, which ends with it). Messages are prefixed with the repository's name when `several`.
 */
export async function expireRun(cfg: Config, repo: Storage, stanza: string, index: RepoIndex = repoSelected(cfg)[0] ?? 1, several = false): Promise<void> {
  const prefix = repoPrefix(index, several)
  await pgbrRepoWriteRefuse(repo, stanza, 'expire')
  // First, so that an expire killed mid-write is cleaned up by the next one even if this one fails later on.
  await stanzaTemporaryClean(repo, stanza)
  const info = await backupInfoLoad(repo, stanza)
  const policy = retentionPolicy(cfg, index)
  if (policy.full === undefined) {
    log.warn(`${prefix}option ${repoOption(index, 'retention-full')} is not set, so no backups or WAL expire; set it to stop the repository from growing`)
  }

  const expired = backupsToExpire(info.backups, policy, Math.floor(Date.now() / 1000))
  if (expired.size > 0) {
    info.backups = info.backups.filter((backup) => !expired.has(backup.label))
    await backupInfoSave(repo, info)
    for (const label of [...expired].sort()) {
      await repo.removePath(layout.backup(stanza, label))
      log.info(`${prefix}expired backup ${label}`)
    }
  }

  // WAL: only the current cluster's archive id, and only when some backup exists to anchor what is needed.
  if (policy.full === undefined || info.backups.length === 0) return
  const archiveInfo = await archiveInfoLoad(repo, stanza)
  const archiveId = archiveIdOf(archiveInfo.db)
  const keep = walKeepPredicate(
    info.backups.filter((backup) => backup.dbId === archiveInfo.db.id),
    policy.archive,
  )
  const removed: string[] = []
  const root = layout.archiveId(stanza, archiveId)
  const isStaleTemporary = async (path: string): Promise<boolean> =>
    ((await repo.info(path))?.mtimeMs ?? Infinity) < Date.now() - STALE_TEMPORARY_MS
  // Temporary files of an archive-push killed mid-write: archive-push takes seconds, so after an hour the writer is
  // long gone. History files are pushed to the archive id's root, segments to its 16-hex-digit folders.
  for (const entry of await repo.list(root)) {
    if (entry.includes('.tmp-') && (await isStaleTemporary(`${root}/${entry}`))) await repo.remove(`${root}/${entry}`)
  }
  for (const folder of await repo.list(root)) {
    if (!/^[0-9A-F]{16}$/.test(folder)) continue
    const folderPath = `${root}/${folder}`
    // A backup history file's checksum record goes before the file: left alone by a crash, the file is only an
    // unfinished push (never served) rather than a record whose file is lost.
    const entries = (await repo.list(folderPath)).map((entry) => ({ entry, parsed: archiveEntryParse(entry) }))
    entries.sort((a, b) => Number(b.parsed?.kind === 'checksum') - Number(a.parsed?.kind === 'checksum'))
    for (const { entry, parsed } of entries) {
      const drop = parsed !== undefined ? !keep(parsed.walName) : entry.includes('.tmp-') && (await isStaleTemporary(`${folderPath}/${entry}`))
      if (!drop) continue
      // One by one, never the folder at once: a segment pushed into it meanwhile must survive.
      await repo.remove(`${folderPath}/${entry}`)
      if (parsed?.kind !== 'checksum') removed.push(entry)
    }
    await repo.removeEmptyPath(folderPath)
  }
  if (removed.length > 0) {
    const names = removed.map((entry) => entry.slice(0, 24)).sort()
    log.info(`${prefix}expired ${removed.length} WAL file(s) no longer needed by any backup, ${names[0]} to ${names.at(-1)}`)
  }
}

export const expire: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const indexes = repoSelected(cfg)
    const several = indexes.length > 1
    // One repository that cannot be expired (unreachable, damaged info files) does not keep the others growing.
    const failures: RepoFailure[] = []
    for (const index of indexes) {
      try {
        const { storage } = await repoOpen(cfg, index)
        await expireRun(cfg, storage, stanza, index, several)
      } catch (error) {
        failures.push(repoFailureOf(index, error))
      }
    }
    if (failures.length > 0) throw repoFailuresError(failures, { several })
    return 0
  },
}
