// staging-disable, staging-enable, staging-resync and staging-unlink: each a job (DISABLE, ENABLE, RESYNC, UNLINK)
// under the stanza's staging lock, safe to run from cron: no prompt, a clear exit code, and a second run of the same
// command finds nothing left to do rather than failing halfway.

import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { Command } from '../command.js'
import { baseBackupInspect, tablespaceRoot } from './backup-load.js'
import type { BaseBackupSource } from './backup-load.js'
import { jobRun } from './jobs.js'
import { backupPathOf, initialLoad } from './link.js'
import type { LoadProgress } from './link.js'
import { settingsParse } from './settings.js'
import { slotDrop, slotEnsure, stagingStart, stagingStop, stagingStreams, standbyConfigure } from './standby.js'
import { cloneRecordList, portRelease, stagingRecordRemove, stagingRecordRequire, stagingRecordWrite, withStagingLock } from './state.js'
import type { StagingRecord } from './state.js'

/** The settings given to this command, checked, or undefined when none were given (the recorded ones then apply). */
function settingsGiven(cfg: Config): string[] | undefined {
  if (!cfg.has('staging-setting')) return undefined
  const settings = [...cfg.list('staging-setting')]
  settingsParse(settings, 'staging-setting')
  return settings
}

export const stagingDisable: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    return withStagingLock(cfg, stanza, async () => {
      const record = await stagingRecordRequire(cfg, stanza)
      await jobRun(cfg, 'DISABLE', stanza, async () => {
        // Recorded first: a wal-feed or status running meanwhile must see a copy meant to be stopped.
        record.enabled = false
        await stagingRecordWrite(cfg, record)
        await stagingStop(cfg, record)
      })
      process.stdout.write(`staging copy of stanza '${stanza}' disabled: its cluster on '${record.path}' is stopped\n`)
      return 0
    })
  },
}

export const stagingEnable: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    return withStagingLock(cfg, stanza, async () => {
      const record = await stagingRecordRequire(cfg, stanza)
      const settings = settingsGiven(cfg)
      // A link killed during its initial load leaves a record without a loaded cluster.
      if (record.pgVersion === undefined) {
        fail('PathMissing', `the staging copy of stanza '${stanza}' was never loaded: its link did not finish`, {
          hint: 'load it with staging-resync, or forget it with staging-unlink.',
        })
      }
      await jobRun(cfg, 'ENABLE', stanza, async () => {
        // Settings are written into a stopped cluster only: a running one would not see them until restarted.
        await stagingStop(cfg, record)
        const previous = record.settings
        if (settings !== undefined) record.settings = settings
        if (stagingStreams(record)) await slotEnsure(record)
        await standbyConfigure(cfg, record, previous)
        delete record.fault
        record.enabled = true
        await stagingRecordWrite(cfg, record)
        await stagingStart(cfg, record)
      })
      process.stdout.write(`staging copy of stanza '${stanza}' enabled: its cluster on '${record.path}' runs on port ${record.port}\n`)
      return 0
    })
  },
}

/** Where staging-resync keeps the old data folder while the new one loads. */
export function resyncOldPath(path: string): string {
  return `${path}.resync-old`
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/**
 * A fresh initial load into the same folder, the way the copy was linked. The old folder (and its tablespaces) is moved
 * aside to STAGING-PATH.resync-old and removed only once the new cluster answers; when the load fails, the new files
 * are removed and the old folder is put back where it was, stopped.
 */
export const stagingResync: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    return withStagingLock(cfg, stanza, async () => {
      const record = await stagingRecordRequire(cfg, stanza)
      const settings = settingsGiven(cfg)
      let backup: BaseBackupSource | undefined
      if (record.method !== 'initiated') {
        const backupPath = backupPathOf(cfg) ?? record.backupPath!
        backup = await baseBackupInspect(backupPath)
        record.backupPath = backupPath
      }
      // Absent only when a link was killed before it made the folder.
      const moves: Array<[string, string]> = []
      for (const path of [record.path, tablespaceRoot(record.path)]) if (await exists(path)) moves.push([path, resyncOldPath(path)])
      for (const [, aside] of moves) {
        if (await exists(aside)) {
          fail('PathNotEmpty', `'${aside}' exists: the old folder of an earlier staging-resync`, {
            hint: 'look at it and remove it, then run staging-resync again.',
          })
        }
      }

      await jobRun(cfg, 'RESYNC', stanza, async () => {
        await stagingStop(cfg, record)
        for (const [path, aside] of moves) await rename(path, aside)
        await mkdir(record.path, { mode: 0o700 })
        const fresh: StagingRecord = { ...record, ...(settings !== undefined ? { settings } : {}), enabled: true }
        delete fresh.fault
        delete fresh.expectedWal
        const progress: LoadProgress = { slotCreated: false }
        try {
          await initialLoad(cfg, fresh, backup, progress)
        } catch (error) {
          log.warn('the new initial load failed: putting the old data folder back, stopped (staging-enable starts it)')
          await stagingStop(cfg, fresh).catch(() => undefined)
          await rm(record.path, { recursive: true, force: true })
          await rm(tablespaceRoot(record.path), { recursive: true, force: true })
          for (const [path, aside] of moves) await rename(aside, path)
          record.enabled = false
          await stagingRecordWrite(cfg, record)
          throw error
        }
        await stagingRecordWrite(cfg, fresh)
        for (const [, aside] of moves) await rm(aside, { recursive: true, force: true })
        Object.assign(record, fresh)
      })
      process.stdout.write(`staging copy of stanza '${stanza}' resynchronized (${record.method}): running on port ${record.port}\n`)
      return 0
    })
  },
}

/**
 * Stops the staging copy and forgets it: the record, the port, the slot on the source (best effort: a source that
 * cannot be reached gets a warning naming the slot). The data folder stays unless --delete-data; the stanza and its
 * snapshots stay in the repository.
 */
export const stagingUnlink: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    return withStagingLock(cfg, stanza, async () => {
      const record = await stagingRecordRequire(cfg, stanza)
      const clones = await cloneRecordList(cfg, stanza)
      if (clones.length > 0 && !cfg.boolean('force')) {
        fail('OptionInvalid', `the staging copy of stanza '${stanza}' has ${clones.length} clone(s): ${clones.map((clone) => `'${clone.name}'`).join(', ')}`, {
          hint: 'destroy them first with clone-destroy, or give --force to unlink and leave them on their own.',
        })
      }
      await jobRun(cfg, 'UNLINK', stanza, async () => {
        await stagingStop(cfg, record)
        if (stagingStreams(record)) await slotDrop(record, { warnOnly: true })
        await stagingRecordRemove(cfg, stanza)
        await portRelease(cfg, { kind: 'staging', stanza })
        if (cfg.boolean('delete-data')) {
          await rm(record.path, { recursive: true, force: true })
          await rm(tablespaceRoot(record.path), { recursive: true, force: true })
        }
      })
      process.stdout.write(
        `staging copy of stanza '${stanza}' unlinked; ${cfg.boolean('delete-data') ? `'${record.path}' removed` : `its data folder '${record.path}' is left in place`}\n`,
      )
      return 0
    })
  },
}
