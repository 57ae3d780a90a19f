// A pool of worker threads for CPU-bound file jobs (hashing, compression, page checksums). With one process the
// jobs run inline in the main thread: no worker start-up for small runs.

import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import { JOBS } from './jobs.js'
import type { JobInput, JobName, JobOutput } from './jobs.js'

/**
 * The worker bundle, dist/worker.mjs. This module is bundled into dist/ or into dist/chunks/ depending on how
 * esbuild splits the code, so look in both places rather than depend on that choice.
 */
function workerUrl(): URL {
  const beside = new URL('./worker.mjs', import.meta.url)
  return existsSync(fileURLToPath(beside)) ? beside : new URL('../worker.mjs', import.meta.url)
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
}

interface Slot {
  worker: Worker
  pending: Map<number, Pending>
}

export class WorkerPool {
  readonly #slots: Slot[] = []
  #nextId = 0
  #nextSlot = 0

  /** `size` worker threads; 1 means inline. */
  constructor(readonly size: number) {
    if (size <= 1) return
    for (let index = 0; index < size; index++) {
      const worker = new Worker(workerUrl())
      const slot: Slot = { worker, pending: new Map() }
      worker.on('message', (message: { id: number; output?: unknown; error?: { kind: ErrorKind; message: string; hint?: string } }) => {
        const pending = slot.pending.get(message.id)
        if (!pending) return
        slot.pending.delete(message.id)
        if (message.error) {
          pending.reject(new WaldenError(message.error.kind, message.error.message, message.error.hint ? { hint: message.error.hint } : {}))
        } else pending.resolve(message.output)
      })
      worker.on('error', (error) => {
        for (const pending of slot.pending.values()) pending.reject(error)
        slot.pending.clear()
      })
      this.#slots.push(slot)
    }
  }

  run<N extends JobName>(name: N, input: JobInput<N>): Promise<JobOutput<N>> {
    if (this.#slots.length === 0) return (JOBS[name] as (input: JobInput<N>) => Promise<JobOutput<N>>)(input)
    // Least-loaded worker: jobs differ a lot in size (a 1 GiB relation segment next to 8 KiB catalog files).
    let slot = this.#slots[this.#nextSlot++ % this.#slots.length]!
    for (const candidate of this.#slots) if (candidate.pending.size < slot.pending.size) slot = candidate
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      slot.worker.postMessage({ id, name, input })
    })
  }

  /**
   * Runs `name` once in every worker (nothing when inline), e.g. to open a worker's session to a backup host before
   * its first file. Settles when all have, whatever their outcome.
   */
  async runEach<N extends JobName>(name: N, input: JobInput<N>): Promise<void> {
    await Promise.allSettled(
      this.#slots.map((slot) => {
        const id = this.#nextId++
        return new Promise((resolve, reject) => {
          slot.pending.set(id, { resolve, reject })
          slot.worker.postMessage({ id, name, input })
        })
      }),
    )
  }

  /**
   * Runs a job for every item with at most `perWorker` (default two) per worker in flight, in the order given (callers
   * put big files first so the tail is short). Stops at the first failure and rethrows it once in-flight jobs settle.
   */
  async runAll<N extends JobName, T>(
    name: N,
    items: readonly T[],
    toInput: (item: T) => JobInput<N>,
    onResult: (item: T, output: JobOutput<N>) => void,
    options: { keyOf?: (item: T) => string; perWorker?: number } = {},
  ): Promise<void> {
    const picker = new JobPicker(items, options.keyOf)
    let failure: unknown
    const lane = async (): Promise<void> => {
      for (let item = picker.next(); failure === undefined && item !== undefined; item = picker.next()) {
        try {
          onResult(item, await this.run(name, toInput(item)))
        } catch (error) {
          failure ??= error
        } finally {
          picker.done(item)
        }
      }
    }
    // Two jobs in flight per worker: while the main thread handles one result, the worker already has its next job,
    // so small files are not paced by message round trips. Callers whose jobs mostly wait on the network ask for more.
    await Promise.all(Array.from({ length: Math.max(1, this.size) * (options.perWorker ?? 2) }, lane))
    if (failure !== undefined) throw failure
  }

  async close(): Promise<void> {
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()))
    this.#slots.length = 0
  }
}

/**
 * Hands out items in their order, except that an item whose key (with restore: the destination file) is in flight
 * already waits while an item with another key is available. Two threads writing one file take turns on its inode
 * lock, and the one waiting spins on it: measured here, two threads writing halves of one 1 GiB file spent 50% more
 * system time than two writing a file each, and several times more when the page cache had to take fresh memory from
 * the virtual machine's host while holding the lock. Items without a key function are handed out in order.
 */
export class JobPicker<T> {
  readonly #pending: T[]
  readonly #keyOf: ((item: T) => string) | undefined
  readonly #inFlight = new Map<string, number>()

  constructor(items: readonly T[], keyOf?: (item: T) => string) {
    this.#pending = [...items]
    this.#keyOf = keyOf
  }

  next(): T | undefined {
    let index = 0
    if (this.#keyOf) {
      const free = this.#pending.findIndex((item) => !this.#inFlight.has(this.#keyOf!(item)))
      if (free >= 0) index = free
    }
    const [item] = this.#pending.splice(index, 1)
    if (item !== undefined && this.#keyOf) {
      const key = this.#keyOf(item)
      this.#inFlight.set(key, (this.#inFlight.get(key) ?? 0) + 1)
    }
    return item
  }

  done(item: T): void {
    if (!this.#keyOf) return
    const key = this.#keyOf(item)
    const count = (this.#inFlight.get(key) ?? 1) - 1
    if (count > 0) this.#inFlight.set(key, count)
    else this.#inFlight.delete(key)
  }
}
