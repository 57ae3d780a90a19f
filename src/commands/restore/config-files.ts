// Configuration files from outside the data folder (see backup/config-files.ts), put back by --config-restore:
// 'original' writes each where it was, a folder takes them all with their layout below their common folder (so
// postgresql.conf's relative include_dir still finds conf.d). A file already there with other content is never
// overwritten silently: it is kept aside under <name>.<UTC timestamp>, with a warning. Planned with the restore's
// other checks, before anything is written; written after the cluster, each atomically.

import { createHash } from 'node:crypto'
import { chmod, lstat, mkdir, readFile, rename } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { fail } from '../../common/errors.js'
import { log } from '../../common/log.js'
import type { Config } from '../../config/config.js'
import type { Manifest, ManifestConfigFile } from '../../repo/manifest.js'
import { PosixStorage } from '../../storage/posix.js'
import { keepAsideName } from './old-data.js'

export interface ConfigRestoreItem {
  file: ManifestConfigFile
  destination: string
  /** Nothing there yet, the same content there already, or other content (kept aside first). */
  state: 'new' | 'same' | 'differs'
}

/** The deepest folder holding every path. */
function commonFolder(paths: readonly string[]): string {
  let common = dirname(paths[0]!).split(sep)
  for (const path of paths.slice(1)) {
    const parts = dirname(path).split(sep)
    let same = 0
    while (same < common.length && same < parts.length && common[same] === parts[same]) same++
    common = common.slice(0, same)
  }
  return common.join(sep) || sep
}

/** Where each configuration file goes and what is there now; empty when --config-restore is not given. */
export async function configRestorePlan(cfg: Config, manifest: Manifest): Promise<ConfigRestoreItem[]> {
  const files = manifest.configFiles ?? []
  const option = cfg.string('config-restore')
  if (option === undefined) {
    if (files.length > 0) {
      log.info(
        `backup ${manifest.label} holds ${files.length} configuration file(s) from outside the data folder (${files.map((file) => `'${file.path}'`).join(', ')}); ` +
          'give --config-restore=original or --config-restore=FOLDER to restore them',
      )
    }
    return []
  }
  if (option !== 'original' && !isAbsolute(option)) {
    fail('OptionInvalidValue', `config-restore '${option}' is neither 'original' nor an absolute folder`, {
      hint: "give --config-restore=original to put the files back where they were, or a folder such as /etc/postgresql/17/restored.",
    })
  }
  if (files.length === 0) {
    log.warn(`--config-restore: backup ${manifest.label} holds no configuration files from outside the data folder`)
    return []
  }
  const root = commonFolder(files.map((file) => file.path))
  const items: ConfigRestoreItem[] = []
  for (const file of files) {
    const content = Buffer.from(file.content, 'base64')
    if (content.length !== file.size || createHash('sha256').update(content).digest('hex') !== file.sha256) {
      fail('Checksum', `configuration file '${file.path}' in the manifest of backup ${manifest.label} does not match its checksum`, { hint: 'the repository is damaged; choose another backup with --set.' })
    }
    const destination = option === 'original' ? file.path : join(resolve(option), relative(root, file.path))
    const found = await lstat(destination).catch(() => undefined)
    let state: ConfigRestoreItem['state'] = 'new'
    if (found !== undefined) {
      if (!found.isFile()) {
        fail('PathNotEmpty', `unable to restore configuration file '${destination}' because something other than a file is there`, { hint: 'move it away, or give --config-restore another folder.' })
      }
      const existing = await readFile(destination)
      state = createHash('sha256').update(existing).digest('hex') === file.sha256 ? 'same' : 'differs'
    }
    items.push({ file, destination, state })
  }
  return items
}

/** Writes the planned files; returns where config_file went, if it was among them (for --start). */
export async function configRestoreApply(items: readonly ConfigRestoreItem[], now: Date): Promise<string | undefined> {
  let configFile: string | undefined
  for (const item of items) {
    if (item.file.kind === 'config_file') configFile = item.destination
    if (item.state === 'same') {
      log.detail(`configuration file '${item.destination}' already holds the backup's content`)
      continue
    }
    if (item.state === 'differs') {
      let aside = keepAsideName(item.destination, now)
      for (let count = 1; await lstat(aside).then(() => true, () => false); count++) aside = `${keepAsideName(item.destination, now)}.${count}`
      await rename(item.destination, aside)
      log.warn(`configuration file '${item.destination}' differs from the backup's: kept as '${aside}'`)
    }
    await mkdir(dirname(item.destination), { recursive: true, mode: 0o750 })
    const folder = new PosixStorage(dirname(item.destination))
    await folder.write(relative(dirname(item.destination), item.destination), Buffer.from(item.file.content, 'base64'), { mode: item.file.mode & 0o777 })
    await chmod(item.destination, item.file.mode & 0o777)
  }
  const written = items.filter((item) => item.state !== 'same').length
  if (items.length > 0) log.info(`configuration files restored: ${written} written, ${items.length - written} already as in the backup`)
  return configFile
}
