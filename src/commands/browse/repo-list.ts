// What repo-ls prints: the entries under a repository path, in pgBackRest 2.45's order and shapes.
//
// Order (pgBackRest's storage list with recursion): "." first; with --sort=asc and none each folder comes before
// what is in it, with desc after it (the reverse of asc's order). JSON is one object of name -> entry, keys in that
// order; text prints one name a line, "." only when PATH is a file.

import type { Storage, StorageInfo } from '../../storage/storage.js'

export interface RepoEntry {
  /** Relative to the path listed; '.' for that path itself. */
  name: string
  type: 'file' | 'path' | 'link'
  size?: number
  /** Modification time in whole seconds since 1970 (files only). */
  time?: number
  /** Where a link points (links only, where the storage can say). */
  destination?: string
}

export type RepoSort = 'asc' | 'desc' | 'none'

function entryOf(name: string, info: StorageInfo, destination: string | undefined): RepoEntry {
  if (info.type === 'path') return { name, type: 'path' }
  if (info.type === 'link') return { name, type: 'link', ...(destination !== undefined ? { destination } : {}) }
  return { name, type: 'file', size: info.size, time: Math.floor(info.mtimeMs / 1000) }
}

function join(folder: string, name: string): string {
  return folder === '' ? name : `${folder}/${name}`
}

/**
 * The entries at `path` ('' for the repository root). A missing path lists as an empty folder, as in pgBackRest
 * (on S3 a folder with nothing in it does not exist either). A file lists as itself, named '.'.
 */
export async function repoList(storage: Storage, path: string, options: { recurse: boolean; sort: RepoSort }): Promise<RepoEntry[]> {
  const self = path === '' ? undefined : await storage.info(path)
  if (self?.type === 'file') return [entryOf('.', self, undefined)]
  const entries: RepoEntry[] = [{ name: '.', type: 'path' }]

  const walk = async (relative: string): Promise<void> => {
    const folder = join(path, relative)
    const children = await storageListInfo(storage, folder)
    if (options.sort === 'asc') children.sort((a, b) => compare(a.name, b.name))
    else if (options.sort === 'desc') children.sort((a, b) => compare(b.name, a.name))
    for (const child of children) {
      const name = join(relative, child.name)
      const destination = child.info.type === 'link' ? await storage.linkDestination?.(join(folder, child.name)) : undefined
      const entry = entryOf(name, child.info, destination)
      if (options.sort !== 'desc') entries.push(entry)
      if (options.recurse && child.info.type === 'path') await walk(name)
      if (options.sort === 'desc') entries.push(entry)
    }
  }
  await walk('')
  return entries
}

/** Byte order of the names, as pgBackRest sorts (and JavaScript's for the ASCII of repository names). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** A folder's entries with their info: the driver's own listing where it has one (S3 gives both in one request). */
async function storageListInfo(storage: Storage, folder: string): Promise<Array<{ name: string; info: StorageInfo }>> {
  if (storage.listInfo) return storage.listInfo(folder)
  const result: Array<{ name: string; info: StorageInfo }> = []
  for (const name of await storage.list(folder)) {
    const info = await storage.info(join(folder, name))
    // Gone between the listing and its info (expire ran): not there any more.
    if (info) result.push({ name, info })
  }
  return result
}

export function repoListFilter(entries: readonly RepoEntry[], filter: RegExp | undefined): RepoEntry[] {
  return filter === undefined ? [...entries] : entries.filter((entry) => filter.test(entry.name))
}

/** One name a line; a folder's own '.' is left out, a file's is its one line. */
export function repoListText(entries: readonly RepoEntry[]): string {
  return entries
    .filter((entry) => entry.name !== '.' || entry.type !== 'path')
    .map((entry) => `${entry.name}\n`)
    .join('')
}

/**
 * pgBackRest's JSON: {"name":{"type":...,"size":...,"time":...},...} on one line. Written out by hand, not through an
 * object, whose integer-like keys ("1") JavaScript would move to the front.
 */
export function repoListJson(entries: readonly RepoEntry[]): string {
  const items = entries.map((entry) => {
    const { name, ...rest } = entry
    const fields =
      rest.type === 'file'
        ? { type: rest.type, size: rest.size, time: rest.time }
        : rest.type === 'link'
          ? { type: rest.type, ...(rest.destination !== undefined ? { destination: rest.destination } : {}) }
          : { type: rest.type }
    return `${JSON.stringify(name)}:${JSON.stringify(fields)}`
  })
  return `{${items.join(',')}}\n`
}
