// A real S3 server for integration tests: a single-node Ceph RADOS Gateway (test/harness/ceph-s3.sh, 1 mon, 1 OSD on
// memstore, 1 radosgw) on free loopback ports in a temp folder. One gateway per test file, started on first use
// (about 0.5-3 s) and destroyed after the file's tests or at exit; each test takes a fresh bucket of its own.
//
// Memory: idle the three daemons hold ~130 MB; the OSD keeps objects in RAM (memstore), deleted ones until RGW's
// garbage collection runs (60 s here). The runner runs 2 files at once on a 2-core CI machine, so a test file should
// keep its data to tens of MB and remove what it no longer needs.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { S3Location } from '../../src/storage/location.js'
import { S3Client } from '../../src/storage/s3-client.js'

const SCRIPT = fileURLToPath(new URL('./ceph-s3.sh', import.meta.url))
const ACCESS_KEY = 'testaccesskey'
const SECRET_KEY = 'testsecretkey'
// Debian's awscli v2: a pyenv or pip awscli earlier on PATH behaves differently (v1), so the harness names it.
const AWS_CLI = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws'

export interface CommandResult {
  code: number
  stdout: string
  stderr: string
}

function runCommand(file: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 + 9 : 1), stdout, stderr })
    })
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

let bucketSerial = 0

export class S3Gateway {
  readonly dir: string
  readonly port: number
  readonly monPort: number
  readonly tlsPort: number
  /** Plain HTTP: http://127.0.0.1:port. */
  readonly endpoint: string
  /** HTTPS with a self-signed certificate for 127.0.0.1 (`caFile`): https://127.0.0.1:tlsPort. */
  readonly tlsEndpoint: string
  readonly caFile: string
  readonly accessKey = ACCESS_KEY
  readonly secretKey = SECRET_KEY
  /** The id of the gateway's test SSE-KMS key (ceph-s3.sh's 'testing' KMS backend). */
  readonly kmsKeyId = 'walden-test-key'
  #destroyed = false

  private constructor(dir: string, port: number, monPort: number, tlsPort: number) {
    this.dir = dir
    this.port = port
    this.monPort = monPort
    this.tlsPort = tlsPort
    this.endpoint = `http://127.0.0.1:${port}`
    this.tlsEndpoint = `https://127.0.0.1:${tlsPort}`
    this.caFile = join(dir, 'tls.crt')
  }

  /** Starts a gateway in a fresh temp folder; a port taken meanwhile by someone else means a retry on new ports. */
  static async start(): Promise<S3Gateway> {
    let lastError = ''
    for (let attempt = 1; attempt <= 3; attempt++) {
      const dir = await mkdtemp(join(tmpdir(), 'walden-s3-'))
      const gateway = new S3Gateway(dir, await freePort(), await freePort(), await freePort())
      live.add(gateway)
      const result = await gateway.#script('start')
      if (result.code === 0) return gateway
      lastError = result.stderr
      await gateway.destroy()
    }
    throw new Error(`the Ceph S3 gateway did not start (is radosgw installed? .ci/run installs it):\n${lastError}`)
  }

