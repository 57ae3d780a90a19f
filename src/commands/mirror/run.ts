// mirror-run: deliver the master's transactions to one host. With --once, until nothing is pending (or the host stalls);
// otherwise as a daemon: it works while there is work, and when there is none it sleeps until the NOTIFY a capturing
// transaction sends at commit (capture notifies only while some mirror-run sleeps: see schema.ts), polling every
// --mirror-interval seconds in case a notification was missed (a dropped connection) or to retry a stalled transaction.

import { fail, WaldenError } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import { SqlError } from '../../pg/link.js'
import { alertRun } from '../../mirror/alert.js'
import { databaseTarget } from '../../mirror/apply-db.js'
import { fileTarget } from '../../mirror/apply-file.js'
import { hostDatabaseOpen, masterOpen, masterSchemaCheck } from '../../mirror/connect.js'
import { hostLoad } from '../../mirror/queue.js'
import { hostNameCheck } from '../../mirror/names.js'
import type { ConflictMode } from '../../mirror/render.js'
import { RepeatFilter } from '../../mirror/repeat-filter.js'
import { cycleRun, errorText } from '../../mirror/run.js'
import type { Mirror, Stall } from '../../mirror/run.js'
import { NOTIFY_CHANNEL } from '../../mirror/schema.js'
import { sleepSlotRelease, sleepSlotTake } from '../../mirror/sleep-slot.js'
import type { MirrorTarget } from '../../mirror/target.js'
import type { Command } from '../command.js'

// How soon to look again when capturing transactions are in flight and no notification can be relied on.
const BUSY_POLL_MS = 200

interface Connected extends Mirror {
  close(): Promise<void>
}

async function connect(cfg: Config, hostName: string, listen: boolean): Promise<Connected> {
  const master = await masterOpen(cfg)
  let target: MirrorTarget | undefined
  try {
    await masterSchemaCheck(master)
    const host = await hostLoad(master, hostName)
    // One mirror-run per host: a second one would race the first for the same transactions.
    const [lock] = await master.query("SELECT pg_try_advisory_lock(hashtext('walden_mirror'), $1)::text AS locked", [host.hostId])
    if (lock!['locked'] !== 'true') {
      fail('LockAcquire', `another mirror-run is already delivering to mirror host '${hostName}'`, {
        hint: 'run one mirror-run per host.',
      })
    }
    const path = cfg.string('mirror-target-path')
    target = path !== undefined ? await fileTarget(path, host.hostId, hostName) : databaseTarget(await hostDatabaseOpen(cfg))
    await target.prepare()
    if (listen) await master.script(`LISTEN ${NOTIFY_CHANNEL}`)
  } catch (error) {
    await target?.close()
    await master.close()
    throw error
  }
  const conflict = (cfg.string('mirror-conflict') ?? 'error') as ConflictMode
  const opened = target
  return {
    master,
    target: opened,
    hostName,
    conflict,
    async close() {
      await opened.close()
      await master.close()
    },
  }
}

function stallMessage(hostName: string, stall: Stall): string {
  return `mirror host '${hostName}' stopped at master transaction ${stall.xid}: ${stall.error}`
}

async function runOnce(cfg: Config, hostName: string): Promise<number> {
  const mirror = await connect(cfg, hostName, false)
  try {
    let total = 0
    for (;;) {
      const result = await cycleRun(mirror)
      total += result.delivered
      if (result.stall) {
        const alert = cfg.string('mirror-alert-command')
        if (alert !== undefined) await alertRun(alert, hostName, result.stall.xid, result.stall.error)
        fail(result.stall.conflict ? 'DbMismatch' : 'DbQuery', stallMessage(hostName, result.stall), {
          hint: result.stall.conflict
            ? 'make the host agree with the master for that row, or run with --mirror-conflict=skip or overwrite.'
            : 'the transaction is retried on the next run.',
        })
      }
      if (!result.more) break
    }
    log.info(`mirror host '${hostName}': ${total} transaction(s) delivered`)
    return 0
  } finally {
    await mirror.close()
  }
}

