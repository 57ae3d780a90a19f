// A repository pgBackRest 2.x wrote, read as a walden repository: its backup.info, archive.info and backup manifests
// mapped to walden's records, so info, restore (delta and every recovery target) and archive-get work on it unchanged.
// Read only: every record carries `foreign: 'pgbackrest'`, and commands that write refuse it (pgbrWriteRefuse).
//
// Why detected and not configured: walden's info files are JSON ({...}) and never encrypted; pgBackRest's start with
// "[backrest]", or with OpenSSL's "Salted__" when encrypted. The first bytes of backup.info or archive.info tell the
// format beyond doubt, so a team points repo1-path at the old repository and nothing else changes; an option would be
// one more setting to get wrong. Detection stays strict past the first bytes: the file must carry backrest-format 5 and
// a SHA-1 that holds (ini.ts), or it is a damaged file, never read as something else.
//
// What pgBackRest records differently, and how it maps:
//   - file checksums are SHA-1: kept as they are in the record's checksum field; readers pick the hash by the
//     checksum's length (io/hash.ts digestAlgorithmOf), and delta restore compares existing files by SHA-1 as
//     pgBackRest does.
//   - backup_label and tablespace_map are stored as files of the backup: read into the manifest's backupLabel and
//     tablespaceMap, which restore writes last, as it does for walden's own backups.
//   - bundles (repo1-bundle): many small files in one repository file, each compressed (and encrypted) on its own;
//     each such file's record names its bytes in the bundle (ManifestFile.bundle, read through stored-file.ts).
//   - block incremental (repo1-block, 2.46+) stores changed blocks of a file across backups: refused with a clear
//     message rather than read wrongly.
//   - bz2 compression (pgBackRest's compress-type=bz2): read through walden's libbz2 binding (io/bz2-stream.ts),
//     which only decompresses; walden never writes bz2.

import { createHash } from 'node:crypto'
import { fail, WaldenError } from '../../common/errors.js'
import type { StoredCompressType } from '../../io/compress.js'
import type { Storage } from '../../storage/storage.js'
import type { ArchivedFile } from '../archive.js'
import { cipherPgbrAdopt, cipherPgbrPassFor, cipherPgbrPassSet } from '../cipher.js'
import { isBackupLabel } from '../label.js'
import type { BackupType } from '../label.js'
import { layout } from '../layout.js'
import type { Manifest, ManifestFile, ManifestLink, ManifestPath, ManifestTarget } from '../manifest.js'
import type { ArchiveInfo, BackupInfo, BackupRecord, PgIdentity } from '../stanza-info.js'
import { storedAddressInBundle, storedFileRead } from '../stored-file.js'
import { pgbrDecrypt } from './cipher.js'
import { pgbrFileKind, pgbrGet, pgbrIniParse, pgbrValue } from './ini.js'
import type { PgbrIni } from './ini.js'

/** The info-file format pgBackRest 2.x writes; any other is refused. */
const PGBR_FORMAT = 5

/**
 * Reads one of pgBackRest's info files, falling back to its .copy as pgBackRest does; undefined when neither exists.
 * `passphrase`: what opens it when encrypted (the repository's for backup.info and archive.info; backup.info's
 * cipher-pass for a manifest); undefined to learn from the first file read whether it is encrypted, and adopt that.
 */
