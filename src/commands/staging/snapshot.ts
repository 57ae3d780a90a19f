// staging-snapshot: owned by the snapshot part of issue #14; this placeholder only lets the command table dispatch.

import { fail } from '../../common/errors.js'
import type { Command } from '../command.js'

export const stagingSnapshot: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-snapshot is not built yet')
  },
}
