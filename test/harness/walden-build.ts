// walden as an earlier commit of this repository built it: for tests that a repository written by that walden keeps
// working with this one. The commit's sources are taken from git (git archive), bundled by its own build script
// with this checkout's node_modules and native builds (the C parts have not changed in the commits tests name; a
// build that differs is rebuilt by the script), into a folder of the test.

import { spawnSync } from 'node:child_process'
import { cp, readdir, symlink } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { waldenPackageRoot } from '../../src/pg/binaries.js'
import type { TestDir } from './cluster.js'

/** Builds walden at `commit` into `<dir>/walden-<commit>`; returns the path of its bin/walden. */
export async function waldenBuildAt(commit: string, dir: TestDir): Promise<string> {
  const root = waldenPackageRoot()
  const known = spawnSync('git', ['-C', root, 'cat-file', '-e', `${commit}^{commit}`], { encoding: 'utf8' })
  if (known.status !== 0) {
    throw new Error(`commit ${commit} is not in the git history of ${root} (a shallow clone?): this test builds walden at that commit\n${known.stderr}`)
  }
  const target = join(dir.path, `walden-${commit.slice(0, 12)}`)
  const extract = spawnSync('sh', ['-c', `mkdir -p "$2" && git -C "$1" archive --format=tar "$3" bin src scripts package.json tsconfig.json native | tar -x -C "$2"`, 'sh', root, target, commit], {
    encoding: 'utf8',
  })
  if (extract.status !== 0) throw new Error(`git archive of ${commit} failed: ${extract.stderr}`)
  await symlink(join(root, 'node_modules'), join(target, 'node_modules'))
  for (const name of await readdir(join(root, 'native'))) {
    const build = join(root, 'native', name, 'build')
    if (existsSync(build) && existsSync(join(target, 'native', name))) await cp(build, join(target, 'native', name, 'build'), { recursive: true, preserveTimestamps: true })
  }
  const built = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: target, encoding: 'utf8', timeout: 300_000 })
  if (built.status !== 0) throw new Error(`building walden at ${commit} failed:\n${built.stdout}\n${built.stderr}`)
  return join(target, 'bin', 'walden')
}
