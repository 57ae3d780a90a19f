// The sleep slots (see schema.ts, WAKE_NEEDED): a mirror-run with nothing to do takes one before it waits for a
// notification, so that capturing transactions know to send one. A slot can only be taken while no capturing
// transaction is in flight, and the check that follows taking it sees every transaction committed before.

import type { PgLink } from '../pg/link.js'
import { SLEEP_LOCK_KEY, SLEEP_SLOTS } from './schema.js'

/** The slot taken, or undefined when capturing transactions are in flight (or every slot is in use). */
export async function sleepSlotTake(master: PgLink): Promise<number | undefined> {
  for (let slot = 0; slot < SLEEP_SLOTS; slot++) {
    const [row] = await master.query('SELECT pg_try_advisory_lock($1, $2)::text AS taken', [SLEEP_LOCK_KEY, slot])
    if (row!['taken'] === 'true') return slot
  }
  return undefined
}

export async function sleepSlotRelease(master: PgLink, slot: number): Promise<void> {
  await master.query('SELECT pg_advisory_unlock($1, $2)', [SLEEP_LOCK_KEY, slot])
}
