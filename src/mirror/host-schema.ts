// The host side: what a database receiving mirrored transactions (directly, or by replaying SQL files) needs.
// applied is the replay guard: each master transaction inserts its xid in the same host transaction as its changes,
// so a transaction committed on the host is never applied again, whatever crashed afterwards.

export const HOST_SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS walden_mirror;
CREATE TABLE IF NOT EXISTS walden_mirror.applied (
  master_xid  bigint PRIMARY KEY,
  tick        bigint NOT NULL,
  last_seq_id bigint NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);
-- Written (with a waiting commit) to flush the WAL of transactions committed without waiting, before the master is
-- told the host has them.
CREATE TABLE IF NOT EXISTS walden_mirror.flush_mark (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  at  timestamptz NOT NULL
);
-- Fails the statement unless exactly one row was touched: an UPDATE or DELETE that finds no row is a conflict.
-- SQLSTATE P0002 (no_data_found) lets walden tell it from other errors. It runs with the rights of whoever applies
-- (often a superuser), in their session: operators and functions are qualified, so that one another user of the host
-- planted on the search path (a public.||(text, bigint) matches better than pg_catalog's) is never called instead.
CREATE OR REPLACE FUNCTION walden_mirror.expect_row(touched bigint, what text) RETURNS void
LANGUAGE plpgsql AS $body$
BEGIN
  IF touched OPERATOR(pg_catalog.<>) 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = pg_catalog.concat(what, ' found ', touched, ' rows, expected 1');
  END IF;
END
$body$;
`
