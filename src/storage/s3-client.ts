// A lean S3 client on node:http(s): SigV4-signed requests with keep-alive connections, bounded retries of transient
// failures, and S3's error codes turned into walden's errors. It speaks only the dozen requests the S3 driver needs,
// which keeps it small enough to load on every archive-push and to reason about: request bodies are always Buffers
// already in memory (walden never streams an upload of unknown length in one request), so any attempt can be replayed.

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { rootCertificates } from 'node:tls'
import { errnoCode, WaldenError } from '../common/errors.js'
import type { ErrorKind } from '../common/errors.js'
import type { S3Location } from './location.js'
import { amzDate, canonicalQuery, EMPTY_SHA256, signatureV4, uriEncode } from './s3-sign.js'
import type { S3Credentials } from './s3-sign.js'
import { xmlText } from './s3-xml.js'

export interface S3ClientOptions {
  /** Attempts after the first for a transient failure (default 6). */
  retries?: number
  /**
   * Delay before the first retry in ms, doubled for each further one, of which a random 50-100% is waited (default
   * 250: with 6 retries a failure persisting 8-16 s is reported, one that passes sooner goes unnoticed).
   */
  retryDelayMs?: number
  /** A request (or a response body) idle this long fails as a timeout, which is retried (default 60 s). */
  timeoutMs?: number
}

export interface S3Request {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE'
  /** Object key, without a leading '/'; absent for a request on the bucket itself (list, multi-delete). */
  key?: string
  query?: Readonly<Record<string, string>>
  headers?: Readonly<Record<string, string>>
  /** The request body as chunks in memory, sent as they are (no copy) and again on a retry. */
  body?: readonly Buffer[]
  /** Status codes that are answers rather than failures (default 200, 204 and 206). */
  expect?: readonly number[]
  /** Hand back the response body as a stream instead of reading it. */
  stream?: boolean
  /** A 200 whose body is an <Error> document is a failure: S3 does this for CopyObject and CompleteMultipartUpload. */
  errorIn200?: boolean
}

export interface S3Response {
  status: number
  headers: IncomingHttpHeaders
  /** The body read in full (empty when `stream` was asked for). */
  body: Buffer
  /** The body as a stream, when `stream` was asked for. */
  stream?: IncomingMessage
}

/** A failed request as S3 (or the network) reported it; the driver turns it into a WaldenError naming the file. */
export class S3RequestError extends Error {
  readonly status: number | undefined
  /** S3's error code (NoSuchKey, SlowDown, ...) or the system error code (ECONNRESET, ...). */
  readonly code: string
  readonly transient: boolean
  attempts = 1

  constructor(message: string, code: string, status: number | undefined, transient: boolean) {
    super(message)
    this.name = 'S3RequestError'
    this.code = code
    this.status = status
    this.transient = transient
  }
}

const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504])
const TRANSIENT_CODES = new Set(['RequestTimeout', 'SlowDown', 'InternalError', 'ServiceUnavailable', 'Throttling'])
// Connection-level failures that a new attempt on a new connection may not meet: resets (a gateway restarting, a
// keep-alive connection the server closed just as it was reused), refusals during a restart, and timeouts.
const TRANSIENT_NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'S3Timeout'])

// OpenSSL's verdicts on a server certificate: not transient, and worth a hint naming the options.
const TLS_CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED',
])

/** Where requests go, resolved once from the location. */
interface Endpoint {
  protocol: 'http:' | 'https:'
  hostname: string
  port: number
  /** The Host header: host[:port], with the bucket in front for host-style addressing. */
  host: string
  /** Path of the bucket: '/bucket' for path style, '' for host style. */
  bucketPath: string
}

/**
 * Resolves the endpoint as pgBackRest does: `http://host[:port]` is plain HTTP, anything else HTTPS; the port comes
 * from the endpoint, else repoN-storage-port, else the protocol's default.
 */
