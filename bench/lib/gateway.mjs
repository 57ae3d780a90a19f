// The S3 side of `npm run bench -- --repo-type=s3`: one local Ceph RADOS Gateway (the test harness's
// test/harness/ceph-s3.sh) on kernel-chosen free ports, a bucket per tool, and the gateway's own counters (requests,
// bytes, CPU of its daemons) read around each timed command.
//
// Both tools reach it over HTTPS (pgBackRest 2.45 speaks nothing else) with certificate checks off; the bench itself
// talks plain HTTP to the same gateway through Debian's awscli to create buckets, list and remove prefixes.

import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { BENCH_DIR, BenchError, run } from './proc.mjs'

const SCRIPT = resolve(BENCH_DIR, '..', 'test', 'harness', 'ceph-s3.sh')
const ACCESS_KEY = 'testaccesskey'
const SECRET_KEY = 'testsecretkey'
// Debian's awscli v2: a pyenv or pip awscli earlier on PATH is another program (v1) with other defaults.
const AWS_CLI = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws'
// Enough for the bench at scale 100: both tools' fulls (retention 2), their WAL, the fan-out copies and the
// pushed segments of scenario 5, plus deleted objects until the gateway's garbage collection (60 s) frees them.
// memstore holds only what is stored, so the figure is a ceiling, not an allocation.
const MEMSTORE_BYTES = 12 * 1024 ** 3
const DAEMONS = ['mon.a', 'osd.0', 'rgw.0']
const CLOCK_TICKS = 100

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolvePort(port))
    })
  })
}

export class Gateway {
  constructor(dir, ports) {
    Object.assign(this, { dir, ...ports })
    this.accessKey = ACCESS_KEY
    this.secretKey = SECRET_KEY
    this.region = 'us-east-1'
    this.destroyed = false
  }

  /** Starts a gateway in a fresh folder under `parent`; a port taken meanwhile means another try on new ports. */
  static async start(parent) {
    let last = ''
    for (let attempt = 1; attempt <= 3; attempt++) {
      const dir = await mkdtemp(join(parent, 'ceph-s3-'))
      const gateway = new Gateway(dir, { rgwPort: await freePort(), tlsPort: await freePort(), monPort: await freePort() })
      live.add(gateway)
      const result = await gateway.script('start')
      if (result.code === 0) return gateway
      last = result.stderr
      await gateway.destroy()
    }
    throw new BenchError(`the Ceph S3 gateway did not start (apt-get install ceph-mon ceph-osd radosgw; see .ci/run):\n${last}`)
  }

  env() {
    return {
      DIR: this.dir,
      RGW_PORT: String(this.rgwPort),
      TLS_PORT: String(this.tlsPort),
      MON_PORT: String(this.monPort),
      MEMSTORE_BYTES: String(MEMSTORE_BYTES),
      ACCESS_KEY,
      SECRET_KEY,
    }
  }

  script(command) {
    return run('bash', [SCRIPT, command], { owner: false, allowFail: true, env: this.env(), what: `ceph-s3.sh ${command}` })
  }

  /** awscli against the plain-HTTP endpoint; credentials in the environment, never in argv. */
  aws(args, options = {}) {
    const env = {
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_DEFAULT_REGION: this.region,
      AWS_CONFIG_FILE: join(this.dir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(this.dir, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PAGER: '',
    }
    return run(AWS_CLI, ['--endpoint-url', `http://127.0.0.1:${this.rgwPort}`, ...args], { owner: false, env, what: `aws ${args.join(' ')}`, ...options })
  }

  async bucketCreate(name) {
    await this.aws(['s3api', 'create-bucket', '--bucket', name])
    return name
  }

  /** Removes every object under `prefix` (a repository path such as /push-walden-3) of `bucket`. */
  async prefixRemove(bucket, prefix) {
    await this.aws(['s3', 'rm', '--recursive', '--quiet', `s3://${bucket}/${prefix.replace(/^\/+/, '')}`])
  }

  /** Keys under `prefix` of `bucket`. */
  async keys(bucket, prefix) {
    const { stdout } = await this.aws(['s3', 'ls', '--recursive', `s3://${bucket}/${prefix.replace(/^\/+/, '')}/`], { allowFail: true })
    return stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/).slice(3).join(' '))
      .filter(Boolean)
  }

