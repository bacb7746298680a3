"""Data protection (issue 11, CONTRACT §9): encrypted PII, blind indexes, erasure stamps.

Upgrades a database made by 0001 in place, in the safe style:
- new columns are nullable (`email_digest`, `phone_digest`, `erased_at`); PII columns
  become `text` (varchar -> text rewrites nothing; `date_of_birth` date -> text does
  rewrite `influencers` once, under the short `lock_timeout`);
- the plaintext is encrypted in batches of BATCH rows, each its own short transaction,
  with progress logged; a killed run resumes where it stopped (`email_digest IS NULL`
  marks a row not done yet);
- the unique digest indexes are built CONCURRENTLY and the old plaintext indexes
  (`lower(email)`, `phone`) dropped CONCURRENTLY, so the module is not atomic.
`otps.phone` holds the number's blind index instead of the number. `down` decrypts back
in batches and restores 0001's types and indexes (an erased account gets a placeholder
email and phone: 0001 requires both; pending OTP codes are dropped, their numbers being
digests).

The PII lists are a frozen copy of `cloutsy.models.PII_COLUMNS` as of this migration;
the codec (`cloutsy.crypto`) is the service's own, keyed by CLOUTSY_DATA_KEYS.
"""

import logging

from psycopg2.extras import execute_values

from cloutsy import crypto

atomic = False
log = logging.getLogger("cloutsy.migrations")

SQUAWK_EXCLUDE = {
    "changing-column-type": "varchar(n) -> text is a catalogue change (no rewrite); "
    "date_of_birth date -> text rewrites influencers once, under the 5 s lock_timeout",
    "ban-drop-not-null": "CONTRACT §4: email and phone are null once erased or released",
    "prefer-text-field": "the digests are fixed-width hex (varchar(64)), never resized",
}

BATCH = 2000
LOCK_TIMEOUT = "5s"
PII = {
    "influencers": ("email", "phone", "date_of_birth"),
    "brands": (
        "email",
        "phone",
        "brand_email_id",
        "poc_name",
        "poc_designation",
        "poc_email_id",
        "poc_contact_number",
        "incorporation_document",
        "gst_document",
        "pan_document",
    ),
}
# The analyst may not read PII columns, but the profile funnel counts how many profile
# and document fields a brand filled: a view (run with its owner's rights) shows the count.
PROFILE_FIELDS = (
    "legal_entity_name",
    "company_type",
    "brand_email_id",
    "poc_name",
    "poc_designation",
    "poc_email_id",
    "poc_contact_number",
    "brand_bio",
    "profile_image",
    "incorporation_document",
    "gst_document",
    "pan_document",
)
PROFILE_VIEW = (
    "CREATE OR REPLACE VIEW brand_profile_fill AS SELECT id, created_at, is_profile_completed, "
    "num_nonnulls("
    + ", ".join(f"nullif({f}::text, '')" for f in PROFILE_FIELDS)
    + ") AS fields_filled FROM brands"
)
# 0001's types, for `down`.
TYPES_0001 = {
    "email": "varchar(254)",
    "phone": "varchar(16)",
    "date_of_birth": "date",
    "brand_email_id": "varchar(254)",
    "poc_name": "varchar(100)",
    "poc_designation": "varchar(100)",
    "poc_email_id": "varchar(254)",
    "poc_contact_number": "varchar(16)",
    "incorporation_document": "varchar(2048)",
    "gst_document": "varchar(2048)",
    "pan_document": "varchar(2048)",
}


def _ddl(db, statement):
    """One DDL statement that gives up (and can be retried) rather than queue behind traffic."""
    with db.atomic():
        db.execute_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        db.execute_sql(statement)


