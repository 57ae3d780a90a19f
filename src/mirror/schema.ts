// The master side of table mirroring: the schema walden_mirror with the change queue, the commit order, the hosts and
// the capture triggers. Every statement is idempotent, so mirror-setup can run again (after an upgrade of walden, to
// replace the functions) without touching queued changes.

export const MIRROR_SCHEMA = 'walden_mirror'

/** The channel capture notifies at commit; mirror-run LISTENs to it. */
export const NOTIFY_CHANNEL = 'walden_mirror'

/**
 * The advisory locks a sleeping mirror-run holds (see WAKE_NEEDED below): first key SLEEP_LOCK_KEY, second the slot,
 * 0 to SLEEP_SLOTS - 1. mirror-run's one-per-host lock has another first key.
 */
export const SLEEP_LOCK_KEY = 0x57_4d_53_4c // 'WMSL'
export const SLEEP_SLOTS = 4

// A NOTIFY makes the committing transaction take a database-wide lock until its commit record is flushed, which
// serialises the commits of every notifying transaction: under load that halves the master's throughput. So capture
// notifies only when a mirror-run is asleep and needs waking. A sleeping mirror-run holds one of SLEEP_SLOTS advisory
// locks exclusively; a capturing transaction tries to take all of them shared (first row: shared lock table; later
// rows: its own lock table). If it gets them all, no mirror-run can fall asleep until it ends (it cannot take a slot),
// and the mirror-run's check after taking a slot sees the transaction committed. If one is taken, someone is asleep and
// the transaction notifies; the notification reaches every listener at commit.
const WAKE_NEEDED = Array.from({ length: SLEEP_SLOTS }, (_, slot) => `pg_catalog.pg_try_advisory_xact_lock_shared(${SLEEP_LOCK_KEY}, ${slot})`).join(' AND ')

/** The role the capture functions run as (see below). */
export const CAPTURE_ROLE = 'walden_mirror_capture'

export const MASTER_SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS walden_mirror;

-- One row per captured row change, written inside the user's transaction: it commits or vanishes with it.
-- xid is the top-level 64-bit transaction id, so changes made under a savepoint belong to their transaction, and a
-- rolled-back savepoint takes its rows with it. key_image is the old primary key (UPDATE, DELETE), row_image the
-- new row (INSERT, UPDATE), both jsonb keyed by column name: NULL stays JSON null, never an empty string.
-- seq_id orders changes; it has no index (one index less to maintain on every captured row): changes are always
-- read by xid. Its sequence must keep the default CACHE 1, so that values follow the order of the calls.
CREATE TABLE IF NOT EXISTS walden_mirror.change (
  seq_id      bigserial NOT NULL,
  xid         bigint NOT NULL,
  table_name  text NOT NULL,
  op          "char" NOT NULL CHECK (op IN ('i', 'u', 'd', 't')),
  key_image   jsonb,
  row_image   jsonb,
  captured_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS change_xid ON walden_mirror.change (xid);

-- The commit order: one row per committed transaction, written by mirror-run when it first sees the transaction
-- (see order.ts for why (tick, last_seq_id) is a safe apply order).
CREATE TABLE IF NOT EXISTS walden_mirror.txn (
  xid           bigint PRIMARY KEY,
  tick          bigint NOT NULL,
  last_seq_id   bigint NOT NULL,
  changes       integer NOT NULL,
  first_capture timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS txn_order ON walden_mirror.txn (tick, last_seq_id);

-- The clock that numbers ticks; one row. snapshot_xmin is the xmin of the last tick's snapshot: every transaction
-- below it had finished by then, so the next tick need only look at changes from there on.
CREATE TABLE IF NOT EXISTS walden_mirror.clock (
  one           boolean PRIMARY KEY DEFAULT true CHECK (one),
  tick          bigint NOT NULL,
  snapshot_xmin bigint NOT NULL
);
INSERT INTO walden_mirror.clock (tick, snapshot_xmin) VALUES (0, 0) ON CONFLICT DO NOTHING;

-- Mirrored tables, with the primary key the trigger was created with and the identity columns GENERATED ALWAYS
-- (an UPDATE cannot assign those, so the master never changes them and the host must not be asked to).
CREATE TABLE IF NOT EXISTS walden_mirror.mirrored_table (
  table_name      text PRIMARY KEY,
  key_columns     text[] NOT NULL,
  always_identity text[] NOT NULL DEFAULT '{}',
  added_at        timestamptz NOT NULL DEFAULT now()
);

-- Hosts and how far each has got: (pos_tick, pos_seq) is the last transaction it has, in commit order. A new host
-- starts at (0, 0), before everything still queued, which holds purge until it has caught up. init_snapshot, set by
-- mirror-init-host, is the snapshot its copy was taken in: transactions visible in it are already on the host.
CREATE TABLE IF NOT EXISTS walden_mirror.host (
  host_id       serial PRIMARY KEY,
  name          text NOT NULL UNIQUE,
  added_at      timestamptz NOT NULL DEFAULT now(),
  pos_tick      bigint NOT NULL DEFAULT 0,
  pos_seq       bigint NOT NULL DEFAULT 0,
  pos_xid       bigint,
  applied_at    timestamptz,
  init_snapshot text,
  stalled_xid   bigint,
  stalled_error text,
  stalled_since timestamptz
);

-- The row trigger, on the hot path of every write to a mirrored table, so it runs no query but its INSERT: its
-- arguments, fixed by mirror-add-table, are the quoted table name (TG_ARGV[0]), the columns left out of the row image
-- (TG_ARGV[1]: generated columns, which the host computes itself) and the columns left out of the key image
-- (TG_ARGV[2]: all but the primary key), the last two as text[] literals. txid_current() is the top-level 64-bit
-- transaction id (pg_current_xact_id() without the cast through text).
--
-- SECURITY DEFINER, because the alternative is worse: run as the writer, every writer would need INSERT on the queue,
-- and could then queue changes the master never made, for tables they may not write, which mirror-run applies on
-- every host. But a definer function runs its body with the owner's rights in the writer's session, so nothing in it
-- may be looked up by the writer's rules: search_path is pinned to pg_catalog with pg_temp last (else the writer's
-- temporary schema comes first for types and tables: a temporary domain named text, with a CHECK calling the writer's
-- code, would run that code as the owner), and every type, function and operator is schema-qualified all the same.
-- Even so, to_jsonb(NEW) calls a cast to json that the owner of a column's type may define (CREATE CAST for an enum of
-- their own, on a table of their own that is mirrored): that code runs as the function's owner. So the owner is
-- walden_mirror_capture (below), a role that may do nothing but add rows to the queue.
CREATE OR REPLACE FUNCTION walden_mirror.capture_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
  IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
    INSERT INTO walden_mirror.change (xid, table_name, op, row_image)
    VALUES (pg_catalog.txid_current(), TG_ARGV[0], 'i',
            pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.-) TG_ARGV[1]::pg_catalog.text[]);
  ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
    INSERT INTO walden_mirror.change (xid, table_name, op, key_image, row_image)
    VALUES (pg_catalog.txid_current(), TG_ARGV[0], 'u',
            pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) TG_ARGV[2]::pg_catalog.text[],
            pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.-) TG_ARGV[1]::pg_catalog.text[]);
  ELSE
    INSERT INTO walden_mirror.change (xid, table_name, op, key_image)
    VALUES (pg_catalog.txid_current(), TG_ARGV[0], 'd',
            pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) TG_ARGV[2]::pg_catalog.text[]);
  END IF;
  -- Delivered at commit only, and once per transaction however often it is called.
  IF NOT (${WAKE_NEEDED}) THEN
    PERFORM pg_catalog.pg_notify('${NOTIFY_CHANNEL}', '');
  END IF;
  RETURN NULL;
