// mirror-init-host: copy the mirrored tables to a host database from one snapshot of the master.

import { hostDatabaseOpen, masterOpen, masterSchemaCheck } from '../../mirror/connect.js'
import { hostInit } from '../../mirror/init-host.js'
import { hostNameCheck } from '../../mirror/names.js'
import type { Command } from '../command.js'

export const mirrorInitHost: Command = {
  async run(cfg) {
    const name = cfg.requireString('mirror-host')
    hostNameCheck(name, false)
    const master = await masterOpen(cfg)
    try {
      await masterSchemaCheck(master)
      const host = await hostDatabaseOpen(cfg)
      try {
        await hostInit(master, host, name)
      } finally {
        await host.close()
      }
      return 0
    } finally {
      await master.close()
    }
  },
}