async function iniLoad(storage: Storage, path: string, where: string, passphrase?: string): Promise<PgbrIni | undefined> {
  const problems: string[] = []
  let undecryptable = 0
  let pass = passphrase
  let found = false
  for (const name of [path, `${path}.copy`]) {
    const data = await storage.read(name, { missingOk: true })
    if (data === undefined) {
      problems.push(`'${storage.describe(name)}' is missing`)
      continue
    }
    found = true
    const kind = pgbrFileKind(data)
    if (kind === undefined) {
      problems.push(`'${storage.describe(name)}' is not a pgBackRest info file`)
      continue
    }
    if (kind === 'encrypted' && pass === undefined) pass = cipherPgbrAdopt(true, where)
    else if (kind === 'ini' && passphrase === undefined && pass === undefined) cipherPgbrAdopt(false, where)
    let text: string
    try {
      text = (kind === 'encrypted' ? pgbrDecrypt(pass!, data, `'${storage.describe(name)}'`) : data).toString('utf8')
    } catch (error) {
      if (!(error instanceof WaldenError)) throw error
      problems.push(error.message)
      undecryptable++
      continue
    }
    const parsed = pgbrIniParse(text)
    if ('problem' in parsed) {
      problems.push(`'${storage.describe(name)}' ${parsed.problem}`)
      continue
    }
    const format = pgbrGet(parsed.ini, 'backrest', 'backrest-format')
    if (format !== PGBR_FORMAT) {
      fail('RepoInvalid', `'${storage.describe(name)}' has pgBackRest format ${String(format)}; walden reads format ${PGBR_FORMAT} (pgBackRest 2.x)`, {
        hint: 'upgrade the repository with pgBackRest 2.x first, or restore from it with pgBackRest.',
      })
    }
    return parsed.ini
  }
  if (!found) return undefined
  // Neither copy decrypts: far more likely the passphrase than two damaged files.
  if (undecryptable > 0 && undecryptable === problems.filter((problem) => !problem.endsWith('is missing')).length) {
    fail('Crypto', `unable to decrypt '${storage.describe(path)}' or its copy: wrong repo1-cipher-pass, or both are damaged`, {
      hint: "repo1-cipher-pass must be pgBackRest's repo1-cipher-pass for this repository (config file, mode 0600, or WALDEN_REPO1_CIPHER_PASS).",
    })
  }
  fail('Checksum', `unable to load pgBackRest file '${storage.describe(path)}' or its copy: ${problems.join('; ')}`, {
    hint: 'the repository is damaged; restore these files from a copy of the repository, or check repo1-cipher-pass.',
  })
}

function record(ini: PgbrIni, section: string, key: string): Record<string, unknown> {
  const value = pgbrGet(ini, section, key)
  if (typeof value !== 'object' || value === null) fail('Format', `pgBackRest info: [${section}] ${key} is not an object`)
  return value as Record<string, unknown>
}

function text(value: unknown, what: string): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  fail('Format', `pgBackRest info: ${what} is ${JSON.stringify(value) ?? 'missing'}`)
}

function num(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  fail('Format', `pgBackRest info: ${what} is ${JSON.stringify(value) ?? 'missing'}, expected a number`)
}

/** pgBackRest writes the major as "15" (and "9.6" for older ones, which walden does not restore). */
function majorOf(value: unknown): number {
  return Number.parseFloat(text(value, 'db-version'))
}

function identity(id: number, systemId: unknown, version: unknown): PgIdentity {
  return { id, systemId: text(systemId, 'db-system-id'), version: majorOf(version) }
}

function currentDb(ini: PgbrIni): PgIdentity {
  return identity(num(pgbrGet(ini, 'db', 'db-id'), '[db] db-id'), pgbrGet(ini, 'db', 'db-system-id'), pgbrGet(ini, 'db', 'db-version'))
}

export async function pgbrArchiveInfoLoad(storage: Storage, stanza: string): Promise<ArchiveInfo | undefined> {
  const ini = await iniLoad(storage, layout.archiveInfo(stanza), `stanza '${stanza}'`)
  if (!ini) return undefined
  cipherPgbrPassSet('archive', pgbrGet(ini, 'cipher', 'cipher-pass') as string | undefined)
  // archive.info's history records the system identifier under "db-id" (pgBackRest's own quirk).
  const history = [...(ini.get('db:history') ?? new Map<string, string>())].map(([id, value]) => {
    const entry = pgbrValue(value) as Record<string, unknown>
    return identity(Number(id), entry['db-id'], entry['db-version'])
  })
  return { stanza, db: currentDb(ini), history, foreign: 'pgbackrest' }
}

