// The command table: every command walden knows, what it is for, the parameters it takes and how it locks.
// The CLI dispatches from here, `walden help` renders from here, and the option table names these commands.

export const COMMAND_NAMES = [
  'archive-get',
  'archive-push',
  'backup',
  'check',
  'clone-create',
  'clone-destroy',
  'clone-list',
  'expire',
  'help',
  'info',
  'jobs',
  'mirror-add-host',
  'mirror-add-table',
  'mirror-clean',
  'mirror-init-host',
  'mirror-remove-host',
  'mirror-remove-table',
  'mirror-run',
  'mirror-setup',
  'mirror-status',
  'mirror-teardown',
  'promote',
  'remote',
  'repo-get',
  'repo-ls',
  'replication-status',
  'restore',
  'setup',
  'stanza-create',
  'stanza-delete',
  'standby-create',
  'staging-disable',
  'staging-enable',
  'staging-link',
  'staging-resync',
  'staging-snapshot',
  'staging-status',
  'staging-unlink',
  'staging-wal-get',
  'start',
  'stop',
  'verify',
  'version',
] as const

export type CommandName = (typeof COMMAND_NAMES)[number]

/** Other names a command answers to. */
export const COMMAND_ALIASES: Readonly<Record<string, CommandName>> = {
  status: 'replication-status',
}

/** Which lock a command takes: one archive and one backup process per stanza may run at the same time. */
export type LockType = 'archive' | 'backup' | 'none'

export interface CommandDef {
  summary: string
  description: string
  /** Positional parameters, in order; a trailing '?' marks an optional one. */
  parameters: readonly string[]
  lock: LockType
  /** The command works on one stanza and needs --stanza. */
  stanzaRequired: boolean
  /** Write a log file by default; commands PostgreSQL runs per WAL segment do not, as pgBackRest does. */
  logFile: boolean
  /** Started by walden itself, not by people: left out of `walden help`'s list, still documented in the reference. */
  internal?: boolean
}

