// S3 storage driver: a repository under a key prefix of an S3-compatible bucket, laid out exactly like a posix
// repository (key = prefix + '/' + storage path), so `aws s3 sync` between a folder and a bucket carries a repository
// either way. Folders are implicit: a folder exists while a key lies under it, and vanishes with its last key.
//
// What posix does with renames and fsyncs, S3 gives by itself: an object appears whole when its PUT or
// CompleteMultipartUpload succeeds, and is durable then. So every write is atomic, `sync` and syncPath are no-ops,
// and permission bits and modification times are not stored (info reports the object's Last-Modified).

import type { IncomingMessage } from 'node:http'
import { posix } from 'node:path'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { Writable } from 'node:stream'
import { fail, WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import type { S3Location } from './location.js'
import { etagOf, S3Client, S3RequestError, s3Failure } from './s3-client.js'
import type { S3ClientOptions, S3Request, S3Response } from './s3-client.js'
import { S3Upload } from './s3-upload.js'
import { uriEncode } from './s3-sign.js'
import { xmlElements, xmlEncode, xmlText, xmlTexts } from './s3-xml.js'
import type { ReadRange, Storage, StorageInfo, WriteOptions } from './storage.js'

export interface S3StorageOptions extends S3ClientOptions {
  /** Objects larger than this are moved by a multipart copy: one CopyObject copies at most 5 GiB. */
  copyLimit?: number
  /** Part size of a multipart copy (default 1 GiB; data stays on the server). */
  copyPartSize?: number
}

const GIB = 1024 * 1024 * 1024
/** S3's limit on keys per DeleteObjects request, and the most one ListObjectsV2 page returns. */
const BATCH = 1000

/** An object of a ListObjectsV2 page, with what the listing says of it. */
interface S3ListedObject {
  key: string
  size: number
  mtimeMs: number
}

/** Times a read that loses its connection mid-body picks up where it stopped before failing. */
const READ_RESUMES = 5

export class S3Storage implements Storage {
  readonly description: string
  readonly client: S3Client
  readonly #location: S3Location
  /** Key prefix of the repository, '' at the bucket's root, else 'path' without leading or trailing '/'. */
  readonly #root: string
  readonly #endpointText: string
  readonly #copyLimit: number
  readonly #copyPartSize: number
  readonly #createHeaders: Readonly<Record<string, string>>

  constructor(location: S3Location, options: S3StorageOptions = {}) {
    this.#location = location
    this.client = new S3Client(location, options)
    this.#root = posix.normalize(`/${location.path}`).replace(/^\/+|\/+$/g, '')
    const endpoint = this.client.endpoint
    this.#endpointText = `${endpoint.protocol}//${endpoint.host}`
    this.description = `'s3://${location.bucket}/${this.#root}' at ${this.#endpointText}`
    this.#copyLimit = options.copyLimit ?? 5 * GIB
    this.#copyPartSize = options.copyPartSize ?? GIB
    this.#createHeaders =
      location.kmsKeyId !== undefined
        ? { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': location.kmsKeyId }
        : {}
  }

  describe(path: string): string {
    return `s3://${this.#location.bucket}/${this.#key(path)}`
  }

  /** The object key of a storage path: '.', '..', doubled and trailing slashes resolved as a file system would. */
  #key(path: string): string {
    const relative = posix.normalize(`/${path}`).replace(/^\/+|\/+$/g, '')
    if (this.#root === '') return relative
    return relative === '' ? this.#root : `${this.#root}/${relative}`
  }

  /** The prefix every key under a folder starts with. */
  #folderPrefix(path: string): string {
    const key = this.#key(path)
    return key === '' ? '' : `${key}/`
  }

  #fail(error: unknown, kind: ErrorKind, action: string, path: string): WaldenError {
    return s3Failure(error, kind, action, this.describe(path), this.#location, this.#endpointText)
  }

  async #request(request: S3Request, kind: ErrorKind, action: string, path: string): Promise<S3Response> {
    try {
      return await this.client.request(request)
    } catch (error) {
      throw this.#fail(error, kind, action, path)
    }
  }

  async info(path: string): Promise<StorageInfo | undefined> {
    const key = this.#key(path)
    if (key !== '') {
      const head = await this.#request({ method: 'HEAD', key, expect: [200, 404] }, 'FileOpen', 'get info for', path)
      if (head.status === 200) {
        const modified = Date.parse(String(head.headers['last-modified'] ?? ''))
        return { type: 'file', size: Number(head.headers['content-length'] ?? 0), mtimeMs: Number.isNaN(modified) ? 0 : modified, mode: 0o640 }
      }
    }
    // Not an object: a folder when any key lies under it. This listing also tells a missing bucket from a missing
    // file, which a HEAD cannot (its 404 has no body).
    const page = await this.#listPage(this.#folderPrefix(path), { maxKeys: 1 }, path)
    if (key === '' || page.keys.length > 0 || page.prefixes.length > 0) return { type: 'path', size: 0, mtimeMs: 0, mode: 0o750 }
    return undefined
  }

  async exists(path: string): Promise<boolean> {
    return (await this.info(path)) !== undefined
  }

  async list(path: string): Promise<string[]> {
    const prefix = this.#folderPrefix(path)
    const names = new Set<string>()
    let token: string | undefined
    do {
      const page = await this.#listPage(prefix, { delimiter: '/', ...(token !== undefined ? { token } : {}) }, path)
      // Keys ending in '/' are folder markers some tools create; their name here is empty and they are no entry.
      for (const key of page.keys) if (key.length > prefix.length) names.add(key.slice(prefix.length))
      for (const folder of page.prefixes) if (folder.length > prefix.length + 1) names.add(folder.slice(prefix.length, -1))
      token = page.next
    } while (token !== undefined)
    // Sorted like posix's list (JavaScript string order), not S3's UTF-8 byte order, so both drivers agree.
    return [...names].sort()
  }

  /** list() with each entry's size and time from the same listing: one request per 1000 entries, not one per entry. */
  async listInfo(path: string): Promise<Array<{ name: string; info: StorageInfo }>> {
    const prefix = this.#folderPrefix(path)
    const entries = new Map<string, StorageInfo>()
    let token: string | undefined
    do {
      const page = await this.#listPage(prefix, { delimiter: '/', ...(token !== undefined ? { token } : {}) }, path)
      for (const object of page.objects) {
        if (object.key.length > prefix.length) entries.set(object.key.slice(prefix.length), { type: 'file', size: object.size, mtimeMs: object.mtimeMs, mode: 0o640 })
      }
      for (const folder of page.prefixes) {
        if (folder.length > prefix.length + 1) entries.set(folder.slice(prefix.length, -1), { type: 'path', size: 0, mtimeMs: 0, mode: 0o750 })
      }
      token = page.next
    } while (token !== undefined)
    return [...entries.keys()].sort().map((name) => ({ name, info: entries.get(name)! }))
  }

  /** One ListObjectsV2 page: keys and common prefixes in full, and the token of the next page if there is one. */
  async #listPage(
    prefix: string,
    options: { delimiter?: string; token?: string; maxKeys?: number },
    path: string,
  ): Promise<{ keys: string[]; prefixes: string[]; objects: S3ListedObject[]; next?: string }> {
    const query: Record<string, string> = { 'list-type': '2', prefix, 'max-keys': String(options.maxKeys ?? BATCH) }
    if (options.delimiter !== undefined) query['delimiter'] = options.delimiter
    if (options.token !== undefined) query['continuation-token'] = options.token
    const response = await this.#request({ method: 'GET', query }, 'FileOpen', 'list', path)
    const xml = response.body.toString('utf8')
    const objects = xmlElements(xml, 'Contents').map((block) => {
      const modified = Date.parse(xmlText(block, 'LastModified') ?? '')
      return { key: xmlText(block, 'Key') ?? '', size: Number(xmlText(block, 'Size') ?? 0), mtimeMs: Number.isNaN(modified) ? 0 : modified }
    })
    const keys = objects.map((object) => object.key)
    const prefixes = xmlElements(xml, 'CommonPrefixes').flatMap((block) => xmlTexts(block, 'Prefix'))
    const next = xmlText(xml, 'IsTruncated') === 'true' ? xmlText(xml, 'NextContinuationToken') : undefined
    return { keys, prefixes, objects, ...(next ? { next } : {}) }
  }

  read(path: string, options?: { missingOk?: false }): Promise<Buffer>
  read(path: string, options: { missingOk: true }): Promise<Buffer | undefined>
  async read(path: string, options?: { missingOk?: boolean }): Promise<Buffer | undefined> {
    try {
      return (await this.client.request({ method: 'GET', key: this.#key(path) })).body
    } catch (error) {
      if (isMissingKey(error)) {
        if (options?.missingOk) return undefined
        this.#missing(path)
      }
      throw this.#fail(error, 'FileRead', 'read', path)
    }
  }

  #missing(path: string): never {
    fail('FileMissing', `unable to open missing file '${this.describe(path)}' for read`)
  }

  async openRead(path: string, range?: ReadRange): Promise<Readable> {
    const key = this.#key(path)
    if (range?.length === 0) {
      // No HTTP range names zero bytes; the file must still exist, as with posix.
      if ((await this.info(path))?.type !== 'file') this.#missing(path)
      return Readable.from([])
    }
    const offset = range?.offset ?? 0
    const end = range?.length !== undefined ? offset + range.length : undefined
    let first: S3Response
    try {
      first = await this.client.request({ method: 'GET', key, headers: rangeHeader(offset, end), expect: [200, 206], stream: true })
    } catch (error) {
      if (isMissingKey(error)) this.#missing(path)
      // A range that starts at or past the end: posix reads nothing there, and so does this.
      if (error instanceof S3RequestError && error.code === 'InvalidRange') return Readable.from([])
      throw this.#fail(error, 'FileRead', 'read', path)
    }
    return new ObjectReader(this.client, key, first, offset, (error) => this.#fail(error, 'FileRead', 'read', path))
  }

  async write(path: string, data: Buffer | string, _options: WriteOptions = {}): Promise<void> {
    const body = typeof data === 'string' ? Buffer.from(data) : data
    await this.#request({ method: 'PUT', key: this.#key(path), headers: this.#createHeaders, body: [body] }, 'FileWrite', 'write', path)
  }

  async openWrite(path: string, options: WriteOptions = {}): Promise<Writable> {
    return new S3Upload({
      client: this.client,
      key: this.#key(path),
      headers: this.#createHeaders,
      partSize: this.#location.uploadChunkSize,
      ...(options.sizeHint !== undefined ? { sizeHint: options.sizeHint } : {}),
      ...(options.partBuffers !== undefined ? { partBuffers: options.partBuffers } : {}),
      fail: (error, action) => this.#fail(error, 'FileWrite', action, path),
    })
  }

  /** CopyObject then DeleteObject (S3 has no rename); larger than one CopyObject allows, a multipart copy. */
  async move(from: string, to: string): Promise<void> {
    const source = this.#key(from)
    const target = this.#key(to)
    const head = await this.#request({ method: 'HEAD', key: source, expect: [200, 404] }, 'FileWrite', 'move', from)
    if (head.status === 404) fail('FileMissing', `unable to move missing file '${this.describe(from)}'`)
    const size = Number(head.headers['content-length'] ?? 0)
    const copySource = `/${this.#location.bucket}/${uriEncode(source, true)}`
    // The copy is pinned to the object the HEAD saw, so a file replaced meanwhile is not half-moved.
    const sourceHeaders = { 'x-amz-copy-source': copySource, 'x-amz-copy-source-if-match': `"${etagOf(head.headers)}"` }
    if (size > this.#copyLimit) {
      await this.#copyInParts(sourceHeaders, target, size, to)
    } else {
      await this.#request({ method: 'PUT', key: target, headers: { ...this.#createHeaders, ...sourceHeaders }, errorIn200: true }, 'FileWrite', 'move', to)
    }
    await this.#request({ method: 'DELETE', key: source, expect: [200, 204, 404] }, 'FileWrite', 'remove', from)
  }

  async #copyInParts(sourceHeaders: Record<string, string>, target: string, size: number, to: string): Promise<void> {
    const created = await this.#request({ method: 'POST', key: target, query: { uploads: '' }, headers: this.#createHeaders }, 'FileWrite', 'move', to)
    const uploadId = xmlText(created.body.toString('utf8'), 'UploadId') ?? ''
    try {
      const etags: string[] = []
      for (let offset = 0, number = 1; offset < size; offset += this.#copyPartSize, number++) {
        const last = Math.min(offset + this.#copyPartSize, size) - 1
        const part = await this.client.request({
          method: 'PUT',
          key: target,
          query: { partNumber: String(number), uploadId },
          headers: { ...sourceHeaders, 'x-amz-copy-source-range': `bytes=${offset}-${last}` },
          errorIn200: true,
        })
        etags.push((xmlText(part.body.toString('utf8'), 'ETag') ?? '').replace(/^"|"$/g, ''))
      }
      const body = `<CompleteMultipartUpload>${etags.map((etag, index) => `<Part><PartNumber>${index + 1}</PartNumber><ETag>"${xmlEncode(etag)}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`
      await this.client.request({ method: 'POST', key: target, query: { uploadId }, body: [Buffer.from(body)], errorIn200: true })
    } catch (error) {
      await this.client.request({ method: 'DELETE', key: target, query: { uploadId }, expect: [200, 204, 404] }).catch(() => undefined)
      throw this.#fail(error, 'FileWrite', 'move', to)
    }
  }

  async remove(path: string): Promise<void> {
    await this.#request({ method: 'DELETE', key: this.#key(path), expect: [200, 204, 404] }, 'FileWrite', 'remove', path)
  }

  /** Folders vanish with their last key: nothing to do. */
  async removeEmptyPath(_path: string): Promise<void> {}

  async removePath(path: string): Promise<void> {
    const prefix = this.#folderPrefix(path)
    // Always the first page again: what was deleted is gone from it, so no continuation token can go stale.
    for (;;) {
      const { keys } = await this.#listPage(prefix, {}, path)
      if (keys.length === 0) return
      const body = Buffer.from(`<Delete><Quiet>true</Quiet>${keys.map((key) => `<Object><Key>${xmlEncode(key)}</Key></Object>`).join('')}</Delete>`)
      // DeleteObjects requires Content-MD5 (S3 refuses it without a body checksum).
      const response = await this.#request(
        { method: 'POST', query: { delete: '' }, headers: { 'content-md5': createHash('md5').update(body).digest('base64') }, body: [body] },
        'FileWrite',
        'remove path',
        path,
      )
      const errors = xmlElements(response.body.toString('utf8'), 'Error')
      if (errors.length > 0) {
        const [firstError = ''] = errors
        fail('FileWrite', `unable to remove path '${this.describe(path)}': ${errors.length} key(s) not deleted, first '${xmlText(firstError, 'Key')}' (${xmlText(firstError, 'Code')})`)
      }
    }
  }

  /** S3 makes an object durable before it answers: nothing to do. */
  async syncPath(_path: string, _options: { missingOk?: boolean } = {}): Promise<void> {}
}

function isMissingKey(error: unknown): boolean {
  return error instanceof S3RequestError && (error.code === 'NoSuchKey' || error.code === 'NotFound')
}

function rangeHeader(offset: number, end: number | undefined): Record<string, string> {
  if (offset === 0 && end === undefined) return {}
  return { range: `bytes=${offset}-${end !== undefined ? end - 1 : ''}` }
}

/**
 * The body of a GET as a Readable that survives a lost connection: when the response breaks off before its last
 * byte, it asks again for the rest (a range from the first byte not yet passed on), pinned with If-Match to the
 * same object, a few times before it fails. Backpressure pauses the response, so memory stays at a few chunks.
 */
class ObjectReader extends Readable {
  readonly #client: S3Client
  readonly #key: string
  readonly #fail: (error: unknown) => WaldenError
  readonly #etag: string
  /** Offset of the next byte to pass on, and of the byte after the last one wanted. */
  #position: number
  readonly #end: number
  #response: IncomingMessage | undefined
  #resumes = 0

  constructor(client: S3Client, key: string, first: S3Response, offset: number, failure: (error: unknown) => WaldenError) {
    super({ highWaterMark: 1024 * 1024 })
    this.#client = client
    this.#key = key
    this.#fail = failure
    this.#etag = etagOf(first.headers)
    this.#position = offset
    this.#end = offset + Number(first.headers['content-length'] ?? 0)
    this.#attach(first.stream!)
  }

  override _read(): void {
    this.#response?.resume()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#response?.destroy()
    this.#response = undefined
    callback(error)
  }

  #attach(response: IncomingMessage): void {
    this.#response = response
    response.on('data', (chunk: Buffer) => {
      this.#position += chunk.length
      if (!this.push(chunk)) response.pause()
    })
    response.on('end', () => {
      if (this.#position >= this.#end) this.push(null)
      else this.#resume(response, new S3RequestError('the response ended early', 'ECONNRESET', undefined, true))
    })
    response.on('error', (error) => this.#resume(response, error))
    // A connection closed before the last byte need not say so with an error.
    response.on('close', () => {
      if (!response.complete) this.#resume(response, new S3RequestError('the response was cut off', 'ECONNRESET', undefined, true))
    })
  }

  /** Asks for the rest after `broken` failed; a late event of a response already given up is ignored. */
  #resume(broken: IncomingMessage, error: unknown): void {
    if (broken !== this.#response || this.destroyed) return
    this.#response = undefined
    broken.removeAllListeners('data').removeAllListeners('end').removeAllListeners('error').removeAllListeners('close')
    broken.on('error', () => undefined)
    broken.destroy()
    if (this.#resumes++ >= READ_RESUMES) {
      this.destroy(this.#fail(error))
      return
    }
    this.#client
      .request({
        method: 'GET',
        key: this.#key,
        headers: { range: `bytes=${this.#position}-${this.#end - 1}`, ...(this.#etag ? { 'if-match': `"${this.#etag}"` } : {}) },
        expect: [206],
        stream: true,
      })
      .then(
        (response) => {
          if (this.destroyed) response.stream?.destroy()
          else this.#attach(response.stream!)
        },
        (failure: unknown) => this.destroy(this.#fail(failure)),
      )
  }
}
