// stanza-create and stanza-delete, on every configured repository (or the one --repo names).

import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { RepoIndex } from '../../config/options.js'
import { stopFileCheck } from '../../common/lock.js'
import { dbInfo } from '../../pg/db.js'
import { cipherAdopt, cipherRecordCreate, cipherUse } from '../../repo/cipher.js'
import { infoFileRemove } from '../../repo/info-file.js'
import { pgbrRepoWriteRefuse } from '../../repo/pgbackrest/info.js'
import { layout } from '../../repo/layout.js'
import type { ArchiveInfo, BackupInfo, PgIdentity } from '../../repo/stanza-info.js'
import {
  archiveInfoLoadIfExists,
  archiveInfoSave,
  backupInfoLoadIfExists,
  backupInfoSave,
  checkIdentity,
} from '../../repo/stanza-info.js'
import { stanzaTemporaryClean } from '../../repo/temporary.js'
import type { Storage } from '../../storage/storage.js'
import type { Command } from '../command.js'
import { PgHost } from '../pg-host.js'
import { repoFailureOf, repoFailuresError, repoPrefix } from '../repo-failures.js'
import type { RepoFailure } from '../repo-failures.js'
import { repoIndexes, repoOpen, repoSelected } from '../repo-storage.js'

export const stanzaCreate: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const pgPath = cfg.requireString('pg1-path')
    // The cluster, here or on its database host (pg1-host).
    const host = new PgHost(cfg, 1)
    let control
    try {
      control = await host.control()
      const session = await host.connect()
      try {
        const server = await dbInfo(session)
        await host.checkDataDirectory(server.dataDirectory, session.where)
        if (server.major !== control.version) {
          fail('DbMismatch', `server at ${session.where} is PostgreSQL ${server.major} but '${pgPath}' holds PostgreSQL ${control.version}`)
        }
      } finally {
        await session.close()
      }
    } finally {
      host.close()
    }

    // Every repository is checked before any is written, so a mistake in one (another cluster's stanza, leftover
    // folders) leaves all of them as they were. A repository added to the configuration later (repo2 next to an
    // existing repo1) is created here while the others are found whole: that is how a stanza gains a repository.
    const several = repoSelected(cfg).length > 1
    const found = { systemId: control.systemId.toString(), version: control.version }
    const plans: StanzaCreatePlan[] = []
    for (const index of repoSelected(cfg)) {
      try {
        plans.push(await stanzaCreateCheck(cfg, index, found))
      } catch (error) {
        throw repoFailuresError([repoFailureOf(index, error)], { several })
      }
    }
    for (const plan of plans) {
      const prefix = repoPrefix(plan.index, several)
      try {
        await stanzaCreateWrite(stanza, plan, found)
      } catch (error) {
        throw repoFailuresError([repoFailureOf(plan.index, error)], { several })
      }
      log.info(
        plan.archiveInfo && plan.backupInfo
          ? `${prefix}stanza '${stanza}' already exists for this cluster`
          : `${prefix}stanza '${stanza}' created for PostgreSQL ${control.version}, system identifier ${found.systemId}`,
      )
    }
    return 0
  },
}

/** What stanza-create found in one repository, checked, and what it will write there. */
interface StanzaCreatePlan {
  index: RepoIndex
  repo: Storage
  archiveInfo: ArchiveInfo | undefined
  backupInfo: BackupInfo | undefined
}

/** Reads and checks one repository's stanza (repairing a damaged copy of an info file), writing nothing new. */
async function stanzaCreateCheck(cfg: Config, index: RepoIndex, found: { systemId: string; version: number }): Promise<StanzaCreatePlan> {
  const stanza = cfg.stanza()
  const pgPath = cfg.requireString('pg1-path')
  const { storage: repo } = await repoOpen(cfg, index)
  await pgbrRepoWriteRefuse(repo, stanza, 'stanza-create')
  // Under the backup lock (commands.ts): temporary files of a stanza-create killed mid-write are leftovers.
  await stanzaTemporaryClean(repo, stanza)
  // Running stanza-create again is also how a damaged copy of an info file is repaired: rewritten from the whole one.
  const archiveInfo = await archiveInfoLoadIfExists(repo, stanza, { repair: true })
  const backupInfo = await backupInfoLoadIfExists(repo, stanza, { repair: true })
  for (const existing of [archiveInfo, backupInfo]) {
    if (existing) checkIdentity(stanza, existing.db, found, `cluster '${pgPath}'`)
  }
  // Folders without info files are what a killed stanza-delete leaves, or another cluster's WAL: adopting them
  // would mix that WAL into this stanza.
  for (const [info, root] of [[archiveInfo, layout.archiveRoot(stanza)], [backupInfo, layout.backupRoot(stanza)]] as const) {
    if (!info && (await repo.list(root)).length > 0) {
      fail('RepoInvalid', `'${repo.describe(root)}' holds files but no info file, so stanza '${stanza}' cannot be created over it`, {
        hint: `if it is left from a deleted stanza, run \`walden --stanza=${stanza} stanza-delete --force${repoIndexes(cfg).length > 1 ? ` --repo=${index}` : ''}\` to remove it.`,
      })
    }
  }
  return { index, repo, archiveInfo, backupInfo }
}

