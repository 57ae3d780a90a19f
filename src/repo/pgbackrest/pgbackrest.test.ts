import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { after, describe, test } from 'node:test'
import { WaldenError } from '../../common/errors.js'
import { PosixStorage } from '../../storage/posix.js'
import { pgbrDecrypt, PgbrDecryptStream } from './cipher.js'
import { pgbrFileKind, pgbrGet, pgbrIniParse } from './ini.js'
import { pgbrManifestLoad } from './info.js'

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

/** An info file as pgBackRest writes it: sections in order, values as JSON text, the SHA-1 over them last. */
function iniFile(sections: Record<string, Record<string, string>>): string {
  // pgBackRest writes no empty section.
  const all = Object.fromEntries(
    Object.entries({ backrest: { 'backrest-format': '5', 'backrest-version': '"2.45"' }, ...sections }).filter(([, keys]) => Object.keys(keys).length > 0),
  )
  const rendered = Object.entries(all)
    .map(([name, keys]) => `${JSON.stringify(name)}:{${Object.entries(keys).map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`)
    .join(',')
  const checksum = createHash('sha1').update(`{${rendered}}`).digest('hex')
  const body = Object.entries(all)
    .map(([name, keys]) => `[${name}]\n${Object.entries(keys).map(([key, value]) => `${key}=${value}`).join('\n')}\n`)
    .join('\n')
  return `${body}\n[backrest]\nbackrest-checksum="${checksum}"\n`
}

describe('pgBackRest manifests walden refuses', () => {
  const root = mkdtempSync(join(tmpdir(), 'walden-pgbr-'))
  after(() => rmSync(root, { recursive: true, force: true }))
  const label = '20261203-165337F'
  const storage = new PosixStorage(root)

  function manifest(options: Record<string, string>, files: Record<string, string>): void {
    mkdirSync(join(root, 'backup', 'demo', label), { recursive: true })
    writeFileSync(join(root, 'backup', 'demo', 'backup.info'), iniFile({ db: { 'db-id': '1', 'db-system-id': '7715121976775020334', 'db-version': '"15"' } }))
    writeFileSync(
      join(root, 'backup', 'demo', label, 'backup.manifest'),
      iniFile({
        backup: {
          'backup-archive-start': '"000000010000000000000003"',
          'backup-archive-stop': '"000000010000000000000003"',
          'backup-label': `"${label}"`,
          'backup-lsn-start': '"0/3000028"',
          'backup-lsn-stop': '"0/3000100"',
          'backup-timestamp-start': '1796316817',
          'backup-timestamp-stop': '1796316820',
          'backup-type': '"full"',
        },
        'backup:db': { 'db-id': '1', 'db-system-id': '7715121976775020334', 'db-version': '"15"' },
        'backup:option': { 'option-compress-type': '"lz4"', ...options },
        'backup:target': { pg_data: '{"path":"/var/lib/postgresql/15/main","type":"path"}' },
        'target:file': files,
      }),
    )
  }
  const refused = async (pattern: RegExp, kind: string): Promise<void> => {
    await assert.rejects(pgbrManifestLoad(storage, 'demo', label), (error: unknown) => error instanceof WaldenError && error.kind === kind && pattern.test(error.message))
  }

  test('an unknown compression, block incremental and a path climbing out of the data folder are refused in one line', async () => {
    manifest({ 'option-compress-type': '"xz"' }, {})
    await refused(/^backup 20261203-165337F is compressed with xz, which walden cannot read$/, 'FeatureNotSupported')
    // bz2 is read: this manifest gets past its compression and stops only at its missing backup_label.
    manifest({ 'option-compress-type': '"bz2"' }, {})
    await refused(/^backup 20261203-165337F has no backup_label$/, 'FileMissing')
    manifest({}, { 'pg_data/base/1/112': '{"bi":1,"checksum":"9890dd22d170e0de4f4d9404aba2557a33b9909b","size":8192,"timestamp":1796316815}' })
    await refused(/was made with block incremental \(repo1-block\), which walden cannot read$/, 'FeatureNotSupported')
    manifest({}, { 'pg_data/../../etc/cron.d/x': '{"checksum":"9890dd22d170e0de4f4d9404aba2557a33b9909b","size":8192,"timestamp":1796316815}' })
    await refused(/manifest names 'pg_data\/\.\.\/\.\.\/etc\/cron\.d\/x', which is not a path inside the data folder$/, 'Format')
  })
})
