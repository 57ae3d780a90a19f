// Streamed writes to S3: a Writable that sends a file of any size with bounded memory. Bytes gather into a part of
// uploadChunkSize; a file smaller than one part goes up as one PUT when the stream finishes, a larger one as a
// multipart upload with at most one part in flight while the next fills (two parts of memory per upload). The object
// appears under its name only when CompleteMultipartUpload succeeds in _final; an error or destroy before that aborts
// the upload, so neither the object nor the stored parts of an unfinished upload outlive the failure.

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
  fail: (error: unknown, action: string) => WaldenError
}

/** S3 allows at most 10,000 parts; past that the part size has to grow (only for files over partSize × 10,000). */
const MAX_PARTS = 10_000

export class S3Upload extends Writable {
  readonly #target: S3UploadTarget
  #partSize: number
  #chunks: Buffer[] = []
  #size = 0
  #total = 0
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
    // A copy: the writer calls back before the part is sent, and a caller may reuse its buffer once called back.
    this.#chunks.push(Buffer.from(chunk))
    this.#size += chunk.length
    this.#total += chunk.length
    if (this.#size < this.#partSize) return callback()
    this.#sendPart().then(() => callback(), (error: unknown) => callback(this.#target.fail(error, 'write')))
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finish().then(() => callback(), (error: unknown) => callback(this.#target.fail(error, 'write')))
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#completed) return callback(error)
    // The upload's creation and the part being sent are awaited first: a part that landed after the abort would be
    // stored again, unseen, and an upload created after it would never be aborted at all.
    const abort = async (): Promise<void> => {
      await this.#creating?.catch(() => undefined)
      await this.#inFlight?.catch(() => undefined)
      if (this.#uploadId === undefined) return
      await this.#target.client
        .request({ method: 'DELETE', key: this.#target.key, query: { uploadId: this.#uploadId }, expect: [200, 204, 404] })
        .catch(() => undefined) // best effort: the original error is the one to report
    }
    abort().then(() => callback(error))
  }

  /** Sends the gathered bytes as the next part, after the previous part has gone (so memory holds two at most). */
  async #sendPart(): Promise<void> {
    await this.#inFlight
    // Destroyed meanwhile: _destroy is aborting the upload (or has found none to abort), and nothing may start after
    // that. Checked again after each wait, and right before what it guards, with no wait in between.
    if (this.destroyed) return
    if (this.#uploadId === undefined) await (this.#creating ??= this.#create())
    if (this.destroyed) return
    const uploadId = this.#uploadId!
    const chunks = this.#chunks
    this.#chunks = []
    this.#size = 0
    const number = this.#parts.length + 1
    const part = { number, etag: '' }
    this.#parts.push(part)
    // Past 10,000 parts S3 refuses the upload; doubling the part size before that point keeps any size possible.
    if (number % (MAX_PARTS / 10) === 0 && number >= MAX_PARTS / 2) this.#partSize *= 2
    const sending = this.#target.client
      .request({ method: 'PUT', key: this.#target.key, query: { partNumber: String(number), uploadId }, body: chunks })
      .then((response) => {
        part.etag = etagOf(response.headers)
      })
    // Observed by the next #sendPart or #finish; the catch only keeps Node from calling it unhandled meanwhile.
    sending.catch(() => undefined)
    this.#inFlight = sending
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
      await this.#target.client.request({ method: 'PUT', key: this.#target.key, headers: this.#target.headers, body: this.#chunks })
      this.#chunks = []
      this.#completed = true
      return
    }
    if (this.#size > 0) await this.#sendPart()
    await this.#inFlight
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