export function endpointResolve(location: S3Location): Endpoint {
  const text = location.endpoint.trim()
  const explicit = /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
  let url: URL
  try {
    url = new URL(explicit ? text : `https://${text}`)
  } catch {
    throw new WaldenError('OptionInvalidValue', `S3 endpoint '${location.endpoint}' is not a host name, host:port or URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WaldenError('OptionInvalidValue', `S3 endpoint '${location.endpoint}' must use http:// or https://, or name only the host`)
  }
  const protocol = url.protocol
  const defaultPort = protocol === 'http:' ? 80 : 443
  const port = url.port !== '' ? Number(url.port) : (location.port ?? defaultPort)
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const pathStyle = location.uriStyle === 'path'
  const hostPart = (pathStyle ? '' : `${location.bucket}.`) + url.hostname
  return {
    protocol,
    hostname: pathStyle ? hostname : `${location.bucket}.${hostname}`,
    port,
    host: port === defaultPort ? hostPart : `${hostPart}:${port}`,
    bucketPath: pathStyle ? `/${uriEncode(location.bucket)}` : '',
  }
}

type CredentialSource = () => Promise<S3Credentials>

/**
 * Credentials as configured: the key, secret and token for keyType 'shared'; for 'auto' the AWS SDK's default
 * chain (environment, shared profile files, web identity, container and instance metadata), which refreshes
 * temporary credentials itself. The chain is loaded only for 'auto', by a module name esbuild does not bundle, so
 * archive-push with a shared key never parses it.
 */
function credentialSource(location: S3Location): CredentialSource {
  if (location.keyType === 'shared') {
    const credentials: S3Credentials = {
      accessKeyId: location.key ?? '',
      secretAccessKey: location.secret ?? '',
      ...(location.token !== undefined ? { sessionToken: location.token } : {}),
    }
    return () => Promise.resolve(credentials)
  }
  let provider: Promise<CredentialSource> | undefined
  return async () => {
    provider ??= (async () => {
      const moduleName = '@aws-sdk/credential-provider-node'
      const chain = (await import(moduleName)) as { defaultProvider: () => () => Promise<S3Credentials> }
      return chain.defaultProvider()
    })()
    try {
      return await (await provider)()
    } catch (error) {
      throw new WaldenError('OptionInvalidValue', `no AWS credentials found for repository s3-key-type=auto: ${(error as Error).message}`, {
        hint: 'provide credentials through the environment, a shared profile or an instance role, or set s3-key-type=shared with s3-key and s3-key-secret.',
      })
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export class S3Client {
  // Private (#): the location holds the secret, and util.inspect shows public fields of an object it prints.
  readonly #location: S3Location
  readonly endpoint: Endpoint
  readonly #credentials: CredentialSource
  readonly #agent: HttpAgent | HttpsAgent
  readonly #retries: number
  readonly #retryDelayMs: number
  readonly #timeoutMs: number

  constructor(location: S3Location, options: S3ClientOptions = {}) {
    this.#location = location
    this.endpoint = endpointResolve(location)
    this.#credentials = credentialSource(location)
    this.#retries = options.retries ?? 6
    this.#retryDelayMs = options.retryDelayMs ?? 250
    this.#timeoutMs = options.timeoutMs ?? 60_000
    // Keep-alive connections: a backup sends thousands of requests, and a TLS handshake per request would cost more
    // than many of the small files it carries. Idle sockets are unreferenced by the agent, so they never hold the
    // process open.
    const agentOptions = { keepAlive: true, maxSockets: 64, scheduling: 'lifo' as const }
    if (this.endpoint.protocol === 'http:') {
      this.#agent = new HttpAgent(agentOptions)
    } else {
      let ca: string[] | undefined
      if (location.caFile !== undefined) {
        try {
          ca = [...rootCertificates, readFileSync(location.caFile, 'utf8')]
        } catch (error) {
          throw new WaldenError('OptionInvalidValue', `unable to read the storage CA file '${location.caFile}': ${errnoCode(error) ?? (error as Error).message}`)
        }
      }
      this.#agent = new HttpsAgent({ ...agentOptions, rejectUnauthorized: location.verifyTls, ...(ca ? { ca } : {}) })
    }
  }

  /** The request path of a key (or of the bucket), URI-encoded as sent and as signed. */
  pathOf(key: string | undefined): string {
    if (key === undefined) return this.endpoint.bucketPath === '' ? '/' : this.endpoint.bucketPath
    return `${this.endpoint.bucketPath}/${uriEncode(key, true)}`
  }

  /** Sends a request, retrying transient failures with exponential backoff; throws S3RequestError otherwise. */
  async request(request: S3Request): Promise<S3Response> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#attempt(request)
      } catch (error) {
        if (error instanceof WaldenError) throw error // already worded for the user (no credentials found)
        const failure = error instanceof S3RequestError ? error : networkError(error)
        failure.attempts = attempt
        if (!failure.transient || attempt > this.#retries) throw failure
        // Full jitter on top of the doubling step keeps parallel workers from retrying in lock step.
        const step = this.#retryDelayMs * 2 ** (attempt - 1)
        await sleep(step / 2 + Math.random() * (step / 2))
      }
    }
  }

  async #attempt(request: S3Request): Promise<S3Response> {
    const credentials = await this.#credentials()
    const body = request.body ?? []
    const length = body.reduce((total, chunk) => total + chunk.length, 0)
    let payloadHash = EMPTY_SHA256
    if (length > 0) {
      const hash = createHash('sha256')
      for (const chunk of body) hash.update(chunk)
      payloadHash = hash.digest('hex')
    }
    const date = new Date()
    const headers: Record<string, string> = {
      host: this.endpoint.host,
      'x-amz-date': amzDate(date),
      'x-amz-content-sha256': payloadHash,
      ...(credentials.sessionToken !== undefined ? { 'x-amz-security-token': credentials.sessionToken } : {}),
      ...lowerCaseKeys(request.headers ?? {}),
    }
    if (length > 0 || request.method === 'PUT' || request.method === 'POST') headers['content-length'] = String(length)
    const path = this.pathOf(request.key)
    const query = request.query ?? {}
    headers['authorization'] = signatureV4({ method: request.method, path, query, headers, region: this.#location.region, date, credentials })
    const queryString = canonicalQuery(query)

    const outgoing = (this.endpoint.protocol === 'http:' ? httpRequest : httpsRequest)({
      method: request.method,
      hostname: this.endpoint.hostname,
      port: this.endpoint.port,
      path: queryString === '' ? path : `${path}?${queryString}`,
      headers,
      agent: this.#agent,
    })
    const answered = responseOf(outgoing, this.#timeoutMs)
    sendBody(outgoing, body)
    const response = await answered

    const status = response.statusCode ?? 0
    const expected = (request.expect ?? [200, 204, 206]).includes(status)
    if (expected && request.stream) return { status, headers: response.headers, body: Buffer.alloc(0), stream: response }
    const content = await readBody(response)
    if (expected) {
      if (request.errorIn200 && status === 200 && /<Error>/.test(content.subarray(0, 512).toString('utf8'))) throw responseError(status, content)
      return { status, headers: response.headers, body: content }
    }
    throw responseError(status, content)
  }
}

/**
 * Writes a request body, and ends the request only once the body's last write has completed, so that the end is a
 * write of its own. Node 20's Writable keeps the callback of a socket's latest write, and with it the whole batch of
 * chunks a writev sent, until the next write on that socket: a keep-alive socket resting in the agent's pool held on
 * to the last part it had sent (measured: a third part alive per upload at times). The end's empty write takes its
 * place. No closure is made in a scope that sees the body, for the same reason.
 */
function sendBody(outgoing: ClientRequest, body: readonly Buffer[]): void {
  const last = body.length - 1
  if (last < 0) {
    outgoing.end()
    return
  }
  for (let index = 0; index < last; index++) outgoing.write(body[index]!)
  outgoing.write(body[last]!, endOnSuccess(outgoing))
}

function endOnSuccess(outgoing: ClientRequest): (error?: Error | null) => void {
  // On a failed write the request emits 'error', which fails the attempt.
  return (error) => {
    if (!error) outgoing.end()
  }
}

/** The response to a request, or its failure; a request idle for `timeoutMs` fails as a (transient) timeout. */
function responseOf(outgoing: ClientRequest, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    outgoing.setTimeout(timeoutMs, () => {
      outgoing.destroy(new S3RequestError(`no answer within ${timeoutMs / 1000} s`, 'S3Timeout', undefined, true))
    })
    outgoing.on('response', resolve)
    outgoing.on('error', reject)
  })
}

/** Reads a whole response body; a connection lost mid-body fails like a lost request (and is retried). */
function readBody(response: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    response.on('data', (chunk: Buffer) => chunks.push(chunk))
    response.on('end', () => resolve(Buffer.concat(chunks)))
    response.on('error', reject)
    // A connection closed before the last byte, with or without an error event: a cut-off answer, retried.
    response.on('close', () => {
      if (!response.complete) reject(Object.assign(new Error('the response was cut off'), { code: 'ECONNRESET' }))
    })
  })
}

