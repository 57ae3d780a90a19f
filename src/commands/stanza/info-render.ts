// What `walden info` prints, built from data already read from the repositories: no I/O here, so the exact text
// and JSON are unit-tested. The JSON is pgBackRest's `info --output=json` shape (keys sorted, compact), because
// check_pgbackrest, pgbackrest_exporter and home-grown scripts already parse it: one entry per stanza, holding every
// repository's part of it, each tagged with its repository ("repo-key"), and a per-repository status in `repo`.

import { formatBytes } from '../../common/progress.js'
import { archiveIdFormat } from '../../repo/layout.js'
import type { BackupType } from '../../repo/label.js'
import type { Manifest } from '../../repo/manifest.js'
import type { ArchiveInfo, BackupInfo, BackupRecord, PgIdentity } from '../../repo/stanza-info.js'
import { VERSION } from '../../version.js'

/**
 * pgBackRest's stanza status codes. 4 and 5 are a stanza's only, never one repository's: its repositories' statuses
 * differ (4), or their info files name different clusters as current (5).
 */
export const STATUS_MESSAGES = {
  0: 'ok',
  1: 'missing stanza path',
  2: 'no valid backups',
  3: 'missing stanza data',
  4: 'different across repos',
  5: 'database mismatch across repos',
  6: 'requested backup not found',
  99: 'other',
} as const

export type StatusCode = keyof typeof STATUS_MESSAGES

/** First and last WAL segment stored under one archive id; null when none is. */
export interface WalRange {
  min: string | null
  max: string | null
}

/** One archive id's WAL as reported: `dbId` is the backup.info history id it belongs to. */
export interface ArchiveReport extends WalRange {
  id: string
  dbId: number
}

/**
 * What info --set adds about the backup, from its manifest, as pgBackRest shows it: the cluster's databases (without
 * the system's own template0 and template1), the links in its data folder, and its tablespaces.
 */
export interface BackupDetail {
  /** null: the backup was taken by a walden that did not record them yet. */
  databases: Array<{ name: string; oid: number }> | null
  links: Array<{ name: string; destination: string }>
  tablespaces: Array<{ name: string; oid: number; destination: string }>
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)

