// The S3 driver against a real Ceph RADOS Gateway: multipart uploads in bounded memory, aborts that leave nothing,
// awscli as an independent client in both directions, clear errors for wrong credentials and a missing bucket, and
// transient failures (an outage of the gateway, connections reset by a proxy) retried.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, describe, test } from 'node:test'
import { inspect } from 'node:util'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import { WaldenError } from '../../src/common/errors.js'
import { locationDescribe, storageOpen } from '../../src/storage/location.js'
import { PosixStorage } from '../../src/storage/posix.js'
import { etagOf } from '../../src/storage/s3-client.js'
import { S3Storage } from '../../src/storage/s3.js'
import { partBytesHeldNow } from '../../src/storage/s3-upload.js'
import type { S3Upload } from '../../src/storage/s3-upload.js'
import { xmlTexts } from '../../src/storage/s3-xml.js'
import type { Storage } from '../../src/storage/storage.js'
import { s3Gateway } from '../harness/s3.js'

const MIB = 1024 * 1024
const folders: string[] = []
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true })
})

async function tempFolder(): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'walden-s3-test-'))
  folders.push(folder)
  return folder
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Every file under a folder of a storage, as path -> SHA-256 of its content. */
async function tree(storage: Storage, folder = ''): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  for (const name of await storage.list(folder)) {
    const path = folder === '' ? name : `${folder}/${name}`
    if ((await storage.info(path))?.type === 'path') for (const [inner, digest] of await tree(storage, path)) files.set(inner, digest)
    else files.set(path, sha256(await storage.read(path)))
  }
  return files
}

/** A little repository-shaped tree: info files, WAL-like names, a multi-part data file, odd names. */
async function writeSampleTree(storage: Storage): Promise<void> {
  await storage.write('archive/demo/archive.info', '[db]\ndb-id=1\n')
  await storage.write('archive/demo/16-1/0000000100000000/000000010000000000000001-0a1b.zst', randomBytes(20_000))
  await storage.write('backup/demo/20260101-000000F/backup.manifest', 'manifest\n')
  await storage.write('backup/demo/20260101-000000F/pg_data/base/1/ünï côdé +%&', randomBytes(3000))
  await pipeline(Readable.from([randomBytes(6 * MIB + 123)]), await storage.openWrite('backup/demo/20260101-000000F/pg_data/base/1/16384'))
}

/** Live Buffer memory after a full garbage collection: what an upload really holds, without GC timing noise. */
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void
function liveBufferBytes(): number {
  // Twice: V8 frees the memory of dead ArrayBuffers on a background sweeper, which the next collection completes.
  collectGarbage()
  collectGarbage()
  return process.memoryUsage().arrayBuffers
}

