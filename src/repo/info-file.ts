// Checksummed JSON documents in the repository (archive.info, backup.info, backup.manifest).
//
// Each is written twice, as NAME and NAME.copy, each atomically. A reader takes the first of the two that is whole:
// valid JSON, a format this walden reads, a checksum that holds and content of the document's shape (shape.ts). Any
// other copy is a damaged candidate, whatever the damage (a torn or truncated file, a key removed, a value of the
// wrong type, a damaged format number), so damage to one copy never loses the stanza: the other copy is at most one
// update older. Only when no copy is whole is it an error, and never a TypeError.

import { createHash } from 'node:crypto'
import { fail, WaldenError } from '../common/errors.js'
import { log } from '../common/log.js'
import { isSealed, openBuffer, sealBuffer } from '../io/cipher.js'
import type { Storage } from '../storage/storage.js'
import { cipherOpenKeys, cipherSealMeta } from './cipher.js'
import { shapeProblem } from './shape.js'
import { pgbrFileKind, PgbrFormatFound } from './pgbackrest/ini.js'
import type { Shape } from './shape.js'

/** Version of walden's repository formats; bumped when a reader of an older walden could misread a file. */
export const REPO_FORMAT = 1

interface Envelope<T> {
  format: number
  checksum: string
  content: T
}

/**
 * The error for documents written in a format newer than this walden reads. A kind of its own (still RepoInvalid,
 * 103) so archive-get can tell it apart: recovery cannot go on with this walden, and must abort rather than end.
 */
export class RepoFormatNewerError extends WaldenError {
  constructor(message: string, hint: string) {
    super('RepoInvalid', message, { hint })
  }
}

function checksumOf(content: unknown): string {
  return createHash('sha256').update(JSON.stringify(content)).digest('hex')
}

/**
 * `sealed`: encrypt the document with the repository key when there is one (repo/cipher.ts cipherSealMeta); for
 * backup manifests. archive.info and backup.info stay readable: they hold the stanza's cipher record itself.
 */
export async function infoFileSave<T>(storage: Storage, path: string, content: T, shape: Shape<T>, options: { sealed?: boolean } = {}): Promise<void> {
  // A document this walden would refuse to read back must never be written: it would damage both copies at once.
  const problem = shapeProblem(shape, content)
  if (problem !== undefined) fail('Assert', `refusing to write '${storage.describe(path)}': ${problem}`)
  const envelope: Envelope<T> = { format: REPO_FORMAT, checksum: checksumOf(content), content }
  const seal = options.sealed === true ? cipherSealMeta() : undefined
  const plain = `${JSON.stringify(envelope, null, 1)}\n`
  const text = seal ? sealBuffer(seal, Buffer.from(plain)) : plain
  // Main file first, copy second: if walden dies between the two, the main file is already the newer one.
  await storage.write(path, text)
  await storage.write(`${path}.copy`, text)
}

export type Candidate<T> =
  | { state: 'missing' }
  | { state: 'whole'; content: T }
  | { state: 'damaged'; problem: string }
  | { state: 'newer'; format: number }

/** What one copy holds; never throws for anything in the file's content. */
export function infoFileParse<T>(text: string, shape: Shape<T>): Candidate<T> {
  let envelope: unknown
  try {
    envelope = JSON.parse(text)
  } catch {
    return { state: 'damaged', problem: text.length === 0 ? 'is empty' : 'is not valid JSON (truncated or overwritten?)' }
  }
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
    return { state: 'damaged', problem: 'is not a walden info file (not a JSON object)' }
  }
  const { format, checksum, content } = envelope as Partial<Record<keyof Envelope<T>, unknown>>
  if (typeof format !== 'number' || !Number.isSafeInteger(format) || format < 1) {
    return { state: 'damaged', problem: `has no valid format number (found ${JSON.stringify(format) ?? 'none'})` }
  }
  // Before the checksum: a newer format may checksum differently. The format itself is not covered by the checksum,
  // so a damaged format number looks just like this; the caller falls back to the other copy in either case.
  if (format > REPO_FORMAT) return { state: 'newer', format }
  if (typeof checksum !== 'string') return { state: 'damaged', problem: 'has no checksum' }
  if (content === undefined) return { state: 'damaged', problem: 'has no content' }
  if (checksum !== checksumOf(content)) return { state: 'damaged', problem: 'does not match its checksum' }
  const problem = shapeProblem(shape, content)
  if (problem !== undefined) return { state: 'damaged', problem: `is not a valid document: ${problem}` }
  return { state: 'whole', content: content as T }
}

/**
 * Loads a document, falling back to its copy; undefined when neither exists. When no copy is whole it is a Checksum
 * error naming what is wrong with each, or, when every copy there is intact but newer than this walden reads, an
 * "upgrade walden" RepoFormatNewerError.
 */