export async function pgbrBackupInfoLoad(storage: Storage, stanza: string): Promise<BackupInfo | undefined> {
  const ini = await iniLoad(storage, layout.backupInfo(stanza), `stanza '${stanza}'`)
  if (!ini) return undefined
  const history = [...(ini.get('db:history') ?? new Map<string, string>())].map(([id, value]) => {
    const entry = pgbrValue(value) as Record<string, unknown>
    return identity(Number(id), entry['db-system-id'], entry['db-version'])
  })
  const backups: BackupRecord[] = []
  for (const label of (ini.get('backup:current') ?? new Map<string, string>()).keys()) {
    // A label becomes part of the paths read; pgBackRest's have walden's form.
    if (!isBackupLabel(label)) fail('Format', `pgBackRest backup.info lists a backup named '${label}', which is not a backup label`)
    const entry = record(ini, 'backup:current', label)
    const what = (key: string): string => `backup ${label} ${key}`
    const walStart = text(entry['backup-archive-start'], what('backup-archive-start'))
    backups.push({
      label,
      type: text(entry['backup-type'], what('backup-type')) as BackupType,
      prior: typeof entry['backup-prior'] === 'string' ? entry['backup-prior'] : null,
      reference: Array.isArray(entry['backup-reference']) ? (entry['backup-reference'] as string[]) : [],
      timestampStart: num(entry['backup-timestamp-start'], what('backup-timestamp-start')),
      timestampStop: num(entry['backup-timestamp-stop'], what('backup-timestamp-stop')),
      lsnStart: text(entry['backup-lsn-start'], what('backup-lsn-start')),
      lsnStop: text(entry['backup-lsn-stop'], what('backup-lsn-stop')),
      walStart,
      walStop: text(entry['backup-archive-stop'], what('backup-archive-stop')),
      timeline: Number.parseInt(walStart.slice(0, 8), 16),
      size: num(entry['backup-info-size'], what('backup-info-size')),
      delta: num(entry['backup-info-size-delta'], what('backup-info-size-delta')),
      repoSize: num(entry['backup-info-repo-size'], what('backup-info-repo-size')),
      repoDelta: num(entry['backup-info-repo-size-delta'], what('backup-info-repo-size-delta')),
      dbId: num(entry['db-id'], what('db-id')),
      // backup.info does not say; the manifest does (option-compress-type), and restore reads it from there.
      compressType: entry['option-compress'] === false ? 'none' : await compressTypeOf(storage, stanza, label),
      pageErrors: 0,
    })
  }
  backups.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0))
  const encrypted = pgbrGet(ini, 'cipher', 'cipher-pass') !== undefined
  return { stanza, db: currentDb(ini), history, backups, foreign: 'pgbackrest', ...(encrypted ? { foreignCipher: 'aes-256-cbc' as const } : {}) }
}

/** A compressed backup's type, from the extension of its PG_VERSION (every backup has one, stored or referenced). */
async function compressTypeOf(storage: Storage, stanza: string, label: string): Promise<StoredCompressType> {
  const names = await storage.list(`${layout.backup(stanza, label)}/pg_data`).catch(() => [] as string[])
  const stored = names.find((name) => /^PG_VERSION\.[a-z0-9]+$/.test(name))
  const extension = stored?.slice('PG_VERSION.'.length)
  return extension === 'gz' || extension === 'lz4' || extension === 'zst' || extension === 'bz2' ? extension : 'none'
}

const SHA1_EMPTY = 'da39a3ee5e6b4b0d3255bfef95601890afd80709'

const COMPRESS_TYPES: ReadonlySet<string> = new Set(['none', 'gz', 'lz4', 'zst', 'bz2'])

function modeOf(value: unknown, fallback: number): number {
  return typeof value === 'string' && /^[0-7]{3,4}$/.test(value) ? Number.parseInt(value, 8) : fallback
}

