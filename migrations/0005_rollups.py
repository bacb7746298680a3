"""Rollups that keep the analytics' whole-table figures incremental (issue 14).

At 1,000,000 accounts, counting every account per niche, per niche pair or per number of
niches, and every sign-up per day, takes seconds. These four tables hold those figures as
*deltas* written by triggers on the account and link tables, in the writing transaction:

- `rollup_signups (kind, day, signups, verified, profile_started, profile_half,
  profile_completed)`: every account that signed up, by UTC day (growth, funnels);
- `rollup_niches (kind, niche_id, accounts)`: active accounts per niche (/niches too);
- `rollup_niche_counts (kind, niches, accounts)`: active accounts by how many niches;
- `rollup_niche_pairs (kind, a, b, accounts)`: active accounts per niche pair (a < b).

A figure is the SUM of its rows grouped by the key. Writers only ever INSERT (no row is
updated in place), so concurrent sign-ups never wait on one another's counter row;
`cloutsy_rollups_compact()` folds the deltas into one row per key, and
`cloutsy_rollups_rebuild()` recounts everything from the tables (the migration's
initial fill, bulk loads, and the test that incremental equals a full recount).

Bulk loads (`seed.demo`) set `cloutsy.rollups = 'off'` in their transaction and rebuild
at the end. The trigger functions are SECURITY DEFINER, so the app role needs no
rights on the rollup tables beyond SELECT. TRUNCATE of an account or link table
rebuilds (a recount of what is left).
"""

atomic = True

SQUAWK_EXCLUDE = {
    "prefer-bigint-over-int": "niche ids and niche counts, like 0001's integer ids",
}

KINDS = (
    # kind, account table, link table, owner column, profile fields (brands only)
    ("influencer", "influencers", "influencer_niches", "influencer_id", ()),
    (
        "brand",
        "brands",
        "brand_niches",
        "brand_id",
        (
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
        ),
    ),
)

TABLES = """
CREATE TABLE rollup_signups (
    kind text NOT NULL, day date NOT NULL, signups bigint NOT NULL, verified bigint NOT NULL,
    profile_started bigint NOT NULL DEFAULT 0, profile_half bigint NOT NULL DEFAULT 0,
    profile_completed bigint NOT NULL DEFAULT 0
);
CREATE TABLE rollup_niches (kind text NOT NULL, niche_id integer NOT NULL, accounts bigint NOT NULL);
CREATE TABLE rollup_niche_counts (kind text NOT NULL, niches integer NOT NULL, accounts bigint NOT NULL);
CREATE TABLE rollup_niche_pairs (
    kind text NOT NULL, a integer NOT NULL, b integer NOT NULL, accounts bigint NOT NULL
);
"""
ROLLUP_TABLES = ("rollup_signups", "rollup_niches", "rollup_niche_counts", "rollup_niche_pairs")
DEFINER = "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public"
SKIP = "IF current_setting('cloutsy.rollups', true) = 'off' THEN RETURN NULL; END IF;"


def _signup_columns(alias, profile, sign="1"):
    """The sign-up contribution of account rows `alias`: day and the five counters."""
    f1 = f2 = f3 = "0"
    if profile:
        filled = (
            "num_nonnulls(" + ", ".join(f"nullif({alias}.{f}::text, '')" for f in profile) + ")"
        )
        f1 = f"({filled} >= 1)::int * {sign}"
        f2 = f"({filled} >= 6)::int * {sign}"
        f3 = f"{alias}.is_profile_completed::int * {sign}"
    return (
        f"({alias}.created_at AT TIME ZONE 'UTC')::date AS day, {sign} AS s, "
        f"{alias}.is_phone_verified::int * {sign} AS v, {f1} AS f1, {f2} AS f2, {f3} AS f3"
    )


def _signups_insert(kind, source):
    return (
        f"INSERT INTO rollup_signups SELECT '{kind}', day, sum(s), sum(v), sum(f1), sum(f2), sum(f3) "
        f"FROM ({source}) t GROUP BY day "
        "HAVING sum(s) <> 0 OR sum(v) <> 0 OR sum(f1) <> 0 OR sum(f2) <> 0 OR sum(f3) <> 0;"
    )