  #env(): NodeJS.ProcessEnv {
    return { ...process.env, DIR: this.dir, RGW_PORT: String(this.port), TLS_PORT: String(this.tlsPort), MON_PORT: String(this.monPort), ACCESS_KEY, SECRET_KEY }
  }

  #script(command: string): Promise<CommandResult> {
    return runCommand('bash', [SCRIPT, command], this.#env())
  }

  /** A location in this gateway (path style, plain HTTP), with the test user's key unless told otherwise. */
  location(bucket: string, overrides: Partial<S3Location> = {}): S3Location {
    return {
      type: 's3',
      bucket,
      endpoint: this.endpoint,
      region: 'us-east-1',
      path: '/',
      keyType: 'shared',
      key: ACCESS_KEY,
      secret: SECRET_KEY,
      uriStyle: 'path',
      verifyTls: true,
      uploadChunkSize: 5 * 1024 * 1024,
      ...overrides,
    }
  }

  /** Creates a bucket with a name no other test of this process uses, and returns its name. */
  /**
   * Config lines making repository `index` a bucket on this gateway (plain HTTP, path style, us-east-1), with the
   * gateway's key unless `key`/`secret` say otherwise. They hold the secret: the config file written with them must
   * be the reading user's alone (mode 0600).
   */
  repoLines(index: number, options: { bucket: string; path?: string; key?: string; secret?: string }): string[] {
    const repo = `repo${index}`
    return [
      `${repo}-type=s3`,
      `${repo}-s3-bucket=${options.bucket}`,
      `${repo}-s3-endpoint=${this.endpoint}`,
      `${repo}-s3-region=us-east-1`,
      `${repo}-s3-uri-style=path`,
      `${repo}-s3-key=${options.key ?? this.accessKey}`,
      `${repo}-s3-key-secret=${options.secret ?? this.secretKey}`,
      ...(options.path !== undefined ? [`${repo}-path=${options.path}`] : []),
    ]
  }

  async bucket(label = 'test'): Promise<string> {
    const name = `${label.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 30)}-${process.pid}-${++bucketSerial}`
    await new S3Client(this.location(name), { retries: 2 }).request({ method: 'PUT' })
    return name
  }

  /** Environment for Debian's awscli against this gateway: credentials in the environment, never in argv. */
  awsEnv(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: join(this.dir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(this.dir, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PAGER: '',
    }
  }

  /**
   * Runs awscli against this gateway (`aws --endpoint-url ... <args>`). Note that RGW's error bodies have an empty
   * <Message>, on which awscli 2.9 crashes: check for success, and look for the error code with --debug if needed.
   */
  aws(args: readonly string[]): Promise<CommandResult> {
    return runCommand(AWS_CLI, ['--endpoint-url', this.endpoint, ...args], this.awsEnv())
  }

  /** Stops only radosgw: S3 requests are refused until startGateway(); mon and OSD keep the data. */
  async stopGateway(): Promise<void> {
    const result = await this.#script('rgw-stop')
    if (result.code !== 0) throw new Error(`ceph-s3.sh rgw-stop failed: ${result.stderr}`)
  }

  /** Starts radosgw again after stopGateway() and waits until it answers. */
  async startGateway(): Promise<void> {
    const result = await this.#script('rgw-start')
    if (result.code !== 0) throw new Error(`ceph-s3.sh rgw-start failed: ${result.stderr}`)
  }

  /**
   * How many S3 requests the gateway has answered since it started (radosgw's `rgw.req` perf counter, every operation
   * counted once: GET, PUT, LIST, HEAD, DELETE), read through its admin socket: a JSON command and a NUL, answered
   * with a 4-byte big-endian length and the JSON. The difference of two readings is what happened in between.
   */
  async requestCount(): Promise<number> {
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect(join(this.dir, 'run', 'client.rgw.0.asok'))
      const chunks: Buffer[] = []
      socket.setTimeout(5000, () => socket.destroy(new Error('the gateway admin socket did not answer')))
      socket.on('connect', () => socket.write(JSON.stringify({ prefix: 'perf dump' }) + '\0'))
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.on('error', reject)
      socket.on('close', () => resolve(Buffer.concat(chunks)))
    })
    if (answer.length < 4) throw new Error('short answer from the gateway admin socket')
    const dump = JSON.parse(answer.subarray(4, 4 + answer.readUInt32BE(0)).toString('utf8')) as { rgw?: { req?: unknown } }
    if (typeof dump.rgw?.req !== 'number') throw new Error('the gateway perf dump has no rgw.req counter')
    return dump.rgw.req
  }

  /** Resident memory of the gateway's three daemons in bytes (to keep an eye on the CI machine). */
  rssBytes(): number {
    let total = 0
    for (const name of ['mon.a', 'osd.0', 'rgw.0']) {
      let status = ''
      try {
        status = readFileSync(`/proc/${readFileSync(join(this.dir, 'run', `${name}.fgpid`), 'utf8').trim()}/status`, 'utf8')
      } catch {
        // not running
      }
      const match = /VmRSS:\s+(\d+) kB/.exec(status)
      if (match) total += Number(match[1]) * 1024
    }
    return total
  }

  /** Stops the daemons and removes the folder. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    live.delete(this)
    await this.#script('destroy')
    await rm(this.dir, { recursive: true, force: true })
  }

  /** For process exit, where only synchronous work runs. */
  destroySync(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    spawnSync('bash', [SCRIPT, 'destroy'], { env: this.#env(), stdio: 'ignore', timeout: 60_000 })
  }
}

const live = new Set<S3Gateway>()
let shared: Promise<S3Gateway> | undefined

/** The gateway of this test file, started on first use; destroyed after the file's tests. */
export function s3Gateway(): Promise<S3Gateway> {
  shared ??= S3Gateway.start()
  return shared
}

after(async () => {
  for (const gateway of [...live]) await gateway.destroy()
})

// Last resort when the process ends some other way (uncaught error, process.exit, a signal): stop the daemons, which
// would otherwise outlive the test run holding memory and ports.
process.on('exit', () => {
  for (const gateway of live) gateway.destroySync()
})
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  process.once(signal, () => process.exit(128 + number))
}
