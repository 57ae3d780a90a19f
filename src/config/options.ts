// The option table: every option walden accepts is defined here once. Command-line parsing, the INI config file,
// WALDEN_* environment variables, validation and `walden help` (and docs/reference.md) are all driven by it.
// Names follow pgBackRest's so its users feel at home.

import type { CommandName } from './commands.js'
import { COMMAND_NAMES } from './commands.js'

// 'list': repeatable, every value kept in the order given (staging-setting, hooks); 'hash': repeatable KEY=VALUE.
export type OptionType = 'string' | 'path' | 'boolean' | 'integer' | 'seconds' | 'size' | 'enum' | 'hash' | 'list'

/**
 * Where an option may be set in the config file:
 * - 'any': [global], [global:command], [stanza] and [stanza:command];
 * - 'global': only [global] and [global:command], for settings every stanza must share (locks);
 * - 'stanza': only [stanza] and [stanza:command], for settings that identify one cluster;
 * - false: command line or environment only, for per-run choices such as --type or --target.
 */
export type OptionSection = 'any' | 'global' | 'stanza' | false

export type OptionValue = string | number | boolean | Readonly<Record<string, string>> | readonly string[]

export interface OptionDef {
  type: OptionType
  section: OptionSection
  commands: readonly CommandName[]
  summary: string
  description?: string
  default?: string | number | boolean
  allow?: readonly string[]
  /** Inclusive bounds for integer, seconds and size (bytes) options. */
  range?: readonly [number, number]
  /** Per-command default and allowed values, where one option means different things to different commands. */
  perCommand?: Partial<Record<CommandName, { default?: string; allow: readonly string[] }>>
  /** The value is secret: never logged. */
  secure?: boolean
  /**
   * Refused on the command line (any process's argv is visible in `ps`) and never passed on to another walden command
   * as an argument: only the config file (mode 0600) or the WALDEN_* environment variable.
   */
  notOnCommandLine?: boolean
  /** Generated: the same option for another repository index (repo2-path for repo1-path). Help lists only the original. */
  copyOf?: string
}

// Commands that read or write the repository.
const REPO: readonly CommandName[] = [
  'staging-link',
  'staging-resync',
  'staging-snapshot',
  'clone-create',
  'archive-get',
  'archive-push',
  'backup',
  'check',
  'expire',
  'info',
  'restore',
  'stanza-create',
  'stanza-delete',
  'standby-create',
  'promote',
  'verify',
  'remote',
  'repo-ls',
  'repo-get',
]
// Commands that talk to the cluster or its data folder.
const PG: readonly CommandName[] = [
  'archive-get',
  'archive-push',
  'backup',
  'check',
  'restore',
  'stanza-create',
  'stanza-delete',
  'setup',
  'standby-create',
  'replication-status',
  'promote',
]
// restore, and standby-create which is restore --type=standby.
const RESTORE: readonly CommandName[] = ['restore', 'standby-create']
// Table mirroring's commands; every one of them talks to the master database.
const MIRROR: readonly CommandName[] = COMMAND_NAMES.filter((name) => name.startsWith('mirror-'))
// Staging copies (issue #14): the commands that manage the staging cluster, and those that make and destroy clones.
const STAGING: readonly CommandName[] = [
  'staging-link',
  'staging-status',
  'staging-snapshot',
  'staging-disable',
  'staging-enable',
  'staging-resync',
  'staging-unlink',
  'staging-wal-get',
]
const CLONE: readonly CommandName[] = ['clone-create', 'clone-list', 'clone-destroy']
// Options that say how to connect to the cluster: also the master database of table mirroring, and the staging cluster
// (its socket folder, user and database; its port is staging-port).
const PG_CONNECT: readonly CommandName[] = [...PG, ...MIRROR, ...STAGING, ...CLONE]
const ALL: readonly CommandName[] = COMMAND_NAMES
const RUNNING: readonly CommandName[] = ALL.filter((name) => name !== 'help' && name !== 'version')

