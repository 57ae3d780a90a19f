// Bundles the CLI and the worker-thread entry into dist/ with esbuild. One ESM file per entry keeps
// archive-push/archive-get start-up small: PostgreSQL runs them once per WAL segment.
import { build } from 'esbuild'
import { rmSync } from 'node:fs'

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

// dist/wal.mjs: the same main.ts with only the commands PostgreSQL runs per WAL segment (src/cli/wal-dispatch.ts in
// place of dispatch.ts), in one file. Node 20 loads ES modules one file at a time, a few milliseconds each, and
// archive_command pays that for every segment; bin/walden starts this file for archive-push and archive-get.
const walDispatch = {
  name: 'wal-dispatch',
  setup(plugin) {
    plugin.onResolve({ filter: /^\.\/dispatch\.js$/ }, (args) =>
      args.importer.endsWith('/src/cli/main.ts') ? { path: new URL('../src/cli/wal-dispatch.ts', import.meta.url).pathname } : undefined,
    )
  },
}
await build({
  ...common,
  entryPoints: { wal: 'src/cli/main.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  splitting: false,
  plugins: [walDispatch],
})
