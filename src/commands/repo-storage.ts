// The repository storage a command works on, from the configuration. Kept apart from the PostgreSQL session
// helpers so that archive-push and archive-get, which PostgreSQL starts once per WAL segment, never load the
// PostgreSQL client library.

import type { Config } from '../config/config.js'
import { PosixStorage } from '../storage/posix.js'
import type { Storage } from '../storage/storage.js'

export function repoStorage(cfg: Config): Storage {
  return new PosixStorage(cfg.string('repo1-path') ?? '/var/lib/walden')
}
