// mirror-setup, mirror-teardown, mirror-add-table, mirror-remove-table, mirror-add-host, mirror-remove-host and
// mirror-clean: short conversations with the master.

import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { PgLink } from '../../pg/link.js'
import { hostAdd, hostRemove, masterSetup, masterTeardown, tableAdd, tableInfo, tableRemove } from '../../mirror/admin.js'
import { masterOpen, masterSchemaCheck } from '../../mirror/connect.js'
import { hostNameCheck, printable } from '../../mirror/names.js'
import { purge } from '../../mirror/queue.js'
import type { Command } from '../command.js'

async function withMaster(cfg: Config, work: (master: PgLink) => Promise<number>, schemaNeeded = true): Promise<number> {
  const master = await masterOpen(cfg)
  try {
    if (schemaNeeded) await masterSchemaCheck(master)
    return await work(master)
  } finally {
    await master.close()
  }
}

export const mirrorSetup: Command = {
  run: (cfg) =>
    withMaster(
      cfg,
      async (master) => {
        await masterSetup(master)
        log.info(`mirror schema installed in the ${master.where}`)
        return 0
      },
      false,
    ),
}

export const mirrorTeardown: Command = {
  run: (cfg) =>
    withMaster(
      cfg,
      async (master) => {
        await masterTeardown(master)
        log.info(`mirror schema and capture triggers removed from the ${master.where}`)
        return 0
      },
      false,
    ),
}

export const mirrorAddTable: Command = {
  run: (cfg) =>
    withMaster(cfg, async (master) => {
      const table = await tableInfo(master, cfg.requireString('table'))
      await tableAdd(master, table)
      log.info(`table ${table.name} is mirrored (primary key ${table.keyColumns.join(', ')})`)
      return 0
    }),
}

export const mirrorRemoveTable: Command = {
  run: (cfg) =>
    withMaster(cfg, async (master) => {
      const given = cfg.requireString('table')
      if (await tableRemove(master, given)) log.info(`table ${printable(given)} is no longer mirrored; changes already queued are still delivered`)
      else log.warn(`table ${printable(given)} was not mirrored`)
      return 0
    }),
}

export const mirrorAddHost: Command = {
  run: (cfg) =>
    withMaster(cfg, async (master) => {
      const name = cfg.requireString('mirror-host')
      hostNameCheck(name, true)
      if (await hostAdd(master, name)) log.info(`mirror host '${name}' added; it receives every transaction still queued`)
      else log.info(`mirror host '${name}' already exists`)
      return 0
    }),
}

export const mirrorRemoveHost: Command = {
  run: (cfg) =>
    withMaster(cfg, async (master) => {
      const name = cfg.requireString('mirror-host')
      // Any name: one registered before names were checked can only be removed.
      if (await hostRemove(master, name)) log.info(`mirror host '${printable(name)}' removed`)
      else log.warn(`mirror host '${printable(name)}' did not exist`)
      return 0
    }),
}

export const mirrorClean: Command = {
  run: (cfg) =>
    withMaster(cfg, async (master) => {
      const result = await purge(master)
      log.info(`purged ${result.transactions} transaction(s), ${result.changes} change(s) every host has received`)
      return 0
    }),
}
