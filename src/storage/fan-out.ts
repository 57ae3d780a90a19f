// One stream written to several destinations at once, each through its own transforms (a repository's encryption)
// into its own writer: a file read, checksummed and compressed once lands in every repository.
//
// A destination that fails is dropped and its error kept, and the others go on: one repository that is full or
// unreachable must not keep the file from the rest. The stream as a whole fails only when every destination has
// failed (nothing is left to write to), or when the source side fails, which destroys every destination, so none
// keeps part of a file (each writer removes what it wrote when destroyed; see Storage.openWrite).

import { PassThrough, Writable } from 'node:stream'
import type { Transform } from 'node:stream'
import { streamInto } from './stream-into.js'

export interface FanOutTarget {
  /** Stages of this destination alone, in order (e.g. its repository's SealStream). */
  transforms: readonly Transform[]
  /** The destination; it commits the file when it finishes (Storage.openWrite). */
  writer: Writable
}

interface Branch {
  entry: PassThrough
  /** Settles when the branch's pipeline has finished or failed; never rejects. */
  done: Promise<void>
  settled: boolean
  error?: unknown
}

export class FanOut extends Writable {
  readonly #branches: Branch[]

  constructor(targets: readonly FanOutTarget[]) {
    super()
    this.#branches = targets.map((target) => {
      const entry = new PassThrough()
      const branch: Branch = { entry, settled: false, done: Promise.resolve() }
      branch.done = streamInto(entry, target.transforms, target.writer).then(
        () => {
          branch.settled = true
        },
        (error: unknown) => {
          branch.settled = true
          branch.error = error
        },
      )
      return branch
    })
  }

  /**
   * Each destination's outcome, in the order given: undefined when it received everything and committed, else its
   * error. Waits for every destination to settle; call it after the pipeline feeding this stream has settled.
   */
  async outcomes(): Promise<unknown[]> {
    await Promise.all(this.#branches.map((branch) => branch.done))
    return this.#branches.map((branch) => branch.error)
  }

  #live(): Branch[] {
    return this.#branches.filter((branch) => branch.error === undefined && !branch.entry.destroyed)
  }

  /** When nothing is left to write to: the first destination's error stands for all. */
  #allFailed(): unknown {
    return this.#branches.find((branch) => branch.error !== undefined)?.error ?? new Error('every destination failed')
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const live = this.#live()
    if (live.length === 0) {
      callback(this.#allFailed() as Error)
      return
    }
    // Every destination gets the same chunk (nothing downstream changes a chunk it is given). The next chunk waits
    // for the slowest live destination to drain, or to fail, which releases it.
    const waits: Promise<void>[] = []
    for (const branch of live) {
      if (!branch.entry.write(chunk)) {
        waits.push(
          new Promise<void>((resolve) => {
            branch.entry.once('drain', resolve)
            void branch.done.then(resolve)
          }),
        )
      }
    }
    if (waits.length === 0) {
      callback()
      return
    }
    void Promise.all(waits).then(() => callback(this.#live().length === 0 ? (this.#allFailed() as Error) : null))
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const branch of this.#live()) branch.entry.end()
    void Promise.all(this.#branches.map((branch) => branch.done)).then(() => {
      callback(this.#branches.every((branch) => branch.error !== undefined) ? (this.#allFailed() as Error) : null)
    })
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The source side failed (or the caller gave up): no destination may commit a partial file.
    const reason = error ?? new Error('the copy was abandoned')
    for (const branch of this.#branches) if (!branch.settled) branch.entry.destroy(reason)
    void Promise.all(this.#branches.map((branch) => branch.done)).then(() => callback(error))
  }
}
