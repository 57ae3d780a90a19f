// The database target. Transactions are sent several at a time in one round trip (each still its own BEGIN ... COMMIT),
// which is what lets one host keep up with a busy master. The server stops at the first failing statement; the
// transactions before it are committed, and the host's applied table says exactly which ones those are.

import { SqlError } from '../pg/link.js'
import type { PgLink } from '../pg/link.js'
import { HOST_SCHEMA_SQL } from './host-schema.js'
import { sequenceSql, statementInline, statementPrepared, statementVaries, withoutCommitWait } from './render.js'
import type { MasterTxn, SequenceValue, Statement } from './render.js'
import type { ApplyOutcome, MirrorTarget } from './target.js'

// Upper bounds for one round trip: enough to hide latency, small enough to keep a failure's retry cheap.
const ROUND_TRIP_TXNS = 100
const ROUND_TRIP_BYTES = 4 * 1024 * 1024
// Prepared statements kept per session; past this (a table with very many column sets) they are dropped and redone.
const PREPARED_MAX = 500

/**
 * Prepared statements of one host session: one per distinct change template, prepared just before the round trip
 * that first needs it, in a round trip of its own: a multi-statement query is one implicit transaction up to its first
 * BEGIN, and a BEGIN with an isolation level must come before any other statement of its transaction.
 */
class PreparedCache {
  readonly #names = new Map<string, string>()
  #count = 0

  /** SQL for a round trip: the PREPAREs it needs (to send first), then every statement, prepared ones as EXECUTE. */
  script(transactions: readonly Statement[][]): { prepare: string; run: string } {
    const prepares: string[] = []
    const body: string[] = []
    for (const statements of transactions) {
      for (const statement of statements) {
        if (!statementVaries(statement)) {
          body.push(`${statementInline(statement)};\n`)
          continue
        }
        const { body: template, args } = statementPrepared(statement)
        let name = this.#names.get(template)
        if (name === undefined) {
          name = `walden_mirror_${++this.#count}`
          this.#names.set(template, name)
          prepares.push(`PREPARE ${name} (jsonb, jsonb, text) AS ${template};\n`)
        }
        body.push(`EXECUTE ${name}(${args});\n`)
      }
    }
    return { prepare: prepares.join(''), run: body.join('') }
  }

  /** After a failure, which PREPAREs ran is unknown; after too many, memory matters: start again. */
  get full(): boolean {
    return this.#names.size > PREPARED_MAX
  }

  forget(): void {
    this.#names.clear()
  }
}

function sizeOf(statements: readonly Statement[]): number {
  return statements.reduce((sum, statement) => sum + statement.template.length + (statement.row?.length ?? 0) + (statement.key?.length ?? 0), 0)
}

export function databaseTarget(link: PgLink): MirrorTarget {
  // Whether transactions may have been committed without a later waiting commit: after a round trip that failed
  // part-way, and at start (a previous mirror-run may have been killed in the middle of one).
  let unflushed = true
  const prepared = new PreparedCache()
  const forgetPrepared = async (): Promise<void> => {
    prepared.forget()
    await link.script('DEALLOCATE ALL')
  }

  const appliedAmong = async (xids: readonly string[]): Promise<Set<string>> => {
    if (xids.length === 0) return new Set()
    const rows = await link.query('SELECT master_xid FROM walden_mirror.applied WHERE master_xid = ANY($1::bigint[])', [xids])
    return new Set(rows.map((row) => row['master_xid']!))
  }

  return {
    description: link.where,
    async prepare() {
      await link.script(HOST_SCHEMA_SQL)
      // A waiting commit must wait, whatever the host's configuration says.
      await link.query("SELECT set_config('synchronous_commit', 'local', false) WHERE current_setting('synchronous_commit') = 'off'")
      // Plan each prepared change once: the row values never change which plan is best.
      await link.query("SELECT set_config('plan_cache_mode', 'force_generic_plan', false)")
    },
    alreadyApplied(txns) {
      return appliedAmong(txns.map((txn) => txn.xid))
    },
    async apply(txns): Promise<ApplyOutcome> {
      let done = 0
      while (done < txns.length) {
        let end = done
        let bytes = 0
        while (end < txns.length && end - done < ROUND_TRIP_TXNS && (end === done || bytes + sizeOf(txns[end]!.statements) <= ROUND_TRIP_BYTES)) {
          bytes += sizeOf(txns[end]!.statements)
          end++
        }
        const chunk = txns.slice(done, end)
        try {
          // Only the last transaction of the round trip waits for its commit to be flushed (see withoutCommitWait).
          unflushed = true
          if (prepared.full) await forgetPrepared()
          const script = prepared.script(chunk.map((rendered, at) => (at < chunk.length - 1 ? withoutCommitWait(rendered.statements) : rendered.statements)))
          if (script.prepare !== '') await link.script(script.prepare)
          await link.script(script.run)
          unflushed = false
          done = end
        } catch (error) {
          if (!(error instanceof SqlError)) throw error
          await link.script('ROLLBACK').catch(() => undefined)
          await forgetPrepared()
          // Committed transactions form a prefix of the chunk; the first one missing is the one that failed.
          const applied = await appliedAmong(chunk.map((rendered) => rendered.txn.xid))
          let prefix = 0
          while (prefix < chunk.length && applied.has(chunk[prefix]!.txn.xid)) prefix++
          if (prefix === chunk.length) {
            done = end
            continue
          }
          return { applied: done + prefix, failure: { txn: chunk[prefix]!.txn, error } }
        }
      }
      return { applied: done }
    },
    async durable() {
      if (!unflushed) return
      await link.query(
        'INSERT INTO walden_mirror.flush_mark (one, at) VALUES (true, now()) ON CONFLICT (one) DO UPDATE SET at = EXCLUDED.at',
      )
      unflushed = false
    },
    async positionRecorded(txn: MasterTxn) {
      await link.query('DELETE FROM walden_mirror.applied WHERE (tick, last_seq_id) <= ($1::bigint, $2::bigint)', [txn.tick, txn.lastSeqId])
    },
    async sequencesFollow(sequences: readonly SequenceValue[]) {
      if (sequences.length > 0) await link.script(sequences.map((sequence) => `${sequenceSql(sequence)};`).join('\n'))
    },
    close() {
      return link.close()
    },
  }
}
