// Streams data through transforms into a storage writer, the one way walden copies a file.

import type { Readable, Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

/**
 * Runs `source -> transforms -> writer`. On failure it waits for the writer to finish its clean-up before
 * rethrowing: pipeline() settles as soon as one stream fails, while the writer is still closing and removing its
 * partial file, and a command that exits right after reporting the error would leave that file behind (under its
 * final name when written in place).
 */
export async function streamInto(source: Readable, transforms: readonly Transform[], writer: Writable): Promise<void> {
  try {
    await pipeline([source, ...transforms, writer])
  } catch (error) {
    if (writer.destroyed && !writer.closed) await new Promise((resolve) => writer.once('close', resolve))
    throw error
  }
}
