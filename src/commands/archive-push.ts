// archive-push: PostgreSQL's archive_command. Stores one WAL segment (or .history/.backup file) in the archive.
//
// The file is read twice: once to check its header and compute its checksum (which names the stored file, and
// decides between "already archived" and "a different file with this name"), and once to compress and store it.
// Both reads come from the page cache PostgreSQL just filled.

import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { errnoCode, fail } from '../common/errors.js'
import { log } from '../common/log.js'
import type { Config } from '../config/config.js'
import { codecFor } from '../io/compress.js'
import type { CompressType } from '../io/compress.js'
import { fileSha256, HashStream } from '../io/hash.js'
import { pgControlRead } from '../pg/control.js'
import { lsnFormat } from '../pg/lsn.js'
import { isBackupHistoryName, isPartialName, isTimelineHistoryName, isWalSegmentName, walHeaderParse, walSegmentStartLsn, WAL_LONG_HEADER_SIZE } from '../pg/wal.js'
import { archivedName, archiveDuplicateFail, archiveFileList } from '../repo/archive.js'
import { layout } from '../repo/layout.js'
import { archiveIdOf, archiveInfoLoad, checkIdentity } from '../repo/stanza-info.js'
import type { Command } from './command.js'
import { repoStorage } from './repo-storage.js'
import { streamInto } from '../storage/stream-into.js'

/** The cluster a WAL file belongs to: from a segment's own header, else from the data folder it was pushed from. */
async function walIdentity(cfg: Config, walPath: string, walName: string): Promise<{ systemId: string; version: number }> {
  if (isWalSegmentName(walName) || isPartialName(walName)) {
    const handle = await open(walPath, 'r')
    try {
      const header = Buffer.alloc(WAL_LONG_HEADER_SIZE)
      await handle.read(header, 0, WAL_LONG_HEADER_SIZE, 0)
      const parsed = walHeaderParse(header, walPath)
      // A segment copied under another segment's name would be replayed in the wrong place.
      const expected = walSegmentStartLsn(walName.slice(0, 24), parsed.segmentSize)
      if (parsed.pageAddress !== expected) {
        fail('ArchiveMismatch', `WAL file '${walPath}' holds WAL from ${lsnFormat(parsed.pageAddress)}, but its name says ${lsnFormat(expected)}`, {
          hint: 'the file was renamed or damaged; do not archive it.',
        })
      }
      return { systemId: parsed.systemId.toString(), version: parsed.version }
    } finally {
      await handle.close()
    }
  }
  // History and backup files carry no header. PostgreSQL runs archive_command in its data directory, which is the
  // cluster that wrote the file even when pg1-path names another (a standby promoted on the same host).
  const dataDir = (await pgControlRead(process.cwd()).then(() => process.cwd(), () => undefined)) ?? cfg.requireString('pg1-path')
  const control = await pgControlRead(dataDir)
  return { systemId: control.systemId.toString(), version: control.version }
}

export const archivePush: Command = {
  async run(cfg) {
    const stanza = cfg.stanza()
    const walPath = resolve(cfg.params[0]!)
    const walName = basename(walPath)
    if (!isWalSegmentName(walName) && !isTimelineHistoryName(walName) && !isBackupHistoryName(walName) && !isPartialName(walName)) {
      fail('ParamInvalid', `'${walPath}' is not a WAL segment, timeline history or backup history file`, {
        hint: "archive_command should be 'walden --stanza=NAME archive-push %p'.",
      })
    }

    const repo = repoStorage(cfg)
    const info = await archiveInfoLoad(repo, stanza)
    let identity: { systemId: string; version: number }
    try {
      identity = await walIdentity(cfg, walPath, walName)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') fail('FileMissing', `WAL file '${walPath}' does not exist`)
      throw error
    }
    checkIdentity(stanza, info.db, identity, `WAL file '${walName}'`)

    const archiveId = archiveIdOf(info.db)
    const folder = layout.walFolder(stanza, archiveId, walName)

    // A retry (PostgreSQL did not see the earlier push's exit): compare checksums only, writing nothing. The same
    // content is already safe, so say nothing; a different one is the loud failure.
    const existing = await archiveFileList(repo, stanza, archiveId, walName)
    if (existing.length > 0) {
      const sha256 = await fileSha256(walPath)
      if (!existing.some((file) => file.sha256 === sha256)) {
        fail('ArchiveDuplicate', `WAL file '${walName}' already exists in the archive with a different checksum`, {
          hint: 'another cluster may be archiving into this stanza; check every archive_command that names it.',
        })
      }
      // Synced again in case the earlier push failed after its rename.
      await repo.syncPath(folder)
      log.info(`WAL file '${walName}' is already in the archive with the same checksum`)
      return 0
    }

    // The usual case, in one pass: compress and checksum into a temporary file beside the final one, then name it
    // by its checksum.
    const compressType = (cfg.string('compress-type') ?? 'zst') as CompressType
    const codec = codecFor(compressType)
    const level = cfg.number('compress-level') ?? codec.defaultLevel
    const temporary = `${folder}/${walName}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
    const hash = new HashStream()
    try {
      await streamInto(createReadStream(walPath, { highWaterMark: 1024 * 1024 }), [hash, codec.compress(level)], await repo.openWrite(temporary, { atomic: false }))
      // The temporary file was fsynced when written; the rename and the folder fsync make the name durable.
      await repo.move(temporary, join(folder, archivedName(walName, hash.digest(), codec.extension)))
    } catch (error) {
      await repo.remove(temporary).catch(() => undefined)
      throw error
    }
    const sha256 = hash.digest()

    // Another cluster may have pushed a different file under this name at the same moment: look again, so the
    // conflict is reported here and not first discovered during a recovery.
    const after = await archiveFileList(repo, stanza, archiveId, walName)
    if (after.some((file) => file.sha256 !== sha256)) archiveDuplicateFail(repo, walName, after)
    log.info(`pushed WAL file '${walName}' to the archive`)
    return 0
  },
}
