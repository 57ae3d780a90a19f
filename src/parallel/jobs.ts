// The jobs a worker thread can run: one file in, one result out. The same functions run inline when
// process-max is 1, so there is one code path whatever the parallelism.

import { archiveGetFile } from '../commands/archive/get-file.js'
import { archivePushFile } from '../commands/archive/push-file.js'
import { backupFile, backupFileFanOut } from '../commands/backup/file.js'
import { pgHostWarm } from '../commands/pg-host-ops.js'
import { restoreFile } from '../commands/restore/file.js'
import { verifyFile } from '../commands/verify/file.js'
import { storageWarm } from '../storage/location.js'

export const JOBS = {
  'archive.get': archiveGetFile,
  'archive.push': archivePushFile,
  'backup.file': backupFile,
  'backup.fanOut': backupFileFanOut,
  'pg.open': pgHostWarm,
  'restore.file': restoreFile,
  'storage.open': storageWarm,
  'verify.file': verifyFile,
} as const

export type JobName = keyof typeof JOBS
export type JobInput<N extends JobName> = Parameters<(typeof JOBS)[N]>[0]
export type JobOutput<N extends JobName> = Awaited<ReturnType<(typeof JOBS)[N]>>
