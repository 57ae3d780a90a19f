// Streamed writes to S3: a Writable that sends a file of any size with bounded memory. Bytes are copied into one part
// buffer of uploadChunkSize; a file smaller than one part goes up as one PUT when the stream finishes, a larger one as
// a multipart upload. The object appears under its name only when CompleteMultipartUpload succeeds in _final; an
// error or destroy before that aborts the upload, so neither the object nor the stored parts of an unfinished upload
// outlive the failure.
//
// Memory: an upload holds one part buffer (sized by the writer's size hint when that is smaller than a part), filled
// while nothing is in flight. When it is full it is sent, and the write that filled it is called back only once the
// part is stored (the writer waits; retries resend the same buffer). With partBuffers 2 the next part fills in a
// second buffer while one is in flight: the caller decides, knowing how many uploads run at once (a backup at
// process-max 4 with a second part for each of its uploads went past the 256 MB it may use). Full-size buffers are
// reused by the thread's next upload, so no part is garbage waiting for V8 to collect it (measured: copying each
// written chunk into a new Buffer kept hundreds of MB of dead chunks alive at process-max 4).

import { Writable } from 'node:stream'
import { WaldenError } from '../common/errors.js'
import { etagOf, S3RequestError } from './s3-client.js'
import type { S3Client } from './s3-client.js'
import { xmlEncode, xmlText } from './s3-xml.js'

/** What the upload needs from the driver: its client, and how to word a failure. */
export interface S3UploadTarget {
  client: S3Client
  key: string
  /** Headers of the object's creating request (SSE-KMS). */
  headers: Readonly<Record<string, string>>
  partSize: number
  /** Bytes expected (WriteOptions.sizeHint), and part buffers the upload may hold (WriteOptions.partBuffers). */
  sizeHint?: number
  partBuffers?: 1 | 2
  fail: (error: unknown, action: string) => WaldenError
}

/** S3 allows at most 10,000 parts; past that the part size has to grow (only for files over partSize × 10,000). */
const MAX_PARTS = 10_000

// Full-size part buffers of finished uploads, for the next upload of this thread (module state is per worker
// thread), and the bytes of part buffers uploads of this thread hold now.
const spareParts: Buffer[] = []
const SPARE_PARTS_MAX = 2
let partBytesHeld = 0

function partTake(size: number): Buffer {
  const index = spareParts.findIndex((buffer) => buffer.length === size)
  const buffer = index >= 0 ? spareParts.splice(index, 1)[0]! : Buffer.allocUnsafe(size)
  partBytesHeld += size
  return buffer
}

function partGive(buffer: Buffer, partSize: number): void {
  partBytesHeld -= buffer.length
  if (buffer.length === partSize && spareParts.length < SPARE_PARTS_MAX) spareParts.push(buffer)
}

/** Part-buffer bytes uploads of this thread hold now (tests check that finished uploads gave theirs back). */
export function partBytesHeldNow(): number {
  return partBytesHeld
}

export class S3Upload extends Writable {
  readonly #target: S3UploadTarget
  #partSize: number
  /** The buffer being filled, and the bytes in it. */
  #buffer: Buffer | undefined
  #size = 0
  #total = 0
  /** A buffer whose part is in flight, to be filled next when that part is stored. */
  #sending: Buffer | undefined
  #uploadId: string | undefined
  #creating: Promise<void> | undefined
  readonly #parts: Array<{ number: number; etag: string }> = []
  #inFlight: Promise<void> | undefined
  #completed = false

  constructor(target: S3UploadTarget) {
    super({ highWaterMark: 1024 * 1024 })
    this.#target = target
    this.#partSize = target.partSize
  }