def _active_deltas(kind, links, owner, signed):
    """Deltas for whole accounts entering (+1) or leaving (-1) the active set.

    `signed` is a query of (id, sign); their links are read as they are now.
    """
    return f"""
    INSERT INTO rollup_niches SELECT '{kind}', l.niche_id, sum(f.sign)
      FROM ({signed}) f JOIN {links} l ON l.{owner} = f.id GROUP BY l.niche_id HAVING sum(f.sign) <> 0;
    INSERT INTO rollup_niche_counts SELECT '{kind}', c, sum(sign)
      FROM (SELECT f.sign, (SELECT count(*) FROM {links} l WHERE l.{owner} = f.id)::int AS c
              FROM ({signed}) f) t GROUP BY c HAVING sum(sign) <> 0;
    INSERT INTO rollup_niche_pairs SELECT '{kind}', x.niche_id, y.niche_id, sum(f.sign)
      FROM ({signed}) f JOIN {links} x ON x.{owner} = f.id
      JOIN {links} y ON y.{owner} = f.id AND x.niche_id < y.niche_id
     GROUP BY x.niche_id, y.niche_id HAVING sum(f.sign) <> 0;
    """


def _link_deltas(kind, table, links, owner, old, new):
    """Deltas for a statement on the link table: `old` rows went, `new` rows came.

    Only active accounts count (a link statement never flips `is_active`); a deleted
    account's links were taken out by its BEFORE DELETE trigger, so it is skipped here.
    """
    sets = f"""
    WITH o AS (SELECT {owner} AS owner, niche_id FROM {old}),
         n AS (SELECT {owner} AS owner, niche_id FROM {new}),
         x AS (SELECT u.owner FROM (SELECT owner FROM o UNION SELECT owner FROM n) u
                 JOIN {table} a ON a.id = u.owner AND a.is_active)"""
    return f"""
    {sets}
    INSERT INTO rollup_niches SELECT '{kind}', niche_id, sum(d)
      FROM (SELECT niche_id, -1 AS d FROM o JOIN x USING (owner)
            UNION ALL SELECT niche_id, 1 FROM n JOIN x USING (owner)) t
     GROUP BY niche_id HAVING sum(d) <> 0;
    {sets},
         now_c AS (SELECT l.{owner} AS owner, count(*) AS c FROM {links} l
                    WHERE l.{owner} IN (SELECT owner FROM x) GROUP BY 1),
         added AS (SELECT owner, count(*) AS c FROM n GROUP BY owner),
         gone AS (SELECT owner, count(*) AS c FROM o GROUP BY owner),
         p AS (SELECT coalesce(now_c.c, 0)::int AS now_c,
                      (coalesce(now_c.c, 0) - coalesce(added.c, 0) + coalesce(gone.c, 0))::int AS was_c
                 FROM x LEFT JOIN now_c USING (owner) LEFT JOIN added USING (owner)
                 LEFT JOIN gone USING (owner))
    INSERT INTO rollup_niche_counts SELECT '{kind}', c, sum(d)
      FROM p CROSS JOIN LATERAL (VALUES (p.now_c, 1), (p.was_c, -1)) AS v(c, d)
     GROUP BY c HAVING sum(d) <> 0;
    {sets},
         now_s AS (SELECT l.{owner} AS owner, l.niche_id FROM {links} l
                    WHERE l.{owner} IN (SELECT owner FROM x)),
         before_s AS ((SELECT owner, niche_id FROM now_s EXCEPT SELECT owner, niche_id FROM n)
                      UNION SELECT owner, niche_id FROM o JOIN x USING (owner))
    INSERT INTO rollup_niche_pairs SELECT '{kind}', a, b, sum(d)
      FROM (SELECT p.niche_id AS a, q.niche_id AS b, 1 AS d
              FROM now_s p JOIN now_s q ON q.owner = p.owner AND p.niche_id < q.niche_id
            UNION ALL
            SELECT p.niche_id, q.niche_id, -1
              FROM before_s p JOIN before_s q ON q.owner = p.owner AND p.niche_id < q.niche_id) t
     GROUP BY a, b HAVING sum(d) <> 0;
    """


