// walden's own native addons (native/*: small bindings of system libraries, built by scripts/build.mjs with
// node-gyp). Each is optional: where one was not built, its callers fall back to a slower path.

import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export type NativeAddon = 'lz4' | 'xxh3' | 'page'

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
