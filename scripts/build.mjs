// Bundles the CLI and the worker-thread entry into dist/ with esbuild. One ESM file per entry keeps
// archive-push/archive-get start-up small: PostgreSQL runs them once per WAL segment.
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { existsSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true })
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  // Native addons load at run time from node_modules; pg-native is an optional backend of pg we never use.
  external: ['zstd-napi', 'lz4-napi', 'pg-native'],
  // pg is CommonJS and calls require() for built-ins.
  banner: { js: "import { createRequire as __walden_createRequire } from 'node:module'; const require = __walden_createRequire(import.meta.url);" },
  logLevel: 'warning',
}
await build({
  ...common,
  entryPoints: { cli: 'src/cli/main.ts', worker: 'src/parallel/worker.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  // Each command is its own chunk: archive-push must not load pg, backup or restore code.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
})

/** main.ts with `table` (a file of src/cli/) in place of dispatch.ts. */
const dispatchWith = (table) => ({
  name: `dispatch-${table}`,
  setup(plugin) {
    plugin.onResolve({ filter: /^\.\/dispatch\.js$/ }, (args) =>
      args.importer.endsWith('/src/cli/main.ts') ? { path: new URL(`../src/cli/${table}`, import.meta.url).pathname } : undefined,
    )
  },
})

// dist/wal.mjs: the same main.ts with only the commands PostgreSQL runs per WAL segment (src/cli/wal-dispatch.ts in
// place of dispatch.ts), in one file. Node 20 loads ES modules one file at a time, a few milliseconds each, and
// archive_command pays that for every segment; bin/walden starts this file for archive-push and archive-get.
await build({
  ...common,
  entryPoints: { wal: 'src/cli/main.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  splitting: false,
  plugins: [dispatchWith('wal-dispatch.ts')],
})

// dist/remote.mjs: the same for `walden remote` (src/cli/remote-dispatch.ts), which every SSH session of another
// walden starts.
await build({
  ...common,
  entryPoints: { remote: 'src/cli/main.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  splitting: false,
  plugins: [dispatchWith('remote-dispatch.ts')],
})

// native/*: walden's C parts (bindings of liblz4 for lz4 compression and of libxxhash for delta restore's checksum,
// PostgreSQL's page checksum and the check of WAL records, the buffer alignment O_DIRECT writes need and the kernel
// file locks walden's locks are, the repository cipher's AES-256-GCM through Node's own OpenSSL, and libbz2 to read
// repositories pgBackRest wrote with bz2), each built with
// npm's own node-gyp when its output is missing or older than its sources. A machine
// where one cannot be built still works through the slower path its caller falls back to, so a failure here is a
// warning, not a failed build.
for (const name of ['lz4', 'xxh3', 'page', 'io', 'cipher', 'bz2']) {
  const addonDir = fileURLToPath(new URL(`../native/${name}`, import.meta.url))
  const addon = join(addonDir, 'build', 'Release', `walden_${name}.node`)
  const sources = [`walden_${name}.c`, 'binding.gyp', '../napi-args.h'].map((file) => statSync(join(addonDir, file)).mtimeMs)
  if (existsSync(addon) && statSync(addon).mtimeMs >= Math.max(...sources)) continue
  // npm sets npm_config_node_gyp for its scripts; otherwise the node-gyp that ships with npm beside this Node.js.
  const prefix = dirname(dirname(process.execPath))
  const nodeGyp = [process.env.npm_config_node_gyp, join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find(
    (path) => path && existsSync(path),
  )
  // Node's headers where the Node.js package installed them (Debian's and the official tarball's layout), so
  // node-gyp does not try to download them.
  const headers = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : []
  const result = nodeGyp
    ? spawnSync(process.execPath, [nodeGyp, 'rebuild', ...headers], { cwd: addonDir, encoding: 'utf8' })
    : { status: null, stdout: '', stderr: 'node-gyp was not found' }
  if (result.status !== 0) {
    const fallback = { lz4: 'lz4 falls back to lz4-napi (slower)', xxh3: 'delta restore compares SHA-256 (slower)', page: 'page and WAL checks run in JavaScript (slower)', io: 'restore writes through the page cache, and walden can take no locks: backup, expire, stanza-create and asynchronous archiving refuse to run', cipher: 'encryption runs through node:crypto (slower)', bz2: 'repositories pgBackRest wrote with compress-type=bz2 cannot be read' }[name]
    const output = (result.stderr || result.stdout || String(result.error ?? '')).trim().split('\n').slice(-8).join('\n')
    process.stderr.write(`WARNING: walden's native/${name} binding was not built; ${fallback}.\n${output}\n`)
  }
}
