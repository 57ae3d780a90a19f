// Modes of the files and folders walden creates outside the repository: logs and mirror SQL files carry database
// content and names, so they are readable by walden's user and its group only (files 0640, folders 0750). Set
// exactly, whatever the umask: the process's umask is whatever the service manager or shell left, 0000 included.

import { chmodSync, mkdirSync } from 'node:fs'
import { chmod, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'

export const PRIVATE_FILE_MODE = 0o640
export const PRIVATE_FOLDER_MODE = 0o750

/** The folders from `first` (the first one mkdir created) down to `path`. */
function createdFolders(path: string, first: string | undefined): string[] {
  if (first === undefined) return []
  const folders: string[] = []
  for (let folder = path; folder !== first && dirname(folder) !== folder; folder = dirname(folder)) folders.push(folder)
  folders.push(first)
  return folders
}

/** Creates a folder and its missing parents, each 0750. Folders that already exist keep their mode: they are someone's choice. */
export async function privateFolder(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: PRIVATE_FOLDER_MODE })
  for (const folder of createdFolders(path, first)) await chmod(folder, PRIVATE_FOLDER_MODE)
}

export function privateFolderSync(path: string): void {
  const first = mkdirSync(path, { recursive: true, mode: PRIVATE_FOLDER_MODE })
  for (const folder of createdFolders(path, first)) chmodSync(folder, PRIVATE_FOLDER_MODE)
}
