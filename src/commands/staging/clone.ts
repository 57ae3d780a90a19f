// clone-create, clone-list, clone-destroy: owned by the clone part of issue #14; these placeholders only let the
// command table dispatch.

import { fail } from '../../common/errors.js'
import type { Command } from '../command.js'

export const cloneCreate: Command = {
  async run() {
    fail('FeatureNotSupported', 'clone-create is not built yet')
  },
}

export const cloneList: Command = {
  async run() {
    fail('FeatureNotSupported', 'clone-list is not built yet')
  },
}

export const cloneDestroy: Command = {
  async run() {
    fail('FeatureNotSupported', 'clone-destroy is not built yet')
  },
}
