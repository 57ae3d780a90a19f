// Worker thread entry (bundled as dist/worker.mjs): runs jobs posted by the pool, one at a time.

import { parentPort } from 'node:worker_threads'
import { WaldenError } from '../common/errors.js'
import { JOBS } from './jobs.js'
import type { JobName } from './jobs.js'

interface JobMessage {
  id: number
  name: JobName
  input: unknown
}

parentPort!.on('message', (message: JobMessage) => {
  const handler = JOBS[message.name] as (input: unknown) => Promise<unknown>
  handler(message.input).then(
    (output) => parentPort!.postMessage({ id: message.id, output }),
    (error: unknown) =>
      parentPort!.postMessage({
        id: message.id,
        error:
          error instanceof WaldenError
            ? { kind: error.kind, message: error.message, hint: error.hint }
            : { kind: 'Unhandled', message: error instanceof Error ? (error.stack ?? error.message) : String(error) },
      }),
  )
})