export async function infoFileLoad<T>(
  storage: Storage,
  path: string,
  shape: Shape<T>,
  options: {
    /**
     * Rewrite both copies from the whole one when the other is damaged or missing. Only for a caller that may write
     * the file (holding the stanza's backup lock); others leave the repair to the next write.
     */
    repair?: boolean
  } = {},
): Promise<T | undefined> {
  const names = [path, `${path}.copy`]
  const candidates: Array<Candidate<T>> = []
  for (const name of names) {
    const { data, candidate, sealed } = await candidateRead(storage, name, shape)
    if (candidate.state === 'whole') {
      // Never a repair over a copy that may be a newer walden's: that would downgrade it.
      const repair = options.repair === true && candidates.every((before) => before.state !== 'newer')
      for (const [index, before] of candidates.entries()) {
        if (before.state === 'missing' && !repair) continue
        log.warn(`'${storage.describe(names[index]!)}' ${candidateText(before)}; using '${storage.describe(name)}'${repair ? ' and rewriting both' : ''}`)
      }
      if (repair) {
        if (candidates.length > 0) await infoFileSave(storage, path, candidate.content, shape, { sealed })
        else await infoFileCopyRepair(storage, path, data!, shape)
      }
      return candidate.content
    }
    candidates.push(candidate)
  }
  const present = candidates.filter((candidate) => candidate.state !== 'missing')
  if (present.length === 0) return undefined
  if (present.every((candidate) => candidate.state === 'newer')) {
    const format = Math.max(...present.map((candidate) => (candidate.state === 'newer' ? candidate.format : 0)))
    throw new RepoFormatNewerError(
      `'${storage.describe(path)}' has format ${format}, newer than this walden reads (${REPO_FORMAT})`,
      'upgrade walden to the version that wrote this repository.',
    )
  }
  const problems = candidates.map((candidate, index) => `'${storage.describe(names[index]!)}' ${candidateText(candidate)}`)
  fail('Checksum', `unable to load '${storage.describe(path)}' or its copy: ${problems.join('; ')}`, {
    hint: 'the repository is damaged and both copies of this file are unusable; restore them from a copy of the repository.',
  })
}

/** Rewrites the copy from the whole main file (`text`) when the copy is not whole; readers never look at it then. */
async function infoFileCopyRepair<T>(storage: Storage, path: string, text: Buffer, shape: Shape<T>): Promise<void> {
  const copy = `${path}.copy`
  const { candidate } = await candidateRead(storage, copy, shape)
  if (candidate.state === 'whole' || candidate.state === 'newer') return
  log.warn(`'${storage.describe(copy)}' ${candidateText(candidate)}; rewriting it from '${storage.describe(path)}'`)
  await storage.write(copy, text)
}

/**
 * One copy as read: its bytes as stored, and what they hold once opened with the repository key where they are sealed.
 * A sealed copy that fails authentication is a damaged candidate like any other (the other copy may be intact); a
 * sealed copy with no key to open it is an error, the same for both copies.
 */
async function candidateRead<T>(storage: Storage, name: string, shape: Shape<T>): Promise<{ data: Buffer | undefined; candidate: Candidate<T>; sealed: boolean }> {
  const data = await storage.read(name, { missingOk: true })
  if (data === undefined) return { data, candidate: { state: 'missing' }, sealed: false }
  // walden's documents are JSON and its sealed ones start with its own magic: these bytes are pgBackRest's.
  if (pgbrFileKind(data) !== undefined) throw new PgbrFormatFound(name)
  if (!isSealed(data)) return { data, candidate: infoFileParse(data.toString('utf8'), shape), sealed: false }
  const keys = cipherOpenKeys()
  if (!keys) {
    fail('Crypto', `'${storage.describe(name)}' is encrypted, but the stanza's info files record no encryption`, {
      hint: 'the repository is damaged or was mixed with another; restore its info files from a copy.',
    })
  }
  let plain: Buffer
  try {
    plain = openBuffer(keys, data, `'${storage.describe(name)}'`)
  } catch (error) {
    if (!(error instanceof WaldenError && error.kind === 'Crypto' && /failed authentication/.test(error.message))) throw error
    return { data, candidate: { state: 'damaged', problem: error.message.slice(error.message.indexOf('failed authentication')) }, sealed: true }
  }
  return { data, candidate: infoFileParse(plain.toString('utf8'), shape), sealed: true }
}

function candidateText(candidate: Candidate<unknown>): string {
  switch (candidate.state) {
    case 'missing':
      return 'is missing'
    case 'damaged':
      return candidate.problem
    case 'newer':
      return `has format ${candidate.format}, newer than this walden reads (${REPO_FORMAT}), or a damaged format number`
    case 'whole':
      return 'is whole'
  }
}

export async function infoFileRemove(storage: Storage, path: string): Promise<void> {
  await storage.remove(`${path}.copy`)
  await storage.remove(path)
}
