// mirror-status: how far behind each host is; exit 1 when one is further behind than --max-lag-seconds.

import { log } from '../../common/log.js'
import { masterOpen, masterSchemaCheck } from '../../mirror/connect.js'
import { statusRead, statusText } from '../../mirror/status.js'
import type { Command } from '../command.js'

export const mirrorStatus: Command = {
  async run(cfg) {
    const master = await masterOpen(cfg)
    try {
      await masterSchemaCheck(master)
      const hosts = await statusRead(master)
      process.stdout.write(cfg.string('output') === 'json' ? `${JSON.stringify(hosts, null, 2)}\n` : statusText(hosts))
      const limit = cfg.number('max-lag-seconds')
      const late = limit === undefined ? [] : hosts.filter((host) => host.secondsBehind > limit)
      for (const host of late) log.warn(`mirror host '${host.host}' is ${host.secondsBehind.toFixed(1)} s behind, more than ${limit} s`)
      return late.length > 0 ? 1 : 0
    } finally {
      await master.close()
    }
  },
}
