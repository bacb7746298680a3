"""Abuse limits and phone ownership (issue 12): limit hits, pending phone changes, OTP targets.

A frozen copy written as SQL. Safe on a live database: two new tables (their indexes are
built while they are empty), new nullable columns without a default on `otps` (no
rewrite), and `phone` of both account tables made nullable (a catalogue change, no scan).
Every statement waits at most `lock_timeout` for its lock, so a busy table makes the
migration fail fast instead of queueing every request behind it; run it again.
No index on an existing table, so the module stays atomic.
"""

UP = """
SET LOCAL lock_timeout = '5s';

-- One row per counted event of a limit; key_hash is an HMAC of the key (no email, phone
-- or address stored). Read newest first within a window, purged once expired.
CREATE TABLE rate_limit_hits (
    id bigserial PRIMARY KEY,
    name varchar(32) NOT NULL,
    key_hash varchar(64) NOT NULL,
    at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_hits_name_key_hash_at ON rate_limit_hits (name, key_hash, at);
CREATE INDEX rate_limit_hits_expires_at ON rate_limit_hits (expires_at);

-- A phone change made by PATCH, waiting for a code sent to the new number.
CREATE TABLE phone_changes (
    id serial PRIMARY KEY,
    subject_type varchar(16) NOT NULL CHECK (subject_type IN ('influencer', 'brand')),
    subject_id integer NOT NULL,
    phone varchar(16) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX phone_changes_subject_type_subject_id
    ON phone_changes (subject_type, subject_id);
CREATE INDEX phone_changes_phone ON phone_changes (phone);

-- The one account a code proves the phone for (chosen at send).
ALTER TABLE otps ADD COLUMN account_type varchar(16);
ALTER TABLE otps ADD COLUMN account_id integer;

-- An unproved claim can be released: its phone becomes null (CONTRACT §4, §6).
ALTER TABLE influencers ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE brands ALTER COLUMN phone DROP NOT NULL;
"""

DOWN = """
SET LOCAL lock_timeout = '5s';
DROP TABLE IF EXISTS rate_limit_hits;
DROP TABLE IF EXISTS phone_changes;
ALTER TABLE otps DROP COLUMN IF EXISTS account_type;
ALTER TABLE otps DROP COLUMN IF EXISTS account_id;
-- Fails while a released claim (phone null) exists: such rows have no phone to go back to.
ALTER TABLE influencers ALTER COLUMN phone SET NOT NULL;
ALTER TABLE brands ALTER COLUMN phone SET NOT NULL;
"""


def up(migrator, db):
    db.execute_sql(UP)


def down(migrator, db):
    db.execute_sql(DOWN)
