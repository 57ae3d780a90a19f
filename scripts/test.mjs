// Test runner behind `npm test`. Usage: node scripts/test.mjs [unit | integration | <file>...]
// Builds first because integration tests run bin/walden, which loads the esbuild bundle in dist/. Node 20's --test
// takes no globs, so the files are found here: src/**/*.test.ts are unit tests, test/**/*.test.ts integration tests.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const args = process.argv.slice(2)

/** *.test.ts files under a folder of the repo, as sorted repo-relative paths. */
function testFiles(folder) {
  const entries = readdirSync(join(root, folder), { recursive: true, withFileTypes: true })
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.test.ts'))
    .map((entry) => relative(root, join(entry.parentPath ?? entry.path, entry.name)))
    .filter((file) => !file.split('/').includes('node_modules'))
    .sort()
}

let files
if (args.length === 0) files = [...testFiles('src'), ...testFiles('test')]
else if (args.length === 1 && args[0] === 'unit') files = testFiles('src')
else if (args.length === 1 && args[0] === 'integration') files = testFiles('test')
else files = args.map((file) => resolve(file)) // relative to the caller's folder, run from the root

if (files.length === 0) {
  console.error(`test: no test files for ${args.join(' ') || 'all'}`)
  process.exit(1)
}

console.log('test: npm run build')
const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
if (build.status !== 0) {
  console.error(`test: the build failed (exit ${build.status ?? build.signal}); fix it before running tests`)
  process.exit(build.status || 1)
}

console.log(`test: ${files.length} file(s)`)
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...files],
  { cwd: root, stdio: 'inherit' },
)
if (result.signal) process.kill(process.pid, result.signal)
process.exit(result.status ?? 1)