const BASE_OPTIONS = {
  config: {
    type: 'path',
    section: false,
    commands: ALL,
    default: '/etc/walden/walden.conf',
    summary: 'Configuration file.',
    description: 'A missing file is an error unless it is the default path.',
  },
  'config-include-path': {
    type: 'path',
    section: false,
    commands: ALL,
    default: '/etc/walden/conf.d',
    summary: 'Folder of more configuration files: its *.conf files are read after the configuration file, in name order.',
    description:
      "As pgBackRest's: all of them make one configuration, with the same sections as the main file; an option set twice in " +
      'one section, in any two of the files, is an error. Read unless --config is given without --config-include-path (then ' +
      'the one file is the whole configuration). A folder given that does not exist is an error; the default one missing is not.',
  },
  stanza: {
    type: 'string',
    section: false,
    commands: RUNNING,
    summary: 'Stanza: the name walden gives one PostgreSQL cluster and its backups.',
    description: 'Letters, digits, "-", "_" and "." only; it names folders in the repository.',
  },

  'pg1-path': {
    type: 'path',
    section: 'stanza',
    // staging-link checks that it names the staging cluster, when set.
    commands: [...PG, 'staging-link'],
    summary: "The cluster's data directory.",
    description:
      'Must equal the server\'s data_directory. Only in a stanza section, so one stanza cannot point at another\'s cluster. ' +
      'pg2-path up to pg8-path (with pgN-port, pgN-socket-path, pgN-user and pgN-database) name standbys of the same ' +
      'cluster on this host, for backup-standby.',
  },
  'pg1-port': {
    type: 'integer',
    section: 'any',
    commands: PG_CONNECT,
    default: 5432,
    range: [1, 65535],
    summary: 'Port the cluster listens on.',
  },
  'pg1-socket-path': {
    type: 'path',
    section: 'any',
    commands: PG_CONNECT,
    summary: 'Unix socket folder of the cluster.',
    description: "Without it walden connects like libpq does by default (the PGHOST environment variable, else /var/run/postgresql).",
  },
  'pg1-tcp-host': {
    type: 'string',
    section: 'any',
    commands: PG_CONNECT,
    summary: 'TCP host of the SQL connection to the cluster, when not connecting through a unix socket.',
    description:
      'walden still reads and writes the data folder directly, so the cluster must be on this host. Before walden 0.2 this ' +
      "was pg1-host, which now names the database host reached over SSH (pgBackRest's meaning).",
  },
  'pg1-host': {
    type: 'string',
    section: 'any',
    commands: PG,
    summary: 'Database host of the cluster, reached over SSH: set on the backup host, where backup, check and stanza-create then run.',
    description:
      "pgBackRest's meaning. walden runs there as pg1-host-user (`walden remote`, started over SSH), reads the cluster's files, " +
      'checksums and compresses them there, and relays the SQL connection to the cluster\'s local socket (pg1-socket-path, ' +
      'pg1-port); pg1-path is the data folder as that host names it. pg2-host and up name standbys on other hosts, for ' +
      'backup-standby. For the TCP address of the SQL connection use pg1-tcp-host, which pg1-host meant before walden 0.2.',
  },
  'pg1-host-user': {
    type: 'string',
    section: 'any',
    commands: PG,
    summary: 'OS user on pg1-host that walden connects as over SSH (the one owning the cluster).',
  },
  'pg1-host-port': {
    type: 'integer',
    section: 'any',
    commands: PG,
    range: [1, 65535],
    summary: 'SSH port of pg1-host (default: the ssh client\'s, normally 22).',
  },
  'pg1-host-cmd': {
    type: 'path',
    section: 'any',
    commands: PG,
    summary: 'Path of walden on pg1-host (default: the same path as this walden).',
  },
  'pg1-host-config': {
    type: 'path',
    section: 'any',
    commands: PG,
    default: '/etc/walden/walden.conf',
    summary: 'Config file walden reads on pg1-host.',
  },
  'pg1-user': {
    type: 'string',
    section: 'any',
    commands: PG_CONNECT,
    default: 'postgres',
    summary: 'Database user walden connects as.',
    description: 'Needs the rights to run pg_backup_start/pg_backup_stop and pg_switch_wal (a superuser, or pg_checkpoint and EXECUTE grants).',
  },
  'pg1-database': {
    type: 'string',
    section: 'any',
    commands: PG_CONNECT,
    default: 'postgres',
    summary: 'Database walden connects to.',
  },

  'repo1-path': {
    type: 'path',
    section: 'any',
    commands: REPO,
    default: '/var/lib/walden',
    summary: 'Repository folder where backups and WAL are stored.',
  },
  'repo1-retention-full': {
    type: 'integer',
    section: 'any',
    commands: ['backup', 'expire'],
    range: [1, 9999999],
    summary: 'Full backups to keep in this repository (a count, or days with repo1-retention-full-type=time).',
    description: 'Differential and incremental backups expire with the full backup they depend on. Without it, nothing expires.',
  },
  'repo1-retention-full-type': {
    type: 'enum',
    section: 'any',
    commands: ['backup', 'expire'],
    default: 'count',
    allow: ['count', 'time'],
    summary: 'Whether repo1-retention-full counts backups or days.',
    description: 'With time, full backups older than that many days expire, but the newest full backup always stays.',
  },
  'repo1-retention-diff': {
    type: 'integer',
    section: 'any',
    commands: ['backup', 'expire'],
    range: [1, 9999999],
    summary: 'Differential backups to keep.',
    description: 'Incremental backups that depend on an expired differential expire with it.',
  },
  'repo1-retention-archive': {
    type: 'integer',
    section: 'any',
    commands: ['backup', 'expire', 'verify'],
    range: [1, 9999999],
    summary: 'Keep WAL for point-in-time recovery only for the newest N backups.',
    description:
      'Older backups keep just the WAL that makes them consistent. Without it, WAL is kept from the oldest backup on. ' +
      'verify expects the WAL after a backup only where expire keeps it.',
  },

  'repo1-cipher-type': {
    type: 'enum',
    section: 'any',
    commands: REPO,
    default: 'none',
    allow: ['none', 'aes-256-gcm', 'aes-256-cbc'],
    summary: 'Client-side encryption of everything walden writes to the repository.',
    description:
      'Chosen once, at stanza-create: every later command must agree, and needs the key(s). Each stored file gets its own ' +
      'random key, wrapped by the passphrase (repo1-cipher-pass) or, with repo1-cipher-public-key, to an X25519 public key ' +
      'so that backup and archive-push never hold what would read the repository back. aes-256-cbc is pgBackRest\'s, for ' +
      'reading a repository pgBackRest wrote (with its repo1-cipher-pass); walden never writes with it.',
  },
  'repo1-cipher-pass': {
    type: 'string',
    section: 'any',
    commands: REPO,
    secure: true,
    notOnCommandLine: true,
    summary: 'Repository passphrase (config file with mode 0600, or WALDEN_REPO1_CIPHER_PASS; never the command line).',
    description: 'It unlocks the repository key stored, wrapped, in archive.info and backup.info; backup manifests are encrypted with it.',
  },
  'repo1-cipher-public-key': {
    type: 'path',
    section: 'any',
    commands: REPO,
    summary: 'X25519 public key file (PEM, `openssl pkey -pubout`): stored files are encrypted to it (public-key mode).',
    description:
      'Set at stanza-create to use public-key mode; backup and archive-push then need only this file, and restore and archive-get ' +
      'need repo1-cipher-private-key.',
  },
  'repo1-cipher-private-key': {
    type: 'path',
    section: 'any',
    commands: REPO,
    summary: 'X25519 private key file (PEM, `openssl genpkey -algorithm X25519`, mode 0600) for reading a public-key repository.',
  },

  'repo1-type': {
    type: 'enum',
    section: 'any',
    commands: REPO,
    default: 'posix',
    allow: ['posix', 's3'],
    summary: 'Where the repository lives: a folder (posix) or an S3-compatible bucket (s3).',
    description:
      'With s3, repo1-path is the key prefix inside repo1-s3-bucket, and the layout under it is the same as in a folder, so a ' +
      'folder copied into a bucket (`aws s3 sync`) is a valid S3 repository, and the reverse.',
  },
  'repo1-s3-bucket': {
    type: 'string',
    section: 'any',
    commands: REPO,
    summary: 'S3 bucket of the repository (repo1-type=s3).',
  },
  'repo1-s3-endpoint': {
    type: 'string',
    section: 'any',
    commands: REPO,
    summary: 'S3 endpoint: a host name (HTTPS), host:port, or http://host[:port] for plain HTTP.',
    description: 'For AWS, s3.REGION.amazonaws.com. An endpoint spelled http://... is plain HTTP (a local gateway); anything else is HTTPS.',
  },
  'repo1-s3-region': {
    type: 'string',
    section: 'any',
    commands: REPO,
    summary: 'S3 region the requests are signed for (e.g. us-east-1).',
  },
  'repo1-s3-key': {
    type: 'string',
    section: 'any',
    commands: REPO,
    secure: true,
    notOnCommandLine: true,
    summary: 'S3 access key id (repo1-s3-key-type=shared); config file or WALDEN_REPO1_S3_KEY, never the command line.',
  },
  'repo1-s3-key-secret': {
    type: 'string',
    section: 'any',
    commands: REPO,
    secure: true,
    notOnCommandLine: true,
    summary: 'S3 secret access key (repo1-s3-key-type=shared); config file or WALDEN_REPO1_S3_KEY_SECRET, never the command line.',
  },
  'repo1-s3-token': {
    type: 'string',
    section: 'any',
    commands: REPO,
    secure: true,
    notOnCommandLine: true,
    summary: 'S3 session token, for temporary credentials.',
  },
  'repo1-s3-key-type': {
    type: 'enum',
    section: 'any',
    commands: REPO,
    default: 'shared',
    allow: ['shared', 'auto'],
    summary: 'S3 credentials: repo1-s3-key and repo1-s3-key-secret (shared), or the default AWS credential chain (auto).',
    description: 'auto reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared profile files, web identity and instance credentials, in that order.',
  },
  'repo1-s3-uri-style': {
    type: 'enum',
    section: 'any',
    commands: REPO,
    default: 'host',
    allow: ['host', 'path'],
    summary: 'Address the bucket as BUCKET.ENDPOINT (host) or ENDPOINT/BUCKET (path).',
    description: 'Gateways without wildcard DNS (Ceph RGW, MinIO) need path.',
  },
  'repo1-s3-kms-key-id': {
    type: 'string',
    section: 'any',
    commands: REPO,
    summary: 'KMS key id: objects are stored with server-side encryption aws:kms under this key.',
  },
  'repo1-storage-port': {
    type: 'integer',
    section: 'any',
    commands: REPO,
    range: [1, 65535],
    summary: 'Port of the S3 endpoint, when not given in repo1-s3-endpoint (default 443, or 80 for http://).',
  },
  'repo1-storage-verify-tls': {
    type: 'boolean',
    section: 'any',
    commands: REPO,
    default: true,
    summary: "Check the S3 endpoint's TLS certificate.",
    description: 'Turn off only for a test gateway with a self-signed certificate; prefer repo1-storage-ca-file.',
  },
  'repo1-storage-ca-file': {
    type: 'path',
    section: 'any',
    commands: REPO,
    summary: "CA certificate file (PEM) the S3 endpoint's certificate must chain to, in addition to the system's.",
  },
  'repo1-storage-upload-chunk-size': {
    type: 'size',
    section: 'any',
    commands: REPO,
    default: '8MiB',
    range: [5 * 1024 * 1024, 1024 * 1024 * 1024],
    summary: 'Part size of S3 multipart uploads (8 MiB by default, as awscli); a file smaller than this goes up in one request.',
    description: 'Each upload holds one part of this size in memory: with process-max 1 two (the next fills while one is sent), otherwise one per worker thread for its one large upload at a time.',
  },
  'repo1-host': {
    type: 'string',
    section: 'any',
    commands: REPO,
    summary: 'Backup host that holds this repository, reached over SSH: walden runs there as repo1-host-user and serves it.',
    description:
      'Set on the database host. Where the repository lies on the backup host (repo1-path, repo1-type) comes from that ' +
      "host's own config file (repo1-host-config), never from here. Encryption stays on this side: a repository passphrase " +
      'or key is never sent. Each worker (process-max) keeps one SSH session for all its files. Authentication is ' +
      "ssh's: a key of the user running walden in the backup user's authorized_keys, and the backup host's key in " +
      'known_hosts (walden never prompts).',
  },
  'repo1-host-user': {
    type: 'string',
    section: 'any',
    commands: REPO,
    summary: 'OS user on repo1-host that owns the repository (default: the ssh client\'s choice, normally the local user name).',
  },
  'repo1-host-port': {
    type: 'integer',
    section: 'any',
    commands: REPO,
    range: [1, 65535],
    summary: 'SSH port of repo1-host (default: the ssh client\'s, normally 22).',
  },
  'repo1-host-cmd': {
    type: 'path',
    section: 'any',
    commands: REPO,
    summary: 'Path of walden on repo1-host (default: the same path as this walden).',
    description: "Run through the remote user's shell as one quoted word, with the options walden adds after it.",
  },
  'repo1-host-config': {
    type: 'path',
    section: 'any',
    commands: REPO,
    default: '/etc/walden/walden.conf',
    summary: 'Config file walden reads on repo1-host; the repository path there comes from it.',
  },
  'cmd-ssh': {
    type: 'string',
    section: 'any',
    commands: REPO,
    default: 'ssh',
    summary: 'The ssh client walden runs to reach repoN-host or pgN-host (a program name on PATH, or a path).',
    description: 'Run without a shell, with options and the remote command line as separate arguments; its own settings come from ~/.ssh/config.',
  },
  'protocol-timeout': {
    type: 'seconds',
    section: 'any',
    commands: REPO,
    default: 1830,
    range: [0.1, 604800],
    summary: 'Seconds without any answer from a remote host, while one is awaited, before the session is given up.',
    description: 'Also bounds how long ssh may take to connect (at most 300 seconds of it).',
  },
  'compress-level-network': {
    type: 'integer',
    section: 'any',
    commands: REPO,
    default: 0,
    range: [0, 9],
    summary: 'zlib level for file data sent between this host and a remote host (repoN-host, pgN-host); 0 sends it as it is.',
    description:
      'Repository files are already compressed (compress-type) and may be encrypted, which deflate cannot shrink, so this ' +
      'pays only with compress-type=none; a chunk that does not shrink is sent as it is.',
  },
  repo: {
    type: 'string',
    section: false,
    commands: REPO,
    summary: 'Which repository (1-4) a command works on; backup also takes a list (1,2) or all.',
    description:
      'Without it, archive-push stores in every repository, archive-get and restore use the first repository that has what they ' +
      'need, stanza-create, stanza-delete, check, expire and verify work on each, info shows them all, and backup works on repo1.',
  },
  'remote-type': {
    type: 'enum',
    section: false,
    commands: ['remote'],
    default: 'repo',
    allow: ['repo', 'pg'],
    summary: 'What a remote walden serves: the repository repo names (on a backup host), or a cluster (on a database host).',
    description: 'Set by the walden that starts the remote over SSH; not for users.',
  },

  'compress-type': {
    type: 'enum',
    section: 'any',
    commands: ['archive-push', 'backup', 'staging-snapshot'],
    default: 'zst',
    allow: ['zst', 'lz4', 'gz', 'none'],
    summary: 'Compression of files stored in the repository.',
    description: 'zst is smaller and fast; lz4 is fastest; gz is the most portable.',
  },
  'compress-level': {
    type: 'integer',
    section: 'any',
    commands: ['archive-push', 'backup', 'staging-snapshot'],
    range: [0, 19],
    summary: 'Compression level; the default depends on compress-type (zst 3, gz 6, lz4 1).',
  },
  'process-max': {
    type: 'integer',
    section: 'any',
    commands: ['archive-get', 'archive-push', 'backup', ...RESTORE, 'verify', 'staging-snapshot', 'clone-create'],
    default: 1,
    range: [1, 64],
    summary: 'Worker threads that copy, compress and checksum files.',
    description: 'For archive-push and archive-get it applies only with archive-async: segments pushed or fetched at once by the background process.',
  },
  'start-fast': {
    type: 'boolean',
    section: 'any',
    commands: ['backup'],
    default: false,
    summary: 'Ask PostgreSQL for an immediate checkpoint when the backup starts.',
    description: 'Otherwise the backup waits for the next spread checkpoint, which can take checkpoint_timeout.',
  },
  'archive-timeout': {
    type: 'seconds',
    section: 'any',
    commands: ['archive-get', 'archive-push', 'backup', 'check', 'promote'],
    default: 60,
    range: [0.1, 86400],
    summary: 'Seconds to wait for a WAL segment to reach the archive.',
    description: 'With archive-async, also how long archive-push and archive-get wait for the background process.',
  },
  'backup-standby': {
    type: 'enum',
    section: 'any',
    commands: ['backup', 'check'],
    default: 'n',
    allow: ['n', 'y', 'prefer', 'only'],
    summary: 'Copy the backup\'s files from a standby (pg2-*, pg3-*, ...) instead of the primary.',
    description:
      'y: the backup starts and stops on the primary, and relation files are read from a standby once it has replayed ' +
      'past the backup\'s start (waiting up to archive-timeout); everything else comes from the primary. prefer: as y, ' +
      'but when no standby is usable the files come from the primary, with a warning saying why. only: the backup runs ' +
      'on a standby alone, never contacting the primary (PostgreSQL 13 and later), and carries the WAL that makes it ' +
      'consistent, copied from the standby\'s pg_wal. A pgN that is another cluster is refused in every mode.',
  },
  'archive-check': {
    type: 'boolean',
    section: 'any',
    commands: ['backup'],
    default: true,
    summary: 'Wait until the WAL a backup needs is in the archive before calling it complete.',
    description: 'Turn off only when the WAL reaches the restore host some other way; such a backup cannot be restored from walden alone.',
  },

  // Asynchronous archiving: a background process pushes or prefetches many segments at once (pgBackRest's names).
  'archive-async': {
    type: 'boolean',
    section: 'any',
    commands: ['archive-get', 'archive-push'],
    default: false,
    summary: 'Push and get WAL through a background process that works on many segments in parallel.',
    description:
      'archive-push still returns 0 only once its segment is durably in the repository: it waits for the background ' +
      'process, which pushes every segment PostgreSQL has marked ready (process-max at once) and acknowledges each in ' +
      'spool-path. archive-get serves segments the background process has already fetched and verified, and keeps ' +
      'up to archive-get-queue-max of the following ones fetched ahead.',
  },
  'spool-path': {
    type: 'path',
    section: 'any',
    commands: ['archive-get', 'archive-push', ...STAGING, ...CLONE, 'jobs'],
    default: '/var/spool/walden',
    summary: 'Folder for the acknowledgements and prefetched segments of archive-async, and the state of staging copies.',
    description:
      'Must be writable by the user PostgreSQL runs as; for archiving it holds no data the repository does not also hold. ' +
      'Staging copies keep their records, the ports assigned on this host and the jobs journal under SPOOL-PATH/staging ' +
      '(mode 0700): every walden managing staging copies or clones on one host must use the same spool-path.',
  },
  'archive-get-queue-max': {
    type: 'size',
    section: 'any',
    commands: ['archive-get'],
    default: '128MiB',
    range: [0, 1024 ** 4],
    summary: 'How much WAL archive-get with archive-async fetches ahead (e.g. 128MiB, 1GiB).',
    description: 'Prefetched segments are decompressed and verified, so the queue takes this much room in spool-path. 0 turns prefetching off.',
  },
  'archive-push-queue-max': {
    type: 'size',
    section: 'any',
    commands: ['archive-push'],
    range: [0, 1024 ** 5],
    summary: 'Drop WAL unarchived once this much waits for the archive (e.g. 8GiB); unset, nothing is ever dropped.',
    description:
      "When the WAL PostgreSQL has marked ready but walden has not archived grows past this (a repository that is down), " +
      'archive-push tells PostgreSQL each further segment is archived without storing it, with a warning in PostgreSQL\'s ' +
      'log, so that pg_wal cannot fill its disk and stop the server. Dropped WAL is lost to the archive: point-in-time ' +
      'recovery across it is impossible and older backups cannot be recovered past it. Take a new full backup once ' +
      'archiving works again. Timeline history, backup history and partial files are never dropped.',
  },
  type: {
    type: 'enum',
    section: false,
    commands: ['backup', 'restore', 'clone-create', 'staging-snapshot', 'info'],
    summary: 'Backup type (also of a staging snapshot), or recovery type for restore and clone-create; for info, the type of backups shown.',
    description:
      'backup: full copies every file, diff the files changed since the last full, incr the files changed since the last backup ' +
      '(a diff or incr without a full to build on becomes a full). restore: default recovers to the end of the archive, ' +
      'immediate to the end of the backup, time/xid/name/lsn to --target, standby makes a standby, preserve keeps the ' +
      'recovery settings in the backup, none writes none.',
    perCommand: {
      backup: { default: 'incr', allow: ['full', 'diff', 'incr'] },
      restore: { default: 'default', allow: ['default', 'immediate', 'time', 'xid', 'name', 'lsn', 'standby', 'preserve', 'none'] },
      // A clone is the snapshot as it was (immediate), or the staging copy's state at --target.
      'clone-create': { default: 'immediate', allow: ['immediate', 'time', 'lsn', 'xid', 'name'] },
      // A snapshot is a backup of the staging copy: incremental after the first, full on request (retention counts fulls).
      'staging-snapshot': { default: 'incr', allow: ['full', 'diff', 'incr'] },
      // info shows every backup unless asked for one type.
      info: { allow: ['full', 'diff', 'incr'] },
    },
  },
  target: {
    type: 'string',
    section: false,
    commands: ['restore', 'clone-create'],
    summary: 'Recovery target for --type=time, xid, name or lsn.',
    description: "A time such as '2026-11-22 10:15:00+00' (give the time zone), a transaction id, a restore point name, or an LSN such as 0/3000028.",
  },
  'target-action': {
    type: 'enum',
    section: false,
    commands: ['restore'],
    default: 'pause',
    allow: ['pause', 'promote', 'shutdown'],
    summary: 'What PostgreSQL does when it reaches the recovery target.',
  },
  'target-exclusive': {
    type: 'boolean',
    section: false,
    commands: ['restore'],
    default: false,
    summary: 'Stop just before the target instead of just after it (time, xid and lsn targets).',
  },
  'target-timeline': {
    type: 'string',
    section: false,
    commands: RESTORE,
    summary: "Timeline to recover along: 'current', 'latest' or a number.",
    description:
      "PostgreSQL's default (latest) applies when unset. Without --set, restore picks the newest backup that can " +
      'recover along it: one on that timeline, or on an ancestor and finished before the ancestor ended (after a ' +
      "failover, not one the old primary took past the switch). 'current' lets any backup follow its own timeline.",
  },
  set: {
    type: 'string',
    section: false,
    commands: [...RESTORE, 'info', 'verify', 'clone-create'],
    summary: 'A backup, by label: the one to restore, the one info shows, or the one verify checks (for clone-create: the snapshot).',
    description:
      'Without it restore picks the newest backup, or for a time or lsn target the newest one that ended before the target. ' +
      "info --set also shows, from the backup's manifest, its databases (name and oid; pgBackRest's database-ref), links and " +
      'tablespaces; a backup taken before walden recorded databases shows none (null in JSON).',
  },
  delta: {
    type: 'boolean',
    section: 'any',
    commands: RESTORE,
    default: false,
    summary: 'Restore into an existing data folder, keeping files whose checksum matches.',
  },
  'direct-io': {
    type: 'boolean',
    section: 'any',
    commands: RESTORE,
    default: true,
    summary: 'Write restored files with O_DIRECT, past the page cache.',
    description:
      'Nothing reads the restored files before PostgreSQL starts, so filling the page cache with them only costs memory ' +
      'and time (most on virtual machines that return free memory to their host) and pushes out what the host had cached. ' +
      'Files go through the page cache anyway where the file system refuses O_DIRECT, and from repositories that are ' +
      'not local or are compressed with zst or gz. Everything restored is fsynced either way.',
  },
  force: {
    type: 'boolean',
    section: false,
    commands: [...RESTORE, 'stop', 'stanza-delete', 'setup', 'promote', 'staging-unlink'],
    default: false,
    summary:
      'restore: overwrite a non-empty data folder. stop: also end running walden processes. stanza-delete: skip the ' +
      "safety checks. setup: replace the archive_command even when it is another tool's, or walden's own, and the password of an existing replication-user. promote: promote even though the primary is still writable. " +
      'staging-unlink: unlink even though clones of the staging copy exist (they stay, on their own).',
  },
  start: {
    type: 'boolean',
    section: false,
    commands: RESTORE,
    default: false,
    summary: 'Start PostgreSQL on the restored data folder (pg_ctl start) once the restore is complete.',
    description: "The server's output goes to LOG-PATH/STANZA-postgresql-NAME.log, NAME being the data folder's. A standby is then up and replaying; a restore of another type recovers and, at its target, does what target-action says.",
  },
  'stop-old': {
    type: 'boolean',
    section: false,
    commands: RESTORE,
    default: false,
    summary: 'Stop the server running on pg1-path (pg_ctl stop -m fast) before restoring there.',
    description: 'Without it a running server makes the restore fail before anything is touched.',
  },
  'keep-old-data': {
    type: 'boolean',
    section: 'any',
    commands: RESTORE,
    default: false,
    summary: 'Move a non-empty pg1-path aside to PG1-PATH.<UTC timestamp> and restore into a fresh folder, instead of overwriting it.',
    description:
      'The old folder is renamed, never copied or deleted, so it must be on the same file system and not a mount point. ' +
      'Refused with --delta or --force, and when the old cluster has tablespaces (they live outside the folder and the restore would overwrite them).',
  },
  'keep-old-data-path': {
    type: 'path',
    section: false,
    commands: RESTORE,
    summary: 'Where --keep-old-data moves the old data folder (must not exist); implies --keep-old-data.',
  },
  'config-restore': {
    type: 'string',
    section: false,
    commands: RESTORE,
    summary: "Restore the configuration files the backup kept from outside the data folder: 'original' (where they were) or an absolute folder.",
    description:
      "Backups keep the server's config_file, hba_file, ident_file and the files postgresql.conf includes when they lie outside the data folder " +
      "(Debian's /etc/postgresql/VERSION/CLUSTER/). With a folder they keep their layout below their common folder; paths written inside them are not changed. " +
      "A file already there with other content is kept aside as NAME.<UTC timestamp>, never overwritten. With --start the server reads the restored postgresql.conf.",
  },
  'recovery-option': {
    type: 'hash',
    section: 'any',
    commands: RESTORE,
    summary: 'A setting for postgresql.auto.conf at restore, as KEY=VALUE; repeatable.',
    description: "Overrides what walden writes itself, such as restore_command.",
  },
  'archive-mode': {
    type: 'enum',
    section: 'any',
    commands: RESTORE,
    default: 'preserve',
    allow: ['preserve', 'off'],
    summary: 'Keep the restored cluster\'s archive_mode, or turn archiving off.',
    description:
      'A copy restored for testing or reporting would otherwise archive its new timeline into the same stanza as the ' +
      'cluster it came from; off writes archive_mode = off into postgresql.auto.conf.',
  },
  'tablespace-map': {
    type: 'hash',
    section: 'any',
    commands: RESTORE,
    summary: 'Restore a tablespace elsewhere, as NAME=PATH (or OID=PATH); repeatable.',
  },
  cmd: {
    type: 'path',
    section: 'any',
    commands: [...RESTORE, 'setup'],
    summary: 'walden command PostgreSQL should run in restore_command (restore) or archive_command (setup).',
    description: 'Defaults to the walden running now.',
  },
  output: {
    type: 'enum',
    section: false,
    commands: ['info', 'replication-status', 'mirror-status', 'verify', 'staging-status', 'clone-list', 'jobs', 'repo-ls', 'version'],
    default: 'text',
    allow: ['text', 'json'],
    summary: 'Output format: text for people, json for programs.',
    description:
      "version: text prints e.g. 'walden 0.1.0'; num prints walden's version as one number, encoded as pgBackRest's " +
      'version --output=num encodes its own (major * 1000000 + minor * 1000 + patch: 0.1.0 is 1000, 2.45.0 would be ' +
      "2045000), for scripts that compare versions. It is walden's version, except when walden runs under the name " +
      "'pgbackrest' (a link so named, for tools written for pgBackRest): then it prints the pgBackRest level whose " +
      "commands and JSON walden follows, as pgBackRest would ('pgBackRest 2.45', 2045000).",
    perCommand: { version: { default: 'text', allow: ['text', 'num'] } },
  },

  'primary-conninfo': {
    type: 'string',
    section: 'any',
    commands: [...RESTORE, 'promote'],
    secure: true,
    summary: "Connection string of the primary a standby streams from (libpq's key=value form or a postgresql:// URI).",
    description:
      'restore --type=standby and standby-create write it as primary_conninfo, with any password moved to the ' +
      'password file ($PGPASSFILE or ~/.pgpass of the OS user running walden, mode 0600) and passfile pointing there. ' +
      'A password in it is refused on the command line (every user can read process arguments): put it in the password ' +
      'file yourself, or give the string in WALDEN_PRIMARY_CONNINFO or the config file. ' +
      'promote uses it to check the old primary is no longer writable, when the standby has no primary_conninfo.',
  },
  slot: {
    type: 'string',
    section: 'any',
    commands: RESTORE,
    summary: 'Physical replication slot on the primary for a streaming standby; created when missing.',
    description:
      'Needs --primary-conninfo. The slot keeps the WAL the standby has not received yet on the primary, so a ' +
      'standby that is down makes pg_wal grow: watch it with replication-status.',
  },
  'replication-user': {
    type: 'string',
    section: 'any',
    commands: ['setup'],
    summary: 'Role standbys connect as; setup creates it (LOGIN REPLICATION) with its password in the password file.',
    description:
      'The password comes from replication-password-file, else from the password file ($PGPASSFILE or ~/.pgpass of the ' +
      'OS user running setup) when it already has the entry *:PORT:*:USER setup writes, else it is generated. PostgreSQL only ' +
      'gets the SCRAM-SHA-256 secret computed from it, never the password. A role that exists with another password is ' +
      'left alone unless the password comes from replication-password-file, or --force is given. Names with control characters, ' +
      "longer than 63 bytes, or starting with '+', '/' or '@' are refused.",
  },
  'replication-password-file': {
    type: 'path',
    section: 'any',
    commands: ['setup'],
    summary: 'File whose first line is the password for replication-user (printable ASCII).',
  },
  'standby-host': {
    type: 'string',
    section: 'any',
    commands: ['setup'],
    summary: "Standby's IP address, network (address/bits) or host name; setup lets replication-user in from there in pg_hba.conf.",
    description:
      'Appends `host replication,postgres "USER" ADDRESS scram-sha-256` to the file hba_file names (database postgres is ' +
      "for standby-create's check of the connection and its slot), checks PostgreSQL reads the line as meant, and reloads. " +
      'Lines earlier in pg_hba.conf win, as always.',
  },
  'pg-archive-timeout': {
    type: 'integer',
    section: 'any',
    commands: ['setup'],
    default: 60,
    range: [0, 86400],
    summary: "archive_timeout setup gives the server, in seconds: the longest a commit waits to reach the archive.",
    description: 'The default is written only where archive_timeout is off (0); a value given explicitly replaces any other. 0 with the default leaves it alone.',
  },
  'dry-run': {
    type: 'boolean',
    section: false,
    commands: ['setup'],
    default: false,
    summary: 'Show the changes without making them.',
  },
  restart: {
    type: 'boolean',
    section: false,
    commands: ['setup'],
    default: false,
    summary: 'Restart PostgreSQL (pg_ctl restart -m fast) when a changed setting needs it, and check it took effect.',
  },
  'max-lag-bytes': {
    type: 'integer',
    section: 'any',
    commands: ['replication-status'],
    range: [0, Number.MAX_SAFE_INTEGER],
    summary: 'Fail when a standby, or a replication slot, is further behind than this many bytes of WAL.',
  },
  'max-lag-seconds': {
    type: 'seconds',
    section: 'any',
    commands: ['replication-status', 'mirror-status'],
    range: [0, 31536000],
    summary: 'Fail (exit 90) when a standby, or a mirror host, is further behind than this many seconds.',
  },

  // Staging copies (issue #14). What a link is given is recorded on the staging host (spool-path); the commands after
  // the link read the record, not these options, so a config file changed later cannot turn a copy into another.
  'staging-method': {
    type: 'enum',
    section: 'stanza',
    commands: ['staging-link'],
    allow: ['initiated', 'external-wal', 'external-streaming'],
    summary: 'How staging-link loads and then feeds the staging copy.',
    description:
      'initiated: walden takes the base backup of the source over the replication protocol (needs staging-source), then the ' +
      'copy streams from it through a replication slot. external-wal: from the pg_basebackup in staging-backup-path, then ' +
      'replaying the WAL files that appear in staging-wal-path. external-streaming: from the pg_basebackup in ' +
      'staging-backup-path, then streaming from staging-source (a staging-wal-path given as well is ignored, with a notice).',
  },
  'staging-path': {
    type: 'path',
    section: 'stanza',
    commands: ['staging-link'],
    summary: 'Data folder of the staging cluster on this host; must be empty or absent at link.',
    description: "The stanza's pg1-path, when set, must name the same folder: snapshots are backups of the staging cluster.",
  },
  'staging-port': {
    type: 'integer',
    section: 'stanza',
    commands: ['staging-link'],
    range: [1, 65535],
    summary: 'Port of the staging cluster: not one any server on this host listens on, nor one assigned to another staging copy or clone.',
  },
  'staging-backup-path': {
    type: 'list',
    section: 'stanza',
    commands: ['staging-link', 'staging-resync'],
    summary: 'The pg_basebackup to load (external ways): a plain-format folder, or the folder of a tar-format one (-F t -X stream).',
    description:
      'Tar format: base.tar (or .tar.gz, .tar.lz4, .tar.zst), pg_wal.tar and one OID.tar per tablespace. Exactly one: the option ' +
      'given more than once is refused. For staging-resync, the new backup to load.',
  },
  'staging-wal-path': {
    type: 'path',
    section: 'stanza',
    commands: ['staging-link', 'staging-wal-get'],
    summary: "Folder where the source's archived WAL files appear (external-wal), e.g. archive_command = 'cp %p /wal/%f'.",
    description: 'The staging cluster asks walden (staging-wal-get) for each WAL file in turn, and walden serves it from here after checking it.',
  },
  'staging-source': {
    type: 'string',
    section: 'stanza',
    commands: ['staging-link'],
    summary: 'libpq connection string of the replication connection to the source (initiated and external-streaming).',
    description:
      "e.g. 'host=db1 port=5432 user=replicator'. The role needs LOGIN and REPLICATION. A password in it is refused wherever it " +
      "is given: it would be written into the staging cluster's primary_conninfo. The password comes from the password file, " +
      "as libpq reads it: passfile= in the string, else $PGPASSFILE, else ~/.pgpass of the OS user running walden and the staging cluster.",
  },
  'staging-setting': {
    type: 'list',
    section: 'stanza',
    commands: ['staging-link', 'staging-enable', 'staging-resync'],
    summary: "A setting for the staging cluster's configuration, as name=value, or #name to comment it out; repeatable.",
    description:
      'Applied at link, enable and resync (given at enable or resync, the settings replace the recorded ones). Settings walden ' +
      'owns are refused: port, listen/recovery/replication settings (primary_conninfo, primary_slot_name, restore_command, ' +
      'recovery_target*, hot_standby, archive_mode, archive_command and the like).',
  },
  'staging-hook-pre-snapshot': {
    type: 'list',
    section: 'stanza',
    commands: ['staging-snapshot'],
    summary: 'Shell command run with /bin/sh after ingestion and before the snapshot; repeatable, run in order.',
    description: 'Exit 0 is success; anything else fails the snapshot. Output goes to the job log. WALDEN_* variables name the stanza, staging folder and port.',
  },
  'staging-hook-post-snapshot': {
    type: 'list',
    section: 'stanza',
    commands: ['staging-snapshot'],
    summary: 'Shell command run with /bin/sh after the snapshot, even when it or a pre hook failed; repeatable, run in order.',
  },
  'delete-data': {
    type: 'boolean',
    section: false,
    commands: ['staging-unlink'],
    default: false,
    summary: "Also remove the staging cluster's data folder (otherwise it is left where it is).",
  },
  clone: {
    type: 'string',
    section: false,
    commands: ['clone-create', 'clone-destroy'],
    summary: 'Name of a clone: letters, digits, "-", "_" and "." only.',
  },
  'clone-path': {
    type: 'path',
    section: false,
    commands: ['clone-create', 'clone-destroy'],
    summary: "The clone's data folder; must be empty or absent. clone-destroy: refuses unless it is the clone's recorded folder.",
  },
  'clone-port': {
    type: 'integer',
    section: false,
    commands: ['clone-create'],
    range: [1, 65535],
    summary: 'Port of the clone: not one any server on this host listens on, nor one assigned to a staging copy or another clone.',
  },
  'clone-setting': {
    type: 'list',
    section: 'stanza',
    commands: ['clone-create'],
    summary: "A setting for the clone's configuration, as name=value, or #name to comment it out; repeatable.",
  },
  'clone-hook-configure': {
    type: 'list',
    section: 'stanza',
    commands: ['clone-create'],
    summary: 'Shell command run with /bin/sh once the clone has started (configure clone); repeatable, run in order.',
  },

  'log-level-console': {
    type: 'enum',
    section: 'any',
    commands: ALL,
    default: 'warn',
    allow: ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'],
    summary: 'Messages written to the console (stderr) at or above this level.',
  },
  'log-level-file': {
    type: 'enum',
    section: 'any',
    commands: ALL,
    default: 'info',
    allow: ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'],
    summary: 'Messages written to the log file at or above this level.',
    description: 'archive-push, archive-get and info write no log file unless this is set for them explicitly.',
  },
  'log-path': {
    type: 'path',
    section: 'any',
    commands: ALL,
    default: '/var/log/walden',
    summary: 'Folder for log files, named STANZA-COMMAND.log.',
  },
  'lock-path': {
    type: 'path',
    section: 'global',
    commands: ALL,
    default: '/tmp/walden',
    summary: 'Folder for lock files and stop files.',
    description:
      'Every walden process on the host must use the same one, so it may only be set in [global]. It must belong to the user that runs walden (root may use that user\'s folder) and be writable by no one else, nor be a symbolic link; walden creates it with mode 0750 and refuses one that fails these checks.',
  },
  'mirror-master': {
    type: 'string',
    section: 'any',
    commands: MIRROR,
    secure: true,
    summary: "Connection string of the mirroring master database, as libpq's ('host=... port=... dbname=... user=...') or a URI.",
    description:
      "Without it, the stanza's pg1-socket-path (or pg1-tcp-host), pg1-port, pg1-user and pg1-database are used. " +
      'A password in it is refused on the command line (every user can read process arguments): the password comes from ' +
      'the password file (~/.pgpass, $PGPASSFILE or passfile=) or PGPASSWORD, or give the string in the environment or config file.',
  },
  'mirror-host': {
    type: 'string',
    section: 'any',
    commands: ['mirror-add-host', 'mirror-remove-host', 'mirror-init-host', 'mirror-run'],
    summary: 'Name of a mirror host, as registered with mirror-add-host.',
    description: "1 to 63 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit (mirror-remove-host takes any).",
  },
  'mirror-target': {
    type: 'string',
    section: 'any',
    commands: ['mirror-init-host', 'mirror-run'],
    secure: true,
    summary: 'Connection string of the host database that receives mirrored transactions.',
    description:
      'A password in it is refused on the command line (every user can read process arguments): the password comes from ' +
      'the password file (~/.pgpass, $PGPASSFILE or passfile=) or PGPASSWORD, or give the string in the environment or config file.',
  },
  'mirror-target-path': {
    type: 'path',
    section: 'any',
    commands: ['mirror-run'],
    summary: 'Folder where mirror-run writes one SQL file per master transaction, instead of applying to a database.',
    description:
      'Files sort by name in apply order; replay them in that order with psql -v ON_ERROR_STOP=1 after the host-schema file. ' +
      'Each fails without effect when replayed twice. Files are 0640; folders walden creates for them are 0750.',
  },
  'mirror-interval': {
    type: 'seconds',
    section: 'any',
    commands: ['mirror-run'],
    default: 60,
    range: [0.1, 86400],
    summary: 'Seconds between polls of the master (and retries of a stalled transaction).',
    description: 'New transactions normally wake mirror-run at once through a notification; polling covers a missed one.',
  },
  once: {
    type: 'boolean',
    section: false,
    commands: ['mirror-run'],
    default: false,
    summary: 'Deliver what is pending, then exit, instead of running as a daemon.',
  },
  'mirror-conflict': {
    type: 'enum',
    section: 'any',
    commands: ['mirror-run'],
    default: 'error',
    allow: ['error', 'skip', 'overwrite'],
    summary: 'What a conflict on the host does: stop there (error), skip that transaction and log it, or overwrite the row.',
    description:
      'A conflict is an UPDATE or DELETE that finds no row, a duplicate key, another integrity violation, or a column missing on ' +
      'the host. overwrite inserts or replaces the row the master has; a missing column still stops the host.',
  },
  'mirror-alert-command': {
    type: 'string',
    section: 'any',
    commands: ['mirror-run'],
    summary: 'Shell command run when a host stalls, with WALDEN_MIRROR_HOST, WALDEN_MIRROR_XID and WALDEN_MIRROR_ERROR set.',
    description: 'Run on the first failure and then, while the same failure repeats, every tenth time.',
  },
  recurse: {
    type: 'boolean',
    section: false,
    commands: ['repo-ls'],
    default: false,
    summary: 'List every folder below PATH too.',
  },
  filter: {
    type: 'string',
    section: false,
    commands: ['repo-ls'],
    summary: 'Keep only the names that match this regular expression (JavaScript syntax); with --recurse, the name relative to PATH.',
  },
  sort: {
    type: 'enum',
    section: false,
    commands: ['repo-ls'],
    default: 'asc',
    allow: ['asc', 'desc', 'none'],
    summary: 'Order of the names: ascending, descending, or as the storage lists them.',
  },
  'ignore-missing': {
    type: 'boolean',
    section: false,
    commands: ['repo-get'],
    default: false,
    summary: 'A missing file is not an error: exit 1 without output.',
  },
  raw: {
    type: 'boolean',
    section: false,
    commands: ['repo-get'],
    default: false,
    summary: 'Write the file as stored, without decrypting it.',
  },
  table: {
    type: 'string',
    section: false,
    commands: ['mirror-add-table', 'mirror-remove-table'],
    summary: 'A table, as SCHEMA.NAME (or NAME on the search path).',
  },
} as const satisfies Record<string, OptionDef>

