// reflinkProbe in a shared folder: a link planted under the probe's name is neither written through nor removed.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { reflinkProbe } from './clone-image.js'

test('the attack: a symbolic link planted where the probe goes is not written through, and stays', async () => {
  const root = await mkdtemp(join(tmpdir(), 'walden-probe-'))
  try {
    const victim = join(root, 'victim')
    await writeFile(victim, 'precious\n')
    const shared = join(root, 'shared')
    const clone = join(shared, 'clone')
    await mkdir(clone, { recursive: true })
    const planted = join(shared, `.walden-reflink-probe-${process.pid}`)
    await symlink(victim, planted)
    assert.equal(await reflinkProbe(shared, clone), false)
    assert.equal(await readFile(victim, 'utf8'), 'precious\n')
    assert.ok((await lstat(planted)).isSymbolicLink(), 'the planted link is not ours to remove')
  } finally {
    await rm(root, { recursive: true, force: true })
  }
})
