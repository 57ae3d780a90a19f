import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { configLoad } from '../config/config.js'
import { openBuffer, sealBuffer } from '../io/cipher.js'
import { cipherAdopt, cipherConfigure, cipherOpenKeys, cipherRecordCreate, cipherSealData, cipherSealMeta } from './cipher.js'
import type { CipherRecord } from './cipher.js'
import { shapeProblem } from './shape.js'
import { ARCHIVE_INFO_SHAPE } from './stanza-info.js'

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
function configure(env: Record<string, string>): void {
  cipherConfigure(configLoad({ argv: ['--stanza=demo', 'backup'], env, readFile: () => undefined }))
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

  test("a public key put into a passphrase stanza's record by whoever can write the repository is refused, not sealed to", () => {
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'pw' })
    const record = cipherRecordCreate()!
    const attacker = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64url')
    const altered: CipherRecord = { ...record, publicKey: attacker }
    assert.throws(() => cipherAdopt(altered, WHERE), /^CryptoError: stanza 'demo' is encrypted to a public key, but neither repo1-cipher-public-key nor repo1-cipher-private-key is set/)
    // The record as created still works.
    cipherAdopt(record, WHERE)
    assert.ok(cipherSealData())
  })

  test('KDF parameters out of range make the info file damaged (scrypt would fail or allocate without bound)', () => {
    configure({ WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm', WALDEN_REPO1_CIPHER_PASS: 'pw' })
    const record = cipherRecordCreate()!
    const info = (cipher: CipherRecord) => ({ stanza: 'demo', db: { id: 1, systemId: '1', version: 15 }, history: [], cipher })
    assert.equal(shapeProblem(ARCHIVE_INFO_SHAPE, info(record)), undefined)
    for (const change of [{ n: 3 }, { n: 2 ** 30 }, { n: 3 * 2 ** 14 }, { r: 0 }, { r: 1000 }, { p: 1.5 }]) {
      const altered = { ...record, passphrase: { ...record.passphrase!, ...change } }
      assert.match(shapeProblem(ARCHIVE_INFO_SHAPE, info(altered)) ?? 'accepted', /a whole number from/, JSON.stringify(change))
    }
  })
})
