// Checksummed JSON documents in the repository (archive.info, backup.info, backup.manifest).
//
// Each is written twice, as NAME and NAME.copy, each atomically. A reader takes the first of the two whose checksum
// holds, so a torn or damaged file never loses the stanza: the other copy is at most one update older.

import { createHash } from 'node:crypto'
import { fail } from '../common/errors.js'
import { isSealed, openBuffer, sealBuffer } from '../io/cipher.js'
import type { Storage } from '../storage/storage.js'
import { cipherOpenKeys, cipherSealMeta } from './cipher.js'

/** Version of walden's repository formats; bumped when a reader of an older walden could misread a file. */
export const REPO_FORMAT = 1

interface Envelope<T> {
  format: number
  checksum: string
  content: T
}

function checksumOf(content: unknown): string {
  return createHash('sha256').update(JSON.stringify(content)).digest('hex')
}

/**
 * `sealed`: encrypt the document with the repository key when there is one (repo/cipher.ts cipherSealMeta); for
 * backup manifests. archive.info and backup.info stay readable: they hold the stanza's cipher record itself.
 */
export async function infoFileSave<T>(storage: Storage, path: string, content: T, options: { sealed?: boolean } = {}): Promise<void> {
  const envelope: Envelope<T> = { format: REPO_FORMAT, checksum: checksumOf(content), content }
  const seal = options.sealed === true ? cipherSealMeta() : undefined
  const plain = `${JSON.stringify(envelope, null, 1)}\n`
  const text = seal ? sealBuffer(seal, Buffer.from(plain)) : plain
  // Main file first, copy second: if walden dies between the two, the main file is already the newer one.
  await storage.write(path, text)
  await storage.write(`${path}.copy`, text)
}

/** Loads a document, falling back to its copy; undefined when neither exists. Damage in both is an error. */
export async function infoFileLoad<T>(storage: Storage, path: string): Promise<T | undefined> {
  const problems: string[] = []
  let found = false
  for (const candidate of [path, `${path}.copy`]) {
    let data = await storage.read(candidate, { missingOk: true })
    if (data === undefined) continue
    if (isSealed(data)) {
      const keys = cipherOpenKeys()
      if (!keys) {
        fail('Crypto', `'${storage.describe(candidate)}' is encrypted, but the stanza's info files record no encryption`, {
          hint: 'the repository is damaged or was mixed with another; restore its info files from a copy.',
        })
      }
      try {
        data = openBuffer(keys, data, `'${storage.describe(candidate)}'`)
      } catch (error) {
        // A missing key is the same for both copies; damage may be in one only.
        if (!(error instanceof Error && /failed authentication/.test(error.message))) throw error
        problems.push(error.message)
        continue
      }
    }
    found = true
    let envelope: Envelope<T>
    try {
      envelope = JSON.parse(data.toString('utf8')) as Envelope<T>
    } catch {
      problems.push(`'${storage.describe(candidate)}' is not valid JSON`)
      continue
    }
    if (typeof envelope.format !== 'number' || envelope.format > REPO_FORMAT) {
      fail('RepoInvalid', `'${storage.describe(candidate)}' has format ${String(envelope.format)}, newer than this walden reads (${REPO_FORMAT})`, {
        hint: 'upgrade walden to the version that wrote this repository.',
      })
    }
    if (envelope.checksum !== checksumOf(envelope.content)) {
      problems.push(`'${storage.describe(candidate)}' does not match its checksum`)
      continue
    }
    return envelope.content
  }
  if (!found) return undefined
  fail('Checksum', `unable to load '${storage.describe(path)}': ${problems.join('; ')}`, {
    hint: 'the repository is damaged; restore these files from a copy of the repository.',
  })
}

export async function infoFileRemove(storage: Storage, path: string): Promise<void> {
  await storage.remove(`${path}.copy`)
  await storage.remove(path)
}
