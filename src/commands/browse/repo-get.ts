// repo-get: writes one repository file to stdout as pgBackRest 2.45's repo-get does: decrypted when the repository is
// encrypted (unless --raw), never decompressed. check_pgbackrest reads timeline history files and manifests this way.

import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import type { Command } from '../command.js'
import { fail } from '../../common/errors.js'
import { isSealed, OpenStream } from '../../io/cipher.js'
import { cipherOpenKeys } from '../../repo/cipher.js'
import { archiveInfoLoadIfExists, backupInfoLoadIfExists } from '../../repo/stanza-info.js'
import type { Storage } from '../../storage/storage.js'
import { repoOpen } from '../repo-storage.js'
import { repoOne, repoRoot } from './repo-one.js'
import { repoPathResolve, repoPathStanza } from './repo-path.js'

/** Exit status of a missing file with --ignore-missing, as in pgBackRest. */
const MISSING_IGNORED = 1

export const repoGet: Command = {
  async run(cfg) {
    const repo = await repoOpen(cfg, repoOne(cfg))
    const storage = repo.storage
    const path = repoPathResolve(cfg.params[0], repoRoot(repo.location))
    if (path === '') fail('ParamInvalid', 'repo-get needs a file, not the repository root', { hint: 'list the repository with repo-ls.' })

    const info = await storage.info(path)
    if (info === undefined) {
      if (cfg.boolean('ignore-missing')) return MISSING_IGNORED
      fail('FileMissing', `unable to open missing file '${storage.describe(path)}' for read`)
    }
    if (info.type === 'path') fail('FileInvalid', `'${storage.describe(path)}' is a folder, not a file`, { hint: 'list it with repo-ls.' })

    // The first bytes say whether the file is sealed (io/cipher.ts); only then are the stanza's keys needed.
    const head = await readAll(await storage.openRead(path, { offset: 0, length: 8 }))
    const transforms = []
    if (!cfg.boolean('raw') && isSealed(head)) {
      await stanzaKeysAdopt(storage, cfg.string('stanza') ?? repoPathStanza(path), path)
      const keys = cipherOpenKeys()
      if (!keys) {
        fail('Crypto', `'${storage.describe(path)}' is encrypted, but the stanza's info files record no encryption`, {
          hint: 'the repository is damaged or was mixed with another; --raw writes the file as stored.',
        })
      }
      transforms.push(new OpenStream(keys, `repository file '${storage.describe(path)}'`))
    }
    // stdout stays open: main waits for it to drain before it exits.
    await pipeline([await storage.openRead(path), ...transforms, process.stdout], { end: false })
    return 0
  },
}

/** Makes the stanza's encryption record (archive.info, else backup.info) the one its files are opened with. */
async function stanzaKeysAdopt(storage: Storage, stanza: string | undefined, path: string): Promise<void> {
  if (stanza === undefined) {
    fail('Crypto', `'${storage.describe(path)}' is encrypted and names no stanza whose keys would open it`, {
      hint: 'give --stanza=NAME, or --raw for the file as stored.',
    })
  }
  if ((await archiveInfoLoadIfExists(storage, stanza)) !== undefined) return
  if ((await backupInfoLoadIfExists(storage, stanza)) !== undefined) return
  fail('RepoInvalid', `'${storage.describe(path)}' is encrypted, and stanza '${stanza}' does not exist in repository ${storage.description}`, {
    hint: 'give the --stanza the file belongs to, or --raw for the file as stored.',
  })
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks)
}
