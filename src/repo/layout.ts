// Where things live in a repository. Every repository path is built here; commands never join repo1-path
// themselves.
//
//   archive/<stanza>/archive.info
//   archive/<stanza>/<archive-id>/<first 16 hex of segment>/<segment>-<sha256>.<ext>   WAL segments, .partial
//   archive/<stanza>/<archive-id>/<first 16 hex of segment>/<segment>.<offset>.backup   backup history, as named
//   archive/<stanza>/<archive-id>/<timeline>.history                                    timeline history, as named
//   ... beside each of the last two: <name>.sha256-<sha256>, its checksum record (repo/archive.ts says why)
// Repositories written before issue #15 hold history and backup files as <name>-<sha256>.<ext>; they are still read.
//   backup/<stanza>/backup.info
//   backup/<stanza>/<label>/backup.manifest
//   backup/<stanza>/<label>/pg_data/...<ext>, pg_tblspc/<oid>/...<ext>                  data files

export const ARCHIVE_INFO = 'archive.info'
export const BACKUP_INFO = 'backup.info'
export const BACKUP_MANIFEST = 'backup.manifest'

export const layout = {
  archiveRoot: (stanza: string): string => `archive/${stanza}`,
  archiveInfo: (stanza: string): string => `archive/${stanza}/${ARCHIVE_INFO}`,
  archiveId: (stanza: string, archiveId: string): string => `archive/${stanza}/${archiveId}`,
  /** The folder a WAL segment (or a .backup file named after one) is stored in. */
  walFolder: (stanza: string, archiveId: string, walName: string): string =>
    walName.endsWith('.history') ? `archive/${stanza}/${archiveId}` : `archive/${stanza}/${archiveId}/${walName.slice(0, 16)}`,
  backupRoot: (stanza: string): string => `backup/${stanza}`,
  backupInfo: (stanza: string): string => `backup/${stanza}/${BACKUP_INFO}`,
  backup: (stanza: string, label: string): string => `backup/${stanza}/${label}`,
  backupManifest: (stanza: string, label: string): string => `backup/${stanza}/${label}/${BACKUP_MANIFEST}`,
}

/** The archive id names one cluster generation in a stanza: "<major>-<history id>", e.g. "15-1". */
export function archiveIdFormat(version: number, id: number): string {
  return `${version}-${id}`
}
