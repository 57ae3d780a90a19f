// staging-disable, staging-enable, staging-resync, staging-unlink. Being built.

import { fail } from '../../common/errors.js'
import type { Command } from '../command.js'

export const stagingDisable: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-disable is not built yet')
  },
}

export const stagingEnable: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-enable is not built yet')
  },
}

export const stagingResync: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-resync is not built yet')
  },
}

export const stagingUnlink: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-unlink is not built yet')
  },
}
