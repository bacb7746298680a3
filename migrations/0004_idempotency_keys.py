"""Idempotency keys (CONTRACT §5 "Idempotent retries"): one row per key, caller and route.

A frozen copy written as SQL. A new, empty table: its indexes are built in the same
transaction (nothing to lock out), under a short lock_timeout like every migration.
No column holds PII: the key, caller and route are folded into one keyed hash, the body
into a keyed fingerprint, and `response` keeps only what renders the answer again
(an account id, a code's expiry time).
"""

SQUAWK_EXCLUDE = {
    "prefer-identity": "bigserial like every id column of the schema (peewee's BigAutoField)",
    "prefer-text-field": "fixed-width hex HMACs (varchar(64)), never resized",
    "prefer-bigint-over-smallint": "an HTTP status code",
}

UP = """
SET LOCAL lock_timeout = '5s';
CREATE TABLE idempotency_keys (
    id bigserial PRIMARY KEY,
    key_hash varchar(64) NOT NULL,
    fingerprint varchar(64) NOT NULL,
    status smallint,
    response text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX idempotency_keys_key_hash ON idempotency_keys (key_hash);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
"""


def up(migrator, db):
    db.execute_sql(UP)


def down(migrator, db):
    db.execute_sql("SET LOCAL lock_timeout = '5s'")
    db.execute_sql("DROP TABLE IF EXISTS idempotency_keys")