describe('S3 driver on a real gateway', () => {
  test('a file several parts long streams up as a multipart upload; live memory stays at about two parts at any size', async (t) => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('multipart')
    const partSize = 5 * MIB
    const storage = new S3Storage(gateway.location(bucket, { uploadChunkSize: partSize }))
    const peaks: number[] = []
    for (const size of [16 * MIB, 48 * MIB]) {
      // The lowest live memory seen (before the upload or at its first sample) is the base: a buffer of the previous
      // round still referenced at the first measurement would otherwise hide this round's peak.
      let base = liveBufferBytes()
      let highest = 0
      const hash = createHash('sha256')
      // Distinct content per chunk, made on the fly: the source itself holds one chunk.
      const source = Readable.from(
        (function* () {
          const chunk = randomBytes(256 * 1024)
          for (let sent = 0; sent < size; sent += chunk.length) {
            chunk.writeUInt32BE(sent / chunk.length, 0)
            if (sent % MIB === 0) {
              const live = liveBufferBytes()
              base = Math.min(base, live)
              highest = Math.max(highest, live)
            }
            hash.update(chunk)
            yield Buffer.from(chunk)
          }
        })(),
        // Readable.from reads 16 chunks ahead by default: 4 MiB that would be the source's memory, not the upload's.
        { highWaterMark: 1 },
      )
      const rssBefore = process.memoryUsage().rss
      await pipeline(source, await storage.openWrite(`big-${size}`))
      const peak = highest - base
      peaks.push(peak)
      const head = await storage.client.request({ method: 'HEAD', key: `big-${size}` })
      assert.equal(Number(head.headers['content-length']), size)
      assert.match(etagOf(head.headers), new RegExp(`-${Math.ceil(size / partSize)}$`), 'stored as a multipart upload of that many parts')
      const back = createHash('sha256')
      for await (const chunk of await storage.openRead(`big-${size}`)) back.update(chunk as Buffer)
      assert.equal(back.digest('hex'), hash.digest('hex'))
      t.diagnostic(`upload of ${size / MIB} MiB: peak live buffers ${(peak / MIB).toFixed(1)} MiB, RSS ${((process.memoryUsage().rss - rssBefore) / MIB).toFixed(1)} MiB above the start`)
      await storage.remove(`big-${size}`)
    }
    // One bound for both sizes, so memory cannot grow with the size: two parts (one sending, one filling) plus the
    // writable's buffer and a chunk or two of slack. Holding the whole file would show 16 and 48 MiB.
    for (const peak of peaks) assert.ok(peak < 2 * partSize + 3 * MIB, `peak live buffers ${peaks.map((each) => (each / MIB).toFixed(1)).join(', ')} MiB`)
  })

  test('part buffers: sized by the size hint, grown to a part when the data is larger, given back when an upload ends or is destroyed', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('part-buffers')
    const storage = new S3Storage(gateway.location(bucket, { uploadChunkSize: 5 * MIB }))
    const held = partBytesHeldNow()
    const cases: Array<[string, number, number | undefined, 1 | 2]> = [
      ['small', 1000, 100, 1],
      ['exact', 3 * MIB, 3 * MIB, 1],
      ['grown', 12 * MIB + 7, MIB, 1],
      ['two-buffers', 17 * MIB, undefined, 2],
    ]
    for (const [name, size, sizeHint, partBuffers] of cases) {
      const data = randomBytes(size)
      const writer = await storage.openWrite(name, { partBuffers, ...(sizeHint !== undefined ? { sizeHint } : {}) })
      await pipeline(Readable.from([data.subarray(0, size >> 1), data.subarray(size >> 1)]), writer)
      assert.equal(sha256(await storage.read(name)), sha256(data), name)
      assert.equal(partBytesHeldNow(), held, `${name}: buffers given back`)
    }
    // Destroyed with one part in flight and the next filling: both buffers come back once the part is settled.
    const writer = await storage.openWrite('destroyed', { partBuffers: 2 })
    writer.on('error', () => undefined)
    writer.write(randomBytes(11 * MIB))
    await new Promise((resolve) => setTimeout(resolve, 20))
    writer.destroy(new Error('stopped'))
    if (!writer.closed) await new Promise((resolve) => writer.once('close', resolve))
    assert.equal(partBytesHeldNow(), held)
    assert.equal(await storage.exists('destroyed'), false)
  })

  test('an upload that fails midway is aborted: no object, no multipart upload left on the server', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('abort')
    const storage = new S3Storage(gateway.location(bucket, { path: '/repo', uploadChunkSize: 5 * MIB }))
    const writer = (await storage.openWrite('backup/file')) as S3Upload
    let sent = 0
    const source = new Readable({
      read() {
        sent += MIB
        if (sent > 13 * MIB) this.destroy(new Error('read error in the source'))
        else this.push(randomBytes(MIB))
      },
    })
    await assert.rejects(pipeline(source, writer), /read error in the source/)
    if (!writer.closed) await new Promise((resolve) => writer.once('close', resolve))
    assert.ok(writer.uploadId, 'the multipart upload had begun (two parts were sent)')
    assert.equal(await storage.exists('backup/file'), false)

    // Destroyed while the first part is on its way: the upload is being created or the part sent at that moment.
    for (const delayMs of [-1, 0, 5, 20, 60]) {
      const early = await storage.openWrite(`backup/early-${delayMs}`)
      early.on('error', () => undefined)
      early.write(randomBytes(5 * MIB))
      // -1: destroyed in the same tick as the write that filled the first part.
      if (delayMs >= 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
      early.destroy(new Error('given up early'))
      if (!early.closed) await new Promise((resolve) => early.once('close', resolve))
      assert.equal(await storage.exists(`backup/early-${delayMs}`), false)
    }

    const uploads = await storage.client.request({ method: 'GET', query: { uploads: '' } })
    assert.deepEqual(xmlTexts(uploads.body.toString('utf8'), 'UploadId'), [], 'a multipart upload was left behind')
  })

  test('awscli lists and reads what walden wrote', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('aws-reads')
    const storage = new S3Storage(gateway.location(bucket, { path: '/walden' }))
    await writeSampleTree(storage)
    const listing = await gateway.aws(['s3', 'ls', '--recursive', `s3://${bucket}/walden/`])
    assert.equal(listing.code, 0, listing.stderr)
    const keys = listing.stdout.trim().split('\n').map((line) => line.replace(/^\S+ \S+ +\d+ /, '')).sort()
    assert.deepEqual(keys, [...(await tree(storage)).keys()].map((path) => `walden/${path}`).sort())
    const info = await gateway.aws(['s3', 'cp', `s3://${bucket}/walden/archive/demo/archive.info`, '-'])
    assert.equal(info.code, 0, info.stderr)
    assert.equal(info.stdout, '[db]\ndb-id=1\n')
  })

  test('a posix repository synced into a bucket with awscli reads the same through walden, and back again', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('sync')
    const folder = await tempFolder()
    const posixRepo = new PosixStorage(join(folder, 'repo'))
    await writeSampleTree(posixRepo)
    const original = await tree(posixRepo)

    const up = await gateway.aws(['s3', 'sync', '--only-show-errors', join(folder, 'repo'), `s3://${bucket}/migrated`])
    assert.equal(up.code, 0, up.stderr)
    const s3Repo = new S3Storage(gateway.location(bucket, { path: '/migrated' }))
    assert.deepEqual(await tree(s3Repo), original)

    // And the reverse: what walden wrote to S3 syncs down to a folder that reads the same through the posix driver.
    await s3Repo.write('archive/demo/16-1/0000000100000000/000000010000000000000002-ffee.zst', randomBytes(5000))
    const down = await gateway.aws(['s3', 'sync', '--only-show-errors', `s3://${bucket}/migrated`, join(folder, 'back')])
    assert.equal(down.code, 0, down.stderr)
    assert.deepEqual(await tree(new PosixStorage(join(folder, 'back'))), await tree(s3Repo))
  })

  test('with s3-kms-key-id every object is stored under SSE-KMS with that key, small or multipart', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('kms')
    const storage = new S3Storage(gateway.location(bucket, { kmsKeyId: gateway.kmsKeyId }))
    const large = randomBytes(11 * MIB)
    await storage.write('small', 'encrypted at rest')
    await pipeline(Readable.from([large]), await storage.openWrite('large'))
    for (const key of ['small', 'large']) {
      const head = await storage.client.request({ method: 'HEAD', key })
      assert.equal(head.headers['x-amz-server-side-encryption'], 'aws:kms', key)
      assert.equal(head.headers['x-amz-server-side-encryption-aws-kms-key-id'], gateway.kmsKeyId, key)
    }
    assert.equal((await storage.read('small')).toString(), 'encrypted at rest')
    assert.equal(sha256(await storage.read('large')), sha256(large))
    // Without the option nothing is encrypted, so the check above can tell.
    const plain = new S3Storage(gateway.location(bucket))
    await plain.write('plain', 'x')
    assert.equal((await plain.client.request({ method: 'HEAD', key: 'plain' })).headers['x-amz-server-side-encryption'], undefined)
  })

  test('storageOpen opens an S3 location as the S3 driver, once per location', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('open')
    const location = gateway.location(bucket, { path: '/walden' })
    const storage = await storageOpen(location)
    assert.ok(storage instanceof S3Storage)
    assert.equal(await storageOpen({ ...location }), storage)
    assert.equal(storage.description, `'s3://${bucket}/walden' at ${gateway.endpoint}`)
    assert.equal(locationDescribe(location), `'s3://${bucket}/walden' at ${gateway.endpoint}`)
    await storage.write('archive/x', 'y')
    assert.deepEqual(await storage.list('archive'), ['x'])
  })

  test('move of an object larger than one CopyObject allows goes through a multipart copy', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('copy')
    // The same code path as a move of more than 5 GiB, with the limit scaled down to what the test gateway holds.
    const storage = new S3Storage(gateway.location(bucket), { copyLimit: 5 * MIB, copyPartSize: 5 * MIB })
    const data = randomBytes(12 * MIB + 5)
    await storage.write('from', data)
    await storage.move('from', 'dir/to')
    assert.equal(await storage.exists('from'), false)
    assert.equal(sha256(await storage.read('dir/to')), sha256(data))
    const head = await storage.client.request({ method: 'HEAD', key: 'dir/to' })
    assert.match(etagOf(head.headers), /-3$/, 'copied in three parts')
    await storage.remove('dir/to')
  })
})