export const COMMANDS: Record<CommandName, CommandDef> = {
  'archive-get': {
    summary: 'Get a WAL segment from the archive.',
    description:
      'Called by PostgreSQL through restore_command = \'walden --stanza=NAME archive-get %f "%p"\'. ' +
      'Finds the segment in the archive, verifies its checksum and writes it decompressed to DEST_PATH. ' +
      'With several repositories they are searched in order (repo1 first, or only the one --repo names) and the ' +
      'first good copy is used; a damaged copy, or a repository that cannot be read, is passed over with a warning. ' +
      'Exits 1, without logging an error, when the segment is not in the archive: that is how recovery learns ' +
      'it has reached the end of the archived WAL. With archive-async, segments are fetched ahead by a background ' +
      'process into spool-path and served from there; anything not queued is fetched as without it. restore then ' +
      'writes restore_command through bin/walden-archive-get, a sh front that moves a queued segment into place ' +
      'without starting Node.js.',
    parameters: ['WAL_NAME', 'DEST_PATH'],
    lock: 'none',
    stanzaRequired: true,
    logFile: false,
  },
  'archive-push': {
    summary: 'Push a WAL segment to the archive.',
    description:
      "Called by PostgreSQL through archive_command = 'walden --stanza=NAME archive-push %p'. " +
      'Checks the segment belongs to the stanza\'s cluster (system identifier and version from the WAL header), ' +
      'compresses and checksums it, and stores it atomically in every repository (or the one --repo names), each ' +
      'with its own encryption. It succeeds only when every repository has the segment; one that fails does not ' +
      'keep the others from getting it, and the error names it (repo2: ...). Pushing a segment that is already archived with the ' +
      'same content succeeds; a different segment under the same name is an error. With archive-async, a background ' +
      'process pushes every segment PostgreSQL has marked ready, several at once, and this command waits for its ' +
      'segment to be acknowledged in spool-path.',
    parameters: ['WAL_PATH'],
    lock: 'none',
    stanzaRequired: true,
    logFile: false,
  },
  backup: {
    summary: 'Back up a cluster.',
    description:
      'Takes a non-exclusive online backup: full, differential (changes since the last full) or incremental ' +
      '(changes since the last backup). Files are copied in parallel, compressed and checksummed; data pages are ' +
      'verified when data checksums are on. The backup is complete only when every WAL segment it needs is in the ' +
      'archive. Expired backups are removed afterwards. Goes to repo1 (the first repository), or to those --repo ' +
      'names: with a list (--repo=1,2) or all, each file is read and compressed once and written to every one, each ' +
      'repository getting a complete backup of its own under the same label; a diff or incr builds on each ' +
      "repository's own latest backup, and becomes a full when those do not share one full backup. A repository that " +
      'fails drops out: the backup completes in the others and the command exits with its error, naming it. With ' +
      'backup-standby, relation files are read from a standby (pg2-path...), or the whole backup is taken on one.',
    parameters: [],
    lock: 'backup',
    stanzaRequired: true,
    logFile: true,
  },
  check: {
    summary: 'Check the configuration and WAL archiving.',
    description:
      'Connects to the cluster, checks pg1-path is its data directory and the stanza matches it in every repository ' +
      '(or the one --repo names), then switches WAL and waits until the segment arrives in the archive of each, ' +
      'reporting each repository.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  expire: {
    summary: 'Remove backups and WAL past the retention policy.',
    description:
      'Applies repoN-retention-full, repoN-retention-diff and repoN-retention-archive of each repository to it: ' +
      'every repository, or the one --repo names. Runs after every successful backup (on the repository backed ' +
      'up to) and can be run on its own.',
    parameters: [],
    lock: 'backup',
    stanzaRequired: true,
    logFile: true,
  },
  remote: {
    summary: 'Serve this host\'s repository to a walden on another host, over the SSH session that started it.',
    description:
      'Internal: a walden with repoN-host set runs `ssh BACKUP-HOST walden --config=REPO-HOST-CONFIG --stanza=NAME ' +
      '--repo=N remote` and speaks a framed protocol with it on stdin and stdout. Both ends first state their walden and ' +
      'protocol versions and stop when they differ. The repository served is repoN of this host\'s own config file; ' +
      'the client only names paths inside it. Writes are made durable here (temporary name, fsync, rename, fsync of the ' +
      'folder) and appear only when the client finishes them; a client that goes away leaves nothing half-written. ' +
      'Ends when the client closes the session.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
    internal: true,
  },
  'repo-get': {
    summary: "Write a repository file's content to stdout.",
    description:
      'PATH is relative to the repository root (or absolute, inside repoN-path); a path that leads out of the ' +
      "repository is refused. As pgBackRest's repo-get: the file is decrypted when the repository is encrypted, but " +
      'not decompressed (pipe it through zstd -d, gzip -d or lz4 -d); --raw writes the bytes as stored. Decrypting needs ' +
      "the stanza's keys: the stanza is --stanza, or the one the path names (archive/STANZA/..., backup/STANZA/...). " +
      'A missing file is an error (55), or with --ignore-missing exit 1 and no output. Reads repo1, or the repository ' +
      '--repo names.',
    parameters: ['PATH'],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
  'repo-ls': {
    summary: 'List files in a repository.',
    description:
      'PATH (default: the repository root) is relative to the repository root, or absolute inside repoN-path; a path ' +
      "that leads out of the repository is refused. Text prints one name a line; --output=json prints pgBackRest's " +
      'shape, an object of name -> {type: file|path|link, size and time (seconds since 1970) for files, destination ' +
      'for links}, with "." for PATH itself. --recurse lists every folder below, names relative to PATH; --filter ' +
      'keeps names matching a regular expression; --sort orders by name (asc, desc, or none: as the storage lists). ' +
      'A missing PATH lists as an empty folder. Works on every repository type (folder, backup host, S3): repo1, or the ' +
      'one --repo names.',
    parameters: ['PATH?'],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
  help: {
    summary: 'Show help for walden or one command.',
    description: 'Without a command, lists the commands. With one, shows its options with defaults.',
    parameters: ['COMMAND?'],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
  info: {
    summary: 'Show backups and archived WAL.',
    description:
      'Lists each stanza with its status, WAL archive range and backups, across every repository (or the one --repo ' +
      "names). --output=json prints the same shape as pgBackRest's info --output=json, with a status per " +
      'repository and each entry tagged with its repo-key. Exits 0 when every stanza listed is ok in every ' +
      'repository; otherwise, after printing the whole report, with the code of the first stanza in error (its ' +
      'first repository in error): its own error code when it could not be read (26 for ' +
      'damaged info files), 103 for a missing stanza, 51 when it has no backups or the --set backup is missing.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
  'mirror-add-host': {
    summary: 'Register a host that receives mirrored transactions.',
    description:
      'The host starts behind every transaction still queued on the master, and nothing it has not received is purged. ' +
      'Deliver to it with mirror-run; to start it from a copy of the master instead of identical tables, run mirror-init-host first.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-add-table': {
    summary: 'Start mirroring a table.',
    description:
      'Creates the capture triggers on --table (row changes and TRUNCATE). The table needs a primary key: hosts find rows by it. ' +
      'Run it again after changing the primary key or adding generated columns.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-clean': {
    summary: 'Purge queued transactions every mirror host has received.',
    description: 'With no host left, purges the whole queue. mirror-run also purges after each batch; this is for after mirror-remove-host.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-init-host': {
    summary: 'Copy the mirrored tables to a host database from one snapshot.',
    description:
      'Replaces the content of the mirrored tables in --mirror-target (which must have them) with the master\'s, read in one ' +
      'snapshot, and records which master transactions that copy contains: mirror-run then delivers exactly the others. ' +
      'The master may be busy meanwhile.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-remove-host': {
    summary: 'Unregister a mirror host.',
    description: 'Releases what the host held back from purge (run mirror-clean afterwards).',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-remove-table': {
    summary: 'Stop mirroring a table.',
    description: 'Drops the capture triggers; changes already queued for it are still delivered.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-run': {
    summary: 'Deliver mirrored transactions to one host.',
    description:
      'Applies each committed master transaction as one host transaction, in commit order, to a database (--mirror-target) ' +
      'or writes it as one SQL file (--mirror-target-path). Runs as a daemon woken by a notification at each commit, polling ' +
      'every --mirror-interval seconds; with --once it delivers what is pending and exits. A transaction that fails stops the ' +
      'host there and is retried each cycle (see --mirror-conflict).',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-setup': {
    summary: 'Install the mirror schema in the master database.',
    description:
      'Creates schema walden_mirror (queue, commit order, hosts, capture functions) in the master database: --mirror-master, ' +
      'or the stanza\'s pg1-* options and pg1-database. Running it again is harmless and updates the functions.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  'mirror-status': {
    summary: 'Show how far behind each mirror host is.',
    description:
      'Per host: transactions and seconds behind, the last transaction applied, and the failing transaction with its error ' +
      'if the host is stalled. Exits 1 when a host is more than --max-lag-seconds behind.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
  'mirror-teardown': {
    summary: 'Remove the mirror schema and capture triggers from the master.',
    description: 'Drops the triggers of every mirrored table and schema walden_mirror, with everything still queued.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  promote: {
    summary: 'Promote a standby to primary.',
    description:
      'Refuses unless the server at pg1 is a standby, and, to prevent two writable primaries, when the primary it ' +
      'follows (primary_conninfo, or --primary-conninfo) can still be reached and is writable, unless --force. ' +
      'Runs pg_promote, waits until the server accepts writes, reports the new timeline and waits until its history ' +
      'file is in the archive.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'replication-status': {
    summary: 'Show streaming replication and lag; optionally a monitoring check (alias: status).',
    description:
      'On a primary: every standby from pg_stat_replication with its positions, lag in bytes and seconds and sync ' +
      'state, and every replication slot with the WAL it retains. On a standby: the WAL receiver, the last replayed ' +
      'position and transaction time, and the lag. With --max-lag-bytes or --max-lag-seconds it is a monitoring ' +
      'check: it exits 90 with a one-line reason when a limit is exceeded, or when no standby is connected to a primary.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: false,
  },
  restore: {
    summary: 'Restore a cluster from a backup.',
    description:
      'Restores into an empty data folder, or with --delta repairs an existing one by checksum. Writes the ' +
      'recovery settings for the chosen --type and target so PostgreSQL replays WAL from the archive. Reads the ' +
      'first repository (in order, or those --repo names) holding a backup that suits --set and the target. A file ' +
      'missing or damaged there is taken from another repository holding the same content (same SHA-256), with a ' +
      'warning naming both; the restore fails only when no repository has a good copy. --type=preserve keeps the ' +
      "folder's own recovery settings; --config-restore puts back the configuration files the backup kept from outside " +
      'the data folder; --start starts the server once the restore is complete.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  setup: {
    summary: 'Prepare a primary for walden: archiving and replication settings.',
    description:
      'Sets, through ALTER SYSTEM, wal_level (at least replica), archive_mode = on, archive_command calling this ' +
      'walden with this config and stanza, and max_wal_senders and wal_keep_size where they are too low. Prints ' +
      'each change and whether a restart is needed. Running it again changes nothing. --dry-run only shows the ' +
      'changes; --restart restarts the server with pg_ctl and checks the new settings are in effect. An ' +
      'archive_command that is not walden\'s is replaced only with --force, and one that already runs walden archive-push ' +
      'for this stanza (perhaps through bin/walden-archive-push) is kept unless --force. With archive-async on for ' +
      'archive-push, the archive_command it writes goes through that sh front, with the spool path on its command line. ' +
      'It sets archive_timeout where it is off (--pg-archive-timeout). With --replication-user it creates that role ' +
      '(LOGIN REPLICATION) with its password in the password file, and with --standby-host it adds the pg_hba.conf ' +
      'line that lets the role in from there, then reloads.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'stanza-create': {
    summary: 'Create a stanza in the repository.',
    description:
      "Records the cluster's system identifier and version, read from global/pg_control, after checking that " +
      "pg1-path is the running server's data_directory, in every repository (or the one --repo names). Running it " +
      'again for the same cluster is harmless, and is how a repository added to the configuration later gets the ' +
      'stanza: the others are left as they are. Every repository is checked before any is written.',
    parameters: [],
    lock: 'backup',
    stanzaRequired: true,
    logFile: true,
  },
  'stanza-delete': {
    summary: 'Delete a stanza and all its backups and WAL.',
    description:
      'Removes everything the repositories (every one, or the one --repo names) hold for the stanza. Refused unless `walden stop` was run for it ' +
      'first and the cluster is not running, or --force is given.',
    parameters: [],
    lock: 'backup',
    stanzaRequired: true,
    logFile: true,
  },
  'standby-create': {
    summary: 'Build a hot standby from the repository (restore --type=standby).',
    description:
      'Restores the newest backup (or --set) into pg1-path as a standby: standby.signal, restore_command through ' +
      'walden and hot_standby = on. With --primary-conninfo it also streams from the primary, with --slot through a ' +
      'physical replication slot it creates there. A password in the connection string goes to the password file ' +
      '(~/.pgpass or $PGPASSFILE, mode 0600), never into primary_conninfo. --pg1-port on the command line sets the ' +
      "standby's port, for a standby on the same host as its primary. --start starts it when it is restored; a server " +
      'running on pg1-path is refused unless --stop-old, and --keep-old-data moves the old folder aside instead of ' +
      'overwriting it.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  start: {
    summary: 'Allow walden commands to run again.',
    description: 'Lifts a previous `walden stop`, for one stanza or (without --stanza) for all.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  stop: {
    summary: 'Stop walden commands from running.',
    description:
      'Every walden command for the stanza (or for all stanzas without --stanza) refuses to run until ' +
      '`walden start`. With --force, running walden processes holding its locks are also terminated.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: true,
  },
  verify: {
    summary: 'Check backups and archived WAL without restoring them.',
    description:
      'Reads every file of every backup (or of --set), including the parts of large files and the files a diff or ' +
      'incr takes from an earlier backup, decompresses it and compares it with the size and SHA-256 its manifest ' +
      'records; checks every archived WAL file against the SHA-256 in its name; and checks the archive is continuous ' +
      'from each backup\'s start to the end of the archive, following timeline switches through history files. ' +
      'Prints every problem, naming the file, then a summary per backup and for the archive (--output=json for ' +
      'monitoring), and exits 93 (VerifyFailed) when it found any. Reads only, with process-max threads, and ' +
      'takes no lock: a backup expired while it runs is reported as expired, not as damaged. Each repository is ' +
      'verified in turn and reported on its own (or only the one --repo names).',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  // Issue #14: staging copies (a cluster kept in sync with a source, its snapshots and clones). The lock is the
  // stanza's staging lock, taken in src/commands/staging/state.ts (not main.ts's archive/backup locks), so a snapshot's
  // backup of the staging cluster can still take the backup lock.
  'staging-link': {
    summary: 'Create a staging copy of a source cluster, kept in sync, for snapshots and clones.',
    description:
      'Links in one of three ways (staging-method): initiated (walden takes the base backup of the source over the ' +
      'replication protocol and the copy streams from it through a replication slot), external-wal (from a ' +
      'pg_basebackup the user took, plain or tar format, then replaying the WAL files that appear in staging-wal-path, in ' +
      'order) or external-streaming (from such a backup, then streaming from staging-source). Refuses, with one error ' +
      'each and before anything is created: more than one staging-backup-path, a field the way needs, a staging-port ' +
      'a server listens on or another staging copy or clone on this host was given, a staging-path that is not empty, a ' +
      'staging-setting walden owns. The staging cluster is a hot standby on staging-path and staging-port; the stanza ' +
      'is created against it when absent. Recorded as the jobs DB_LINK and DB_SYNC.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'staging-status': {
    summary: 'Show whether the staging copy is in sync (ACTIVE) or not (INACTIVE), and any fault.',
    description:
      'The way it is linked, replay position and time, lag and, in WAL-folder mode, the next WAL file expected. ' +
      'Exits 0 when ACTIVE, with a non-zero code a monitor can use when INACTIVE or disabled. --output=json for programs.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: false,
  },
  'staging-snapshot': {
    summary: 'Take a snapshot of the staging copy: a backup of the staging standby into the stanza\'s repository.',
    description:
      'Runs the pre-snapshot hooks, refuses while a fault stands (naming the expected WAL file in WAL-folder mode), ' +
      'backs the staging standby up without contacting the source, records the snapshot\'s metadata, then runs the ' +
      'post-snapshot hooks, which run even when the snapshot or a pre hook failed. Recorded as the job SNAPSHOT.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'staging-disable': {
    summary: 'Stop ingesting: stop the staging cluster.',
    description: 'The record, the data folder and the assigned port stay; staging-enable starts it again. Recorded as the job DISABLE.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'staging-enable': {
    summary: 'Start ingesting again: re-apply the settings, clear the fault, start the staging cluster.',
    description:
      'staging-setting given now replaces the recorded settings; without it the recorded ones are written again. ' +
      'Recorded as the job ENABLE.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'staging-resync': {
    summary: 'Load the staging copy again from a fresh base backup, the same way it was linked.',
    description:
      'initiated takes a new base backup of the source; the external ways load the pg_basebackup that ' +
      'staging-backup-path names now. The old data folder is moved aside (STAGING-PATH.resync-old) while the new one ' +
      'loads, and removed only once the new one accepts connections; when the load fails, the new files are removed and ' +
      'the old folder is put back, stopped (the copy is then disabled). staging-setting given now replaces the recorded settings. ' +
      'Recorded as the job RESYNC.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'staging-unlink': {
    summary: 'Stop the staging copy and forget it: its record and its port on this host.',
    description:
      'The data folder stays, so nothing is lost by mistake, unless --delete-data is given; the stanza and its ' +
      'snapshots stay in the repository (stanza-delete removes them). Refused while clones of it exist unless --force. ' +
      'Recorded as the job UNLINK.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'staging-wal-get': {
    summary: 'Serve the next WAL file of the staging copy from staging-wal-path (its restore_command in WAL-folder mode).',
    description:
      'Called by PostgreSQL through restore_command for a staging copy linked with staging-method=external-wal. ' +
      'Checks each file before handing it over, records the WAL file it expects next, and on a break in the chain ' +
      'records the fault and shuts the staging cluster down.',
    parameters: ['WAL_NAME', 'DEST_PATH'],
    lock: 'none',
    stanzaRequired: true,
    logFile: false,
    internal: true,
  },
  'clone-create': {
    summary: 'Create a writable clone of the staging copy from a snapshot, or from a point in time after one.',
    description:
      'Restores --set (or the newest snapshot), or with --type=time --target the state at that time, into clone-path, ' +
      'starts it on clone-port with the clone settings, and runs the configure-clone hooks. Recorded as the job CLONE.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  'clone-list': {
    summary: 'List the clones of the staging copy.',
    description: 'Name, folder, port, the snapshot or time each came from, and whether it runs. --output=json for programs.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: false,
  },
  'clone-destroy': {
    summary: 'Stop a clone and remove its data folder and record.',
    description: 'Leaves nothing behind: the folder, the port assignment and the record go. Recorded as the job CLONE_DESTROY.',
    parameters: [],
    lock: 'none',
    stanzaRequired: true,
    logFile: true,
  },
  jobs: {
    summary: 'List the staging jobs of this host: link, sync, snapshot, enable, disable, resync, clone, unlink.',
    description:
      'Type, start, end, result (running, ok, failed) and error of each, oldest first, kept in spool-path across ' +
      'restarts; with --stanza only that stanza\'s. A job still shown as running whose process is gone is shown as ' +
      'failed (interrupted). --output=json for programs.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
  version: {
    summary: 'Show the walden version.',
    description: 'Prints the version of walden.',
    parameters: [],
    lock: 'none',
    stanzaRequired: false,
    logFile: false,
  },
}

/** The command a name or alias stands for. */
export function commandResolve(name: string): CommandName | undefined {
  return isCommandName(name) ? name : COMMAND_ALIASES[name]
}

export function isCommandName(name: string): name is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(name)
}
