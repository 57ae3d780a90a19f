// AWS Signature Version 4 for S3 requests: the canonical request, the string to sign and the Authorization header,
// written from AWS's published description of the algorithm. Pure functions, so the unit test can check them against
// the worked examples in AWS's documentation without any server.

import { createHash, createHmac } from 'node:crypto'

export interface S3Credentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

export interface SignInput {
  method: string
  /** The request path exactly as sent: already URI-encoded, with '/' kept between segments. */
  path: string
  query: Readonly<Record<string, string>>
  /** Every header to sign, lower-case names; must include host and x-amz-content-sha256. */
  headers: Readonly<Record<string, string>>
  region: string
  /** The request time; x-amz-date is derived from it and must be sent as headers['x-amz-date']. */
  date: Date
  credentials: S3Credentials
}

/** SHA-256 of an empty payload, which every GET, HEAD and DELETE signs. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

/** `20130524T000000Z`: the x-amz-date form of a time. */
export function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

/**
 * Percent-encodes per RFC 3986 as SigV4 wants it: everything but A-Z a-z 0-9 - . _ ~ (and '/' when encoding a key
 * into a path). encodeURIComponent leaves ! ' ( ) * alone, which SigV4 encodes.
 */
export function uriEncode(text: string, keepSlash = false): string {
  const encoded = encodeURIComponent(text).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)
  return keepSlash ? encoded.replaceAll('%2F', '/') : encoded
}

/** The query string in canonical order; the same string is sent, so what was signed is what the server sees. */
export function canonicalQuery(query: Readonly<Record<string, string>>): string {
  return Object.keys(query)
    .map((name) => [uriEncode(name), uriEncode(query[name]!)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&')
}

// The signing key depends only on the secret, the day and the region, so one process computes it once a day instead
// of four HMACs per request. Keyed by a hash of the secret, never the secret itself.
let signingKeyCache: { id: string; key: Buffer } | undefined

function signingKey(secret: string, day: string, region: string): Buffer {
  const id = createHash('sha256').update(`${secret}\0${day}\0${region}`).digest('hex')
  if (signingKeyCache?.id === id) return signingKeyCache.key
  const dateKey = createHmac('sha256', `AWS4${secret}`).update(day).digest()
  const regionKey = createHmac('sha256', dateKey).update(region).digest()
  const serviceKey = createHmac('sha256', regionKey).update('s3').digest()
  const key = createHmac('sha256', serviceKey).update('aws4_request').digest()
  signingKeyCache = { id, key }
  return key
}

/** The Authorization header value for a request. */
export function signatureV4(input: SignInput): string {
  const names = Object.keys(input.headers).sort()
  const canonicalHeaders = names.map((name) => `${name}:${input.headers[name]!.trim().replace(/\s+/g, ' ')}\n`).join('')
  const signedHeaders = names.join(';')
  const payloadHash = input.headers['x-amz-content-sha256'] ?? EMPTY_SHA256
  const canonicalRequest = [input.method, input.path, canonicalQuery(input.query), canonicalHeaders, signedHeaders, payloadHash].join('\n')

  const time = amzDate(input.date)
  const day = time.slice(0, 8)
  const scope = `${day}/${input.region}/s3/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', time, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n')
  const signature = createHmac('sha256', signingKey(input.credentials.secretAccessKey, day, input.region)).update(stringToSign).digest('hex')
  return `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`
}