describe('S3 errors are one clear line, without the secret', () => {
  const distinctiveSecret = 'walden-TEST-secret-Zq8Rk2'

  function assertClean(error: unknown): void {
    assert.ok(error instanceof WaldenError, `not a WaldenError: ${String(error)}`)
    const everything = `${error.message}\n${error.hint ?? ''}\n${error.stack ?? ''}\n${inspect(error, { depth: 5 })}`
    assert.ok(!everything.includes(distinctiveSecret), `the secret appears in: ${everything}`)
    assert.ok(!everything.includes('testsecretkey'))
    assert.ok(!error.message.includes('\n'), 'one line')
  }

  test('a wrong secret or key id: access denied, naming the options to check, at once (not retried)', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('denied')
    await new S3Storage(gateway.location(bucket)).write('present', 'x')
    for (const [override, code] of [
      [{ secret: distinctiveSecret }, 'SignatureDoesNotMatch'],
      [{ key: 'NOSUCHACCESSKEY', secret: distinctiveSecret }, 'InvalidAccessKeyId'],
    ] as const) {
      const storage = new S3Storage(gateway.location(bucket, override))
      const operations: Array<[string, () => Promise<unknown>]> = [
        ['list', () => storage.list('')],
        ['info', () => storage.info('present')],
        ['read', () => storage.read('present')],
        ['openRead', () => storage.openRead('present')],
        ['write', () => storage.write('new', 'data')],
        ['openWrite', async () => pipeline(Readable.from([Buffer.from('data')]), await storage.openWrite('new'))],
        ['removePath', () => storage.removePath('')],
      ]
      for (const [name, operation] of operations) {
        const started = Date.now()
        await assert.rejects(operation(), (error: unknown) => {
          assertClean(error)
          const failure = error as WaldenError
          assert.equal(failure.kind, 'OptionInvalidValue', `${name}: ${failure.message}`)
          // A HEAD's refusal has no body to name the reason: there the code is the status's.
          const expected = name === 'info' ? 'AccessDenied' : code
          assert.equal(failure.message, `access denied by ${gateway.endpoint} to bucket '${bucket}' (${expected})`)
          assert.match(failure.hint ?? '', /s3-key and s3-key-secret/)
          return true
        })
        assert.ok(Date.now() - started < 2000, `${name} took ${Date.now() - started} ms: a refusal must not be retried`)
      }
    }
  })

  test('a storage object shows no secret when printed', async () => {
    const gateway = await s3Gateway()
    const storage = new S3Storage(gateway.location('any', { secret: distinctiveSecret }))
    const printed = inspect(storage, { depth: 10, showHidden: true })
    assert.ok(!printed.includes(distinctiveSecret), printed)
    assert.ok(!storage.description.includes(distinctiveSecret))
  })

  test('a missing bucket: one error naming the bucket and the endpoint', async () => {
    const gateway = await s3Gateway()
    const storage = new S3Storage(gateway.location('no-such-bucket-here', { secret: gateway.secretKey }))
    for (const operation of [() => storage.list(''), () => storage.read('x'), () => storage.info('x'), () => storage.write('x', 'y'), () => storage.exists('x')]) {
      await assert.rejects(operation(), (error: unknown) => {
        assertClean(error)
        assert.equal((error as WaldenError).kind, 'RepoInvalid')
        assert.equal((error as WaldenError).message, `bucket 'no-such-bucket-here' does not exist at ${gateway.endpoint}`)
        return true
      })
    }
  })
})

