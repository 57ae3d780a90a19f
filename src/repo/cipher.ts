// The repository's keys: what a stanza records about its encryption, and what this process holds to use it.
//
// Key hierarchy (format of each stored file: io/cipher.ts):
//   passphrase --scrypt(salt, N, r, p)--> key-encryption key --AES-256-GCM--> repository key (random, 32 bytes),
//     stored wrapped in archive.info and backup.info; a wrong passphrase fails that wrap's tag: "wrong passphrase".
//   every stored file --> its own random data key, in the file's header, wrapped by the repository key (passphrase
//     mode) or to the stanza's X25519 public key through an ephemeral ECDH + HKDF (public-key mode).
//   backup manifests are sealed like a file under the repository key whenever a passphrase is configured.
//
// scrypt N=2^14, r=8 (16 MiB): measured on the 2-core test host at ~50 ms idle (~105 ms under load); N=2^15 doubled
// that. It runs once per process (the key is then kept in memory and handed to worker threads), but synchronous
// archive-push is one process per WAL segment, so it is paid per segment there: 2^14 keeps that below the cost of
// compressing a 16 MiB segment. The parameters are stored with the stanza, so a later walden can raise them for new
// stanzas. A high-entropy passphrase (`openssl rand -base64 48`) makes the KDF's cost matter little anyway.
//
// Public-key mode: backup and archive-push hold only the public key, so a compromised database host cannot read back
// its older backups or WAL. What it can still read: archive.info and backup.info (cluster identity, backup labels,
// times, sizes, LSNs) and the WAL names, which carry the SHA-256 of each segment's plaintext (as pgBackRest's carry
// SHA-1): enough to confirm a guess of a whole 16 MiB segment, nothing more. Backup manifests (file names, sizes,
// times, SHA-256 and XXH3 of each file's plaintext, backup_label) must stay readable to the backup that builds the
// next incremental on them: without a passphrase they are stored in clear; with one they are sealed by the
// repository key, which that host then holds too. The data of files and WAL is never readable to it.
//
// Each repository has its own state, per thread: the main thread fills it from the configuration (repoN-cipher-*) and
// the stanza's record in that repository; worker threads receive it in their job input (cipherJobState), which names
// the repository. cipherUse(N) says which repository the functions below work on.

import { createPrivateKey, createPublicKey, randomBytes, scryptSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { fail } from '../common/errors.js'
import type { Config } from '../config/config.js'
import { REPO_MAX, repoOption } from '../config/options.js'
import type { RepoIndex } from '../config/options.js'
import { unwrap, wrap, WRAP_REPO_KEY, WRAP_X25519, x25519PrivateFromDer, x25519PublicFromRaw, x25519Raw } from '../io/cipher.js'
import type { OpenKeys, SealKey } from '../io/cipher.js'

export type CipherType = 'none' | 'aes-256-gcm' | 'aes-256-cbc'

/** What archive.info and backup.info record about the stanza's encryption (absent: not encrypted). */
export interface CipherRecord {
  type: 'aes-256-gcm'
  passphrase?: { kdf: 'scrypt'; n: number; r: number; p: number; salt: string; repoKey: string }
  /** Raw X25519 public key (base64url): public-key mode. */
  publicKey?: string
}

/** This thread's cipher settings and keys; plain data, so it crosses to worker threads. */
export interface CipherState {
  /** The repository index this state belongs to. */
  repo: number
  type: CipherType
  pass?: string
  publicKey?: string
  /** PKCS#8 DER, base64. */
  privateKey?: string
  /** The stanza's record once adopted; null: the stanza is not encrypted. */
  record?: CipherRecord | null
  /** The repository key (base64), unwrapped once adopted. */
  repoKey?: string
  /**
   * A repository pgBackRest wrote with aes-256-cbc (repo/pgbackrest/cipher.ts): the sub-passphrases its info files
   * hold, for the archived WAL (archive.info's) and for the files of the backup being read (its manifest's).
   */
  pgbr?: { archive?: string; backup?: string }
}

const KDF = { n: 2 ** 14, r: 8, p: 1 }
const REPO_KEY_AAD = Buffer.from('walden repository key v1')

// One state per repository (each may have its own encryption), and the one this thread works on now.
const states = new Map<number, CipherState>()
let active = 1
let state: CipherState = { type: 'none', repo: 1 }

/** Makes repository `index` the one the functions below work on (its configured state, or none). */
export function cipherUse(index: number): void {
  states.set(active, state)
  active = index
  state = states.get(index) ?? { type: 'none', repo: index }
}

function configFail(message: string, hint: string): never {
  fail('Crypto', message, { hint })
}

function modeCheck(path: string, what: string): void {
  const mode = statSync(path).mode & 0o777
  if ((mode & 0o077) !== 0) {
    fail('Config', `${what} '${path}' is readable by other users (mode ${mode.toString(8).padStart(4, '0')})`, {
      hint: `run \`chmod 600 ${path}\`; it holds a secret.`,
    })
  }
}

function readKeyFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path)
  } catch (error) {
    fail('FileOpen', `unable to read ${what} '${path}': ${(error as Error).message}`)
  }
}