  /** The multipart upload's id once one has begun (tests use it to check that an abort left nothing behind). */
  get uploadId(): string | undefined {
    return this.#uploadId
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // Copied into the part buffer: the caller may reuse its chunk once called back, and chunks are too small and too
    // many to keep as they are.
    let offset = 0
    const fill = (): void => {
      while (offset < chunk.length) {
        // Destroyed while a part was sent: _destroy aborts the upload and takes the buffers back.
        if (this.destroyed) return callback()
        let buffer = (this.#buffer ??= partTake(this.#firstBufferSize()))
        if (this.#size === buffer.length && buffer.length < this.#partSize) {
          // More than the hint said: the small buffer gives way to a whole part.
          const larger = partTake(this.#partSize)
          buffer.copy(larger, 0, 0, this.#size)
          partGive(buffer, this.#partSize)
          buffer = this.#buffer = larger
        }
        const copied = chunk.copy(buffer, this.#size, offset)
        offset += copied
        this.#size += copied
        this.#total += copied
        if (this.#size < this.#partSize) continue
        this.#sendPart().then(fill, (error: unknown) => callback(this.#target.fail(error, 'write')))
        return
      }
      callback()
    }
    fill()
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finish().then(() => callback(), (error: unknown) => callback(this.#target.fail(error, 'write')))
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The upload's creation and the part being sent are awaited first: a part that landed after the abort would be
    // stored again, unseen, and an upload created after it would never be aborted at all.
    const abort = async (): Promise<void> => {
      await this.#creating?.catch(() => undefined)
      await this.#inFlight?.catch(() => undefined)
      this.#release()
      if (this.#completed || this.#uploadId === undefined) return
      await this.#target.client
        .request({ method: 'DELETE', key: this.#target.key, query: { uploadId: this.#uploadId }, expect: [200, 204, 404] })
        .catch(() => undefined) // best effort: the original error is the one to report
    }
    abort().then(() => callback(error))
  }

  /** A whole part, or less when the writer expects less (plus a little for a hint that is a few bytes short). */
  #firstBufferSize(): number {
    const hint = this.#target.sizeHint
    return hint === undefined ? this.#partSize : Math.max(1, Math.min(this.#partSize, hint + 4096))
  }

  /** Gives the part buffers back; only once no request reads them any more. */
  #release(): void {
    if (this.#buffer) partGive(this.#buffer, this.#partSize)
    if (this.#sending) partGive(this.#sending, this.#partSize)
    this.#buffer = this.#sending = undefined
  }

  /**
   * Sends the full buffer as the next part. Resolves when the buffer may be filled again: at once when a second
   * buffer could be taken (the part goes on in flight), else when the part is stored.
   */
  async #sendPart(): Promise<void> {
    await this.#inFlight
    // Destroyed meanwhile: _destroy is aborting the upload (or has found none to abort), and nothing may start after
    // that. Checked again after each wait, and right before what it guards, with no wait in between.
    if (this.destroyed) return
    if (this.#uploadId === undefined) await (this.#creating ??= this.#create())
    if (this.destroyed) return
    const uploadId = this.#uploadId!
    const buffer = this.#buffer!
    const body = buffer.subarray(0, this.#size)
    const number = this.#parts.length + 1
    const part = { number, etag: '' }
    this.#parts.push(part)
    const sending = this.#target.client
      .request({ method: 'PUT', key: this.#target.key, query: { partNumber: String(number), uploadId }, body: [body] })
      .then((response) => {
        part.etag = etagOf(response.headers)
      })
    // Observed by the next #sendPart or #finish; the catch only keeps Node from calling it unhandled meanwhile.
    sending.catch(() => undefined)
    this.#inFlight = sending
    this.#size = 0
    // Past 10,000 parts S3 refuses the upload; doubling the part size before that point keeps any size possible.
    if (number % (MAX_PARTS / 10) === 0 && number >= MAX_PARTS / 2) {
      this.#partSize *= 2
      await sending
      if (this.destroyed) return
      this.#release()
      this.#buffer = partTake(this.#partSize)
      return
    }
    if (this.#sending) {
      // Two buffers: the other one's part was stored (awaited above), so it fills while this part is in flight.
      this.#buffer = this.#sending
      this.#sending = buffer
      return
    }
    if (this.#target.partBuffers === 2) {
      this.#sending = buffer
      this.#buffer = partTake(this.#partSize)
      return
    }
    // One buffer: it fills again once its part is stored.
    await sending
  }

  async #create(): Promise<void> {
    const response = await this.#target.client.request({ method: 'POST', key: this.#target.key, query: { uploads: '' }, headers: this.#target.headers })
    const uploadId = xmlText(response.body.toString('utf8'), 'UploadId')
    if (!uploadId) throw new Error('CreateMultipartUpload answered without an UploadId')
    this.#uploadId = uploadId
  }

  async #finish(): Promise<void> {
    if (this.#uploadId === undefined) {
      // Smaller than one part: one PUT, which S3 makes visible whole or not at all.
      const body = this.#buffer ? [this.#buffer.subarray(0, this.#size)] : []
      const put = this.#target.client.request({ method: 'PUT', key: this.#target.key, headers: this.#target.headers, body })
      // In flight like a part: a destroy meanwhile waits for it before the buffer goes back for reuse.
      this.#inFlight = put.then(() => undefined)
      this.#inFlight.catch(() => undefined)
      await put
      this.#completed = true
      this.#release()
      return
    }
    if (this.#size > 0) await this.#sendPart()
    await this.#inFlight
    this.#release()
    const body =
      '<CompleteMultipartUpload>' +
      this.#parts.map((part) => `<Part><PartNumber>${part.number}</PartNumber><ETag>"${xmlEncode(part.etag)}"</ETag></Part>`).join('') +
      '</CompleteMultipartUpload>'
    // RGW answers with an empty <ETag>; nothing here needs it (the caller hashed the bytes it sent).
    try {
      await this.#target.client.request({
        method: 'POST',
        key: this.#target.key,
        query: { uploadId: this.#uploadId },
        body: [Buffer.from(body)],
        errorIn200: true,
      })
    } catch (error) {
      if (!(await this.#completedUnseen(error))) throw error
    }
    this.#completed = true
  }

  /**
   * Whether a completion that failed had in fact succeeded: when the answer to a first attempt is lost, the retry
   * finds the upload gone (NoSuchUpload). The object is then ours if it has our size and as many parts as we sent.
   */
  async #completedUnseen(error: unknown): Promise<boolean> {
    if (!(error instanceof S3RequestError) || error.code !== 'NoSuchUpload' || error.attempts < 2) return false
    const head = await this.#target.client.request({ method: 'HEAD', key: this.#target.key, expect: [200, 404] })
    return head.status === 200 && Number(head.headers['content-length']) === this.#total && etagOf(head.headers).endsWith(`-${this.#parts.length}`)
  }
}
