// remote: serves this host to a walden on another host, over the SSH session that started this process (stdin and
// stdout carry the protocol; stderr carries log lines, which the other end relays). On a backup host it serves a
// repository: which one is this host's business, repoN of its own config file, N from --repo, and the client names
// paths inside it, nothing more. On a database host (--remote-type=pg, started by a backup host's pgN-host) it serves
// the cluster's files and socket (pg-service.ts).

import { fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import { REPO_MAX } from '../../config/options.js'
import type { RepoIndex } from '../../config/options.js'
import { protocolServe, storageService } from '../../protocol/server.js'
import { storageOpen } from '../../storage/location.js'
import type { Command } from '../command.js'
import { repoLocation } from '../repo-storage.js'
import { pgService } from './pg-service.js'

/** Only for tests of the handshake: makes this end state another version. Not an option, so not in help. */
const VERSION_FOR_TEST = '_WALDEN_TEST_REMOTE_VERSION'

export const remote: Command = {
  async run(cfg: Config): Promise<number> {
    const version = process.env[VERSION_FOR_TEST]
    const common = {
      input: process.stdin,
      output: process.stdout,
      ...(version !== undefined ? { version } : {}),
      deflateLevel: cfg.number('compress-level-network') ?? 0,
    }
    if (cfg.string('remote-type') === 'pg') {
      await protocolServe({ ...common, service: pgService() })
      return 0
    }
    const chosen = cfg.string('repo') ?? '1'
    const index = Number(chosen)
    if (!/^[1-9]\d*$/.test(chosen) || index > REPO_MAX) {
      fail('OptionInvalidValue', `remote serves one repository: option 'repo' must be a number from 1 to ${REPO_MAX}, not '${chosen}'`)
    }
    const location = repoLocation(cfg, index as RepoIndex)
    if (location.type === 'remote') {
      fail('OptionInvalid', `repo${index}-host is set on this host too: the backup host must hold the repository itself`, {
        hint: `remove repo${index}-host from the config file the remote walden reads, and set repo${index}-path there.`,
      })
    }
    const storage = await storageOpen(location)
    await protocolServe({ ...common, service: storageService(storage) })
    return 0
  },
}
