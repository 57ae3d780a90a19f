// staging-link: validation and the initial load of ways 2 and 3 (a user's pg_basebackup). Being built.

import { fail } from '../../common/errors.js'
import type { Command } from '../command.js'

export const stagingLink: Command = {
  async run() {
    fail('FeatureNotSupported', 'staging-link is not built yet')
  },
}