  /**
   * The gateway's counters now: requests, GETs and PUTs with their bytes (radosgw's perf counters through its admin
   * socket, spoken directly: a JSON command, a NUL, then a 4-byte length and the JSON answer), and the CPU seconds
   * its three daemons have used. Undefined fields when a counter cannot be read; the bench never fails for them.
   */
  async counters() {
    const result = { cpuS: this.cpuS() }
    try {
      const dump = await adminSocket(join(this.dir, 'run', 'client.rgw.0.asok'), { prefix: 'perf dump' })
      const rgw = dump.rgw ?? {}
      Object.assign(result, { requests: rgw.req, gets: rgw.get, puts: rgw.put, getBytes: rgw.get_b, putBytes: rgw.put_b })
    } catch {
      // No counters this time.
    }
    return result
  }

  cpuS() {
    let ticks = 0
    for (const name of DAEMONS) {
      try {
        const pid = readFileSync(join(this.dir, 'run', `${name}.fgpid`), 'utf8').trim()
        // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        ticks += Number(fields[11]) + Number(fields[12])
      } catch {
        return undefined
      }
    }
    return ticks / CLOCK_TICKS
  }

  /** Resident memory of the three daemons, bytes. */
  rssBytes() {
    let total = 0
    for (const name of DAEMONS) {
      try {
        const pid = readFileSync(join(this.dir, 'run', `${name}.fgpid`), 'utf8').trim()
        total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
      } catch {
        // not running
      }
    }
    return total
  }

  /** Stops the daemons and removes the folder. Idempotent. */
  async destroy() {
    if (this.destroyed) return
    this.destroyed = true
    live.delete(this)
    await this.script('destroy')
    await rm(this.dir, { recursive: true, force: true })
  }

  /** For the exit handler, where only synchronous work runs. */
  destroySync() {
    if (this.destroyed) return
    this.destroyed = true
    live.delete(this)
    spawnSync('bash', [SCRIPT, 'destroy'], { env: { ...process.env, ...this.env() }, stdio: 'ignore', timeout: 60_000 })
  }
}

/** Gateways not yet destroyed, for the bench's clean-up on any exit. */
export const live = new Set()

export function gatewaysDestroySync() {
  for (const gateway of [...live]) gateway.destroySync()
}

/**
 * Destroys every gateway; with `keep` (--keep) stops it instead, data kept in its folder, and returns the command
 * that starts it again on the same ports and data (for profiling a tool against the kept repositories).
 */
export async function gatewaysDestroy({ keep = false } = {}) {
  const restart = []
  for (const gateway of [...live]) {
    if (!keep) {
      await gateway.destroy()
      continue
    }
    gateway.destroyed = true
    live.delete(gateway)
    await gateway.script('stop')
    const env = Object.entries(gateway.env()).filter(([key]) => !/KEY/.test(key)).map(([key, value]) => `${key}=${value}`)
    restart.push(`${env.join(' ')} bash ${SCRIPT} start`)
  }
  return restart
}

function adminSocket(path, command) {
  return new Promise((resolveAnswer, reject) => {
    const socket = connect(path)
    const chunks = []
    const timer = setTimeout(() => socket.destroy(new Error('admin socket timeout')), 5000)
    socket.on('connect', () => socket.write(JSON.stringify(command) + '\0'))
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      const all = Buffer.concat(chunks)
      if (all.length < 4) return reject(new Error('short admin socket answer'))
      const length = all.readUInt32BE(0)
      try {
        resolveAnswer(JSON.parse(all.subarray(4, 4 + length).toString('utf8')))
      } catch (error) {
        reject(error)
      }
    })
  })
}

/**
 * What a timed command cost the gateway: the difference of two counters() readings, as sample fields
 * (gwRequests, gwPuts, gwGets, gwPutBytes, gwGetBytes, gwCpuS); fields that could not be read are left out.
 */
export function gatewayDelta(before, after) {
  const out = {}
  const diff = (key) => (Number.isFinite(before[key]) && Number.isFinite(after[key]) ? after[key] - before[key] : undefined)
  const set = (name, value) => {
    if (value !== undefined) out[name] = value
  }
  set('gwRequests', diff('requests'))
  set('gwPuts', diff('puts'))
  set('gwGets', diff('gets'))
  set('gwPutBytes', diff('putBytes'))
  set('gwGetBytes', diff('getBytes'))
  const cpu = diff('cpuS')
  set('gwCpuS', cpu === undefined ? undefined : +cpu.toFixed(2))
  return out
}
