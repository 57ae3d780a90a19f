import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { configLoad } from '../config/config.js'
import { CIPHER_MAGIC, openBuffer, sealBuffer, WRAP_REPO_KEY, WRAP_X25519, x25519Raw } from '../io/cipher.js'
import { cipherAdopt, cipherConfigure, cipherJobState, cipherOpenKeys, cipherRecordCreate, cipherSealData, cipherSealMeta } from './cipher.js'
import type { CipherRecord } from './cipher.js'

const dir = mkdtempSync(join(tmpdir(), 'walden-cipher-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function keyFiles(name: string): { privatePath: string; publicPath: string } {
  const pair = generateKeyPairSync('x25519')
  const privatePath = join(dir, `${name}.key`)
  const publicPath = join(dir, `${name}.pub`)
  writeFileSync(privatePath, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  writeFileSync(publicPath, pair.publicKey.export({ format: 'pem', type: 'spki' }))
  return { privatePath, publicPath }
}

/** Configures this thread as a command would, from environment variables only. */
function configure(env: Record<string, string>, command: string[] = ['backup']): void {
  cipherConfigure(configLoad({ argv: ['--stanza=demo', ...command], env, readFile: () => undefined }))
}

const WHERE = "stanza 'demo'"

describe('repository keys', () => {
  test('passphrase: the record unlocks with the passphrase only; a wrong one is named as such', () => {
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'right' })
    const record = cipherRecordCreate()!
    assert.equal(record.passphrase?.kdf, 'scrypt')
    assert.equal(record.publicKey, undefined)
    cipherAdopt(record, WHERE)
    const sealed = sealBuffer(cipherSealData()!, Buffer.from('data'))
    assert.equal(openBuffer(cipherOpenKeys()!, sealed, 'x').toString(), 'data')

    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'wrong' })
    assert.throws(() => cipherAdopt(record, WHERE), /^CryptoError: wrong passphrase: repo1-cipher-pass does not unlock stanza 'demo'/)
    configure({ WALDEN_REPO1_CIPHER_PASS: 'right' })
    assert.throws(() => cipherAdopt(record, WHERE), /stanza 'demo' is encrypted \(aes-256-gcm\); set repo1-cipher-type=aes-256-gcm/)
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'right' })
    assert.throws(() => cipherAdopt(undefined, WHERE), /stanza 'demo' is not encrypted, but repo1-cipher-type is aes-256-gcm/)
    assert.throws(() => configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm' }), /repo1-cipher-type=aes-256-gcm needs a key/)
  })

  test('public key with passphrase: data to the public key, manifests under the passphrase; reading needs both', () => {
    const { privatePath, publicPath } = keyFiles('both')
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'pw', WALDEN_REPO1_CIPHER_PUBLIC_KEY: publicPath })
    const record = cipherRecordCreate()!
    assert.ok(record.passphrase && record.publicKey)
    cipherAdopt(record, WHERE)
    const data = sealBuffer(cipherSealData()!, Buffer.from('page'))
    const meta = sealBuffer(cipherSealMeta()!, Buffer.from('manifest'))
    // The writer reads manifests back (incremental backups) but not data.
    assert.equal(openBuffer(cipherOpenKeys()!, meta, 'm').toString(), 'manifest')
    assert.throws(() => openBuffer(cipherOpenKeys()!, data, "'f'"), /needs the private key/)

    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'pw', WALDEN_REPO1_CIPHER_PRIVATE_KEY: privatePath })
    cipherAdopt(record, WHERE)
    assert.equal(openBuffer(cipherOpenKeys()!, data, 'f').toString(), 'page')
    assert.equal(openBuffer(cipherOpenKeys()!, meta, 'm').toString(), 'manifest')
    // Without the passphrase the stanza's record cannot be unlocked at all.
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PRIVATE_KEY: privatePath })
    assert.throws(() => cipherAdopt(record, WHERE), /set repo1-cipher-pass/)
  })

  test('public key only: manifests stay in clear; another key pair is refused by name', () => {
    const { privatePath, publicPath } = keyFiles('only')
    const other = keyFiles('other')
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PUBLIC_KEY: publicPath })
    const record: CipherRecord = cipherRecordCreate()!
    assert.equal(record.passphrase, undefined)
    cipherAdopt(record, WHERE)
    assert.equal(cipherSealMeta(), undefined)
    assert.ok(cipherSealData())
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PUBLIC_KEY: other.publicPath })
    assert.throws(() => cipherAdopt(record, WHERE), /repo1-cipher-public-key is not the public key of stanza 'demo'/)
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PRIVATE_KEY: other.privatePath })
    assert.throws(() => cipherAdopt(record, WHERE), /wrong private key/)
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PRIVATE_KEY: privatePath })
    cipherAdopt(record, WHERE)
    // A private key file others can read is refused before anything else.
    chmodSync(privatePath, 0o644)
    assert.throws(() => configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PRIVATE_KEY: privatePath }), /is readable by other users \(mode 0644\)/)
  })

  describe('synchronous archive-push without the KDF per segment', () => {
    const pass = { WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'right', WALDEN_LOCK_PATH: dir }
    const push = ['archive-push', '/pg/pg_wal/000000010000000000000001']
    const pin = join(dir, 'demo.cipher-pin')
    const wrapKind = (sealed: Buffer): number => sealed[CIPHER_MAGIC.length + 1]!
    /** Whether this thread holds the repository key, which only the KDF gives it. */
    const unlocked = (): boolean => cipherJobState()?.repoKey !== undefined

    test('the first push runs the KDF and pins the record; later ones seal to the writer key without it', () => {
      rmSync(pin, { force: true })
      configure(pass)
      const record = cipherRecordCreate()!
      assert.ok(record.passphrase?.writerKey, 'stanza-create records a writer key')

      configure(pass, push)
      cipherAdopt(record, WHERE)
      assert.ok(unlocked())
      assert.equal(statSync(pin).mode & 0o777, 0o600)
      assert.equal(wrapKind(sealBuffer(cipherSealData()!, Buffer.from('first'))), WRAP_REPO_KEY)

      configure(pass, push)
      const started = process.hrtime.bigint()
      cipherAdopt(record, WHERE)
      const micros = Number(process.hrtime.bigint() - started) / 1000
      assert.ok(!unlocked(), 'a pinned push holds no repository key: no KDF ran')
      assert.ok(micros < 20_000, `a pinned adopt took ${micros} µs`)
      const wal = sealBuffer(cipherSealData()!, Buffer.from('segment'))
      assert.equal(wrapKind(wal), WRAP_X25519)

      // Readers (restore, archive-get) unlock with the passphrase and open both kinds.
      configure(pass, ['restore'])
      cipherAdopt(record, WHERE)
      assert.equal(openBuffer(cipherOpenKeys()!, wal, 'w').toString(), 'segment')
      // Other commands never use a pin.
      rmSync(pin)
      configure(pass)
      cipherAdopt(record, WHERE)
      assert.ok(!existsSync(pin))
    })

    test('a swapped writer key is refused, whatever pin lies in lock-path; a changed passphrase is refused too', () => {
      configure(pass)
      const record = cipherRecordCreate()!
      configure(pass, push)
      cipherAdopt(record, WHERE)
      const genuinePin = readFileSync(pin)
      const attacker = x25519Raw(generateKeyPairSync('x25519').publicKey)
      const tampered: CipherRecord = { ...record, passphrase: { ...record.passphrase!, writerKey: attacker } }
      const altered = /the writer key recorded for stanza 'demo' is not the one its repository key gives: its info file was altered/
      // Without the passphrase no one can make a pin for the tampered record: the genuine pin, or garbage, is not trusted.
      for (const planted of [genuinePin, Buffer.from('0'.repeat(64) + '\n')]) {
        writeFileSync(pin, planted)
        configure(pass, push)
        assert.throws(() => cipherAdopt(tampered, WHERE), altered)
        assert.ok(!unlocked())
      }
      // A pin of this record does not stand in for the passphrase: a wrong one still fails.
      configure(pass, push)
      cipherAdopt(record, WHERE)
      configure({ ...pass, WALDEN_REPO1_CIPHER_PASS: 'wrong' }, push)
      assert.throws(() => cipherAdopt(record, WHERE), /wrong passphrase/)
    })

    test('a stanza created before writer keys: every push runs the KDF and seals with the repository key', () => {
      rmSync(pin, { force: true })
      configure(pass)
      const { writerKey: _dropped, ...older } = cipherRecordCreate()!.passphrase!
      const record: CipherRecord = { type: 'aes-256-gcm', passphrase: older }
      for (let i = 0; i < 2; i++) {
        configure(pass, push)
        cipherAdopt(record, WHERE)
        assert.ok(unlocked())
        assert.equal(wrapKind(sealBuffer(cipherSealData()!, Buffer.from('x'))), WRAP_REPO_KEY)
      }
      assert.ok(!existsSync(pin))
    })
  })
})
