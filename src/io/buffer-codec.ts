// Decompressing a whole small buffer in memory, synchronously where the codec can, else through its stream: for
// the many small files of a cluster, where opening file streams costs more than the data.

import { Readable } from 'node:stream'
import type { Transform } from 'node:stream'
import type { Codec, DecompressOptions } from './compress.js'

async function through(stream: Transform, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
    })
    stream.once('end', resolve)
    stream.once('error', reject)
  })
  Readable.from([data]).pipe(stream)
  await done
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
}

export async function decompressBuffer(codec: Codec, data: Buffer, options?: DecompressOptions): Promise<Buffer> {
  return codec.decompressSync ? codec.decompressSync(data, options) : through(codec.decompress(options), data)
}

/**
 * Compresses a whole buffer into one frame: on libuv's thread pool where the engine can (so the thread's other work,
 * e.g. another push's upload, goes on meanwhile), into `spare` if it is large enough; else synchronously, else
 * through the codec's stream.
 */
export async function compressBuffer(codec: Codec, data: Buffer, level: number, spare?: Buffer): Promise<Buffer> {
  if (codec.compressIntoAsync && codec.compressBound) {
    const bound = codec.compressBound(data.length)
    // The caller's buffer when it is large enough: the result is then a part of it.
    const out = spare !== undefined && spare.length >= bound ? spare : Buffer.allocUnsafe(bound)
    return out.subarray(0, await codec.compressIntoAsync(data, level, out))
  }
  return codec.compressSync ? codec.compressSync(data, level) : through(codec.compress(level), data)
}
