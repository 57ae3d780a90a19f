// What setup does so a standby can connect: the replication role (LOGIN REPLICATION, with a password), that password
// in the password file the standby's primary_conninfo reads, and a pg_hba.conf line that lets the role in from the
// standby's host or network. Planned first (every check and refusal happens while nothing is changed yet), so
// --dry-run shows exactly what a run would do, and a second run finds nothing left to do.
//
// The password never reaches argv, a log line, an error text or the server: the file gets it, PostgreSQL gets the
// SCRAM secret computed from it (scram.ts).

import { readFile, stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { errnoCode, fail } from '../../common/errors.js'
import type { Config } from '../../config/config.js'
import { sqlIdentifier, sqlLiteral } from '../../pg/conf-syntax.js'
import { hbaAddress, hbaReplicationLine, roleNameProblem } from '../../pg/hba.js'
import { pgpassLookup, pgpassPath, pgpassRead, pgpassUpsert, pgpassWrite } from '../../pg/pgpass.js'
import { scramPasswordNew, scramPasswordProblem, scramSecret, scramSecretMatches } from '../../pg/scram.js'
import type { PgSession } from '../../pg/session.js'
import { posixStorage } from '../../storage/posix.js'

/** One change setup would make, as shown, and how to make it. */
export interface AccessStep {
  shown: string
  apply: () => Promise<void>
  /** The server must reload its configuration afterwards (pg_hba.conf). */
  reload?: boolean
}

type PasswordSource = 'file' | 'password file' | 'generated'

/** The password for the role: from --replication-password-file, else the password file's entry, else a new one. */
async function passwordFor(cfg: Config, existing: string | undefined): Promise<{ password: string; source: PasswordSource }> {
  const file = cfg.string('replication-password-file')
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch((error: unknown) =>
      fail('FileRead', `unable to read replication-password-file '${file}': ${errnoCode(error) === 'ENOENT' ? 'it does not exist' : (error as Error).message}`),
    )
    // One line; its line break is not part of the password, as with initdb --pwfile.
    const password = text.replace(/\r?\n$/, '')
    const problem = scramPasswordProblem(password)
    if (problem !== undefined) {
      fail('OptionInvalidValue', `the password in replication-password-file '${file}' cannot be used: ${problem}`, {
        hint: 'put the password alone on the first line: printable ASCII, no line break inside (the password file libpq reads holds one entry a line).',
      })
    }
    return { password, source: 'file' }
  }
  if (existing !== undefined) return { password: existing, source: 'password file' }
  return { password: scramPasswordNew(), source: 'generated' }
}

/** The role, its password and the password-file entry. The entry is written before the role, see below. */
async function roleSteps(cfg: Config, session: PgSession, role: string, port: string): Promise<AccessStep[]> {
  const steps: AccessStep[] = []
  const passfile = pgpassPath()
  const passText = await pgpassRead(passfile)
  // Any host and database: the standby reaches this server under a name setup cannot know, for replication and
  // for the SQL session standby-create checks the connection with.
  const key = { host: '*', port, database: '*', user: role }
  const inPassfile = pgpassLookup(passText, key)
  const { password, source } = await passwordFor(cfg, inPassfile)
  const shownRole = `role ${sqlIdentifier(role)}`

  const [found] = await session.query<{ login: boolean; replication: boolean; secret: string | null }>(
    'select rolcanlogin as login, rolreplication as replication, rolpassword as secret from pg_authid where rolname = $1',
    [role],
  )
  // The password file first: were the role's change to fail, the next run takes the password from the file and
  // completes; the other way round, a role with a password nobody wrote down would be left behind.
  if (inPassfile !== password) {
    steps.push({
      shown: `password file '${passfile}': ${inPassfile === undefined ? 'add' : 'replace'} the entry *:${port}:*:${role} (${source === 'file' ? 'password from replication-password-file' : 'new generated password'})`,
      apply: () => pgpassWrite(passfile, pgpassUpsert(passText, { ...key, password }, { wildcards: true })),
    })
  }
  if (found === undefined) {
    steps.push({
      shown: `${shownRole}: create with LOGIN REPLICATION and the password in the password file`,
      apply: async () => void (await session.query(`create role ${sqlIdentifier(role)} with login replication password ${sqlLiteral(scramSecret(password))}`)),
    })
    return steps
  }
  if (!found.login || !found.replication) {
    steps.push({
      shown: `${shownRole}: add ${[!found.login ? 'LOGIN' : '', !found.replication ? 'REPLICATION' : ''].filter(Boolean).join(' and ')}`,
      apply: async () => void (await session.query(`alter role ${sqlIdentifier(role)} with login replication`)),
    })
  }
  if (!scramSecretMatches(found.secret, password)) {
    // Replacing a password someone else set would cut off the standbys that use it: only on request.
    if (found.secret !== null && source !== 'file' && !cfg.boolean('force')) {
      fail('OptionInvalid', `${shownRole} already exists with a password that is not the one in the password file '${passfile}'`, {
        hint: 'give its password with --replication-password-file, or --force to give it a new one (standbys using the old one must then be given the new one).',
      })
    }
    steps.push({
      shown: `${shownRole}: set its password to the one in the password file`,
      apply: async () => void (await session.query(`alter role ${sqlIdentifier(role)} with password ${sqlLiteral(scramSecret(password))}`)),
    })
  }
  return steps
}