/**
 * Repositories a stanza may have: repo1 is spelled out in the table above, and repo2..repoN are generated from it, so
 * every repository option exists once and help lists it once (as repo1-*, meaning any index).
 */
export const REPO_MAX = 4
export type RepoIndex = 1 | 2 | 3 | 4
type RepoSuffix = keyof typeof BASE_OPTIONS extends infer K ? (K extends `repo1-${infer S}` ? S : never) : never
type BaseName = keyof typeof BASE_OPTIONS

/**
 * Clusters a stanza may name: pg1 is spelled out in the table above, and pg2..pgN (standbys of the same cluster, for
 * backup-standby) are generated from the options below, which say where a cluster is and how to reach its SQL.
 * Only backup reads them; other commands ignore them in the config file.
 */
export const PG_MAX = 8
export type PgIndex = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8
const PG_COPIED = ['path', 'port', 'socket-path', 'user', 'database', 'host', 'host-user', 'host-port', 'host-cmd', 'host-config'] as const
export type PgSuffix = (typeof PG_COPIED)[number]
const PG_COPY_COMMANDS: readonly CommandName[] = ['backup', 'check']

export type OptionName = BaseName | `repo${RepoIndex}-${RepoSuffix}` | `pg${PgIndex}-${PgSuffix}`

