import assert from 'node:assert/strict'
import { test } from 'node:test'
import { amzDate, canonicalQuery, EMPTY_SHA256, signatureV4, uriEncode } from './s3-sign.js'

// The worked examples of AWS's "Signature Calculations for the Authorization Header" page for S3: its example
// credentials, bucket, time and expected signatures.
const credentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }
const date = new Date('2013-05-24T00:00:00Z')
const host = 'examplebucket.s3.amazonaws.com'

test('SigV4: the GET Object example (a Range header is signed)', () => {
  const authorization = signatureV4({
    method: 'GET',
    path: '/test.txt',
    query: {},
    headers: { host, range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': amzDate(date) },
    region: 'us-east-1',
    date,
    credentials,
  })
  assert.equal(
    authorization,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ' +
      'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  )
})

test('SigV4: the GET Bucket (list objects) example (query parameters in canonical order)', () => {
  const authorization = signatureV4({
    method: 'GET',
    path: '/',
    query: { prefix: 'J', 'max-keys': '2' },
    headers: { host, 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': amzDate(date) },
    region: 'us-east-1',
    date,
    credentials,
  })
  assert.match(authorization, /Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7$/)
})

test('SigV4: a different secret, region or payload changes the signature', () => {
  const base = {
    method: 'PUT',
    path: '/k',
    query: {},
    headers: { host, 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': amzDate(date) },
    region: 'us-east-1',
    date,
    credentials,
  }
  const signature = (input: typeof base) => signatureV4(input).split('Signature=')[1]
  const reference = signature(base)
  assert.notEqual(signature({ ...base, credentials: { ...credentials, secretAccessKey: 'other' } }), reference)
  assert.notEqual(signature({ ...base, region: 'eu-west-1' }), reference)
  assert.notEqual(signature({ ...base, headers: { ...base.headers, 'x-amz-content-sha256': 'ab'.repeat(32) } }), reference)
  assert.equal(signature(base), reference)
})

test('keys and query values are encoded as SigV4 wants (RFC 3986, slash kept in paths)', () => {
  assert.equal(uriEncode("a b/ü!'()*~.-_", true), "a%20b/%C3%BC%21%27%28%29%2A~.-_")
  assert.equal(uriEncode('a/b'), 'a%2Fb')
  assert.equal(canonicalQuery({ uploads: '', 'list-type': '2', prefix: 'a b/' }), 'list-type=2&prefix=a%20b%2F&uploads=')
  assert.equal(amzDate(new Date('2026-01-02T03:04:05.678Z')), '20260102T030405Z')
})
