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
  constructor({ kind, program, configPath, repoPath, stanza, spoolPath }) {
    Object.assign(this, { kind, program, configPath, repoPath, stanza, spoolPath })
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

/**
 * Config files, repositories and stanzas of both tools for a source cluster, plus the archive_command wrapper that
 * feeds both repositories. Returns { tools: { walden, pgbackrest? }, archiveCommand, collectDir }.
 */
export async function toolsSetup({ root, name, stanza, dataDir, port, socketDir, waldenProgram, pgbackrestBin, compressType }) {
  const base = await ownedFolder(join(root, name), 0o755)
  const tools = {}

  const w = {
    repo: join(base, 'repo-walden'),
    log: join(base, 'log-walden'),
    lock: join(base, 'lock-walden'),
    spool: join(base, 'spool-walden'),
    conf: join(base, 'walden.conf'),
  }
  for (const folder of [w.repo, w.log, w.lock, w.spool]) await ownedFolder(folder)
  await ownedFile(
    w.conf,
    [
      '[global]',
      `repo1-path=${w.repo}`,
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
    0o644,
  )
  tools.walden = new Tool({ kind: WALDEN, program: waldenProgram, configPath: w.conf, repoPath: w.repo, stanza, spoolPath: w.spool })

  if (pgbackrestBin) {
    const p = {
      repo: join(base, 'repo-pgbackrest'),
      log: join(base, 'log-pgbackrest'),
      lock: join(base, 'lock-pgbackrest'),
      spool: join(base, 'spool-pgbackrest'),
      conf: join(base, 'pgbackrest.conf'),
    }
    for (const folder of [p.repo, p.log, p.lock, p.spool]) await ownedFolder(folder)
    await ownedFile(
      p.conf,
      [
        '[global]',
        `repo1-path=${p.repo}`,
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
      0o644,
    )
    tools.pgbackrest = new Tool({ kind: PGBACKREST, program: [pgbackrestBin, []], configPath: p.conf, repoPath: p.repo, stanza, spoolPath: p.spool })
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