async function runDaemon(cfg: Config, hostName: string): Promise<number> {
  const intervalMs = (cfg.number('mirror-interval') ?? 60) * 1000
  const alert = cfg.string('mirror-alert-command')
  const errors = new RepeatFilter()
  let mirror: Connected | undefined
  let wake: (() => void) | undefined
  let notified = false
  const sleep = (ms: number, byNotify: boolean): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done(): void {
        clearTimeout(timer)
        wake = undefined
        resolve()
      }
      if (byNotify && notified) return done()
      if (byNotify) wake = done
    })

  log.info(`mirror host '${hostName}': delivering, polling every ${intervalMs / 1000} s`)
  // The sleep slot held while waiting for a notification (see sleep-slot.ts); undefined while working.
  let slot: number | undefined
  let connectedOnce = false
  const wakeUp = async (): Promise<void> => {
    if (slot !== undefined && mirror !== undefined) await sleepSlotRelease(mirror.master, slot)
    slot = undefined
  }
  for (;;) {
    try {
      if (mirror === undefined) {
        mirror = await connect(cfg, hostName, true)
        connectedOnce = true
        mirror.master.onNotify(() => {
          notified = true
          wake?.()
        })
        mirror.master.onLost(() => wake?.())
      }
      notified = false
      const result = await cycleRun(mirror)
      if (result.delivered > 0) log.detail(`mirror host '${hostName}': ${result.delivered} transaction(s) delivered`)
      if (result.stall) {
        await wakeUp()
        const message = stallMessage(hostName, result.stall)
        const count = errors.report(message)
        if (count !== undefined) {
          log.error(count === 1 ? message : `${message} (${count} times so far)`)
          if (alert !== undefined) await alertRun(alert, hostName, result.stall.xid, result.stall.error)
        }
        // A stalled host retries on the interval only: notifications would turn the retry into a busy loop.
        await sleep(intervalMs, false)
        continue
      }
      errors.reset()
      if (result.more || result.delivered > 0) {
        await wakeUp()
        continue
      }
      if (slot !== undefined) {
        // Nothing pending, and from the moment the slot was taken every capturing transaction notifies.
        await sleep(intervalMs, true)
        await wakeUp()
        continue
      }
      slot = await sleepSlotTake(mirror.master)
      // Without a slot, capturing transactions are in flight: look again shortly. With one, the next cycle is the
      // check that decides whether to sleep.
      if (slot === undefined) await sleep(Math.min(intervalMs, BUSY_POLL_MS), false)
    } catch (error) {
      // A configuration mistake will not fix itself; anything else (a lost connection) is retried. So is the per-host
      // lock after a reconnection: the server may not have noticed yet that the previous session is gone.
      const retried = ['DbConnect', 'FileWrite', ...(connectedOnce ? ['LockAcquire'] : [])]
      if (error instanceof WaldenError && !(error instanceof SqlError) && !retried.includes(error.kind)) throw error
      const message = `mirror host '${hostName}': ${errorText(error)}`
      const count = errors.report(message)
      if (count !== undefined) log.error(count === 1 ? message : `${message} (${count} times so far)`)
      // A session-level slot goes with the connection.
      slot = undefined
      await mirror?.close()
      mirror = undefined
      await sleep(Math.min(intervalMs, 5000), false)
    }
  }
}

export const mirrorRun: Command = {
  async run(cfg) {
    const hostName = cfg.requireString('mirror-host')
    hostNameCheck(hostName, false)
    const toDatabase = cfg.string('mirror-target') !== undefined
    const toFiles = cfg.string('mirror-target-path') !== undefined
    if (toDatabase === toFiles) {
      fail('OptionRequired', "mirror-run command requires exactly one of options 'mirror-target' and 'mirror-target-path'", {
        hint: "give --mirror-target='host=... dbname=...' to apply to a database, or --mirror-target-path=DIR to write SQL files.",
      })
    }
    return cfg.boolean('once') ? runOnce(cfg, hostName) : runDaemon(cfg, hostName)
  },
}