/** The configured cipher, from options; key files are read (and their mode checked) here, before any work. */
export function cipherConfigure(cfg: Config): void {
  for (let index = REPO_MAX; index >= 1; index--) {
    cipherUse(index)
    cipherConfigureActive(cfg)
  }
}

function cipherConfigureActive(cfg: Config): void {
  const type = (cfg.string(repoOption(active as RepoIndex, 'cipher-type')) ?? 'none') as CipherType
  const next: CipherState = { type, repo: active }
  if (type === 'none') {
    state = next
    return
  }
  const pass = cfg.string(repoOption(active as RepoIndex, 'cipher-pass'))
  if (pass !== undefined) {
    if (pass.length === 0) configFail(`repo${active}-cipher-pass is empty`, 'set a passphrase, e.g. from `openssl rand -base64 48`.')
    const passFile = cfg.configFile(repoOption(active as RepoIndex, 'cipher-pass'))
    if (passFile !== undefined) modeCheck(passFile, `config file holding repo${active}-cipher-pass`)
    next.pass = pass
  }
  if (type === 'aes-256-cbc') {
    if (next.pass === undefined) configFail(`repo${active}-cipher-type=aes-256-cbc needs repo${active}-cipher-pass`, `set it (config file or WALDEN_REPO${active}_CIPHER_PASS) to the passphrase pgBackRest was given.`)
    state = next
    return
  }
  const publicPath = cfg.string(repoOption(active as RepoIndex, 'cipher-public-key'))
  if (publicPath !== undefined) {
    let key: KeyObject
    try {
      key = createPublicKey(readKeyFile(publicPath, `repo${active}-cipher-public-key`))
    } catch (error) {
      if (error instanceof Error && 'kind' in error) throw error
      fail('Crypto', `repo${active}-cipher-public-key '${publicPath}' is not a PEM public key`, { hint: 'make one with `openssl pkey -in private.pem -pubout -out public.pem`.' })
    }
    if (key.asymmetricKeyType !== 'x25519') fail('Crypto', `repo${active}-cipher-public-key '${publicPath}' is a ${String(key.asymmetricKeyType)} key, not X25519`)
    next.publicKey = x25519Raw(key)
  }
  const privatePath = cfg.string(repoOption(active as RepoIndex, 'cipher-private-key'))
  if (privatePath !== undefined) {
    const pem = readKeyFile(privatePath, `repo${active}-cipher-private-key`)
    modeCheck(privatePath, `repo${active}-cipher-private-key`)
    let key: KeyObject
    try {
      key = createPrivateKey(pem)
    } catch {
      fail('Crypto', `repo${active}-cipher-private-key '${privatePath}' is not a PEM private key`, { hint: 'make one with `openssl genpkey -algorithm X25519 -out private.pem`.' })
    }
    if (key.asymmetricKeyType !== 'x25519') fail('Crypto', `repo${active}-cipher-private-key '${privatePath}' is a ${String(key.asymmetricKeyType)} key, not X25519`)
    next.privateKey = key.export({ format: 'der', type: 'pkcs8' }).toString('base64')
  }
  if (next.pass === undefined && next.publicKey === undefined && next.privateKey === undefined) {
    configFail(`repo${active}-cipher-type=aes-256-gcm needs a key`, `set repo${active}-cipher-pass (config file or WALDEN_REPO${active}_CIPHER_PASS), or repo${active}-cipher-public-key / repo${active}-cipher-private-key.`)
  }
  state = next
}

