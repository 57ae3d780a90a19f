// Temporary files that a killed walden left in a stanza's metadata folders.
//
// Every info file and manifest is written under a temporary name and renamed into place (storage.ts, TEMPORARY_NAME),
// so a walden killed mid-write (an expire or backup SIGKILLed, a host that lost power) leaves that temporary file
// behind, e.g. backup/<stanza>/backup.info.copy.tmp-4242-1a2b3c4d. Nothing ever reads them, but nothing else would
// ever remove them either.
//
// Only files no live walden can still be writing may go, and that is what the stanza's backup lock gives: every
// command that writes these folders (stanza-create, backup, expire, stanza-delete) holds it, so the caller, which
// holds it too, knows that any temporary file in them is left over. The folders are exactly those:
//   archive/<stanza>/            archive.info and its copy (stanza-create)
//   backup/<stanza>/             backup.info and its copy
//   backup/<stanza>/<label>/     backup.manifest and its copy (top level only: a killed backup's folder is removed
//                                whole by the next backup, and a finished backup's data files were all renamed)
// The archive id folders below archive/<stanza>/ are not: archive-push writes there without the backup lock, at any
// time, so a temporary file there may be a push in progress. expire removes those only once they are an hour old.

import { log } from '../common/log.js'
import type { Storage } from '../storage/storage.js'
import { TEMPORARY_NAME } from '../storage/storage.js'
import { isBackupLabel } from './label.js'
import { layout } from './layout.js'

/** Removes leftover temporary files of the stanza's metadata; the caller must hold the stanza's backup lock. */
export async function stanzaTemporaryClean(repo: Storage, stanza: string): Promise<string[]> {
  const folders = [layout.archiveRoot(stanza), layout.backupRoot(stanza)]
  for (const entry of await repo.list(layout.backupRoot(stanza))) {
    if (isBackupLabel(entry) && (await repo.info(layout.backup(stanza, entry)))?.type === 'path') folders.push(layout.backup(stanza, entry))
  }
  const removed: string[] = []
  for (const folder of folders) {
    for (const entry of await repo.list(folder)) {
      if (!TEMPORARY_NAME.test(entry)) continue
      const path = `${folder}/${entry}`
      // A folder whose name happens to match is not ours to remove.
      if ((await repo.info(path))?.type !== 'file') continue
      await repo.remove(path)
      removed.push(path)
    }
  }
  if (removed.length > 0) {
    log.info(`removed ${removed.length} temporary file(s) left by an interrupted walden: ${removed.map((path) => `'${repo.describe(path)}'`).join(', ')}`)
  }
  return removed
}
