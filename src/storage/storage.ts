// The storage interface: where repository bytes live. Commands and repository code speak only to this, with paths
// relative to the storage root, so a later SSH or S3 driver slots in without touching them.

import type { Readable, Writable } from 'node:stream'

export interface StorageInfo {
  type: 'file' | 'path' | 'link'
  size: number
  /** Modification time in milliseconds, with sub-millisecond precision where the file system has it. */
  mtimeMs: number
  mode: number
}

/**
 * How an atomic write names its file until the rename (posix.ts: `<name>.tmp-<pid>-<8 hex digits>`). One left behind
 * means its writer was killed; only a caller that knows no writer can be active may remove it (repo/temporary.ts).
 */
export const TEMPORARY_NAME = /\.tmp-\d+-[0-9a-f]{8}$/

export interface WriteOptions {
  /** Permission bits of the new file (default 0o640). */
  mode?: number
  /** Modification time to set after writing, in milliseconds. */
  mtimeMs?: number
  /**
   * Write under a temporary name and rename into place, fsyncing the folder (default true), so a crash leaves the
   * old file or the new one. False writes in place and fsyncs only the file: for bulk copies (backup, restore)
   * whose result becomes valid by a later step anyway, the caller fsyncs each folder once at the end instead.
   */
  atomic?: boolean
  /**
   * fsync the file when it is written, and with `atomic` its folder after the rename (default true). False only when
   * the caller makes the whole file system durable afterwards (posix syncFilesystem), which for thousands of files
   * is one flush instead of thousands, or when losing the file in a crash costs nothing but a retry.
   */
  sync?: boolean
  /**
   * Bytes the caller expects to write, where it knows: storage that gathers a write in memory (S3, by parts) sizes
   * its buffer by it instead of taking a whole part for a small file. Writing more is allowed.
   */
  sizeHint?: number
  /**
   * Part buffers a write to S3 may hold (default 1): with 2 the next part fills while the last is sent, at the cost
   * of a second part of memory. The caller decides, as it knows how many writes run at once.
   */
  partBuffers?: 1 | 2
}

/** A part of a file to read: `length` bytes from byte `offset` (to the end when `length` is absent). */
export interface ReadRange {
  offset: number
  length?: number
}

export interface Storage {
  /** Where the storage is, for messages. */
  readonly description: string
  /** Absolute path of a storage path, for messages. */
  describe(path: string): string

  info(path: string): Promise<StorageInfo | undefined>
  exists(path: string): Promise<boolean>
  /** Names in a folder, sorted; an empty list when the folder does not exist. */
  list(path: string): Promise<string[]>

  /**
   * A folder's entries with their info, sorted as list() sorts; empty when the folder does not exist. Optional: a
   * driver that lists sizes and times in one request (S3) has it; for others, list() and info() of each entry give
   * the same.
   */
  listInfo?(path: string): Promise<Array<{ name: string; info: StorageInfo }>>
  /** Where a link points, as stored in it; optional, for drivers whose storage has links. */
  linkDestination?(path: string): Promise<string>
  /** Reads a whole small file (info files, manifests). A missing file is a FileMissing error unless `missingOk`. */
  read(path: string, options?: { missingOk?: false }): Promise<Buffer>
  read(path: string, options: { missingOk: true }): Promise<Buffer | undefined>
  /**
   * A stream of the file's bytes, or of the part `range` names (a part past the end reads as empty, like a file
   * read past its end); a missing file is a FileMissing error.
   */
  openRead(path: string, range?: ReadRange): Promise<Readable>

  /**
   * Writes a small file atomically and durably: temporary name, fsync, rename, fsync of the folder.
   * A crash at any moment leaves either the old file or the new one, never a mix.
   */
  write(path: string, data: Buffer | string, options?: WriteOptions): Promise<void>
  /**
   * A stream that writes a file with the same guarantee as write(): the file appears under its name, fsynced,
   * only when the stream finishes; on error or destroy the temporary file is removed.
   */
  openWrite(path: string, options?: WriteOptions): Promise<Writable>

  /** Renames a file, replacing any file of that name, and makes the rename durable (fsync of the folder). */
  move(from: string, to: string): Promise<void>

  remove(path: string): Promise<void>
  /** Removes a folder if it is empty; a folder with entries (or a missing one) is left as it is. */
  removeEmptyPath(path: string): Promise<void>
  /** Removes a folder and everything under it; a missing folder is fine. */
  removePath(path: string): Promise<void>
  /** Makes a folder's entries durable (fsync of the folder); a missing folder is an error unless `missingOk`. */
  syncPath(path: string, options?: { missingOk?: boolean }): Promise<void>
}
