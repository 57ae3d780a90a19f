import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import type { S3Location } from './location.js'
import { endpointResolve, S3RequestError, s3Failure } from './s3-client.js'

const base: S3Location = {
  type: 's3', bucket: 'bkt', endpoint: '', region: 'us-east-1', path: '/', keyType: 'shared', key: 'k', secret: 's',
  uriStyle: 'host', verifyTls: true, uploadChunkSize: 5 << 20,
}
const resolve = (endpoint: string, more: Partial<S3Location> = {}) => endpointResolve({ ...base, endpoint, ...more })

test('endpoint: http:// is plain HTTP, anything else HTTPS; the port from the endpoint, else repo-storage-port', () => {
  assert.deepEqual(resolve('http://127.0.0.1:7480', { uriStyle: 'path' }), {
    protocol: 'http:', hostname: '127.0.0.1', port: 7480, host: '127.0.0.1:7480', bucketPath: '/bkt',
  })
  assert.deepEqual(resolve('s3.eu-west-1.amazonaws.com'), {
    protocol: 'https:', hostname: 'bkt.s3.eu-west-1.amazonaws.com', port: 443, host: 'bkt.s3.eu-west-1.amazonaws.com', bucketPath: '',
  })
  assert.equal(resolve('minio.local', { port: 9000 }).port, 9000)
  assert.equal(resolve('minio.local', { port: 9000 }).host, 'bkt.minio.local:9000')
  assert.equal(resolve('minio.local:9443', { port: 9000 }).port, 9443)
  assert.equal(resolve('https://minio.local', { uriStyle: 'path' }).host, 'minio.local')
  assert.equal(resolve('http://[::1]:7480', { uriStyle: 'path' }).hostname, '::1')
  assert.equal(resolve('http://[::1]:7480', { uriStyle: 'path' }).host, '[::1]:7480')
})

test('endpoint: an unusable one is a clear option error', () => {
  for (const endpoint of ['ftp://host', 'http://', 'ho st:1:2']) {
    assert.throws(() => resolve(endpoint), (error: unknown) => error instanceof WaldenError && error.kind === 'OptionInvalidValue')
  }
})

test('a failure of one of the stanza\'s repositories names it and its options; the secret never appears', () => {
  const secret = 'wJalrXUtnFEMI-K7MDENG-secret'
  const denied = new S3RequestError('HTTP 403 SignatureDoesNotMatch', 'SignatureDoesNotMatch', 403, false)
  const named = s3Failure(denied, 'FileOpen', 'list', 's3://bkt/x', { ...base, secret, repo: 2 }, 'http://gw:7480')
  assert.equal(named.message, "repo2: access denied by http://gw:7480 to bucket 'bkt' (SignatureDoesNotMatch)")
  assert.match(named.hint ?? '', /check repo2-s3-key and repo2-s3-key-secret \(and repo2-s3-token/)
  const plain = s3Failure(denied, 'FileOpen', 'list', 's3://bkt/x', { ...base, secret }, 'http://gw:7480')
  assert.equal(plain.message, "access denied by http://gw:7480 to bucket 'bkt' (SignatureDoesNotMatch)")
  const refused = Object.assign(new S3RequestError('connect ECONNREFUSED 127.0.0.1:9', 'ECONNREFUSED', undefined, true), { attempts: 7 })
  const unreachable = s3Failure(refused, 'FileOpen', 'list', 's3://bkt/x', { ...base, secret, repo: 1 }, 'http://127.0.0.1:9')
  assert.equal(unreachable.message, "repo1: unable to list 's3://bkt/x': connect ECONNREFUSED 127.0.0.1:9 (after 7 attempts)")
  for (const error of [named, plain, unreachable]) assert.ok(!`${error.message}${error.hint}`.includes(secret))
})
