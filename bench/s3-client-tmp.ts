// scratch: walden's S3 client vs @aws-sdk/client-s3 (from /tmp/sdkbench) on the local Ceph gateway. Not committed.
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createHash, randomBytes } from 'node:crypto'
import { S3Storage } from '../src/storage/s3.js'
const [impl, scenario, port, bucket] = process.argv.slice(2) as [string, string, string, string]
const MIB = 1 << 20
const loc = { type: 's3' as const, bucket, endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', path: '/', keyType: 'shared' as const, key: 'testaccesskey', secret: 'testsecretkey', uriStyle: 'path' as const, verifyTls: true, uploadChunkSize: 16 * MIB }
let peak = 0
const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 20)
const t0 = performance.now()
let importMs = 0
const source = (size: number) => Readable.from((function* () { const c = randomBytes(MIB); for (let s = 0; s < size; s += MIB) { c.writeUInt32BE(s / MIB, 0); yield Buffer.from(c) } })())
if (impl === 'walden') {
  const i0 = performance.now(); const { S3Storage: S } = await import('../src/storage/s3.js'); importMs = performance.now() - i0
  const st: S3Storage = new S(loc)
  if (scenario === 'small') {
    const data = randomBytes(8192); let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => { while (next < 2000) { const n = next++; await st.write(`small/${n}`, data) } }))
  } else if (scenario === 'upload') {
    await pipeline(source(256 * MIB), await st.openWrite('big'))
  } else if (scenario === 'download') {
    const h = createHash('sha256'); for await (const c of await st.openRead('big')) h.update(c as Buffer)
  }
} else {
  const require = createRequire('/tmp/sdkbench/')
  const i0 = performance.now()
  const { S3Client, PutObjectCommand, GetObjectCommand } = require('@aws-sdk/client-s3')
  const { Upload } = require('@aws-sdk/lib-storage')
  importMs = performance.now() - i0
  const { NodeHttpHandler } = require('@smithy/node-http-handler')
  const { Agent } = await import('node:http')
  const c = new S3Client({ endpoint: loc.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: loc.key, secretAccessKey: loc.secret }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) }) })
  if (scenario === 'small') {
    const data = randomBytes(8192); let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => { while (next < 2000) { const n = next++; await c.send(new PutObjectCommand({ Bucket: bucket, Key: `small/${n}`, Body: data })) } }))
  } else if (scenario === 'upload') {
    await new Upload({ client: c, params: { Bucket: bucket, Key: 'big-sdk', Body: source(256 * MIB) }, partSize: 16 * MIB, queueSize: 1 }).done()
  } else if (scenario === 'download') {
    const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'big' })); const h = createHash('sha256'); for await (const x of r.Body) h.update(x)
  }
}
clearInterval(timer); peak = Math.max(peak, process.memoryUsage().rss)
console.log(JSON.stringify({ impl, scenario, ms: Math.round(performance.now() - t0), importMs: Math.round(importMs), peakRssMB: Math.round(peak / MIB) }))
process.exit(0)
