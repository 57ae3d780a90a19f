// XXH3-128 through walden's binding of the system libxxhash (native/xxh3/walden_xxh3.c): the fast checksum that
// delta restore compares a cluster's existing files with. Optional: without the binding, backups record no XXH3 and
// delta restore compares SHA-256 as before.

import { nativeAddonLoad } from './native.js'

export interface Xxh3 {
  update(data: Uint8Array): Xxh3
  /** 32 lowercase hex digits, high 64 bits first (XXH128's canonical form). */
  digest(encoding?: 'hex'): string
}

type Xxh3Constructor = new () => Xxh3

/** Test hook: pretend the binding is missing. */
export const xxh3HiddenForTest = { hidden: false }

function binding(): Xxh3Constructor | undefined {
  if (xxh3HiddenForTest.hidden) return undefined
  return nativeAddonLoad<{ Xxh3: Xxh3Constructor }>('xxh3', 'Xxh3')?.Xxh3
}

/** A new streaming XXH3-128, or undefined where the binding is not built. */
export function xxh3Create(): Xxh3 | undefined {
  const Constructor = binding()
  return Constructor ? new Constructor() : undefined
}
