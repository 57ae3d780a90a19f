import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { configLoad } from '../config/config.js'
import { locationDescribe } from '../storage/location.js'
import { repoIndexes, repoLocation, repoSelected } from './repo-storage.js'

const S3 = `
[global]
repo1-path=/srv/repo
repo3-type=s3
repo3-path=/walden
repo3-s3-bucket=backups
repo3-s3-endpoint=http://127.0.0.1:7480
repo3-s3-region=us-east-1
repo3-s3-uri-style=path
repo3-s3-key=AKIDEXAMPLE
repo3-s3-key-secret=very-secret-key
`

function load(argv: string[], text: string, env: Record<string, string> = {}) {
  return configLoad({ argv, env, readFile: () => text })
}

function kindOf(action: () => unknown): { kind: string; message: string } {
  try {
    action()
  } catch (error) {
    assert.ok(error instanceof WaldenError, String(error))
    return { kind: error.kind, message: error.message }
  }
  assert.fail('no error')
}

describe('repositories of a stanza', () => {
  test('repo1 always exists; another index exists when one of its options is set (file, environment or command line)', () => {
    assert.deepEqual(repoIndexes(load(['info', '--stanza=demo'], '')), [1])
    assert.deepEqual(repoIndexes(load(['info', '--stanza=demo'], S3)), [1, 3])
    assert.deepEqual(repoIndexes(load(['info', '--stanza=demo', '--repo2-path=/other'], S3)), [1, 2, 3])
    assert.deepEqual(repoIndexes(load(['info', '--stanza=demo'], '', { WALDEN_REPO4_PATH: '/four' })), [1, 4])
  })

  test('--repo picks one, a list, or all; an unconfigured or malformed one is refused by name', () => {
    assert.deepEqual(repoSelected(load(['info', '--stanza=demo'], S3)), [1, 3])
    assert.deepEqual(repoSelected(load(['info', '--stanza=demo', '--repo=3'], S3)), [3])
    assert.deepEqual(repoSelected(load(['backup', '--stanza=demo', '--repo=3,1,3'], S3)), [3, 1])
    assert.deepEqual(repoSelected(load(['backup', '--stanza=demo', '--repo=all'], S3)), [1, 3])
    const missing = kindOf(() => repoSelected(load(['info', '--stanza=demo', '--repo=2'], S3)))
    assert.equal(missing.kind, 'OptionInvalidValue')
    assert.match(missing.message, /repo2, which is not configured/)
    for (const bad of ['0', '5', 'two', '1;2']) {
      assert.equal(kindOf(() => repoSelected(load(['info', '--stanza=demo', `--repo=${bad}`], S3))).kind, 'OptionInvalidValue', bad)
    }
  })

  test('an S3 location carries every setting, and its description never shows the credentials', () => {
    const location = repoLocation(load(['info', '--stanza=demo'], S3), 3)
    assert.equal(location.type, 's3')
    if (location.type !== 's3') return
    assert.equal(location.bucket, 'backups')
    assert.equal(location.uriStyle, 'path')
    assert.equal(location.secret, 'very-secret-key')
    assert.equal(location.uploadChunkSize, 8 * 1024 * 1024)
    assert.equal(location.verifyTls, true)
    const text = locationDescribe(location)
    assert.doesNotMatch(text, /very-secret-key|AKIDEXAMPLE/)
    assert.match(text, /s3:\/\/backups\/walden/)
  })

  test('an S3 repository without a bucket, or without keys in shared mode, names the missing option', () => {
    const noBucket = kindOf(() => repoLocation(load(['info', '--stanza=demo'], S3.replace('repo3-s3-bucket=backups\n', '')), 3))
    assert.equal(noBucket.kind, 'OptionRequired')
    assert.match(noBucket.message, /'repo3-s3-bucket'/)
    const noSecret = kindOf(() => repoLocation(load(['info', '--stanza=demo'], S3.replace('repo3-s3-key-secret=very-secret-key\n', '')), 3))
    assert.match(noSecret.message, /'repo3-s3-key-secret'/)
    const auto = repoLocation(load(['info', '--stanza=demo'], S3.replace('repo3-s3-key-secret=very-secret-key\n', 'repo3-s3-key-type=auto\n')), 3)
    assert.equal(auto.type === 's3' && auto.keyType, 'auto')
  })

  test('two repositories at the same place are refused, naming both (a lone repo2 secret would otherwise alias repo1)', () => {
    const same = kindOf(() => repoIndexes(load(['info', '--stanza=demo'], '', { WALDEN_REPO2_CIPHER_PASS: 'x' })))
    assert.equal(same.kind, 'OptionInvalidValue')
    assert.match(same.message, /repo1 and repo2 are the same repository \('\/var\/lib\/walden'\)/)
    const bucket = kindOf(() => repoIndexes(load(['info', '--stanza=demo'], S3.replaceAll('repo3-', 'repo4-') + S3.replace('[global]\nrepo1-path=/srv/repo\n', ''))))
    assert.match(bucket.message, /repo3 and repo4 are the same repository \(bucket 'backups', path '\/walden'\)/)
    assert.deepEqual(repoIndexes(load(['info', '--stanza=demo'], S3.replaceAll('repo3-', 'repo4-') + S3.replace('[global]\nrepo1-path=/srv/repo\n', '').replace('repo3-path=/walden', 'repo3-path=/other'))), [1, 3, 4])
  })

  test('S3 secrets are refused on the command line', () => {
    const refused = kindOf(() => load(['info', '--stanza=demo', '--repo2-s3-key-secret=oops'], S3))
    assert.equal(refused.kind, 'OptionInvalid')
    assert.match(refused.message, /secret/)
  })
})