/** A new stanza's record, from the configuration (stanza-create); undefined when encryption is off. */
export function cipherRecordCreate(): CipherRecord | undefined {
  if (state.type === 'none') return undefined
  if (state.type === 'aes-256-cbc') {
    fail('Crypto', `repo${active}-cipher-type=aes-256-cbc is pgBackRest's encryption, which walden only reads`, {
      hint: `encrypt a walden repository with repo${active}-cipher-type=aes-256-gcm (and repo${active}-cipher-pass).`,
    })
  }
  const record: CipherRecord = { type: 'aes-256-gcm' }
  if (state.pass !== undefined) {
    const salt = randomBytes(16)
    const repoKey = randomBytes(32)
    const kek = scryptSync(state.pass, salt, 32, { N: KDF.n, r: KDF.r, p: KDF.p, maxmem: 64 * 1024 * 1024 })
    record.passphrase = { kdf: 'scrypt', ...KDF, salt: salt.toString('base64'), repoKey: wrap(kek, repoKey, REPO_KEY_AAD).toString('base64') }
  }
  if (state.publicKey !== undefined) record.publicKey = state.publicKey
  else if (state.privateKey !== undefined) record.publicKey = x25519Raw(x25519PrivateFromDer(state.privateKey))
  return record
}

/**
 * Takes the stanza's record (from archive.info or backup.info) as the one this process works with, after checking the
 * configuration fits it: one clear error before anything is written, never garbage later. `where` names the stanza.
 */