/** Writes the info files one repository lacks, with that repository's own encryption. */
async function stanzaCreateWrite(stanza: string, plan: StanzaCreatePlan, found: { systemId: string; version: number }): Promise<void> {
  const { repo, archiveInfo, backupInfo } = plan
  cipherUse(plan.index)
  const identity: PgIdentity = { id: 1, ...found }
  // A repository is encrypted or not from here on; an existing stanza's record was checked against the
  // configuration when its info files were read.
  const cipher = archiveInfo?.cipher ?? backupInfo?.cipher ?? cipherRecordCreate()
  if (cipher) cipherAdopt(cipher, `stanza '${stanza}'`)
  if (!archiveInfo) await archiveInfoSave(repo, { stanza, db: identity, history: [identity], ...(cipher ? { cipher } : {}) })
  if (!backupInfo) await backupInfoSave(repo, { stanza, db: identity, history: [identity], backups: [], ...(cipher ? { cipher } : {}) })
}

export const stanzaDelete: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const force = cfg.boolean('force')
    const lockPath = cfg.string('lock-path') ?? '/tmp/walden'
    if (!force) {
      // Deleting the backups of a cluster that is still archiving is almost always a mistake: insist on both
      // `walden stop` (nothing of walden runs for it) and a stopped cluster.
      const stopped = await stopFileCheck(lockPath, stanza).then(
        () => false,
        () => true,
      )
      if (!stopped) {
        fail('Stop', `stanza '${stanza}' must be stopped before it is deleted`, {
          hint: `run \`walden --stanza=${stanza} stop\` first, or give --force.`,
        })
      }
      const pgPath = cfg.string('pg1-path')
      if (pgPath !== undefined && (await pgHostRunning(cfg))) {
        fail('PgRunning', `PostgreSQL is running on '${pgPath}'; stop it before deleting stanza '${stanza}'`, {
          hint: 'or give --force.',
        })
      }
    }
    const several = repoSelected(cfg).length > 1
    const repos: { index: RepoIndex; repo: Storage }[] = []
    for (const index of repoSelected(cfg)) {
      const { storage: repo } = await repoOpen(cfg, index)
      await pgbrRepoWriteRefuse(repo, stanza, 'stanza-delete')
      if ((await repo.exists(layout.archiveRoot(stanza))) || (await repo.exists(layout.backupRoot(stanza)))) repos.push({ index, repo })
      else if (several) log.info(`repo${index}: stanza '${stanza}' does not exist in repository ${repo.description}; nothing to delete there`)
    }
    if (repos.length === 0) {
      const { storage: repo } = await repoOpen(cfg)
      fail('RepoInvalid', `stanza '${stanza}' does not exist in ${several ? 'any repository' : `repository ${repo.description}`}`)
    }
    const failures: RepoFailure[] = []
    for (const { index, repo } of repos) {
      try {
        // The info files first (both copies): once they are gone the stanza has no backups and no archive, whatever a
        // kill part-way leaves on disk; never a backup.info listing backups whose files are gone.
        await infoFileRemove(repo, layout.backupInfo(stanza))
        await infoFileRemove(repo, layout.archiveInfo(stanza))
        await repo.removePath(layout.backupRoot(stanza))
        await repo.removePath(layout.archiveRoot(stanza))
        if (several) log.info(`repo${index}: stanza '${stanza}' deleted`)
      } catch (error) {
        // One repository that cannot be written does not keep the stanza in the others.
        failures.push(repoFailureOf(index, error))
      }
    }
    if (failures.length > 0) throw repoFailuresError(failures, { several })
    log.info(`stanza '${stanza}' deleted`)
    return 0
  },
}

/** Whether the stanza's cluster runs, asked where it is (pg1-host, or here). */
async function pgHostRunning(cfg: Config): Promise<boolean> {
  const host = new PgHost(cfg, 1)
  try {
    return await host.op('running', { path: host.path })
  } finally {
    host.close()
  }
}
