// The shape every command module exports: run() receives the resolved Config and returns the exit status.

import type { Config } from '../config/config.js'

export interface Command {
  run(cfg: Config): Promise<number>
}
