// walden's version; a unit test keeps it equal to package.json's.
export const VERSION = '0.1.0'

/**
 * The pgBackRest release whose commands, options and JSON walden follows. Run under the name `pgbackrest` (a link
 * named so, which a team switching from pgBackRest makes so archive_command, cron jobs, Patroni and monitoring keep
 * calling the same program), `version` answers with this level in pgBackRest's words: tools such as check_pgbackrest
 * refuse to run against a "pgBackRest" older than the interface they need.
 */
export const PGBACKREST_LEVEL = '2.45'