export function backupDetailOf(manifest: Manifest): BackupDetail {
  return {
    databases:
      manifest.databases
        ?.filter((database) => database.oid > database.lastSystemOid)
        .map(({ name, oid }) => ({ name, oid }))
        .sort(byName) ?? null,
    // Named as in the data folder (pg_wal, not pg_data/pg_wal), as pgBackRest names them.
    links: manifest.links.map((link) => ({ name: link.name.replace(/^pg_data\//, ''), destination: link.destination })).sort(byName),
    tablespaces: manifest.targets
      .filter((target) => target.tablespaceOid !== undefined)
      .sort(byName)
      .map((target) => ({ name: target.tablespaceName ?? String(target.tablespaceOid), oid: target.tablespaceOid!, destination: target.path })),
  }
}

/** One stanza in one repository. */
export interface StanzaReport {
  name: string
  /** The repository's number (repoN): pgBackRest's "repo-key". */
  repoKey: number
  code: StatusCode
  /** For code 99: what went wrong, "[KindError] message" with any HINT lines. */
  error?: string
  /** For code 99: the exit code of that error (info's own exit code, see info.ts); not part of the output. */
  errorCode?: number
  /** A live walden process holds the stanza's backup lock (backup, expire, stanza-create running). */
  backupLockHeld: boolean
  /** The current cluster and its history (oldest first) from backup.info; absent when it was not read. */
  db?: { current: PgIdentity; history: PgIdentity[] }
  archive: ArchiveReport[]
  /** Backups to show, oldest first (only the --set one when given). */
  backups: BackupRecord[]
  /** With --set: the detail of that backup, by label. */
  details?: ReadonlyMap<string, BackupDetail>
  /** The stanza's encryption, from backup.info; 'none' when not encrypted or not read. */
  cipher?: string
}

export interface StanzaReportInput {
  name: string
  /** The repository it was read from; 1 when not given. */
  repoKey?: number
  /** The stanza has a folder under backup/ or archive/. */
  exists: boolean
  backupInfo?: BackupInfo
  archiveInfo?: ArchiveInfo
  /** WAL range per archive id; ids not in the map have no WAL. */
  walRanges?: ReadonlyMap<string, WalRange>
  backupLockHeld?: boolean
  /** --set: the one backup to show. */
  set?: string
  /** --set: its detail, when this repository holds it. */
  setDetail?: BackupDetail
  /** --type: show only backups of this type. */
  type?: BackupType
  /** A failure while reading the stanza (code 99). */
  error?: string
  /** Its exit code. */
  errorCode?: number
}

/** backup.info history, oldest first; never empty, so a damaged history still shows the current cluster. */
export function historyOf(info: { db: PgIdentity; history: PgIdentity[] }): PgIdentity[] {
  const history = info.history.length > 0 ? [...info.history] : [info.db]
  return history.sort((a, b) => a.id - b.id)
}

/**
 * The archive id holding the WAL of a backup.info cluster. The two files' history ids normally agree, but match on
 * system identifier and version as pgBackRest does, so a history that diverged (a stanza upgraded by hand) still
 * finds its WAL. Falls back to the id the backup.info entry would have.
 */
export function archiveIdFor(identity: PgIdentity, archiveInfo: ArchiveInfo | undefined): string {
  const candidates = archiveInfo ? historyOf(archiveInfo) : []
  const same = (entry: PgIdentity): boolean => entry.systemId === identity.systemId && entry.version === identity.version
  const match = candidates.find((entry) => entry.id === identity.id && same(entry)) ?? candidates.reverse().find(same)
  return archiveIdFormat(identity.version, (match ?? identity).id)
}

/** Archive ids whose WAL range the report needs: one per backup.info history entry. */
export function archiveIdsNeeded(backupInfo: BackupInfo, archiveInfo: ArchiveInfo | undefined): string[] {
  return [...new Set(historyOf(backupInfo).map((identity) => archiveIdFor(identity, archiveInfo)))]
}

/** Decides the status and what of a stanza is shown, the way pgBackRest's info does. */
export function stanzaReport(input: StanzaReportInput): StanzaReport {
  const base = { name: input.name, repoKey: input.repoKey ?? 1, backupLockHeld: input.backupLockHeld ?? false, archive: [], backups: [] }
  if (input.error !== undefined) {
    return { ...base, code: 99, error: input.error, ...(input.errorCode !== undefined ? { errorCode: input.errorCode } : {}) }
  }
  if (!input.exists) return { ...base, code: 1 }
  const backupInfo = input.backupInfo
  if (!backupInfo) return { ...base, code: 3 }

  const selected = input.set === undefined ? backupInfo.backups : backupInfo.backups.filter((backup) => backup.label === input.set)
  // pgBackRest drops everything else when the requested backup is missing, so nothing suggests it was found.
  if (input.set !== undefined && selected.length === 0) return { ...base, code: 6 }
  // --type only narrows what is shown; the status still counts every backup.
  const backups = input.type === undefined ? selected : selected.filter((backup) => backup.type === input.type)

  const history = historyOf(backupInfo)
  const archive: ArchiveReport[] = []
  for (const identity of history) {
    const id = archiveIdFor(identity, input.archiveInfo)
    const range = input.walRanges?.get(id) ?? { min: null, max: null }
    // An older cluster is listed only while some of its WAL is left; the current one always is.
    if (identity.id === backupInfo.db.id || range.min !== null) archive.push({ id, dbId: identity.id, ...range })
  }
  return {
    ...base,
    code: backupInfo.backups.length === 0 ? 2 : 0,
    db: { current: backupInfo.db, history },
    cipher: backupInfo.cipher?.type ?? backupInfo.foreignCipher ?? 'none',
    archive,
    backups: [...backups].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0)),
    ...(input.set !== undefined && input.setDetail !== undefined ? { details: new Map([[input.set, input.setDetail]]) } : {}),
  }
}

/** One stanza across the repositories it was looked for in: what info prints as one entry. */
export interface StanzaView {
  name: string
  /** The stanza's status: its repositories' common one, 4 when they differ, 5 when they name different clusters. */
  code: StatusCode
  backupLockHeld: boolean
  /** One report per repository, in repository order. */
  repos: StanzaReport[]
}

/** The stanza's status from its repositories' reports (one or more, in repository order), as pgBackRest decides it. */
export function stanzaView(repos: readonly StanzaReport[]): StanzaView {
  const first = repos[0]
  if (first === undefined) throw new Error('stanzaView needs at least one repository report')
  const currents = new Set(repos.flatMap((repo) => (repo.db ? [`${repo.db.current.systemId}/${repo.db.current.version}`] : [])))
  const code: StatusCode = currents.size > 1 ? 5 : repos.every((repo) => repo.code === first.code) ? first.code : 4
  return { name: first.name, code, backupLockHeld: repos.some((repo) => repo.backupLockHeld), repos: [...repos] }
}

/** 'mixed' when the repositories' ciphers differ, as pgBackRest reports it. */
function cipherOf(view: StanzaView): string {
  const ciphers = new Set(view.repos.map((repo) => repo.cipher ?? 'none'))
  return ciphers.size === 1 ? [...ciphers][0]! : 'mixed'
}

interface ShownBackup {
  backup: BackupRecord
  repoKey: number
  detail?: BackupDetail
}

/** Backups of every repository, with their repository, in time order (repository order for the same start). */
function backupsOf(view: StanzaView): ShownBackup[] {
  const all = view.repos.flatMap((repo) =>
    repo.backups.map((backup): ShownBackup => {
      const detail = repo.details?.get(backup.label)
      return { backup, repoKey: repo.repoKey, ...(detail !== undefined ? { detail } : {}) }
    }),
  )
  // One repository: label order as read, which is time order.
  if (view.repos.length === 1) return all
  return all.sort(
    (a, b) =>
      a.backup.timestampStart - b.backup.timestampStart ||
      a.repoKey - b.repoKey ||
      (a.backup.label < b.backup.label ? -1 : a.backup.label > b.backup.label ? 1 : 0),
  )
}

// ---------------------------------------------------------------------------------------------------------------------
// JSON

/**
 * A JSON integer written from its decimal digits. System identifiers are 64-bit and exceed 2^53, so they cannot pass
 * through a JS number; pgBackRest prints them as bare numbers and its readers expect exactly that.
 */
class JsonDigits {
  readonly digits: string
  constructor(digits: string) {
    this.digits = digits
  }
}

type JsonValue = null | boolean | number | string | JsonDigits | JsonValue[] | { [key: string]: JsonValue }

/** Compact JSON with object keys sorted, as pgBackRest writes it, so its output and walden's compare equal. */
function jsonWrite(value: JsonValue): string {
  if (value === null) return 'null'
  if (value instanceof JsonDigits) return value.digits
  if (Array.isArray(value)) return `[${value.map(jsonWrite).join(',')}]`
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${keys.map((key) => `${JSON.stringify(key)}:${jsonWrite(value[key]!)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

function systemIdJson(systemId: string): JsonValue {
  // Only digits may be written bare; anything else (a damaged file) stays a string rather than breaking the JSON.
  return /^\d+$/.test(systemId) ? new JsonDigits(systemId.replace(/^0+(?=\d)/, '')) : systemId
}

/** pgBackRest's keys for a --set backup: database-ref always, link and tablespace null when there are none. */
function detailJson(detail: BackupDetail): Record<string, JsonValue> {
  return {
    'database-ref': detail.databases,
    link: detail.links.length > 0 ? detail.links : null,
    tablespace: detail.tablespaces.length > 0 ? detail.tablespaces : null,
  }
}

function backupJson({ backup, repoKey, detail }: ShownBackup): JsonValue {
  return {
    ...(detail !== undefined ? detailJson(detail) : {}),
    archive: { start: backup.walStart || null, stop: backup.walStop || null },
    backrest: { format: 5, version: VERSION },
    database: { id: backup.dbId, 'repo-key': repoKey },
    error: (backup.pageErrors ?? 0) > 0,
    info: {
      delta: backup.delta,
      repository: { delta: backup.repoDelta, size: backup.repoSize },
      size: backup.size,
    },
    label: backup.label,
    lsn: { start: backup.lsnStart || null, stop: backup.lsnStop || null },
    prior: backup.prior ?? null,
    reference: backup.reference.length > 0 ? [...backup.reference] : null,
    timestamp: { start: backup.timestampStart, stop: backup.timestampStop },
    type: backup.type,
    ...(backup.source ? { source: { 'backup-standby': backup.source.backupStandby, 'backup-on': backup.source.backupOn, 'files-from': backup.source.filesFrom } } : {}),
  }
}

function stanzaJson(view: StanzaView): JsonValue {
  return {
    archive: view.repos.flatMap((repo) =>
      repo.archive.map((entry) => ({
        database: { id: entry.dbId, 'repo-key': repo.repoKey },
        id: entry.id,
        max: entry.max,
        min: entry.min,
      })),
    ),
    backup: backupsOf(view).map(backupJson),
    cipher: cipherOf(view),
    db: view.repos.flatMap((repo) =>
      (repo.db?.history ?? []).map((identity) => ({
        id: identity.id,
        'repo-key': repo.repoKey,
        'system-id': systemIdJson(identity.systemId),
        version: String(identity.version),
      })),
    ),
    name: view.name,
    repo: view.repos.map((repo) => ({
      cipher: repo.cipher ?? 'none',
      key: repo.repoKey,
      // The repository's status carries the error itself; the stanza's says only 'other'.
      status: { code: repo.code, message: repo.code === 99 ? (repo.error ?? STATUS_MESSAGES[99]) : STATUS_MESSAGES[repo.code] },
    })),
    status: {
      code: view.code,
      lock: { backup: { held: view.backupLockHeld } },
      message: STATUS_MESSAGES[view.code],
    },
  }
}

/** The JSON document, without a trailing newline. */
export function infoRenderJson(views: readonly StanzaView[]): string {
  return jsonWrite(views.map(stanzaJson))
}

// ---------------------------------------------------------------------------------------------------------------------
// Text

/** Epoch seconds as local "YYYY-MM-DD HH:MM:SS". */
export function formatLocalTime(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000)
  const pad = (value: number): string => String(value).padStart(2, '0')
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  )
}

/** "ok", "error (no valid backups)", "mixed": a status and whether a backup or expire runs. */
function statusText(code: StatusCode, backupLockHeld: boolean): string {
  const running = backupLockHeld ? 'backup/expire running' : undefined
  if (code === 0) return running ? `ok (${running})` : 'ok'
  if (code === 4) return running ? `mixed (${running})` : 'mixed'
  return `error (${[STATUS_MESSAGES[code], running].filter(Boolean).join(', ')})`
}

function backupText({ backup, repoKey, detail }: ShownBackup): string[] {
  const lines = [
    '',
    `        ${backup.type} backup: ${backup.label}`,
    `            timestamp start/stop: ${formatLocalTime(backup.timestampStart)} / ${formatLocalTime(backup.timestampStop)}`,
    `            wal start/stop: ${backup.walStart && backup.walStop ? `${backup.walStart} / ${backup.walStop}` : 'n/a'}`,
  ]
  if (backup.lsnStart && backup.lsnStop) lines.push(`            lsn start/stop: ${backup.lsnStart} / ${backup.lsnStop}`)
  lines.push(
    `            database size: ${formatBytes(backup.size)}, database backup size: ${formatBytes(backup.delta)}`,
    `            repo${repoKey}: backup set size: ${formatBytes(backup.repoSize)}, backup size: ${formatBytes(backup.repoDelta)}`,
  )
  if (backup.reference.length > 0) lines.push(`            backup reference list: ${backup.reference.join(', ')}`)
  if (detail !== undefined) lines.push(...detailText(detail))
  if ((backup.pageErrors ?? 0) > 0) lines.push(`            page checksum errors: ${backup.pageErrors} (see the manifest)`)
  if (backup.source) {
    const { backupStandby, backupOn, filesFrom } = backup.source
    lines.push(`            backup-standby: ${backupStandby}, run on ${backupOn}, relation files from ${filesFrom}`)
  }
  return lines
}

/** The --set lines, worded as pgBackRest's. */
function detailText(detail: BackupDetail): string[] {
  const databases = detail.databases ?? []
  const lines = [`            database list: ${databases.length > 0 ? databases.map((database) => `${database.name} (${database.oid})`).join(', ') : 'none'}`]
  if (detail.links.length > 0) lines.push('            symlinks:', ...detail.links.map((link) => `                ${link.name} => ${link.destination}`))
  if (detail.tablespaces.length > 0) {
    lines.push('            tablespaces:', ...detail.tablespaces.map((space) => `                ${space.name} (${space.oid}) => ${space.destination}`))
  }
  return lines
}

interface DbGroup {
  systemId: string
  version: number
  current: boolean
  /** History ids of the cluster, per repository: "repoKey/id". */
  ids: Set<string>
  min: string | null
  max: string | null
  backups: ShownBackup[]
}

/**
 * Clusters of the stanza for the text output. History entries with the same system identifier and version are one
 * cluster to a reader (a stanza re-created for the same cluster, or the same cluster in several repositories), so
 * their WAL and backups are shown together: the WAL range from the oldest segment in any repository to the newest.
 */
function dbGroups(view: StanzaView): DbGroup[] {
  const groups: DbGroup[] = []
  for (const repo of view.repos) {
    if (!repo.db) continue
    const { current } = repo.db
    for (const identity of repo.db.history) {
      let group = groups.find((item) => item.systemId === identity.systemId && item.version === identity.version)
      if (!group) {
        group = { systemId: identity.systemId, version: identity.version, current: false, ids: new Set(), min: null, max: null, backups: [] }
        groups.push(group)
      }
      if (identity.systemId === current.systemId && identity.version === current.version) group.current = true
      group.ids.add(`${repo.repoKey}/${identity.id}`)
    }
  }
  for (const repo of view.repos) {
    for (const entry of repo.archive) {
      const group = groups.find((item) => item.ids.has(`${repo.repoKey}/${entry.dbId}`))
      if (!group || entry.min === null) continue
      if (group.min === null || entry.min < group.min) group.min = entry.min
      if (entry.max !== null && (group.max === null || entry.max > group.max)) group.max = entry.max
    }
  }
  for (const item of backupsOf(view)) groups.find((group) => group.ids.has(`${item.repoKey}/${item.backup.dbId}`))?.backups.push(item)
  return groups
}

function dbGroupText(title: string, group: DbGroup): string[] {
  return [
    '',
    `    db (${title})`,
    `        wal archive min/max (${group.version}): ${group.min !== null ? `${group.min}/${group.max ?? group.min}` : 'none present'}`,
    ...group.backups.flatMap(backupText),
  ]
}

/** A repository's error, indented under the line it belongs to. */
function errorLines(report: StanzaReport, indent: string): string[] {
  return report.code === 99 && report.error !== undefined ? report.error.split('\n').map((line) => `${indent}${line}`) : []
}

function stanzaText(view: StanzaView, set: string | undefined): string[] {
  const several = view.repos.length > 1
  const lines = [`stanza: ${view.name}`, `    status: ${statusText(view.code, view.backupLockHeld)}`]
  // Several repositories not all ok: each one's status, as pgBackRest details a 'mixed' stanza.
  if (several && view.code !== 0) {
    for (const repo of view.repos) lines.push(`        repo${repo.repoKey}: ${statusText(repo.code, false)}`, ...errorLines(repo, '                '))
  } else {
    lines.push(...errorLines(view.repos[0]!, '            '))
  }
  if (view.repos.every((repo) => repo.code === 1)) return lines
  const cipher = cipherOf(view)
  lines.push(`    cipher: ${cipher}`)
  if (cipher === 'mixed') for (const repo of view.repos) lines.push(`        repo${repo.repoKey}: ${repo.cipher ?? 'none'}`)

  const groups = dbGroups(view)
  // With --set only the cluster that holds the backup is of interest; otherwise older clusters are shown while they
  // still have WAL or backups, and the current one comes last, nearest the prompt.
  const shown = set !== undefined ? groups.filter((group) => group.backups.length > 0) : groups
  for (const group of shown) {
    if (!group.current && (group.min !== null || group.backups.length > 0)) lines.push(...dbGroupText('prior', group))
  }
  // More than one current cluster only when the repositories disagree (status 5): each is shown.
  for (const group of shown) if (group.current) lines.push(...dbGroupText('current', group))
  return lines
}

/** The text for people, ending in a newline. */
export function infoRenderText(views: readonly StanzaView[], options: { set?: string; several?: boolean } = {}): string {
  if (views.length === 0) return `No stanzas exist in the ${options.several ? 'repositories' : 'repository'}.\n`
  const blocks = views.map((view) => stanzaText(view, options.set).join('\n'))
  return `${blocks.join('\n\n')}\n`
}
