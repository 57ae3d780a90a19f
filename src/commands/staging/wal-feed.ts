// staging-wal-get: owned by the walchain part of issue #14; this placeholder only lets the command table dispatch.

import { fail } from '../../common/errors.js'
import type { Command } from '../command.js'

export const stagingWalGet: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-wal-get is not built yet')
  },
}
