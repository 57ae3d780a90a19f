// mirror-status: how far behind each host is; with --max-lag-seconds a monitoring check that exits 90 (like
// replication-status) with a one-line reason when a host is further behind.

import { fail } from '../../common/errors.js'
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
      if (late.length > 0) {
        fail('ReplicationLag', late.map((host) => `mirror host '${host.host}' is ${host.secondsBehind.toFixed(1)} s behind, more than ${limit} s`).join('; '))
      }
      return 0
    } finally {
      await master.close()
    }
  },
}
