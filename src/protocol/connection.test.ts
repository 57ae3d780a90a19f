import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { describe, test } from 'node:test'
import { FrameConnection, IncomingStream } from './connection.js'
import { CreditGate, FrameDecoder, FrameType } from './framing.js'
import type { Frame } from './framing.js'
import { shellQuote } from '../common/shell.js'
import { remoteCommandLine, sshArguments } from './client.js'
import type { RemoteHost } from './client.js'

/** Frames a connection writes, as the other end decodes them (before inflating). */
function capture(deflateLevel: number): { connection: FrameConnection; raw: () => Frame[]; received: Frame[] } {
  const output = new PassThrough()
  const chunks: Buffer[] = []
  output.on('data', (chunk: Buffer) => chunks.push(chunk))
  // The connection's own input is the loop back of its output, so its frame handler sees frames as decoded.
  const loop = new PassThrough()
  output.pipe(loop)
  const received: Frame[] = []
  const connection = new FrameConnection(loop, output, (frame) => received.push(frame), () => undefined, deflateLevel)
  return { connection, raw: () => new FrameDecoder().push(Buffer.concat(chunks)), received }
}

describe('FrameConnection data frames', () => {
  test('compress-level-network deflates data that shrinks and sends data that does not as it is', async () => {
    const { connection, raw, received } = capture(6)
    const text = Buffer.from('pg_data/base/5/2619 '.repeat(5000))
    const noise = randomBytes(100_000)
    await connection.sendData(1, new CreditGate(), text)
    await connection.sendData(2, new CreditGate(), noise)
    await new Promise((resolve) => setImmediate(resolve))
    const frames = raw()
    const deflated = frames.filter((frame) => frame.type === FrameType.DataDeflate)
    assert.equal(deflated.length, 1)
    assert.ok(deflated[0]!.payload.length < text.length / 10)
    assert.equal(frames.filter((frame) => frame.type === FrameType.Data && frame.channel === 2).length, 1)
    // Whatever crossed, the receiving end sees the original bytes as plain data frames.
    assert.deepEqual(Buffer.concat(received.filter((frame) => frame.channel === 1).map((frame) => frame.payload)), text)
    assert.deepEqual(Buffer.concat(received.filter((frame) => frame.channel === 2).map((frame) => frame.payload)), noise)
    assert.ok(received.every((frame) => frame.type === FrameType.Data))
  })

  test('level 0 sends data frames as they are, split at the frame limit', async () => {
    const { connection, raw } = capture(0)
    await connection.sendData(1, new CreditGate(), Buffer.alloc(600 * 1024, 1))
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(raw().map((frame) => [frame.type, frame.payload.length]), [
      [FrameType.Data, 256 * 1024],
      [FrameType.Data, 256 * 1024],
      [FrameType.Data, 88 * 1024],
    ])
  })
})

describe('the ssh command line', () => {
  const target: RemoteHost = {
    host: 'backup1',
    user: 'walden',
    port: 2222,
    cmd: '/opt/my walden/bin/walden',
    config: "/etc/it's $(reboot) `x`.conf",
    ssh: 'ssh',
    timeoutSeconds: 1830,
    deflateLevel: 0,
    role: 'backup host',
    option: 'repo1-host',
  }

  test('every word of the remote command is quoted for the remote shell', () => {
    assert.equal(
      remoteCommandLine(target, { stanza: 'demo', repo: 2 }),
      `'/opt/my walden/bin/walden' '--config=/etc/it'\\''s $(reboot) \`x\`.conf' --stanza=demo --repo=2 remote`,
    )
    const words = ['plain', 'a b', "it's", '$(x)', '`x`', '"q"', '', 'back\\slash', 'new\nline']
    for (const word of words) {
      // What sh makes of the quoted word is the word itself.
      const result = spawnSync('sh', ['-c', `printf '%s' ${shellQuote(word)}`], { encoding: 'utf8' }).stdout
      assert.equal(result, word, `word ${JSON.stringify(word)}`)
    }
  })

  test('ssh gets options, then --, then the host: a host or user cannot turn into an option', () => {
    const args = sshArguments(target, { stanza: 'demo', repo: 1 })
    assert.deepEqual(args.slice(-7, -1), ['-p', '2222', '-l', 'walden', '--', 'backup1'])
    assert.equal(args[args.indexOf('--') + 1], 'backup1')
    assert.ok(args.includes('BatchMode=yes'))
    assert.equal(args.at(-1), remoteCommandLine(target, { stanza: 'demo', repo: 1 }))
  })
})

describe('IncomingStream', () => {
  const collect = async (stream: IncomingStream): Promise<Buffer> => {
    const chunks: Buffer[] = []
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk)
    return Buffer.concat(chunks)
  }
  const connection = (): FrameConnection => new FrameConnection(new PassThrough(), new PassThrough(), () => undefined, () => undefined)
  const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

  test('ends with the bytes and the trailer when they match the SHA-256 the sender computed', async () => {
    const stream = new IncomingStream(connection(), 1, true, () => undefined)
    const data = randomBytes(1000)
    stream.deliver(data.subarray(0, 400))
    stream.deliver(data.subarray(400))
    stream.finish({ sha256: sha(data), trailer: { size: 1000 } })
    assert.deepEqual(await collect(stream), data)
    assert.deepEqual(stream.trailer, { size: 1000 })
  })

  test('fails, and never ends as data, when a byte changed on the way', async () => {
    const stream = new IncomingStream(connection(), 1, true, () => undefined)
    const data = randomBytes(1000)
    const altered = Buffer.from(data)
    altered[500] = altered[500]! ^ 1
    stream.deliver(altered)
    stream.finish({ sha256: sha(data) })
    await assert.rejects(collect(stream), /do not match the SHA-256 the sender computed/)
  })
})
