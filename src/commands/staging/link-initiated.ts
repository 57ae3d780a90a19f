// staging-link --staging-method=initiated (way 1): owned by the initiated part of issue #14. link.ts validates the
// options, reserves the port and records the jobs, then calls initiatedLoad to fill the (empty) staging folder with a
// base backup of the source taken over the replication protocol and to create the replication slot; link.ts then
// configures the standby settings and starts it. This placeholder refuses until that part lands.

import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import type { StagingRecord } from './state.js'

/**
 * Takes a base backup of `record.source` into `record.path` (which exists and is empty), WAL included, and creates
 * the physical replication slot `record.slotName` on the source when it is missing.
 */
export async function initiatedLoad(_cfg: Config, _record: StagingRecord): Promise<void> {
  fail('FeatureNotSupported', 'staging-method=initiated is not built yet', { hint: 'use external-wal or external-streaming for now.' })
}
