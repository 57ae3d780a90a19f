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

/** What is wrong: where (built only on failure, on the way up: checking stays cheap for a large manifest) and what. */
export interface Problem {
  where: string[]
  found: unknown
  expected: string
}

export interface Shape<T> {
  /** Undefined when the value has this shape. */
  check(value: unknown): Problem | undefined
  /** Type only (never set): makes Shape<T> invariant in T, so Shape<string> is not taken for Shape<string | undefined>. */
  readonly type?: (value: T) => T
}

/** What is wrong with `value` as one line, e.g. "backups[3].label is number 7, expected a backup label". */
export function shapeProblem<T>(shape: Shape<T>, value: unknown): string | undefined {
  const problem = shape.check(value)
  if (problem === undefined) return undefined
  const where = problem.where.reduce((path, key) => (key.startsWith('[') || path === '' ? `${path}${key}` : `${path}.${key}`), '')
  return `${where || 'content'} is ${describeValue(problem.found)}, expected ${problem.expected}`
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'missing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

function leaf<T>(test: (value: unknown) => boolean, expected: string): Shape<T> {
  return { check: (value) => (test(value) ? undefined : { where: [], found: value, expected }) }
}

export const string: Shape<string> = leaf((value) => typeof value === 'string', 'a string')

/** A string matching `pattern`, e.g. a backup label, which becomes part of a path. */
export function stringMatching(pattern: RegExp, what: string): Shape<string> {
  return leaf((value) => typeof value === 'string' && pattern.test(value), what)
}

export function oneOf<const T extends string>(values: readonly T[]): Shape<T> {
  return leaf((value) => typeof value === 'string' && (values as readonly string[]).includes(value), `one of ${values.join(', ')}`)
}

/** A finite number (JSON has no NaN or Infinity, but a hand-made document could hold a string). */
export const number: Shape<number> = leaf((value) => typeof value === 'number' && Number.isFinite(value), 'a number')

/** A whole number from `min` to `max`, and a power of two if `powerOfTwo`: a value a library call would refuse or
 * that would make it allocate without bound (scrypt's parameters). */
export function integerIn(min: number, max: number, options: { powerOfTwo?: boolean } = {}): Shape<number> {
  return leaf(
    (value) =>
      typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max && (options.powerOfTwo !== true || (value & (value - 1)) === 0),
    `a whole number from ${min} to ${max}${options.powerOfTwo === true ? ', a power of two' : ''}`,
  )
}

export const boolean: Shape<boolean> = leaf((value) => typeof value === 'boolean', 'true or false')

export function nullable<T>(inner: Shape<T>): Shape<T | null> {
  return { check: (value) => (value === null ? undefined : inner.check(value)) }
}

/** For an optional property (`key?: T`): absent, or a valid T. */
export function optional<T>(inner: Shape<T>): Shape<T | undefined> {
  return { check: (value) => (value === undefined ? undefined : inner.check(value)) }
}

export function arrayOf<T>(inner: Shape<T>): Shape<T[]> {
  return {
    check(value) {
      if (!Array.isArray(value)) return { where: [], found: value, expected: 'an array' }
      for (let index = 0; index < value.length; index++) {
        const problem = inner.check(value[index])
        if (problem !== undefined) return { ...problem, where: [`[${index}]`, ...problem.where] }
      }
      return undefined
    },
  }
}

export function object<T>(fields: { [K in keyof T]-?: Shape<T[K]> }): Shape<T> {
  const entries = Object.entries(fields) as Array<[string, Shape<unknown>]>
  return {
    check(value) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return { where: [], found: value, expected: 'an object' }
      const record = value as Record<string, unknown>
      for (const [key, field] of entries) {
        // Own properties only: a key named like an Object.prototype member must not be found through the prototype.
        const problem = field.check(Object.hasOwn(record, key) ? record[key] : undefined)
        if (problem !== undefined) return { ...problem, where: [key, ...problem.where] }
      }
      return undefined
    },
  }
}
