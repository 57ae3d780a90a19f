// A timeline history file made up for a test, pushed with archive-push and fetched back with archive-get through a
// stanza's repositories: for the repository types whose tests do not switch timelines themselves (S3, a backup host
// over SSH). The caller checks where it landed, and removes it afterwards: left in the archive, a timeline the
// cluster never had would be the newest one a restore with target-timeline=latest looks for.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import type { TestStanza } from './stanza.js'

export interface PushedHistory {
  /** '0000000A.history' */
  name: string
  content: Buffer
  sha256: string
  /** The name of its checksum record. */
  record: string
}

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout),
    gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout),
  }
}

/**
 * Pushes '<timeline>.history' (content of its own: a switch from timeline 1) with archive-push, then checks:
 * archive-get (with `getArgs`, e.g. ['--repo=2']) returns it byte for byte, a second push of it is "already in the
 * archive", and a push of other content under its name is refused (45).
 */
export async function historyPushGet(stanza: TestStanza, timeline: number, getArgs: readonly string[] = []): Promise<PushedHistory> {
  const name = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`
  const folder = join(stanza.dir.path, `history-${timeline}`)
  await mkdir(join(folder, 'other'), { recursive: true })
  const { uid, gid } = postgresIds()
  const content = Buffer.from(`1\t0/3000000\tno recovery target specified\n\n${timeline - 1}\t0/4000000\tbefore made-up timeline ${timeline}\n`)
  const file = join(folder, name)
  const other = join(folder, 'other', name)
  await writeFile(file, content)
  await writeFile(other, `1\t0/3000000\tanother cluster's timeline ${timeline}\n`)
  for (const path of [folder, join(folder, 'other'), file, other]) await chown(path, uid, gid)
  try {
    const pushed = await stanza.walden(['archive-push', file])
    assert.equal(pushed.code, 0, pushed.stderr)
    const destination = join(folder, 'fetched')
    const fetched = await stanza.walden(['archive-get', ...getArgs, name, destination])
    assert.equal(fetched.code, 0, fetched.stderr)
    assert.deepEqual(await readFile(destination), content)
    const again = await stanza.walden(['archive-push', file, '--log-level-console=info'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout + again.stderr, new RegExp(`WAL file '${name.replace('.', '\\.')}' is already in the archive with the same checksum`))
    const refused = await stanza.walden(['archive-push', other])
    assert.equal(refused.code, 45, refused.stderr)
    // With several repositories each names itself: 'repo1: WAL file ...; repo2: WAL file ...'.
    assert.match(refused.stderr, new RegExp(`ERROR: \\[045\\]: (repo\\d: )?WAL file '${name.replace('.', '\\.')}' already exists in the archive with a different checksum`))
  } finally {
    await rm(folder, { recursive: true, force: true })
  }
  const sha256 = createHash('sha256').update(content).digest('hex')
  return { name, content, sha256, record: `${name}.sha256-${sha256}` }
}
