"""Each account's niches as ready JSON, kept by triggers in the writing transaction (issue 14).

A public view lists the account's niches as `[{"id","name","slug","icon"},…]`. Built per
read, that array cost PostgreSQL a niche lookup and a `row_to_json` per link: about half
of a 20-account page's database time (measured on the bench data, PostgreSQL 16: 250 us
a page against 145 us reading the array ready). These tables hold it, one row per account
that has at least one niche (none: the view shows `[]`):

- `influencer_niche_refs (influencer_id, niches)` and `brand_niche_refs (brand_id, niches)`.

Kept exact by the writes themselves: a statement on a link table refreshes the accounts it
touched; a change of a niche's name, slug or icon refreshes every account linked to it;
TRUNCATE of a link table empties its refs. Concurrent writers cannot leave a stale set:
a link statement locks its accounts' rows before it reads their links, and a niche change
locks the link tables against writers (tests/test_niche_refs.py races both). The trigger
functions are SECURITY DEFINER, so the app needs no write right here. Bulk loads
(`seed.demo`) set `cloutsy.niche_refs = 'off'` in their transaction and call
`cloutsy_niche_refs_rebuild()` at the end, which also fills the tables here and is what
tests/test_niche_refs.py compares the kept rows with.
"""

atomic = True

SQUAWK_EXCLUDE = {
    "prefer-bigint-over-int": "account ids, like 0001's integer ids",
}

KINDS = (
    # refs table, account table, link table, owner column
    ("influencer_niche_refs", "influencers", "influencer_niches", "influencer_id"),
    ("brand_niche_refs", "brands", "brand_niches", "brand_id"),
)
DEFINER = "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public"
SKIP = "IF current_setting('cloutsy.niche_refs', true) = 'off' THEN RETURN NULL; END IF;"


def _refs(links, owner, where):
    """(owner, niches JSON) for the owners `where` selects: compact, ordered by niche id."""
    return f"""
    SELECT l.{owner}, ('[' || string_agg(row_to_json(v)::text, ',' ORDER BY l.niche_id) || ']')::json
      FROM {links} l JOIN niches n ON n.id = l.niche_id
     CROSS JOIN LATERAL (SELECT n.id AS "id", n.name AS "name", n.slug AS "slug", n.icon AS "icon") v
     WHERE {where} GROUP BY l.{owner}"""


def _refresh(refs, links, owner, owners):
    """Statements that make the refs of the owners `owners` (a query of `owner`) exact."""
    return f"""
    DELETE FROM {refs} r WHERE r.{owner} IN ({owners})
       AND NOT EXISTS (SELECT 1 FROM {links} l WHERE l.{owner} = r.{owner});
    INSERT INTO {refs} ({owner}, niches) {_refs(links, owner, f"l.{owner} IN ({owners})")}
        ON CONFLICT ({owner}) DO UPDATE SET niches = EXCLUDED.niches;"""