def _rebuild(kind, table, links, owner, profile):
    return f"""
    {_signups_insert(kind, f"SELECT {_signup_columns('a', profile)} FROM {table} a")}
    INSERT INTO rollup_niches SELECT '{kind}', l.niche_id, count(*)
      FROM {links} l JOIN {table} a ON a.id = l.{owner} AND a.is_active GROUP BY l.niche_id;
    INSERT INTO rollup_niche_counts SELECT '{kind}', c, count(*)
      FROM (SELECT count(l.niche_id)::int AS c FROM {table} a
              LEFT JOIN {links} l ON l.{owner} = a.id WHERE a.is_active GROUP BY a.id) t GROUP BY c;
    INSERT INTO rollup_niche_pairs SELECT '{kind}', x.niche_id, y.niche_id, count(*)
      FROM {links} x JOIN {links} y ON y.{owner} = x.{owner} AND x.niche_id < y.niche_id
      JOIN {table} a ON a.id = x.{owner} AND a.is_active GROUP BY x.niche_id, y.niche_id;
    """


def functions():
    """Every function and trigger of the rollups, as SQL text."""
    empty = "(SELECT * FROM {links} WHERE false) AS no_rows"
    parts = []
    rebuild = "".join(_rebuild(k, t, lk, o, p) for k, t, lk, o, p in KINDS)
    parts.append(f"""
    CREATE FUNCTION cloutsy_rollups_rebuild() RETURNS void {DEFINER} AS $$
    BEGIN
        DELETE FROM rollup_signups; DELETE FROM rollup_niches;
        DELETE FROM rollup_niche_counts; DELETE FROM rollup_niche_pairs;
        {rebuild}
    END $$;
    CREATE FUNCTION cloutsy_rollups_compact() RETURNS void {DEFINER} AS $$
    BEGIN
        WITH d AS (DELETE FROM rollup_signups RETURNING *)
        INSERT INTO rollup_signups SELECT kind, day, sum(signups), sum(verified),
               sum(profile_started), sum(profile_half), sum(profile_completed) FROM d
         GROUP BY kind, day
        HAVING sum(signups) <> 0 OR sum(verified) <> 0 OR sum(profile_started) <> 0
            OR sum(profile_half) <> 0 OR sum(profile_completed) <> 0;
        WITH d AS (DELETE FROM rollup_niches RETURNING *)
        INSERT INTO rollup_niches SELECT kind, niche_id, sum(accounts) FROM d
         GROUP BY kind, niche_id HAVING sum(accounts) <> 0;
        WITH d AS (DELETE FROM rollup_niche_counts RETURNING *)
        INSERT INTO rollup_niche_counts SELECT kind, niches, sum(accounts) FROM d
         GROUP BY kind, niches HAVING sum(accounts) <> 0;
        WITH d AS (DELETE FROM rollup_niche_pairs RETURNING *)
        INSERT INTO rollup_niche_pairs SELECT kind, a, b, sum(accounts) FROM d
         GROUP BY kind, a, b HAVING sum(accounts) <> 0;
    END $$;
    CREATE FUNCTION cloutsy_rollups_truncated() RETURNS trigger {DEFINER} AS $$
    BEGIN {SKIP} PERFORM cloutsy_rollups_rebuild(); RETURN NULL; END $$;
    """)
    for kind, table, links, owner, profile in KINDS:
        none = empty.format(links=links)
        old_cols = _signup_columns("o", profile, "-1")
        new_cols = _signup_columns("n", profile)
        flips = (
            "SELECT n.id, CASE WHEN n.is_active THEN 1 ELSE -1 END AS sign "
            "FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.is_active <> n.is_active"
        )
        parts.append(f"""
        CREATE FUNCTION cloutsy_rollup_{table}_insert() RETURNS trigger {DEFINER} AS $$
        BEGIN
            {SKIP}
            {_signups_insert(kind, f"SELECT {new_cols} FROM new_rows n")}
            INSERT INTO rollup_niche_counts SELECT '{kind}', 0, count(*) FROM new_rows
             WHERE is_active HAVING count(*) > 0;
            RETURN NULL;
        END $$;
        CREATE FUNCTION cloutsy_rollup_{table}_update() RETURNS trigger {DEFINER} AS $$
        BEGIN
            {SKIP}
            {_signups_insert(kind, f"SELECT {old_cols} FROM old_rows o UNION ALL SELECT {new_cols} FROM new_rows n")}
            IF EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
                        WHERE o.is_active <> n.is_active) THEN
                {_active_deltas(kind, links, owner, flips)}
            END IF;
            RETURN NULL;
        END $$;
        CREATE FUNCTION cloutsy_rollup_{table}_delete() RETURNS trigger {DEFINER} AS $$
        BEGIN
            IF current_setting('cloutsy.rollups', true) = 'off' THEN RETURN OLD; END IF;
            {_signups_insert(kind, f"SELECT {_signup_columns('o', profile, '-1')} FROM (SELECT OLD.*) o")}
            IF OLD.is_active THEN
                {_active_deltas(kind, links, owner, "SELECT OLD.id AS id, -1 AS sign")}
            END IF;
            RETURN OLD;
        END $$;
        CREATE TRIGGER rollup_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_rollup_{table}_insert();
        CREATE TRIGGER rollup_update AFTER UPDATE ON {table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_rollup_{table}_update();
        -- Row level and BEFORE: the account's links are still there to be taken out.
        CREATE TRIGGER rollup_delete BEFORE DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION cloutsy_rollup_{table}_delete();
        CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_rollups_truncated();
        """)
        for event, old, new, refs in (
            ("insert", none, "new_rows", "NEW TABLE AS new_rows"),
            ("delete", "old_rows", none, "OLD TABLE AS old_rows"),
            ("update", "old_rows", "new_rows", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ):
            parts.append(f"""
            CREATE FUNCTION cloutsy_rollup_{links}_{event}() RETURNS trigger {DEFINER} AS $$
            BEGIN
                {SKIP}
                {_link_deltas(kind, table, links, owner, old, new)}
                RETURN NULL;
            END $$;
            CREATE TRIGGER rollup_{event} AFTER {event.upper()} ON {links}
                REFERENCING {refs}
                FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_rollup_{links}_{event}();
            """)
        parts.append(f"""
        CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON {links}
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_rollups_truncated();
        """)
    return "\n".join(parts)


def up(migrator, db):
    # Triggers take a short SHARE ROW EXCLUSIVE lock on busy tables: give up rather than queue.
    db.execute_sql("SET LOCAL lock_timeout = '5s'")
    db.execute_sql(TABLES)
    db.execute_sql(functions())
    # Inside the migration's transaction: writes wait for the fill, none is missed.
    db.execute_sql("SELECT cloutsy_rollups_rebuild()")


def down(migrator, db):
    db.execute_sql("SET LOCAL lock_timeout = '5s'")
    for _, table, links, _, _ in KINDS:
        for t in (table, links):
            for event in ("insert", "update", "delete", "truncate"):
                db.execute_sql(f"DROP TRIGGER IF EXISTS rollup_{event} ON {t}")
            for event in ("insert", "update", "delete"):
                db.execute_sql(f"DROP FUNCTION IF EXISTS cloutsy_rollup_{t}_{event}()")
    for name in ("rebuild", "compact", "truncated"):
        db.execute_sql(f"DROP FUNCTION IF EXISTS cloutsy_rollups_{name}()")
    for table in ROLLUP_TABLES:
        db.execute_sql(f"DROP TABLE IF EXISTS {table}")