function responseError(status: number, body: Buffer): S3RequestError {
  const text = body.toString('utf8')
  // RGW answers with an empty <Message>, and HEAD has no body at all: the code, or else the status, says what failed.
  const code = xmlText(text, 'Code') || (status === 404 ? 'NotFound' : status === 403 ? 'AccessDenied' : `HTTP${status}`)
  const message = xmlText(text, 'Message') ?? ''
  const transient = TRANSIENT_STATUS.has(status) || TRANSIENT_CODES.has(code)
  return new S3RequestError(`HTTP ${status} ${code}${message ? `: ${message}` : ''}`, code, status, transient)
}

function networkError(error: unknown): S3RequestError {
  if (error instanceof S3RequestError) return error
  const code = errnoCode(error) ?? 'NetworkError'
  const message = (error as Error)?.message ?? String(error)
  return new S3RequestError(message, code, undefined, TRANSIENT_NETWORK.has(code) || /socket hang up/.test(message))
}

function lowerCaseKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]))
}

/** The ETag of a response without its quotes. */
export function etagOf(headers: IncomingHttpHeaders): string {
  return String(headers.etag ?? '').replace(/^"|"$/g, '')
}

/** How a failed request reads to the user, by what walden was doing; secrets never appear (only codes do). */
export function s3Failure(error: unknown, kind: ErrorKind, action: string, target: string, location: S3Location, endpointText: string): WaldenError {
  if (error instanceof WaldenError) return error
  const failure = error instanceof S3RequestError ? error : networkError(error)
  // With several repositories, which repository's options to check matters as much as which options.
  const names = (...options: string[]): string => {
    const named = location.repo !== undefined ? options.map((option) => `repo${location.repo}-${option}`) : options
    return `${location.repo !== undefined ? '' : 'the repository options '}${named.slice(0, -1).join(', ')} and ${named.at(-1)}`
  }
  if (failure.code === 'NoSuchBucket') {
    return new WaldenError('RepoInvalid', `bucket '${location.bucket}' does not exist at ${endpointText}`, {
      hint: `create the bucket, or check ${names('s3-bucket', 's3-endpoint', 's3-uri-style')}.`,
    })
  }
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'AuthorizationHeaderMalformed'].includes(failure.code)) {
    return new WaldenError('OptionInvalidValue', `access denied by ${endpointText} to bucket '${location.bucket}' (${failure.code})`, {
      hint: `check ${names('s3-key', 's3-key-secret')} (and ${location.repo !== undefined ? `repo${location.repo}-` : ''}s3-token for temporary credentials), and that the key may use this bucket.`,
    })
  }
  const attempts = failure.attempts > 1 ? ` (after ${failure.attempts} attempts)` : ''
  return new WaldenError(kind, `unable to ${action} '${target}': ${failure.message}${attempts}`, {
    ...(TLS_CERTIFICATE_CODES.has(failure.code) || failure.code.startsWith('ERR_TLS_CERT')
      ? { hint: "the endpoint's certificate is not trusted: set the repository option storage-ca-file to the CA that signed it (or storage-verify-tls=n, which gives up the check)." }
      : {}),
  })
}
