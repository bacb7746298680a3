"""Abuse limits and phone ownership (issue 12): limit hits, pending phone changes, OTP targets.

A frozen copy written as SQL. Safe on a live database: two new tables (their indexes are
built while they are empty), new nullable columns without a default on `otps` (no
rewrite), `phone` of both account tables made nullable (a catalogue change, no scan), and
two indexes on existing tables for `invoke db.purge`, built CONCURRENTLY (so the module is
not atomic: each DDL step runs in its own short transaction). Every step waits at most
`lock_timeout` for its lock, so a busy table makes the migration fail fast instead of
queueing every request behind it; run it again (each step is idempotent).
"""

atomic = False
LOCK_TIMEOUT = "5s"

SQUAWK_EXCLUDE = {
    "prefer-text-field": "varchar(n) like the tables of 0001; widening one later is metadata-only",
    "prefer-bigint-over-int": "ids reference the serial ids of 0001's tables",
    "prefer-identity": "serial columns are what peewee's AutoField and the frozen models expect",
    "ban-drop-not-null": "CONTRACT §4/§6: a released or erased phone is null; the API declares it nullable",
}

UP = """

-- One row per counted event of a limit; key_hash is an HMAC of the key (no email, phone
-- or address stored). Read newest first within a window, purged once expired.
CREATE TABLE IF NOT EXISTS rate_limit_hits (
    id bigserial PRIMARY KEY,
    name varchar(32) NOT NULL,
    key_hash varchar(64) NOT NULL,
    at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limit_hits_name_key_hash_at ON rate_limit_hits (name, key_hash, at);
CREATE INDEX IF NOT EXISTS rate_limit_hits_expires_at ON rate_limit_hits (expires_at);

-- A phone change made by PATCH, waiting for a code sent to the new number: the number
-- encrypted like the accounts' (0002), found through its blind index.
CREATE TABLE IF NOT EXISTS phone_changes (
    id serial PRIMARY KEY,
    subject_type varchar(16) NOT NULL CHECK (subject_type IN ('influencer', 'brand')),
    subject_id integer NOT NULL,
    phone text NOT NULL,
    phone_digest varchar(64) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS phone_changes_subject_type_subject_id
    ON phone_changes (subject_type, subject_id);
CREATE INDEX IF NOT EXISTS phone_changes_phone_digest ON phone_changes (phone_digest);

-- The one account a code proves the phone for (chosen at send).
ALTER TABLE otps ADD COLUMN IF NOT EXISTS account_type varchar(16);
ALTER TABLE otps ADD COLUMN IF NOT EXISTS account_id integer;

-- An unproved claim can be released: its phone becomes null (CONTRACT §4, §6).
ALTER TABLE influencers ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE brands ALTER COLUMN phone DROP NOT NULL;
"""

# Built on live tables without blocking writes; a failed build leaves an INVALID index,
# so each is dropped first (a no-op the first time).
INDEXES = (
    ("sessions_expires_at", "sessions (expires_at)"),
    ("otps_expires_at", "otps (expires_at)"),
)

DOWN = """
DROP TABLE IF EXISTS rate_limit_hits;
DROP TABLE IF EXISTS phone_changes;
ALTER TABLE otps DROP COLUMN IF EXISTS account_type;
ALTER TABLE otps DROP COLUMN IF EXISTS account_id;
-- Fails while a released claim (phone null) exists: such rows have no phone to go back to.
ALTER TABLE influencers ALTER COLUMN phone SET NOT NULL;
ALTER TABLE brands ALTER COLUMN phone SET NOT NULL;
"""


def _in_transaction(db, sql):
    with db.atomic():
        db.execute_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        db.execute_sql(sql)


def _concurrently(db, sql):
    # CONCURRENTLY cannot run in a transaction, so the timeout is set for this session
    # and reset after, whatever happens.
    db.execute_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        db.execute_sql(sql)
    finally:
        db.execute_sql("RESET lock_timeout")


def up(migrator, db):
    _in_transaction(db, UP)
    for name, target in INDEXES:
        _concurrently(db, f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        _concurrently(db, f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target}")


def down(migrator, db):
    for name, _ in INDEXES:
        _concurrently(db, f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    _in_transaction(db, DOWN)
