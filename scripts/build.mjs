// Bundles the CLI and the worker-thread entry into dist/ with esbuild. One ESM file per entry keeps
// archive-push/archive-get start-up small: PostgreSQL runs them once per WAL segment.
import { build } from 'esbuild'
import { rmSync } from 'node:fs'

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true })
await build({
  entryPoints: { cli: 'src/cli/main.ts', worker: 'src/parallel/worker.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  // Each command is its own chunk: archive-push must not load pg, backup or restore code.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  // Native addons load at run time from node_modules; pg-native is an optional backend of pg we never use.
  external: ['zstd-napi', 'lz4-napi', 'pg-native'],
  // pg is CommonJS and calls require() for built-ins.
  banner: { js: "import { createRequire as __walden_createRequire } from 'node:module'; const require = __walden_createRequire(import.meta.url);" },
  logLevel: 'warning',
})
