// Where else a stored file's content is: the index self-healing restore looks up when a file is missing or damaged
// in the repository being restored from.
//
// A manifest records the SHA-256 and size of every file (and of every part of a file stored in parts), so the same
// content in any backup of another repository can stand in for it: a fan-out backup holds the same files under the
// same label in each repository, and backups taken separately still share every file that did not change. The
// copy found is verified against the same SHA-256 as it is restored, like any other.
//
// Built only when a file fails, as it reads every manifest of every other repository.

import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { RepoIndex } from '../../config/options.js'
import { codecFor } from '../../io/compress.js'
import { cipherJobStateOf, cipherUse } from '../../repo/cipher.js'
import type { CipherState } from '../../repo/cipher.js'
import { manifestFileRepoPath, manifestLoad } from '../../repo/manifest.js'
import type { Manifest } from '../../repo/manifest.js'
import { backupInfoLoad } from '../../repo/stanza-info.js'
import type { StorageLocation } from '../../storage/location.js'
import { repoIndexes, repoOpen } from '../repo-storage.js'

/** A stored copy of some content in a repository. */
export interface ContentCopy {
  index: RepoIndex
  location: StorageLocation
  cipher: CipherState
  /** The backup whose manifest lists it (the file may be stored in an earlier backup it references). */
  label: string
  /** Repository path of the stored file, with its extension. */
  repoPath: string
}

const keyOf = (sha256: string, size: number): string => `${sha256}:${size}`

export class ContentIndex {
  readonly #copies = new Map<string, ContentCopy[]>()
  readonly #seen = new Set<string>()

  /** Every stored copy of `size` bytes with this SHA-256, in the order the repositories were added. */
  find(sha256: string, size: number): readonly ContentCopy[] {
    return this.#copies.get(keyOf(sha256, size)) ?? []
  }

  /** Adds the stored files a manifest lists: whole files, and each part of a file stored in parts. */
  add(repo: Omit<ContentCopy, 'label' | 'repoPath'>, stanza: string, manifest: Manifest): void {
    for (const file of manifest.files) {
      const extension = codecFor(file.compressType).extension
      const entries = file.parts
        ? file.parts.map((part, at) => ({ sha256: part.sha256, size: part.size, part: at as number | undefined }))
        : [{ sha256: file.sha256, size: file.size, part: undefined }]
      for (const entry of entries) {
        // Empty files and parts are not stored.
        if (entry.size === 0) continue
        const repoPath = manifestFileRepoPath(stanza, manifest.label, file, extension, entry.part)
        // A file referenced by later backups is one stored file: listed once.
        const seenKey = `${repo.index}:${repoPath}`
        if (this.#seen.has(seenKey)) continue
        this.#seen.add(seenKey)
        const key = keyOf(entry.sha256, entry.size)
        let copies = this.#copies.get(key)
        if (!copies) this.#copies.set(key, (copies = []))
        copies.push({ ...repo, label: manifest.label, repoPath })
      }
    }
  }
}

/**
 * The content index of every configured repository but `exclude`, in repository order, newest backup first. A
 * repository that cannot be read is left out (with a note in the detail log): healing uses what it can reach.
 */
export async function contentIndexBuild(cfg: Config, stanza: string, exclude: RepoIndex): Promise<ContentIndex> {
  const index = new ContentIndex()
  for (const repoIndex of repoIndexes(cfg)) {
    if (repoIndex === exclude) continue
    try {
      const { storage, location } = await repoOpen(cfg, repoIndex)
      const info = await backupInfoLoad(storage, stanza)
      const cipher = cipherJobStateOf(repoIndex)
      for (const backup of [...info.backups].reverse()) {
        try {
          index.add({ index: repoIndex, location, cipher }, stanza, await manifestLoad(storage, stanza, backup.label))
        } catch (error) {
          log.detail(`repo${repoIndex}: manifest of backup ${backup.label} is unreadable, left out of healing: ${(error as Error).message}`)
        }
      }
    } catch (error) {
      log.detail(`repo${repoIndex}: left out of healing: ${(error as Error).message}`)
    }
  }
  cipherUse(exclude)
  return index
}
