// The SQL-file target: one file per master transaction, for hosts the master cannot reach. Files sort by name in apply
// order: H<host>_T<tick>_S<last seq>_<UTC date and time>_XID<xid>.sql, zero-padded, without colons. Each is written
// under a temporary name, fsynced, renamed, and the folder fsynced before the master records the transaction as
// delivered, so a crash leaves either no file or a complete one. Each file starts with the replay guard (see
// render.ts): replaying it twice fails without changing anything. H<host>_0_host-schema.sql, sorting first, creates
// the guard table in the database the files are replayed into.

import { open, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoCode, fail } from '../common/errors.js'
import { PRIVATE_FILE_MODE, privateFolder } from '../common/private-path.js'
import { syncFolder } from '../storage/posix.js'
import { HOST_SCHEMA_SQL } from './host-schema.js'
import { sqlCommentText } from './names.js'
import { statementsSql } from './render.js'
import type { MasterTxn } from './render.js'
import type { ApplyOutcome, MirrorTarget, RenderedTxn } from './target.js'

/** The part of a file name that identifies the transaction; the time it was written follows it. */
function namePrefix(hostId: number, txn: MasterTxn): string {
  return `H${hostId}_T${txn.tick.padStart(12, '0')}_S${txn.lastSeqId.padStart(15, '0')}_`
}

function stamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', '_').replaceAll(':', '-')
}

/** Temporary name, fsync, rename; the caller fsyncs the folder once for a whole batch (PosixStorage.write would per file). */
async function writeDurably(dir: string, name: string, text: string): Promise<void> {
  const temporary = join(dir, `.${name}.tmp`)
  const handle = await open(temporary, 'w', PRIVATE_FILE_MODE)
  try {
    // The files carry row data: 0640 whatever the umask (see private-path.ts).
    await handle.chmod(PRIVATE_FILE_MODE)
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temporary, join(dir, name))
}

export async function fileTarget(dir: string, hostId: number, hostName: string): Promise<MirrorTarget> {
  let written = new Set<string>()
  const schemaFile = `H${hostId}_0_host-schema.sql`
  return {
    description: `folder '${dir}'`,
    async prepare() {
      try {
        await privateFolder(dir)
        const names = await readdir(dir)
        // A temporary file is what a crash left of a transaction never recorded as delivered: it is written again.
        for (const name of names) if (/^\.H\d+_.*\.tmp$/.test(name)) await rm(join(dir, name), { force: true })
        // Transactions written before a crash, whose delivery the master may not have recorded.
        written = new Set(names.filter((name) => name.endsWith('.sql')).map((name) => name.replace(/^(H\d+_T\d+_S\d+_).*$/, '$1')))
        if (!names.includes(schemaFile)) {
          await writeDurably(dir, schemaFile, `-- walden mirror: guard schema for host '${sqlCommentText(hostName)}'\n${HOST_SCHEMA_SQL}`)
          await syncFolder(dir)
        }
      } catch (error) {
        fail('FileWrite', `unable to prepare mirror folder '${dir}': ${(error as Error).message}`, {
          hint: errnoCode(error) === 'EACCES' ? 'the folder must be writable by the user running walden.' : undefined,
          cause: error,
        })
      }
    },
    async alreadyApplied(txns) {
      return new Set(txns.filter((txn) => written.has(namePrefix(hostId, txn))).map((txn) => txn.xid))
    },
    async apply(txns: readonly RenderedTxn[]): Promise<ApplyOutcome> {
      const now = new Date()
      for (const { txn, statements } of txns) {
        const prefix = namePrefix(hostId, txn)
        const name = `${prefix}${stamp(now)}_XID${txn.xid}.sql`
        const header = `-- walden mirror: master transaction ${txn.xid} for host '${sqlCommentText(hostName)}' (order ${txn.tick}/${txn.lastSeqId})\n`
        try {
          await writeDurably(dir, name, header + statementsSql(statements))
        } catch (error) {
          fail('FileWrite', `unable to write mirror file '${join(dir, name)}': ${(error as Error).message}`, { cause: error })
        }
        written.add(prefix)
      }
      if (txns.length > 0) await syncFolder(dir)
      return { applied: txns.length }
    },
    // Every file and the folder are fsynced in apply().
    async durable() {},
    async positionRecorded() {},
    async sequencesFollow() {},
    async close() {},
  }
}
