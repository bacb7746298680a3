"""Migrations: the schema matches CONTRACT §4 column for column, no drift, down and up again."""

from cloutsy import migrations
from cloutsy.db import database

# CONTRACT §4, verbatim.
CONTRACT_COLUMNS = {
    "niches": "id, name, slug, icon, description, is_active, created_at, updated_at",
    "influencers": "id, name, username, email, phone, date_of_birth, gender, bio, profile_image, "
    "is_phone_verified, is_active, created_at, updated_at",
    "brands": "id, email, password, phone, is_phone_verified, brand_name, username, "
    "legal_entity_name, company_type, brand_email_id, poc_name, poc_designation, poc_email_id, "
    "poc_contact_number, brand_bio, profile_image, incorporation_document, gst_document, "
    "pan_document, is_profile_completed, is_active, created_at, updated_at",
    "influencer_niches": "id, influencer_id, niche_id, created_at, updated_at",
    "brand_niches": "id, brand_id, niche_id, created_at, updated_at",
    "otps": "id, phone, otp, is_used, expires_at, attempts, created_at, updated_at",
    "sessions": "id, token_hash, subject_type, subject_id, expires_at, revoked_at, created_at",
}


def _columns(table):
    rows = database.execute_sql(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return rows


def test_schema_matches_the_contract_column_for_column(db):
    for table, listed in CONTRACT_COLUMNS.items():
        names = [name for name, _ in _columns(table)]
        assert names == [c.strip() for c in listed.split(",")], table


def test_timestamps_are_timestamptz(db):
    for table in CONTRACT_COLUMNS:
        types = dict(_columns(table))
        for column in ("created_at", "updated_at", "expires_at", "revoked_at"):
            if column in types:
                assert types[column] == "timestamp with time zone", (table, column)


def test_contract_indexes_exist(db):
    rows = database.execute_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    ).fetchall()
    defs = {name: definition for name, definition in rows}
    assert "lower((username)::text)" in defs["influencers_username_lower"]
    assert "UNIQUE" in defs["influencers_email_lower"]
    assert "UNIQUE" in defs["brands_username_lower"]
    assert "(niche_id, influencer_id)" in defs["influencer_niches_niche_id_influencer_id"]
    assert "(phone, created_at)" in defs["otps_phone_created_at"]
    assert "UNIQUE" in defs["sessions_token_hash"]
    assert "gin" in defs["influencers_search"]


def test_no_drift_between_models_and_database(db):
    diff = migrations.drift()
    assert not diff, str(diff)


def test_nothing_pending_after_setup(db):
    assert migrations.pending() == []


def test_rollback_everything_and_apply_again(committed):
    with database.connection_context():
        names = [m.name for m in migrations.status()]
        reverted = migrations.rollback(all_=True)
        assert reverted == names[::-1]
        assert "influencers" not in database.get_tables()
        assert migrations.pending() == names
        assert migrations.apply() == names
        assert not migrations.drift()
        assert migrations.pending() == []