def _type(db, table, column):
    """A column's type now (a resumed run finds the work already done; None when unknown,
    as when `invoke migrate.lint` renders the SQL without a database: the full work)."""
    row = db.execute_sql(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return row[0] if row else None


def _batches(db, table, columns, select_where, convert, label):
    """Rewrite rows matching `select_where` BATCH at a time; `convert(row)` -> new values."""
    counted = db.execute_sql(f"SELECT count(*) FROM {table} WHERE {select_where}").fetchone()
    total = counted[0] if counted else 0
    done, last = 0, 0
    names = ", ".join(columns)
    while True:
        with db.atomic():
            rows = db.execute_sql(
                f"SELECT id, {names} FROM {table} WHERE id > %s AND {select_where} "
                "ORDER BY id LIMIT %s FOR UPDATE",
                (last, BATCH),
            ).fetchall()
            if not rows:
                break
            values = [convert(row) for row in rows]
            targets = [*columns, "email_digest", "phone_digest"]
            sets = ", ".join(f"{c} = v.{c}" for c in targets)
            execute_values(
                db.cursor(),
                f"UPDATE {table} t SET {sets} FROM (VALUES %s) "
                f"AS v(id, {', '.join(targets)}) WHERE t.id = v.id",
                values,
                template="(" + ", ".join(["%s"] + ["%s::text"] * len(targets)) + ")",
                page_size=BATCH,
            )
        last = rows[-1][0]
        done += len(rows)
        log.info("0002 %s: %s %d/%d rows", table, label, done, total)


def up(migrator, db):
    ring = crypto.keyring()
    for table, columns in PII.items():
        changes = [f"ALTER COLUMN {c} TYPE text" for c in columns if c != "date_of_birth"]
        if "date_of_birth" in columns and _type(db, table, "date_of_birth") != "text":
            changes.append(
                "ALTER COLUMN date_of_birth TYPE text USING to_char(date_of_birth, 'YYYY-MM-DD')"
            )
        changes += [
            "ALTER COLUMN email DROP NOT NULL",
            "ALTER COLUMN phone DROP NOT NULL",
            "ADD COLUMN IF NOT EXISTS email_digest varchar(64)",
            "ADD COLUMN IF NOT EXISTS phone_digest varchar(64)",
            "ADD COLUMN IF NOT EXISTS erased_at timestamptz",
        ]
        _ddl(db, f"ALTER TABLE {table} " + ", ".join(changes))

        def seal(row, table=table, columns=columns):
            plain = dict(zip(columns, row[1:], strict=True))
            sealed = [ring.encrypt(table, c, plain[c]) for c in columns]
            email = plain["email"].lower() if plain["email"] is not None else None
            return (row[0], *sealed, ring.digest(email), ring.digest(plain["phone"]))

        _batches(
            db, table, columns, "email_digest IS NULL AND erased_at IS NULL", seal, "encrypted"
        )
        for column in ("email", "phone"):
            db.execute_sql(
                f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {table}_{column}_digest "
                f"ON {table} ({column}_digest)"
            )
        db.execute_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {table}_email_lower")
        db.execute_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {table}_phone")
    _ddl(db, PROFILE_VIEW)
    # otps.phone: the number's blind index instead of the number (varchar(16) -> (64) is a
    # catalogue change). OTP rows are few and short-lived: one pass per distinct number.
    _ddl(db, "ALTER TABLE otps ALTER COLUMN phone TYPE varchar(64)")
    numbers = db.execute_sql("SELECT DISTINCT phone FROM otps WHERE phone LIKE '+%%'").fetchall()
    for (number,) in numbers:
        with db.atomic():
            db.execute_sql(
                "UPDATE otps SET phone = %s WHERE phone = %s", (ring.digest(number), number)
            )


def down(migrator, db):
    _ddl(db, "DROP VIEW IF EXISTS brand_profile_fill")
    # A blind index cannot be turned back into a number: pending codes are dropped.
    db.execute_sql("DELETE FROM otps WHERE phone NOT LIKE '+%%'")
    _ddl(db, "ALTER TABLE otps ALTER COLUMN phone TYPE varchar(16)")
    ring = crypto.keyring()
    for table, columns in PII.items():

        def unseal(row, table=table, columns=columns):
            plain = [ring.decrypt(table, c, v) for c, v in zip(columns, row[1:], strict=True)]
            return (row[0], *plain, None, None)

        _batches(db, table, columns, "email_digest IS NOT NULL", unseal, "decrypted")
        # Erased accounts hold no email or phone; 0001 requires both (and unique).
        db.execute_sql(
            f"UPDATE {table} SET email = 'erased-' || id || '@erased.invalid', "
            "phone = '+000' || id WHERE email IS NULL OR phone IS NULL"
        )
        changes = [
            f"ALTER COLUMN {c} TYPE {TYPES_0001[c]}"
            + (" USING date_of_birth::date" if c == "date_of_birth" else "")
            for c in columns
        ]
        changes += [
            "ALTER COLUMN email SET NOT NULL",
            "ALTER COLUMN phone SET NOT NULL",
            "DROP COLUMN IF EXISTS email_digest",
            "DROP COLUMN IF EXISTS phone_digest",
            "DROP COLUMN IF EXISTS erased_at",
        ]
        _ddl(db, f"ALTER TABLE {table} " + ", ".join(changes))
        db.execute_sql(
            f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {table}_email_lower "
            f"ON {table} (lower(email))"
        )
        db.execute_sql(
            f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {table}_phone ON {table} (phone)"
        )