/**
 * A TCP proxy in front of the gateway that misbehaves on the first connection: resets it at once, or passes it
 * through and cuts it after `cutAfter` bytes of the answer. Later connections pass through untouched.
 */
async function faultyProxy(targetPort: number, fault: { reset: true } | { cutAfter: number }): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => undefined)
    const first = ++connections === 1
    if (first && 'reset' in fault) {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    client.pipe(upstream)
    if (!first || !('cutAfter' in fault)) {
      upstream.pipe(client)
      return
    }
    let passed = 0
    upstream.on('data', (chunk: Buffer) => {
      if (passed + chunk.length >= fault.cutAfter) {
        client.write(chunk.subarray(0, fault.cutAfter - passed), () => client.resetAndDestroy())
        upstream.destroy()
        passed = fault.cutAfter
        return
      }
      passed += chunk.length
      client.write(chunk)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

describe('transient failures are retried', () => {
  test('the gateway stopped and started again within the retry window: the write goes through', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('outage')
    const storage = new S3Storage(gateway.location(bucket, { path: '/repo' }))
    await storage.write('before', 'x')
    await gateway.stopGateway()
    const started = Date.now()
    const writing = storage.write('during', 'written through an outage')
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await gateway.startGateway()
    await writing
    assert.ok(Date.now() - started >= 1000)
    assert.equal((await storage.read('during')).toString(), 'written through an outage')

    // With no retry window left, the same outage is one clear error that says how often it tried.
    const impatient = new S3Storage(gateway.location(bucket, { path: '/repo' }), { retries: 2, retryDelayMs: 20 })
    await gateway.stopGateway()
    try {
      await assert.rejects(impatient.write('lost', 'x'), (error: unknown) => {
        assert.ok(error instanceof WaldenError)
        assert.equal(error.kind, 'FileWrite')
        assert.match(error.message, new RegExp(`^unable to write 's3://${bucket}/repo/lost': connect ECONNREFUSED 127\\.0\\.0\\.1:${gateway.port} \\(after 3 attempts\\)$`))
        return true
      })
    } finally {
      await gateway.startGateway()
    }
  })

  test('a connection reset at once is retried on a new connection', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('reset')
    await new S3Storage(gateway.location(bucket)).write('file', 'content')
    const proxy = await faultyProxy(gateway.port, { reset: true })
    try {
      const storage = new S3Storage(gateway.location(bucket, { endpoint: `http://127.0.0.1:${proxy.port}` }))
      assert.equal((await storage.read('file')).toString(), 'content')
      assert.ok(proxy.connections() >= 2, 'the first connection was reset, a second one served the read')
    } finally {
      await proxy.close()
    }
  })

  test('a read cut off mid-body picks up where it stopped (ranged GET of the same object)', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('resume')
    const data = randomBytes(3 * MIB + 11)
    await new S3Storage(gateway.location(bucket)).write('file', data)
    const proxy = await faultyProxy(gateway.port, { cutAfter: MIB })
    try {
      const storage = new S3Storage(gateway.location(bucket, { endpoint: `http://127.0.0.1:${proxy.port}` }))
      const stream = await storage.openRead('file')
      assert.equal(sha256(await readAll(stream)), sha256(data))
      assert.equal(proxy.connections(), 2, 'the body came over two connections')
    } finally {
      await proxy.close()
    }
  })
})

