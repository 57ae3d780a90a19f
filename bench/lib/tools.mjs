// The two tools under test, each with its own repository, logs, locks and config file, pointed at one source
// cluster. Command lines are built here so every scenario runs both tools the same way.

import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ownedFile, ownedFolder } from './cluster.mjs'
import { BenchError, measure, run, tail } from './proc.mjs'
import { PG_USER, REPO_USER } from './sshd.mjs'

export const WALDEN = 'walden'
export const PGBACKREST = 'pgbackrest'
export const TOOL_LABEL = { [WALDEN]: 'walden', [PGBACKREST]: 'pgBackRest' }

/**
 * One tool configured for one source cluster.
 * kind: 'walden' | 'pgbackrest'; program: [file, fixedArgs] that starts the tool.
 */
export class Tool {
  /**
   * repoPath: a folder, or with `bucket` set the key prefix of repo1 inside that S3 bucket.
   * With --repo-type=ssh: `user` runs the tool (the backup host's walden-repo; default the cluster owner), and
   * `farEnd` ({ sshd, option, command }) names the option (repo1-host-cmd or pg1-host-cmd) that a timed command sets
   * to `command`, a wrapper measuring the far end of each of its SSH sessions.
   */
  constructor({ kind, program, configPath, repoPath, stanza, spoolPath, bucket, user, farEnd }) {
    Object.assign(this, { kind, program, configPath, repoPath, stanza, spoolPath, bucket, user, farEnd })
    this.label = TOOL_LABEL[kind]
  }

  /** [file, args] for `tool --config=... --stanza=... [PRE] COMMAND ARGS`. */
  argv(command, args = [], pre = []) {
    const [file, fixed] = this.program
    return [file, [...fixed, `--config=${this.configPath}`, `--stanza=${this.stanza}`, ...pre, command, ...args]]
  }

  /**
   * walden's asynchronous archive-push through its sh front (bin/walden-archive-push), which settles a segment the
   * background process has already acknowledged without starting Node.js, as a DBA would configure archive_command.
   */
  frontShell(args = []) {
    const [node, [script]] = this.program
    return [join(dirname(script), 'walden-archive-push'), node, script, `--config=${this.configPath}`, `--stanza=${this.stanza}`, ...args].map(shellQuote).join(' ')
  }

  /** The command line as one shell string (for archive_command and scripts). */
  shell(command, args = []) {
    const [file, argv] = this.argv(command, args)
    return [file, ...argv].map(shellQuote).join(' ')
  }

  run(command, args = [], options = {}) {
    const [file, argv] = this.argv(command, args)
    return run(file, argv, { what: `${this.label} ${command} ${args.join(' ')}`, user: this.user, ...options })
  }

  /**
   * A timed command. Over SSH its far ends run under the measuring wrapper, and their peak RSS and CPU come back in
   * remoteRssBytes, remoteRssSingleBytes, remoteCpuS and remoteProcesses (sshd.mjs).
   */
  async measure(command, args = [], options = {}) {
    const pre = this.farEnd ? [`--${this.farEnd.option}=${this.farEnd.command}`] : []
    const [file, argv] = this.argv(command, args, pre)
    if (this.farEnd) await this.farEnd.sshd.remoteReset()
    const measured = await measure(file, argv, { what: `${this.label} ${command} ${args.join(' ')}`, user: this.user, ...options })
    if (this.farEnd) Object.assign(measured, await this.farEnd.sshd.remoteCollect())
    return measured
  }

  /** The stanza's backups as `info --output=json` lists them (both tools print pgBackRest's JSON shape). */
  async backups() {
    const { stdout } = await this.run('info', ['--output=json'])
    const stanzas = JSON.parse(stdout)
    const stanza = stanzas.find((entry) => entry.name === this.stanza)
    return stanza?.backup ?? []
  }

  async lastBackup() {
    const list = await this.backups()
    return list.at(-1)
  }
}

