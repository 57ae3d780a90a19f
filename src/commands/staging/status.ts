// staging-status: owned by the walchain part of issue #14; this placeholder only lets the command table dispatch.

import { fail } from '../../common/errors.js'
import type { Command } from '../command.js'

export const stagingStatus: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-status is not built yet')
  },
}