/**
 * Replaces pg_hba.conf whole, keeping its mode: temporary name, fsync, rename, fsync of the folder, so a crash leaves
 * the old file or the new one. A half-written line would keep the server from starting.
 */
async function hbaReplace(hbaFile: string, content: string): Promise<void> {
  try {
    const { mode } = await stat(hbaFile)
    await posixStorage(dirname(hbaFile)).write(basename(hbaFile), content, { mode: mode & 0o777 })
  } catch (error) {
    fail('FileWrite', `unable to write pg_hba.conf '${hbaFile}': ${(error as Error).message}`, { hint: 'run setup as the OS user that owns the cluster (usually postgres).' })
  }
}

/** The pg_hba.conf line for the standby, appended (earlier lines win in pg_hba.conf) unless already there. */
async function hbaSteps(session: PgSession, role: string, standbyHost: string): Promise<AccessStep[]> {
  const address = hbaAddress(standbyHost)
  const line = hbaReplicationLine(role, address)
  const [{ hba_file: hbaFile } = { hba_file: '' }] = await session.query<{ hba_file: string }>(`select current_setting('hba_file') as hba_file`)
  const original = await readFile(hbaFile, 'utf8').catch((error: unknown) =>
    fail('FileRead', `unable to read pg_hba.conf '${hbaFile}': ${(error as Error).message}`, { hint: 'run setup as the OS user that owns the cluster (usually postgres).' }),
  )
  if (original.split('\n').some((existing) => existing.trim() === line)) return []
  return [
    {
      shown: `pg_hba.conf '${hbaFile}': add  ${line}`,
      reload: true,
      apply: async () => {
        // The comment and the line come after the file's last line.
        const lineNumber = (original === '' ? 0 : original.replace(/\n$/, '').split('\n').length) + 2
        await hbaReplace(hbaFile, `${original}${original === '' || original.endsWith('\n') ? '' : '\n'}# added by walden setup: replication from ${address}\n${line}\n`)
        // Read back as PostgreSQL parses it before the reload makes it count: a line it reads otherwise than meant
        // is taken out again.
        const [rule] = await session.query<{ as_meant: string; error: string | null }>(
          `select error, (error is null and auth_method = 'scram-sha-256' and user_name = array[$2]::text[]
                          and 'replication' = any(database))::text as as_meant
             from pg_hba_file_rules where line_number = $1 order by 1 limit 1`,
          [lineNumber, role],
        )
        const asMeant = rule?.as_meant === 'true'
        if (!asMeant) {
          await hbaReplace(hbaFile, original)
          fail('FileInvalid', `PostgreSQL does not read the line walden added to '${hbaFile}' as intended${rule?.error ? `: ${rule.error}` : ''}; the file was put back as it was`, {
            hint: 'add the replication line to pg_hba.conf yourself.',
          })
        }
      },
    },
  ]
}

/** Everything setup's replication options ask for, planned; empty when --replication-user is not set. */
export async function replicationAccessPlan(cfg: Config, session: PgSession, port: string): Promise<AccessStep[]> {
  const role = cfg.string('replication-user')
  const standbyHost = cfg.string('standby-host')
  if (role === undefined) {
    if (standbyHost !== undefined || cfg.has('replication-password-file')) {
      fail('OptionRequired', `option '${standbyHost !== undefined ? 'standby-host' : 'replication-password-file'}' needs option 'replication-user'`, {
        hint: 'name the role standbys connect as, e.g. --replication-user=replicator.',
      })
    }
    return []
  }
  const problem = roleNameProblem(role)
  if (problem !== undefined) {
    fail('OptionInvalidValue', `replication-user ${JSON.stringify(role)} cannot be used: ${problem}`, { hint: 'choose a plain role name such as replicator.' })
  }
  return [...(await roleSteps(cfg, session, role, port)), ...(standbyHost !== undefined ? await hbaSteps(session, role, standbyHost) : [])]
}