export function shellQuote(word) {
  return /^[A-Za-z0-9_\-./=:%@,+]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`
}

/** Key prefix of each tool's repository inside its own bucket, when the repositories are in S3. */
export const S3_REPO_PATH = '/repo'
/**
 * Part size of multipart uploads, the same for both tools: walden's default (8 MiB, which bounds the memory of each
 * worker's one large upload). pgBackRest 2.45's default is 5 MiB, and its own help says a larger one is generally
 * faster, so the bench gives it the larger one too.
 */
export const S3_UPLOAD_CHUNK = '8MiB'

/**
 * repo1 in S3 (repoType 's3'): the same lines for both tools, as pgBackRest 2.45 spells them (walden takes
 * pgBackRest's names): HTTPS to the gateway's self-signed endpoint by host name and port, certificate checks off,
 * path-style addressing. The keys are in the config file (mode 0600), never on a command line.
 */
function s3RepoLines(s3, bucket) {
  return [
    'repo1-type=s3',
    `repo1-path=${S3_REPO_PATH}`,
    `repo1-s3-bucket=${bucket}`,
    'repo1-s3-endpoint=127.0.0.1',
    `repo1-storage-port=${s3.gateway.tlsPort}`,
    'repo1-storage-verify-tls=n',
    'repo1-s3-uri-style=path',
    `repo1-s3-region=${s3.gateway.region}`,
    `repo1-s3-key=${s3.gateway.accessKey}`,
    `repo1-s3-key-secret=${s3.gateway.secretKey}`,
    `repo1-storage-upload-chunk-size=${S3_UPLOAD_CHUNK}`,
  ]
}

/**
 * Config files, repositories and stanzas of both tools for a source cluster, plus the archive_command wrapper that
 * feeds both repositories. With `s3` ({ gateway, buckets: { walden, pgbackrest } }) each tool's repo1 is its own
 * bucket in that gateway instead of a folder. Returns { tools: { walden, pgbackrest? }, archiveCommand, collectDir }.
 */
export async function toolsSetup({ root, name, stanza, dataDir, port, socketDir, waldenProgram, pgbackrestBin, compressType, s3 }) {
  const base = await ownedFolder(join(root, name), 0o755)
  const tools = {}
  const repoLines = (kind, folder) => (s3 ? s3RepoLines(s3, s3.buckets[kind]) : [`repo1-path=${folder}`])

  const w = {
    repo: join(base, 'repo-walden'),
    log: join(base, 'log-walden'),
    lock: join(base, 'lock-walden'),
    spool: join(base, 'spool-walden'),
    conf: join(base, 'walden.conf'),
  }
  for (const folder of [...(s3 ? [] : [w.repo]), w.log, w.lock, w.spool]) await ownedFolder(folder)
  await ownedFile(
    w.conf,
    [
      '[global]',
      ...repoLines(WALDEN, w.repo),
      `log-path=${w.log}`,
      `lock-path=${w.lock}`,
      'start-fast=y',
      `compress-type=${compressType}`,
      'repo1-retention-full=2',
      `spool-path=${w.spool}`,
      '',
      // The same asynchronous, prefetching archive-get as pgBackRest's below (scenario 6).
      '[global:archive-get]',
      'archive-async=y',
      'archive-get-queue-max=128MiB',
      'process-max=2',
      '',
      `[${stanza}]`,
      `pg1-path=${dataDir}`,
      `pg1-port=${port}`,
      `pg1-socket-path=${socketDir}`,
      '',
    ].join('\n'),
    s3 ? 0o600 : 0o644,
  )
  tools.walden = new Tool({ kind: WALDEN, program: waldenProgram, configPath: w.conf, repoPath: s3 ? S3_REPO_PATH : w.repo, stanza, spoolPath: w.spool, bucket: s3?.buckets.walden })

  if (pgbackrestBin) {
    const p = {
      repo: join(base, 'repo-pgbackrest'),
      log: join(base, 'log-pgbackrest'),
      lock: join(base, 'lock-pgbackrest'),
      spool: join(base, 'spool-pgbackrest'),
      conf: join(base, 'pgbackrest.conf'),
    }
    for (const folder of [...(s3 ? [] : [p.repo]), p.log, p.lock, p.spool]) await ownedFolder(folder)
    await ownedFile(
      p.conf,
      [
        '[global]',
        ...repoLines(PGBACKREST, p.repo),
        `log-path=${p.log}`,
        `lock-path=${p.lock}`,
        `spool-path=${p.spool}`,
        'start-fast=y',
        `compress-type=${compressType}`,
        'repo1-retention-full=2',
        '',
        // Asynchronous, prefetching archive-get for restore_command (scenario 6); the single-segment archive-get
        // timing passes --no-archive-async.
        '[global:archive-get]',
        'archive-async=y',
        'archive-get-queue-max=128MiB',
        'process-max=2',
        '',
        `[${stanza}]`,
        `pg1-path=${dataDir}`,
        `pg1-port=${port}`,
        `pg1-socket-path=${socketDir}`,
        '',
      ].join('\n'),
      s3 ? 0o600 : 0o644,
    )
    tools.pgbackrest = new Tool({ kind: PGBACKREST, program: [pgbackrestBin, []], configPath: p.conf, repoPath: s3 ? S3_REPO_PATH : p.repo, stanza, spoolPath: p.spool, bucket: s3?.buckets.pgbackrest })
  }

  return { base, tools, ...(await archiveWrapper(base, tools)) }
}

/** The archive_command wrapper feeding both tools' repositories: { archiveCommand, collectDir }. */
async function archiveWrapper(base, tools) {
  // archive_command: both tools, in parallel so neither tool's backup waits for the other's push, then (while the
  // bench collects real segments for the archive-push scenario) a copy of the segment.
  const collectDir = join(base, 'collect')
  // pgBackRest's backup insists that archive_command mentions pgbackrest, hence the name.
  const wrapper = join(base, 'archive-walden-and-pgbackrest.sh')
  const lines = [
    '#!/bin/sh',
    '# archive_command of the bench cluster: $1 = %p, $2 = %f',
    `${tools.walden.shell('archive-push')} "$1" & w=$!`,
  ]
  if (tools.pgbackrest) {
    lines.push(`${tools.pgbackrest.shell('archive-push')} "$1" & p=$!`)
    lines.push('wait $w || exit 1', 'wait $p || exit 1')
  } else {
    lines.push('wait $w || exit 1')
  }
  lines.push(`if [ -d ${collectDir} ]; then cp "$1" ${collectDir}/"$2".tmp && mv ${collectDir}/"$2".tmp ${collectDir}/"$2" || exit 1; fi`, 'exit 0', '')
  await ownedFile(wrapper, lines.join('\n'), 0o755)

  return { archiveCommand: `${wrapper} "%p" "%f"`, collectDir }
}

// ---------------------------------------------------------------------------------------------------------------
// Over SSH (issue #13): pgBackRest's "dedicated repository host" setup on one machine

/** A folder or file owned by `user` (the backup host's walden-repo), for the repository side. */
async function userFolder(path, { uid, gid }, mode = 0o750) {
  await mkdir(path, { recursive: true })
  await chown(path, uid, gid)
  await chmod(path, mode)
  return path
}
async function userFile(path, content, { uid, gid }, mode = 0o640) {
  await writeFile(path, content)
  await chown(path, uid, gid)
  await chmod(path, mode)
  return path
}

/**
 * Both tools as pgBackRest's user guide sets up a dedicated repository host, through one sshd (sshd.mjs): on the
 * database host (user postgres) a config naming the backup host (repo1-host, -user, -port, -config, cmd-ssh); on the
 * backup host (user walden-repo) a config holding the repository and naming the database host (pg1-host, -user,
 * -port, -config, cmd-ssh, and pg1-path/port/socket-path as seen there). Everything but the host lines is the same as
 * toolsSetup's. Returns toolsSetup's shape; each tool (the database host's side: restore, archive-push, info) has
 * `backupHost`, the same tool run on the backup host (backup, stanza-create), set by sshStanzaCreate.
 */
export async function sshToolsSetup({ root, name, stanza, dataDir, port, socketDir, waldenProgram, pgbackrestBin, compressType, sshd }) {
  const base = await ownedFolder(join(root, name), 0o755)
  const repoUser = sshd.users[REPO_USER]
  // Not below `root`, which belongs to postgres: walden trusts a lock folder only when no other user could replace
  // any folder above it, so the backup host's tree hangs from sshd.backupRoot, which belongs to root.
  const backupBase = await userFolder(join(sshd.backupRoot, name), repoUser, 0o755)
  const [node, script] = [waldenProgram[0], waldenProgram[1][0]]
  // Untimed sessions (the archive_command's, info) start the far end directly; timed ones through the measuring wrapper.
  const waldenPlain = join(sshd.dir, 'bin', 'walden')
  await writeFile(waldenPlain, `#!/bin/sh\nexec ${shellQuote(node)} ${shellQuote(script)} "$@"\n`, { mode: 0o755 })
  const programs = { [WALDEN]: { plain: waldenPlain, measured: await sshd.measuredCommand(`walden-${name}`, [node, script]) } }
  if (pgbackrestBin) programs[PGBACKREST] = { plain: pgbackrestBin, measured: await sshd.measuredCommand(`pgbackrest-${name}`, [pgbackrestBin]) }

  const tools = {}
  for (const kind of Object.keys(programs)) {
    const file = kind === WALDEN ? 'walden.conf' : 'pgbackrest.conf'
    const db = { log: join(base, `log-${kind}`), lock: join(base, `lock-${kind}`), spool: join(base, `spool-${kind}`), conf: join(base, file) }
    const bk = { repo: join(backupBase, `repo-${kind}`), log: join(backupBase, `log-${kind}`), lock: join(backupBase, `lock-${kind}`), conf: join(backupBase, file) }
    for (const folder of [db.log, db.lock, db.spool]) await ownedFolder(folder)
    for (const folder of [bk.repo, bk.log, bk.lock]) await userFolder(folder, repoUser)
    const common = ['start-fast=y', `compress-type=${compressType}`, 'repo1-retention-full=2']
    const pgLines = [`pg1-path=${dataDir}`, `pg1-port=${port}`, `pg1-socket-path=${socketDir}`]
    await ownedFile(
      db.conf,
      [
        '[global]',
        'repo1-host=127.0.0.1',
        `repo1-host-user=${REPO_USER}`,
        `repo1-host-port=${sshd.port}`,
        `repo1-host-config=${bk.conf}`,
        `repo1-host-cmd=${programs[kind].plain}`,
        `cmd-ssh=${sshd.sshCommand(PG_USER)}`,
        `log-path=${db.log}`,
        `lock-path=${db.lock}`,
        `spool-path=${db.spool}`,
        ...common,
        '',
        // The same asynchronous, prefetching archive-get as toolsSetup's (the restored cluster's restore_command).
        '[global:archive-get]',
        'archive-async=y',
        'archive-get-queue-max=128MiB',
        'process-max=2',
        '',
        `[${stanza}]`,
        ...pgLines,
        '',
      ].join('\n'),
      0o644,
    )
    await userFile(
      bk.conf,
      [
        '[global]',
        `repo1-path=${bk.repo}`,
        `cmd-ssh=${sshd.sshCommand(REPO_USER)}`,
        `log-path=${bk.log}`,
        `lock-path=${bk.lock}`,
        ...common,
        '',
        `[${stanza}]`,
        'pg1-host=127.0.0.1',
        `pg1-host-user=${PG_USER}`,
        `pg1-host-port=${sshd.port}`,
        `pg1-host-config=${db.conf}`,
        `pg1-host-cmd=${programs[kind].plain}`,
        ...pgLines,
        '',
      ].join('\n'),
      repoUser,
    )
    const program = kind === WALDEN ? waldenProgram : [pgbackrestBin, []]
    const tool = new Tool({ kind, program, configPath: db.conf, repoPath: bk.repo, stanza, spoolPath: db.spool, farEnd: { sshd, option: 'repo1-host-cmd', command: programs[kind].measured } })
    tool.backupHostCandidate = new Tool({ kind, program, configPath: bk.conf, repoPath: bk.repo, stanza, user: REPO_USER, farEnd: { sshd, option: 'pg1-host-cmd', command: programs[kind].measured } })
    tools[kind] = tool
  }
  return { base, tools, ...(await archiveWrapper(base, tools)) }
}