export async function pgbrManifestLoad(storage: Storage, stanza: string, label: string): Promise<Manifest> {
  // The manifest is opened by backup.info's sub-passphrase; reading backup.info again also checks the cipher.
  const backupIni = await iniLoad(storage, layout.backupInfo(stanza), `stanza '${stanza}'`)
  const manifestPass = backupIni === undefined ? undefined : (pgbrGet(backupIni, 'cipher', 'cipher-pass') as string | undefined)
  const ini = await iniLoad(storage, layout.backupManifest(stanza, label), `backup ${label}`, manifestPass)
  if (!ini) {
    fail('FileMissing', `manifest of backup '${label}' is missing from ${storage.describe(layout.backup(stanza, label))}`, {
      hint: 'the repository is damaged; choose another backup with --set.',
    })
  }
  cipherPgbrPassSet('backup', pgbrGet(ini, 'cipher', 'cipher-pass') as string | undefined)
  const get = (section: string, key: string): unknown => pgbrGet(ini, section, key)

  const compressType = text(get('backup:option', 'option-compress-type') ?? 'none', 'option-compress-type')
  if (!COMPRESS_TYPES.has(compressType)) {
    fail('FeatureNotSupported', `backup ${label} is compressed with ${compressType}, which walden cannot read`, {
      hint: 'restore this backup with pgBackRest, or use a backup compressed with gz, lz4, zst, bz2 or none.',
    })
  }
  if (get('backup:option', 'option-block-incr') === true) {
    fail('FeatureNotSupported', `backup ${label} was made with block incremental (repo1-block), which walden cannot read`, {
      hint: 'restore this backup with pgBackRest, or take a full backup without repo1-block first.',
    })
  }
  const fileDefault = ini.get('target:file:default')
  const pathDefault = ini.get('target:path:default')
  const defaultFileMode = modeOf(fileDefault?.get('mode') === undefined ? undefined : pgbrValue(fileDefault.get('mode')!), 0o600)
  const defaultPathMode = modeOf(pathDefault?.get('mode') === undefined ? undefined : pgbrValue(pathDefault.get('mode')!), 0o700)

  const targets: ManifestTarget[] = []
  const links: ManifestLink[] = []
  for (const [name, value] of ini.get('backup:target') ?? new Map<string, string>()) {
    const target = pgbrValue(value) as Record<string, unknown>
    const path = text(target['path'], `target ${name} path`)
    if (name === 'pg_data') targets.push({ name, path })
    else if (name.startsWith('pg_tblspc/')) {
      targets.push({ name, path, tablespaceOid: Number(target['tablespace-id']), tablespaceName: text(target['tablespace-name'], `target ${name} tablespace-name`) })
    } else {
      // Another link in the data folder (pg_wal elsewhere, a linked file): walden restores it as a plain folder or file.
      links.push({ name, destination: typeof target['file'] === 'string' ? `${path}/${target['file']}` : path })
    }
  }
  // Names become paths written under the restored folder: one that could climb out of it is refused, not skipped.
  const inTarget = (name: string): boolean => {
    if (name.split('/').some((part) => part === '' || part === '.' || part === '..')) {
      fail('Format', `backup ${label}'s manifest names '${name}', which is not a path inside the data folder`, {
        hint: 'the manifest was altered; restore this backup only from a trusted copy of the repository.',
      })
    }
    return targets.some((target) => name === target.name || name.startsWith(`${target.name}/`))
  }
  const paths: ManifestPath[] = [...(ini.get('target:path') ?? new Map<string, string>())]
    .filter(([name]) => inTarget(name))
    .map(([name, value]) => ({ name, mode: modeOf((pgbrValue(value) as Record<string, unknown>)['mode'], defaultPathMode) }))

  const files: ManifestFile[] = []
  const special = new Map<string, ManifestFile>()
  for (const [name, value] of ini.get('target:file') ?? new Map<string, string>()) {
    const entry = pgbrValue(value) as Record<string, unknown>
    if (entry['bi'] !== undefined || entry['bim'] !== undefined) {
      fail('FeatureNotSupported', `backup ${label} was made with block incremental (repo1-block), which walden cannot read`, {
        hint: 'restore this backup with pgBackRest, or take a full backup without repo1-block first.',
      })
    }
    const size = num(entry['size'], `file ${name} size`)
    const file: ManifestFile = {
      name,
      size,
      mtimeMs: num(entry['timestamp'], `file ${name} timestamp`) * 1000,
      mode: modeOf(entry['mode'], defaultFileMode),
      // An empty file has no checksum recorded: it is the SHA-1 of nothing.
      sha256: size === 0 && entry['checksum'] === undefined ? SHA1_EMPTY : text(entry['checksum'], `file ${name} checksum`),
      repoSize: typeof entry['repo-size'] === 'number' ? entry['repo-size'] : size,
      compressType: compressType as StoredCompressType,
      ...(typeof entry['reference'] === 'string' ? { reference: entry['reference'] } : {}),
      // In a bundle: bundle/<bni> from byte bno (absent: 0), repo-size bytes.
      ...(entry['bni'] !== undefined ? { bundle: { id: num(entry['bni'], `file ${name} bni`), offset: typeof entry['bno'] === 'number' ? entry['bno'] : 0 } } : {}),
    }
    if (name === 'pg_data/backup_label' || name === 'pg_data/tablespace_map') special.set(name, file)
    else if (inTarget(name)) files.push(file)
  }

  const wal = (key: string): string => text(get('backup', key), key)
  const manifest: Manifest = {
    label,
    type: text(get('backup', 'backup-type'), 'backup-type') as BackupType,
    prior: typeof get('backup', 'backup-prior') === 'string' ? (get('backup', 'backup-prior') as string) : null,
    pg: {
      version: majorOf(get('backup:db', 'db-version')),
      systemId: text(get('backup:db', 'db-system-id'), 'db-system-id'),
      dbId: num(get('backup:db', 'db-id'), 'db-id'),
      walSegmentSize: 16 * 1024 * 1024,
      blockSize: 8192,
      dataChecksums: get('backup:option', 'option-checksum-page') === true,
    },
    start: {
      lsn: wal('backup-lsn-start'),
      wal: wal('backup-archive-start'),
      timeline: Number.parseInt(wal('backup-archive-start').slice(0, 8), 16),
      time: num(get('backup', 'backup-timestamp-start'), 'backup-timestamp-start') * 1000,
    },
    stop: { lsn: wal('backup-lsn-stop'), wal: wal('backup-archive-stop'), time: num(get('backup', 'backup-timestamp-stop'), 'backup-timestamp-stop') * 1000 },
    compressType: compressType as StoredCompressType,
    compressLevel: typeof get('backup:option', 'option-compress-level') === 'number' ? (get('backup:option', 'option-compress-level') as number) : 0,
    targets,
    paths,
    links,
    files,
    backupLabel: await specialRead(storage, stanza, label, special.get('pg_data/backup_label')),
    tablespaceMap: await specialRead(storage, stanza, label, special.get('pg_data/tablespace_map')),
    foreign: 'pgbackrest',
  }
  if (manifest.backupLabel === '') {
    fail('FileMissing', `backup ${label} has no backup_label`, { hint: 'the repository is damaged; choose another backup with --set.' })
  }
  return manifest
}