export function cipherAdopt(record: CipherRecord | undefined, where: string): void {
  if (state.record !== undefined && JSON.stringify(state.record) === JSON.stringify(record ?? null)) return
  if (!record) {
    if (state.type !== 'none') {
      fail('Crypto', `${where} is not encrypted, but repo${active}-cipher-type is ${state.type}`, {
        hint: `remove repo${active}-cipher-type (a repository is encrypted or not from stanza-create on), or use another repository.`,
      })
    }
    state = { ...state, record: null }
    return
  }
  if (state.type === 'aes-256-cbc') {
    fail('Crypto', `${where} was made by walden, but repo${active}-cipher-type is aes-256-cbc (pgBackRest's encryption)`, {
      hint: `aes-256-cbc is only for reading a repository pgBackRest wrote; set repo${active}-cipher-type=${record.type} for this one.`,
    })
  }
  if (state.type !== record.type) {
    fail('Crypto', `${where} is encrypted (${record.type}); set repo${active}-cipher-type=${record.type} and its key`, {
      hint: record.passphrase
        ? `set repo${active}-cipher-pass in the config file (mode 0600) or in WALDEN_REPO${active}_CIPHER_PASS.`
        : `set repo${active}-cipher-public-key (to write) or repo${active}-cipher-private-key (to read).`,
    })
  }
  let repoKey: string | undefined
  if (record.passphrase) {
    // A worker thread gets the key unwrapped already; it still must unwrap this record's key.
    if (state.repoKey !== undefined && state.record && state.record.passphrase?.repoKey === record.passphrase.repoKey) repoKey = state.repoKey
    else {
      if (state.pass === undefined) {
        fail('Crypto', `${where} is encrypted (${record.type}); set repo${active}-cipher-pass`, {
          hint: `set it in the config file (mode 0600) or in WALDEN_REPO${active}_CIPHER_PASS; never on the command line.`,
        })
      }
      const { n, r, p, salt } = record.passphrase
      const kek = scryptSync(state.pass, Buffer.from(salt, 'base64'), 32, { N: n, r, p, maxmem: 256 * n * r + 16 * 1024 * 1024 })
      const key = unwrap(kek, Buffer.from(record.passphrase.repoKey, 'base64'), REPO_KEY_AAD)
      if (!key) {
        fail('Crypto', `wrong passphrase: repo${active}-cipher-pass does not unlock ${where}`, {
          hint: `check repo${active}-cipher-pass (config file or WALDEN_REPO${active}_CIPHER_PASS); it is the one given to stanza-create.`,
        })
      }
      repoKey = key.toString('base64')
    }
  }
  if (record.publicKey !== undefined) {
    // The info files are checksummed, not authenticated: whoever can write the repository can put a public key of
    // their own into the record. Only a key the configuration names is trusted, or every file would be sealed to
    // theirs.
    if (state.publicKey === undefined && state.privateKey === undefined) {
      fail('Crypto', `${where} is encrypted to a public key, but neither repo${active}-cipher-public-key nor repo${active}-cipher-private-key is set`, {
        hint: `set repo${active}-cipher-public-key (to write) or repo${active}-cipher-private-key (to read) to the stanza's key pair; if this stanza never had one, its info files were altered.`,
      })
    }
    if (state.publicKey !== undefined && state.publicKey !== record.publicKey) {
      fail('Crypto', `repo${active}-cipher-public-key is not the public key of ${where}`, { hint: "configure the public key the stanza was created with." })
    }
    if (state.privateKey !== undefined && x25519Raw(x25519PrivateFromDer(state.privateKey)) !== record.publicKey) {
      fail('Crypto', `wrong private key: repo${active}-cipher-private-key does not belong to the public key of ${where}`, {
        hint: "configure the private key whose public half the stanza was created with.",
      })
    }
  }
  // Without a passphrase the repository key stays unset; one configured anyway is ignored.
  state = { ...state, record, ...(repoKey !== undefined ? { repoKey } : {}) }
}

/** The state a job on a worker thread needs; without the passphrase when the repository key is already unwrapped. */
export function cipherJobState(): CipherState | undefined {
  if (state.type === 'none' && !state.record) return undefined
  const { pass, ...rest } = state
  return rest.repoKey !== undefined ? rest : { ...rest, ...(pass !== undefined ? { pass } : {}) }
}

/** A job's entry: take the state its caller's thread had. */
export function cipherJobUse(job: CipherState | undefined): void {
  if (job === undefined) return
  cipherUse(job.repo)
  state = job
}

export function cipherRecorded(): CipherRecord | undefined {
  return state.record ?? undefined
}

function adopted(): CipherRecord | undefined {
  if (state.record === undefined) {
    if (state.type === 'none') return undefined
    fail('Assert', 'the repository cipher is used before the stanza record was read')
  }
  return state.record ?? undefined
}

const publicKeys = new Map<string, KeyObject>()
const privateKeys = new Map<string, KeyObject>()

/** How files and WAL are sealed: to the public key when the stanza has one, else by the repository key. */
export function cipherSealData(): SealKey | undefined {
  const record = adopted()
  if (!record) return undefined
  if (record.publicKey !== undefined) {
    let recipient = publicKeys.get(record.publicKey)
    if (!recipient) publicKeys.set(record.publicKey, (recipient = x25519PublicFromRaw(record.publicKey)))
    return { kind: WRAP_X25519, recipient }
  }
  return { kind: WRAP_REPO_KEY, repoKey: Buffer.from(state.repoKey!, 'base64') }
}