/**
 * stanza-create on the backup host, where pgBackRest insists on running it. A walden without pgN-host (before the
 * lead's `pgN-host:` commits) refuses pg1-host with error 67: then its backups are reported as pending and its
 * stanza is created from the database host through repo1-host instead.
 */
export async function sshStanzaCreate(tool) {
  const candidate = tool.backupHostCandidate
  const result = await candidate.run('stanza-create', [], { allowFail: true })
  if (result.code === 0) {
    tool.backupHost = candidate
    return 'the backup host'
  }
  if (tool.kind === WALDEN && result.code === 67) {
    tool.backupPending = (result.stdout + result.stderr).split('\n').find((line) => line.includes('[067]'))?.replace(/^.*\[067\]:\s*/, '') ?? 'pg1-host is not supported'
    await tool.run('stanza-create')
    return 'the database host (this walden cannot back up from the backup host yet)'
  }
  throw new BenchError(`${tool.label} stanza-create on the backup host failed with exit code ${result.code}\n${tail(result.stdout + result.stderr)}`)
}

/** A copy of `tool` with some fields changed (another config file, say). */
export function toolWith(tool, changes) {
  return Object.assign(Object.create(Object.getPrototypeOf(tool)), tool, changes)
}

/**
 * A copy of the backup host's config of `tool` with another repo1-path, in a fresh folder owned by the backup host's
 * user: the repository of one run of the archive-push scenario. Returns the config's path.
 */
export async function sshRepoConfigFresh(tool, sshd, name) {
  const repoUser = sshd.users[REPO_USER]
  const from = tool.backupHostCandidate.configPath
  const repo = join(dirname(from), `repo-${tool.kind}-${name}`)
  await userFolder(repo, repoUser)
  const conf = join(dirname(from), `${tool.kind}-${name}.conf`)
  const text = (await readFile(from, 'utf8')).replace(/^repo1-path=.*$/m, `repo1-path=${repo}`)
  await userFile(conf, text, repoUser)
  return { conf, repo }
}
