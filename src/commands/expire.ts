// expire: applies the retention policy to backups and archived WAL.
//
// backup.info is rewritten before anything is deleted, so a crash mid-expire leaves only unreferenced folders,
// which the next backup removes; it never leaves backup.info pointing at deleted files.

import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { archivedNameParse } from '../repo/archive.js'
import { layout } from '../repo/layout.js'
import { backupsToExpire, walKeepPredicate } from '../repo/retention.js'
import { archiveIdOf, archiveInfoLoad, backupInfoLoad, backupInfoSave } from '../repo/stanza-info.js'
import type { Storage } from '../storage/storage.js'
import type { Command } from './command.js'
import { repoStorage } from './common.js'

const STALE_TEMPORARY_MS = 3600_000

export async function expireRun(cfg: Config, repo: Storage, stanza: string): Promise<void> {
  const info = await backupInfoLoad(repo, stanza)
  const policy = {
    fullType: (cfg.string('repo1-retention-full-type') ?? 'count') as 'count' | 'time',
    ...(cfg.has('repo1-retention-full') ? { full: cfg.number('repo1-retention-full')! } : {}),
    ...(cfg.has('repo1-retention-diff') ? { diff: cfg.number('repo1-retention-diff')! } : {}),
    ...(cfg.has('repo1-retention-archive') ? { archive: cfg.number('repo1-retention-archive')! } : {}),
  }
  if (policy.full === undefined) {
    log.warn('option repo1-retention-full is not set, so no backups or WAL expire; set it to stop the repository from growing')
  }

  const expired = backupsToExpire(info.backups, policy, Math.floor(Date.now() / 1000))
  if (expired.size > 0) {
    info.backups = info.backups.filter((backup) => !expired.has(backup.label))
    await backupInfoSave(repo, info)
    for (const label of [...expired].sort()) {
      await repo.removePath(layout.backup(stanza, label))
      log.info(`expired backup ${label}`)
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
  for (const folder of await repo.list(layout.archiveId(stanza, archiveId))) {
    if (!/^[0-9A-F]{16}$/.test(folder)) continue
    const folderPath = `${layout.archiveId(stanza, archiveId)}/${folder}`
    const entries = await repo.list(folderPath)
    const drop: string[] = []
    for (const entry of entries) {
      const parsed = archivedNameParse(entry)
      if (parsed !== undefined && !keep(parsed.walName)) drop.push(entry)
      // A temporary file of an archive-push killed mid-write: archive-push takes seconds, so after an hour its
      // writer is long gone.
      else if (entry.includes('.tmp-') && ((await repo.info(`${folderPath}/${entry}`))?.mtimeMs ?? Infinity) < Date.now() - STALE_TEMPORARY_MS) {
        drop.push(entry)
      }
    }
    if (drop.length === entries.length && drop.length > 0) {
      await repo.removePath(folderPath)
    } else {
      for (const entry of drop) await repo.remove(`${folderPath}/${entry}`)
    }
    removed.push(...drop)
  }
  if (removed.length > 0) {
    const names = removed.map((entry) => entry.slice(0, 24)).sort()
    log.info(`expired ${removed.length} WAL file(s) no longer needed by any backup, ${names[0]} to ${names.at(-1)}`)
  }
}

export const expire: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    await expireRun(cfg, repoStorage(cfg), stanza)
    return 0
  },
}