def statements():
    """Every table, function and trigger of the niche refs, as SQL text."""
    parts = []
    for refs, table, _, owner in KINDS:
        parts.append(f"""
        CREATE TABLE {refs} (
            {owner} integer PRIMARY KEY REFERENCES {table} (id) ON DELETE CASCADE,
            niches json NOT NULL
        );""")
    rebuild = "".join(
        f"DELETE FROM {refs}; INSERT INTO {refs} ({owner}, niches) {_refs(links, owner, 'true')};"
        for refs, _, links, owner in KINDS
    )
    renamed = "".join(
        _refresh(refs, links, owner, f"SELECT {owner} FROM {links} WHERE niche_id = NEW.id")
        for refs, _, links, owner in KINDS
    )
    parts.append(f"""
    CREATE FUNCTION cloutsy_niche_refs_rebuild() RETURNS void {DEFINER} AS $$
    BEGIN {rebuild} END $$;
    -- A link written while a niche is renamed would carry the old name (its transaction
    -- read it before the rename committed, and the rename cannot see its uncommitted
    -- link): link writers in flight finish first, later ones wait for the rename. A link
    -- write that starts between the niche row's lock and this one can deadlock with it;
    -- PostgreSQL ends one of the two within deadlock_timeout (the API answers 503).
    CREATE FUNCTION cloutsy_niche_refs_renamed() RETURNS trigger {DEFINER} AS $$
    BEGIN
        {SKIP}
        LOCK TABLE {", ".join(links for _, _, links, _ in KINDS)} IN SHARE ROW EXCLUSIVE MODE;
        {renamed}
        RETURN NULL;
    END $$;
    CREATE TRIGGER niche_refs_renamed AFTER UPDATE ON niches FOR EACH ROW
        WHEN ((OLD.name, OLD.slug, OLD.icon) IS DISTINCT FROM (NEW.name, NEW.slug, NEW.icon))
        EXECUTE FUNCTION cloutsy_niche_refs_renamed();""")
    for refs, table, links, owner in KINDS:
        # plpgsql plans a statement when it first runs it: each branch names only the
        # transition tables its own event has.
        changed = {
            "INSERT": f"SELECT {owner} FROM new_rows",
            "DELETE": f"SELECT {owner} FROM old_rows",
            "UPDATE": f"SELECT {owner} FROM old_rows UNION SELECT {owner} FROM new_rows",
        }
        # Two transactions changing one account's links would each write the set as its
        # own snapshot sees it, the last one missing the other's: the account rows are
        # locked first (in id order), so the second waits, then reads the first's links
        # (each statement here takes a new snapshot). The API's writes lock them already.
        branches = " ELSIF ".join(
            f"TG_OP = '{op}' THEN PERFORM 1 FROM {table} a WHERE a.id IN ({owners}) "
            f"ORDER BY a.id FOR NO KEY UPDATE; {_refresh(refs, links, owner, owners)}"
            for op, owners in changed.items()
        )
        parts.append(f"""
        CREATE FUNCTION cloutsy_niche_refs_{links}() RETURNS trigger {DEFINER} AS $$
        BEGIN
            {SKIP}
            IF TG_OP = 'TRUNCATE' THEN DELETE FROM {refs}; ELSIF {branches} END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER niche_refs_insert AFTER INSERT ON {links} REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_niche_refs_{links}();
        CREATE TRIGGER niche_refs_delete AFTER DELETE ON {links} REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_niche_refs_{links}();
        CREATE TRIGGER niche_refs_update AFTER UPDATE ON {links}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_niche_refs_{links}();
        CREATE TRIGGER niche_refs_truncate AFTER TRUNCATE ON {links}
            FOR EACH STATEMENT EXECUTE FUNCTION cloutsy_niche_refs_{links}();""")
    return "\n".join(parts)


def up(migrator, db):
    # Triggers take a short SHARE ROW EXCLUSIVE lock on busy tables: give up rather than queue.
    db.execute_sql("SET LOCAL lock_timeout = '5s'")
    db.execute_sql(statements())
    # Inside the migration's transaction: link writes wait for the fill, none is missed.
    db.execute_sql("SELECT cloutsy_niche_refs_rebuild()")


def down(migrator, db):
    db.execute_sql("SET LOCAL lock_timeout = '5s'")
    db.execute_sql("DROP TRIGGER IF EXISTS niche_refs_renamed ON niches")
    for refs, _, links, _ in KINDS:
        for event in ("insert", "delete", "update", "truncate"):
            db.execute_sql(f"DROP TRIGGER IF EXISTS niche_refs_{event} ON {links}")
        db.execute_sql(f"DROP FUNCTION IF EXISTS cloutsy_niche_refs_{links}()")
        db.execute_sql(f"DROP TABLE IF EXISTS {refs}")
    db.execute_sql("DROP FUNCTION IF EXISTS cloutsy_niche_refs_renamed()")
    db.execute_sql("DROP FUNCTION IF EXISTS cloutsy_niche_refs_rebuild()")
