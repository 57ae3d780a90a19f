// walden's own native addons (native/*: small bindings of system libraries, built by scripts/build.mjs with
// node-gyp). Each is optional for speed: where one was not built, its callers fall back to a slower path. The one
// exception is native/io's kernel locks (src/common/lock.ts), which have no fallback: without them walden takes no lock.

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export type NativeAddon = 'lz4' | 'xxh3' | 'page' | 'io' | 'cipher' | 'bz2'

/**
 * The built addon's path, from src/io/ (tests) or from dist/ and dist/chunks/ (the bundle), or undefined when it was
 * not built.
 */
export function nativeAddonPath(name: NativeAddon): string | undefined {
  if (!found.has(name)) {
    const relative = `native/${name}/build/Release/walden_${name}.node`
    found.set(name, [`../${relative}`, `../../${relative}`].map((path) => fileURLToPath(new URL(path, import.meta.url))).find((path) => existsSync(path)))
  }
  return found.get(name)
}

// Looked up once per thread: codecs are asked for per file.
const found = new Map<NativeAddon, string | undefined>()

/**
 * The addon's exports, loaded once per thread, when it is built and has `member` as a function; undefined otherwise
 * (not built, not loadable on this machine, or an older build without that export), for the caller's fallback.
 */
export function nativeAddonLoad<T>(name: NativeAddon, member: string): T | undefined {
  if (!loaded.has(name)) {
    const path = nativeAddonPath(name)
    let module: unknown
    try {
      module = path === undefined ? undefined : createRequire(import.meta.url)(path)
    } catch {
      module = undefined
    }
    loaded.set(name, module)
  }
  const module = loaded.get(name) as Record<string, unknown> | undefined
  return typeof module?.[member] === 'function' ? (module as T) : undefined
}

const loaded = new Map<NativeAddon, unknown>()
