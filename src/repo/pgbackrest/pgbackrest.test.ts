import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import { pgbrDecrypt, PgbrDecryptStream } from './cipher.js'
import { pgbrFileKind, pgbrGet, pgbrIniParse } from './ini.js'

// archive.info as pgBackRest 2.45 wrote it for a PostgreSQL 15 stanza (its checksum is pgBackRest's own).
const ARCHIVE_INFO = `[backrest]
backrest-format=5
backrest-version="2.45"

[db]
db-id=1
db-system-id=7715121976775020334
db-version="15"

[db:history]
1={"db-id":7715121976775020334,"db-version":"15"}

[backrest]
backrest-checksum="30ce509349b03768294c77f66822451b599abfa3"
`

describe('pgBackRest info files', () => {
  test('a file pgBackRest wrote passes its checksum; system identifiers keep all their digits', () => {
    const parsed = pgbrIniParse(ARCHIVE_INFO)
    assert.ok('ini' in parsed, JSON.stringify(parsed))
    assert.equal(pgbrGet(parsed.ini, 'db', 'db-system-id'), '7715121976775020334')
    assert.deepEqual(pgbrGet(parsed.ini, 'db:history', '1'), { 'db-id': '7715121976775020334', 'db-version': '15' })
    assert.equal(pgbrGet(parsed.ini, 'backrest', 'backrest-format'), 5)
  })

  test('one changed value, or a missing checksum, is refused', () => {
    const changed = pgbrIniParse(ARCHIVE_INFO.replace('db-version="15"\n', 'db-version="16"\n'))
    assert.ok('problem' in changed)
    assert.match(changed.problem, /^does not match its checksum \([0-9a-f]{40}, recorded "30ce5093/)
    const truncated = pgbrIniParse(ARCHIVE_INFO.slice(0, ARCHIVE_INFO.indexOf('[backrest]\nbackrest-checksum')))
    assert.deepEqual(truncated, { problem: 'has no backrest-checksum (the file is incomplete)' })
  })

  test('the first bytes tell pgBackRest files from walden documents', () => {
    assert.equal(pgbrFileKind(Buffer.from(ARCHIVE_INFO)), 'ini')
    assert.equal(pgbrFileKind(Buffer.from('Salted__12345678')), 'encrypted')
    assert.equal(pgbrFileKind(Buffer.from('{"format":1,"checksum":"x","content":{}}')), undefined)
  })
})

/** `openssl enc` as pgBackRest calls it: aes-256-cbc, EVP_BytesToKey with SHA-1; a fixed salt keeps the wrong-passphrase case from passing the padding check by chance (1 in 256). */
function opensslEncrypt(plain: Buffer, passphrase: string): Buffer {
  const result = spawnSync('openssl', ['enc', '-aes-256-cbc', '-md', 'sha1', '-S', '5a1e5a1e00c0ffee', '-pass', 'stdin'], {
    input: Buffer.concat([Buffer.from(`${passphrase}\n`), plain]),
  })
  // -pass stdin reads the first line; the data then comes from the same stdin.
  assert.equal(result.status, 0, result.stderr.toString())
  // OpenSSL 3 leaves out the "Salted__" header when the salt is given (-S); pgBackRest's files have it.
  return result.stdout.subarray(0, 8).toString('latin1') === 'Salted__'
    ? result.stdout
    : Buffer.concat([Buffer.from('Salted__', 'latin1'), Buffer.from('5a1e5a1e00c0ffee', 'hex'), result.stdout])
}

describe('pgBackRest encryption (aes-256-cbc)', () => {
  const plain = Buffer.from(Array.from({ length: 100_000 }, (_value, index) => index % 251))
  const sealed = opensslEncrypt(plain, 'correct horse')

  test('what openssl encrypts decrypts, whole and streamed in small pieces', async () => {
    assert.ok(pgbrDecrypt('correct horse', sealed, 'test file').equals(plain))
    const pieces = Array.from({ length: Math.ceil(sealed.length / 7) }, (_value, index) => sealed.subarray(index * 7, index * 7 + 7))
    const streamed = await buffer(Readable.from(pieces).pipe(new PgbrDecryptStream('correct horse', 'test file')))
    assert.ok(streamed.equals(plain))
  })

  test('a wrong passphrase or a file that is not encrypted is a Crypto error naming the file', () => {
    assert.throws(
      () => pgbrDecrypt('wrong horse', sealed, "'x/backup.info'"),
      (error: unknown) => error instanceof WaldenError && error.kind === 'Crypto' && /^unable to decrypt 'x\/backup\.info': wrong passphrase or damaged file/.test(error.message),
    )
    assert.throws(() => pgbrDecrypt('correct horse', Buffer.from('[backrest]\nbackrest-format=5\n'), 'f'), /it is not encrypted \(no Salted__ header\)/)
  })
})
