// repo-ls: lists a repository path on any repository type, as pgBackRest 2.45's repo-ls does, for the tools that
// call it (check_pgbackrest lists archive/STANZA and backup/STANZA with --output=json).

import type { Command } from '../command.js'
import { fail } from '../../common/errors.js'
import { repoOpen } from '../repo-storage.js'
import { repoOne, repoRoot } from './repo-one.js'
import { repoList, repoListFilter, repoListJson, repoListText } from './repo-list.js'
import type { RepoSort } from './repo-list.js'
import { repoPathResolve } from './repo-path.js'

function filterParse(text: string | undefined): RegExp | undefined {
  if (text === undefined) return undefined
  try {
    return new RegExp(text)
  } catch (error) {
    fail('OptionInvalidValue', `option 'filter' is not a valid regular expression: ${(error as Error).message}`, {
      hint: "use JavaScript regular expression syntax, e.g. --filter='\\.history$'.",
    })
  }
}

export const repoLs: Command = {
  async run(cfg) {
    const filter = filterParse(cfg.string('filter'))
    const repo = await repoOpen(cfg, repoOne(cfg))
    const path = repoPathResolve(cfg.params[0], repoRoot(repo.location))
    const entries = repoListFilter(
      await repoList(repo.storage, path, { recurse: cfg.boolean('recurse'), sort: (cfg.string('sort') ?? 'asc') as RepoSort }),
      filter,
    )
    process.stdout.write(cfg.string('output') === 'json' ? repoListJson(entries) : repoListText(entries))
    return 0
  },
}