describe('HTTPS', () => {
  test('a self-signed gateway: refused while verifying, accepted with its CA file or with verify-tls off', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('tls')
    const https = { endpoint: gateway.tlsEndpoint }
    await assert.rejects(new S3Storage(gateway.location(bucket, https), { retries: 1, retryDelayMs: 10 }).list(''), (error: unknown) => {
      assert.ok(error instanceof WaldenError)
      assert.match(error.message, /^unable to list 's3:\/\/[^']+': self[- ]signed certificate/)
      assert.match(error.hint ?? '', /storage-ca-file/)
      return true
    })
    const withCa = new S3Storage(gateway.location(bucket, { ...https, caFile: gateway.caFile }))
    await withCa.write('over-tls', 'sealed in transit')
    assert.equal((await withCa.read('over-tls')).toString(), 'sealed in transit')
    const unverified = new S3Storage(gateway.location(bucket, { ...https, verifyTls: false }))
    assert.deepEqual(await unverified.list(''), ['over-tls'])
    // Host and port as repo-storage-port gives them: no scheme means HTTPS.
    const byPort = new S3Storage(gateway.location(bucket, { endpoint: '127.0.0.1', port: gateway.tlsPort, caFile: gateway.caFile }))
    assert.deepEqual(await byPort.list(''), ['over-tls'])
    assert.throws(
      () => new S3Storage(gateway.location(bucket, { ...https, caFile: '/no/such/ca.pem' })),
      (error: unknown) => error instanceof WaldenError && /unable to read the storage CA file '\/no\/such\/ca.pem'/.test(error.message),
    )
  })
})

describe('credentials from the environment (s3-key-type=auto)', () => {
  test('the default chain finds the key in the environment; a wrong one there is access denied', async () => {
    const gateway = await s3Gateway()
    const bucket = await gateway.bucket('auto')
    const saved = { ...process.env }
    try {
      process.env['AWS_ACCESS_KEY_ID'] = gateway.accessKey
      process.env['AWS_SECRET_ACCESS_KEY'] = gateway.secretKey
      process.env['AWS_EC2_METADATA_DISABLED'] = 'true'
      const auto = gateway.location(bucket, { keyType: 'auto' })
      delete auto.key
      delete auto.secret
      const storage = new S3Storage(auto)
      await storage.write('by-auto', 'from the environment')
      assert.equal((await storage.read('by-auto')).toString(), 'from the environment')

      process.env['AWS_SECRET_ACCESS_KEY'] = 'walden-TEST-secret-Zq8Rk2'
      await assert.rejects(new S3Storage(auto).list(''), (error: unknown) => {
        assert.ok(error instanceof WaldenError)
        assert.match(error.message, /^access denied .*\(SignatureDoesNotMatch\)$/)
        assert.ok(!`${error.message}${error.hint}`.includes('walden-TEST-secret-Zq8Rk2'))
        return true
      })
    } finally {
      for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_EC2_METADATA_DISABLED']) {
        if (saved[name] === undefined) delete process.env[name]
        else process.env[name] = saved[name]
      }
    }
  })
})