/** backup_label or tablespace_map, which pgBackRest stores as files of the backup; '' when the backup has none. */
async function specialRead(storage: Storage, stanza: string, label: string, file: ManifestFile | undefined): Promise<string> {
  if (!file) return ''
  if (file.size === 0) return ''
  // As manifestFileRepoPath has it (not imported: manifest.ts imports this module).
  const folder = layout.backup(stanza, file.reference ?? label)
  const extension = file.compressType === 'none' ? '' : `.${file.compressType}`
  const path = file.bundle ? storedAddressInBundle(`${folder}/bundle/${file.bundle.id}`, file.bundle.offset, file.repoSize, extension) : `${folder}/${file.name}${extension}`
  return (await storedFileRead(storage, path, file.sha256, `repository file '${storage.describe(path)}'`)).toString('utf8')
}

/**
 * A timeline history file in a repository pgBackRest wrote: stored under its own name in the archive id's folder,
 * uncompressed (encrypted with archive.info's sub-passphrase where the repository is), with no checksum anywhere.
 * pgBackRest serves it as it is; so does walden: the checksum given is the SHA-1 of the content read now, which the
 * reader then holds the file to (it cannot change between the two reads unnoticed).
 */
export async function pgbrHistoryFind(storage: Storage, stanza: string, archiveId: string, walName: string): Promise<ArchivedFile | undefined> {
  const path = `${layout.archiveId(stanza, archiveId)}/${walName}`
  const data = await storage.read(path, { missingOk: true })
  if (data === undefined) return undefined
  const pass = cipherPgbrPassFor(path)
  const content = pass === undefined ? data : pgbrDecrypt(pass, data, `'${storage.describe(path)}'`)
  return { path, sha256: createHash('sha1').update(content).digest('hex'), extension: '', archiveId }
}

/**
 * The refusal of every command that would write into a repository pgBackRest wrote: walden reads it, and moves forward
 * in a repository of its own.
 */
export function pgbrWriteRefuse(info: { foreign?: 'pgbackrest' } | undefined, command: string, storage: Storage): void {
  if (info?.foreign === 'pgbackrest') pgbrWriteFail(command, storage)
}

/**
 * The same refusal, from the stanza's info files' first bytes alone: for a command that would touch the stanza
 * (clean up, delete) before it reads them.
 */
export async function pgbrRepoWriteRefuse(storage: Storage, stanza: string, command: string): Promise<void> {
  for (const path of [layout.backupInfo(stanza), layout.archiveInfo(stanza)]) {
    for (const name of [path, `${path}.copy`]) {
      const data = await storage.read(name, { missingOk: true })
      if (data !== undefined && pgbrFileKind(data) !== undefined) pgbrWriteFail(command, storage)
    }
  }
}

function pgbrWriteFail(command: string, storage: Storage): never {
  fail('RepoInvalid', `${command} refused: ${storage.description} is a pgBackRest repository, which walden only reads (info, restore, archive-get)`, {
    hint: 'give walden a repository of its own (another repo1-path, in a config file of its own), run stanza-create and a full backup there; see docs/from-pgbackrest.md.',
  })
}