function withCopies(base: Readonly<Record<string, OptionDef>>): Readonly<Record<OptionName, OptionDef>> {
  const all: Record<string, OptionDef> = { ...base }
  for (const [name, def] of Object.entries(base)) {
    if (!name.startsWith('repo1-')) continue
    for (let index = 2; index <= REPO_MAX; index++) all[`repo${index}-${name.slice('repo1-'.length)}`] = { ...def, copyOf: name }
  }
  for (const suffix of PG_COPIED) {
    const name = `pg1-${suffix}`
    const def = base[name]!
    for (let index = 2; index <= PG_MAX; index++) all[`pg${index}-${suffix}`] = { ...def, commands: PG_COPY_COMMANDS, copyOf: name }
  }
  return all as Record<OptionName, OptionDef>
}

export const OPTIONS = withCopies(BASE_OPTIONS)

/** The name of a cluster option for cluster `index`: pgOption(2, 'path') is 'pg2-path'. */
export function pgOption(index: PgIndex, suffix: PgSuffix): OptionName {
  return `pg${index}-${suffix}` as OptionName
}

/** The name of a repository option for repository `index`: repoOption(2, 'path') is 'repo2-path'. */
export function repoOption(index: RepoIndex, suffix: RepoSuffix): OptionName {
  return `repo${index}-${suffix}` as OptionName
}

export function optionDef(name: string): OptionDef | undefined {
  return Object.hasOwn(OPTIONS, name) ? (OPTIONS as Record<string, OptionDef>)[name] : undefined
}

/** The default of an option for a command, if it has one. */
export function optionDefault(name: OptionName, command: CommandName): string | number | boolean | undefined {
  const def: OptionDef = OPTIONS[name]
  return def.perCommand?.[command]?.default ?? def.default
}

/** The allowed values of an enum option for a command. */
export function optionAllow(name: OptionName, command: CommandName): readonly string[] | undefined {
  const def: OptionDef = OPTIONS[name]
  return def.perCommand?.[command]?.allow ?? def.allow
}

/** WALDEN_REPO1_PATH for repo1-path. */
export function optionEnvName(name: string): string {
  return `WALDEN_${name.toUpperCase().replaceAll('-', '_')}`
}

/** Options as help and the reference list them: repo2-* and pg2-* and up are the same as repo1-* and pg1-*, so only those are shown. */
export function listedOptions(): OptionName[] {
  return (Object.keys(OPTIONS) as OptionName[]).filter((name) => OPTIONS[name].copyOf === undefined)
}