/** How manifests are sealed: by the repository key when there is one; in public-key mode without one, not at all. */
export function cipherSealMeta(): SealKey | undefined {
  const record = adopted()
  if (!record || state.repoKey === undefined) return undefined
  return { kind: WRAP_REPO_KEY, repoKey: Buffer.from(state.repoKey, 'base64') }
}

/** The keys this thread holds for reading; undefined when the stanza is not encrypted. */
export function cipherOpenKeys(): OpenKeys | undefined {
  const record = adopted()
  if (!record) return undefined
  const keys: OpenKeys = { repo: state.repo }
  if (state.repoKey !== undefined) keys.repoKey = Buffer.from(state.repoKey, 'base64')
  if (state.privateKey !== undefined) {
    let key = privateKeys.get(state.privateKey)
    if (!key) privateKeys.set(state.privateKey, (key = x25519PrivateFromDer(state.privateKey)))
    keys.privateKey = key
  }
  return keys
}

/**
 * The job state of repository `index` (its stanza record adopted, or not encrypted), without changing which
 * repository this thread works on. Always a state, never undefined: a job that reads or writes several repositories
 * switches between them with cipherJobUse, and a missing state would leave the previous repository's keys in use.
 */
export function cipherJobStateOf(index: number): CipherState {
  const previous = active
  cipherUse(index)
  const job = cipherJobState() ?? { type: 'none', repo: index, record: null }
  cipherUse(previous)
  return job
}

/** `{ cipher }` for a job's input when the repository is encrypted, else nothing: spread into the input. */
export function cipherJobInput(): { cipher?: CipherState } {
  const job = cipherJobState()
  return job ? { cipher: job } : {}
}

/**
 * A repository pgBackRest wrote (repo/pgbackrest/info.ts): checks the configuration fits its encryption and returns
 * the passphrase that opens its info files (undefined when it is not encrypted). Such a repository has no walden
 * record: this thread's state holds none, and no walden key.
 */
export function cipherPgbrAdopt(encrypted: boolean, where: string): string | undefined {
  if (!encrypted) {
    if (state.type !== 'none') {
      fail('Crypto', `${where} is not encrypted, but repo${active}-cipher-type is ${state.type}`, { hint: `remove repo${active}-cipher-type for this repository.` })
    }
    state = { ...state, record: null }
    return undefined
  }
  if (state.type !== 'aes-256-cbc' || state.pass === undefined) {
    fail('Crypto', `${where} is encrypted by pgBackRest (aes-256-cbc); set repo${active}-cipher-type=aes-256-cbc and repo${active}-cipher-pass`, {
      hint: `repo${active}-cipher-pass is pgBackRest's repo1-cipher-pass; put it in the config file (mode 0600) or WALDEN_REPO${active}_CIPHER_PASS.`,
    })
  }
  state = { ...state, record: null }
  return state.pass
}

/** Records a pgBackRest sub-passphrase: archive.info's for WAL, a manifest's for its backup's files. */
export function cipherPgbrPassSet(kind: 'archive' | 'backup', pass: string | undefined): void {
  if (pass === undefined) return
  state = { ...state, pgbr: { ...state.pgbr, [kind]: pass } }
}

/**
 * The pgBackRest sub-passphrase that opens the repository file at `path` (archive/... or backup/...), or undefined
 * when this thread's repository is not a pgBackRest one encrypted with aes-256-cbc.
 */
export function cipherPgbrPassFor(path: string): string | undefined {
  if (state.type !== 'aes-256-cbc') return undefined
  const kind = path.startsWith('archive/') ? 'archive' : 'backup'
  const pass = state.pgbr?.[kind]
  if (pass === undefined) fail('Assert', `no pgBackRest ${kind} passphrase is known for '${path}': its info file was not read first`)
  return pass
}
