// walden as an earlier commit of this repository built it: for tests that a repository written by that walden keeps
// working with this one. The commit's sources are taken from git (git archive), bundled by its own build script
// with this checkout's node_modules and native builds, into a folder of the test. The native builds are used as they
// are (the copies are newer than the extracted sources, so the script does not rebuild them): right only for a commit
// whose native/ is this checkout's, as it is for the commits tests name so far.

import { spawnSync } from 'node:child_process'
import { cp, readdir, symlink } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { waldenPackageRoot } from '../../src/pg/binaries.js'
import type { TestDir } from './cluster.js'

/**
 * Why walden cannot be built at `commit` here (it is not in this clone's history: a shallow clone), or undefined when
 * it can. Tests that need an earlier build skip, saying this, rather than fail on how the checkout was made.
 */
export function waldenBuildUnavailable(commit: string): string | undefined {
  const root = waldenPackageRoot()
  const known = spawnSync('git', ['-C', root, 'cat-file', '-e', `${commit}^{commit}`], { encoding: 'utf8' })
  if (known.status === 0) return undefined
  return `commit ${commit} is not in the git history of ${root} (a shallow clone? .ci/run deepens one where it can): this test builds walden at that commit`
}

/** Builds walden at `commit` into `<dir>/walden-<commit>`; returns the path of its bin/walden. */
export async function waldenBuildAt(commit: string, dir: TestDir): Promise<string> {
  const root = waldenPackageRoot()
  const unavailable = waldenBuildUnavailable(commit)
  if (unavailable !== undefined) throw new Error(unavailable)
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