END
$body$;

CREATE OR REPLACE FUNCTION walden_mirror.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
  INSERT INTO walden_mirror.change (xid, table_name, op)
  VALUES (pg_catalog.txid_current(), TG_ARGV[0], 't');
  IF NOT (${WAKE_NEEDED}) THEN
    PERFORM pg_catalog.pg_notify('${NOTIFY_CHANNEL}', '');
  END IF;
  RETURN NULL;
END
$body$;

-- Triggers check EXECUTE when they are created, not when they fire: without this, anyone allowed to create a trigger
-- could attach the capture functions to a table of their own and feed the queue.
REVOKE ALL ON FUNCTION walden_mirror.capture_row() FROM PUBLIC;
REVOKE ALL ON FUNCTION walden_mirror.capture_truncate() FROM PUBLIC;

-- The capture functions' owner: no login, no superuser, no rights but adding rows to the queue (code that runs as it
-- can at worst queue a change; mirror-run checks the table names it finds there). Roles belong to the cluster, so
-- one role serves every database with a mirror; it is created once and kept.
DO $body$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) '${CAPTURE_ROLE}') THEN
    CREATE ROLE ${CAPTURE_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
  END IF;
END
$body$;
GRANT USAGE ON SCHEMA walden_mirror TO ${CAPTURE_ROLE};
GRANT INSERT ON walden_mirror.change TO ${CAPTURE_ROLE};
GRANT USAGE ON SEQUENCE walden_mirror.change_seq_id_seq TO ${CAPTURE_ROLE};
ALTER FUNCTION walden_mirror.capture_row() OWNER TO ${CAPTURE_ROLE};
ALTER FUNCTION walden_mirror.capture_truncate() OWNER TO ${CAPTURE_ROLE};
`

/**
 * Drops the triggers of every mirrored table, then the schema. Runs with the rights of whoever tears down, in their
 * session: functions are qualified, so that one another user planted earlier on the search path (a public.format(text,
 * text) matches better than pg_catalog's variadic one) is never called instead.
 */
export const MASTER_TEARDOWN_SQL = `
DO $body$
DECLARE
  t record;
BEGIN
  IF pg_catalog.to_regclass('walden_mirror.mirrored_table') IS NOT NULL THEN
    FOR t IN SELECT table_name FROM walden_mirror.mirrored_table LOOP
      IF pg_catalog.to_regclass(t.table_name) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS walden_mirror_capture ON %s', t.table_name);
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS walden_mirror_truncate ON %s', t.table_name);
      END IF;
    END LOOP;
  END IF;
END
$body$;
DROP SCHEMA IF EXISTS walden_mirror CASCADE;
-- The capture role goes with the last mirror of the cluster: while another database still has one, its grants there
-- keep the role, and DROP ROLE says so. One who may not drop roles leaves it (it can do nothing without the schema).
DO $body$
BEGIN
  DROP ROLE IF EXISTS ${CAPTURE_ROLE};
EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
  NULL;
END
$body$;
`
