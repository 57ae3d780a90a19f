// Shape checks for the JSON documents walden keeps in the repository (archive.info, backup.info, backup.manifest).
//
// A checksum proves a document is what was written, not that it is what this walden expects: a file written by a
// newer walden under the same format number, edited by hand with its checksum recomputed, or a walden bug would still
// pass it, and a missing key or a wrong type would then surface as a TypeError deep inside a command. Each document
// type therefore has a shape, checked as part of loading, so such a copy is a damaged copy like any other.
//
// A Shape<T> is typed so that `object<T>({...})` must name a check for every key of T: a field added to an interface
// without a check here fails to compile. Keys the shape does not name are allowed and ignored, so an optional field a
// later walden adds does not make its documents unreadable.

/** Checks a value; returns what is wrong with it (naming where, e.g. `backups[3].label`), or undefined. */
export interface Shape<T> {
  check(value: unknown, at: string): string | undefined
  /** Type only (never set): makes Shape<T> invariant in T, so Shape<string> is not taken for Shape<string | undefined>. */
  readonly type?: (value: T) => T
}

function shape<T>(check: (value: unknown, at: string) => string | undefined): Shape<T> {
  return { check }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

function expected(at: string, what: string, value: unknown): string {
  return `${at || 'content'} is ${value === undefined ? 'missing' : describeValue(value)}, expected ${what}`
}

export const string: Shape<string> = shape((value, at) => (typeof value === 'string' ? undefined : expected(at, 'a string', value)))

/** A string matching `pattern`, e.g. a backup label, which becomes part of a path. */
export function stringMatching(pattern: RegExp, what: string): Shape<string> {
  return shape((value, at) => (typeof value === 'string' && pattern.test(value) ? undefined : expected(at, what, value)))
}

export function oneOf<const T extends string>(values: readonly T[]): Shape<T> {
  return shape((value, at) =>
    typeof value === 'string' && (values as readonly string[]).includes(value) ? undefined : expected(at, `one of ${values.join(', ')}`, value),
  )
}

/** A finite number (JSON has no NaN or Infinity, but a hand-made document could hold a string). */
export const number: Shape<number> = shape((value, at) =>
  typeof value === 'number' && Number.isFinite(value) ? undefined : expected(at, 'a number', value),
)

/** A whole number, zero or more: sizes, ids, timestamps in seconds, modes. */
export const count: Shape<number> = shape((value, at) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? undefined : expected(at, 'a whole number >= 0', value),
)

export const boolean: Shape<boolean> = shape((value, at) => (typeof value === 'boolean' ? undefined : expected(at, 'true or false', value)))

export function nullable<T>(inner: Shape<T>): Shape<T | null> {
  return shape((value, at) => (value === null ? undefined : inner.check(value, at)))
}

/** For an optional property (`key?: T`): absent, or a valid T. */
export function optional<T>(inner: Shape<T>): Shape<T | undefined> {
  return shape((value, at) => (value === undefined ? undefined : inner.check(value, at)))
}

export function arrayOf<T>(inner: Shape<T>): Shape<T[]> {
  return shape((value, at) => {
    if (!Array.isArray(value)) return expected(at, 'an array', value)
    for (let index = 0; index < value.length; index++) {
      const problem = inner.check(value[index], `${at}[${index}]`)
      if (problem !== undefined) return problem
    }
    return undefined
  })
}

export function object<T>(fields: { [K in keyof T]-?: Shape<T[K]> }): Shape<T> {
  const entries = Object.entries(fields) as Array<[string, Shape<unknown>]>
  return shape((value, at) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return expected(at, 'an object', value)
    const record = value as Record<string, unknown>
    for (const [key, field] of entries) {
      // Own properties only: a key named like an Object.prototype member must not be found through the prototype.
      const problem = field.check(Object.hasOwn(record, key) ? record[key] : undefined, at ? `${at}.${key}` : key)
      if (problem !== undefined) return problem
    }
    return undefined
  })
}
