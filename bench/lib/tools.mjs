// The two tools under test, each with its own repository, logs, locks and config file, pointed at one source
// cluster. Command lines are built here so every scenario runs both tools the same way.

import { dirname, join } from 'node:path'
import { ownedFile, ownedFolder } from './cluster.mjs'
import { measure, run } from './proc.mjs'

export const WALDEN = 'walden'
export const PGBACKREST = 'pgbackrest'
export const TOOL_LABEL = { [WALDEN]: 'walden', [PGBACKREST]: 'pgBackRest' }

/**
 * One tool configured for one source cluster.
 * kind: 'walden' | 'pgbackrest'; program: [file, fixedArgs] that starts the tool.
 */
export class Tool {
  /** repoPath: a folder, or with `bucket` set the key prefix of repo1 inside that S3 bucket. */
  constructor({ kind, program, configPath, repoPath, stanza, spoolPath, bucket }) {
    Object.assign(this, { kind, program, configPath, repoPath, stanza, spoolPath, bucket })
    this.label = TOOL_LABEL[kind]
  }

  /** [file, args] for `tool --config=... --stanza=... COMMAND ARGS`. */
  argv(command, args = []) {
    const [file, fixed] = this.program
    return [file, [...fixed, `--config=${this.configPath}`, `--stanza=${this.stanza}`, command, ...args]]
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
    return run(file, argv, { what: `${this.label} ${command} ${args.join(' ')}`, ...options })
  }

  measure(command, args = [], options = {}) {
    const [file, argv] = this.argv(command, args)
    return measure(file, argv, { what: `${this.label} ${command} ${args.join(' ')}`, ...options })
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

  return { base, tools, archiveCommand: `${wrapper} "%p" "%f"`, collectDir }
}
