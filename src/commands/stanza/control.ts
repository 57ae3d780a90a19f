// start and stop: a stop file in lock-path makes every walden command (but info, help, version, start and stop)
// refuse to run, for one stanza or for all. Used before maintenance and to keep a demoted primary quiet.

import { log } from '../../common/log.js'
import { lockHolders, stopFileCreate, stopFileRemove } from '../../common/lock.js'
import type { Command } from '../command.js'

export const stop: Command = {
  async run(cfg) {
    const lockPath = cfg.string('lock-path') ?? '/tmp/walden'
    const stanza = cfg.string('stanza')
    const scope = stanza === undefined ? 'all stanzas' : `stanza '${stanza}'`
    if (await stopFileCreate(lockPath, stanza)) log.info(`walden commands are stopped for ${scope}`)
    else log.warn(`stop file already exists for ${scope}`)
    if (cfg.boolean('force')) {
      for (const pid of await lockHolders(lockPath, stanza)) {
        try {
          process.kill(pid, 'SIGTERM')
          log.info(`sent SIGTERM to walden process ${pid}`)
        } catch {
          // ended on its own meanwhile
        }
      }
    }
    return 0
  },
}

export const start: Command = {
  async run(cfg) {
    const lockPath = cfg.string('lock-path') ?? '/tmp/walden'
    const stanza = cfg.string('stanza')
    const scope = stanza === undefined ? 'all stanzas' : `stanza '${stanza}'`
    if (await stopFileRemove(lockPath, stanza)) log.info(`walden commands may run again for ${scope}`)
    else log.warn(`stop file does not exist for ${scope}`)
    return 0
  },
}
