"""Initial schema: the seven tables of CONTRACT §4, their indexes and the updated_at trigger.

A frozen copy written as SQL, independent of today's models, so it keeps working
when the models move on (tests/test_migrations.py checks the two agree).
"""

# Squawk rules this migration deliberately does not follow (cloutsy/migrations.py lints it).
# It creates every table from nothing, so no rule about locking existing tables applies;
# these three are style rules whose fix would change the CONTRACT §4 schema:
SQUAWK_EXCLUDE = {
    "prefer-text-field": "CONTRACT §4 lengths are varchar(n); widening one later is a metadata-only change",
    "prefer-bigint-over-int": "serial ids match the original design; 2^31 accounts is far off",
    "prefer-identity": "serial columns are what peewee's AutoField and the frozen models expect",
}

TABLES = (
    "sessions",
    "otps",
    "brand_niches",
    "influencer_niches",
    "brands",
    "influencers",
    "niches",
)
STAMPED = ("niches", "influencers", "brands", "influencer_niches", "brand_niches", "otps")

UP = """
CREATE FUNCTION cloutsy_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TABLE niches (
    id serial PRIMARY KEY,
    name varchar(100) NOT NULL,
    slug varchar(100) NOT NULL,
    icon varchar(16),
    description text,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX niches_name ON niches (name);
CREATE UNIQUE INDEX niches_slug ON niches (slug);

CREATE TABLE influencers (
    id serial PRIMARY KEY,
    name varchar(100) NOT NULL,
    username varchar(30) NOT NULL,
    email varchar(254) NOT NULL,
    phone varchar(16) NOT NULL,
    date_of_birth date,
    gender varchar(20) CHECK (gender IN ('female', 'male', 'non_binary', 'other', 'prefer_not_to_say')),
    bio text CHECK (char_length(bio) <= 1000),
    profile_image varchar(2048),
    is_phone_verified boolean NOT NULL DEFAULT false,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX influencers_phone ON influencers (phone);
CREATE UNIQUE INDEX influencers_username_lower ON influencers (lower(username));
CREATE UNIQUE INDEX influencers_email_lower ON influencers (lower(email));
CREATE INDEX influencers_search ON influencers USING gin (to_tsvector('simple'::regconfig,
    coalesce(name, '') || ' ' || coalesce(username, '') || ' ' || coalesce(bio, '')));

CREATE TABLE brands (
    id serial PRIMARY KEY,
    email varchar(254) NOT NULL,
    password varchar(255) NOT NULL,
    phone varchar(16) NOT NULL,
    is_phone_verified boolean NOT NULL DEFAULT false,
    brand_name varchar(200) NOT NULL,
    username varchar(30) NOT NULL,
    legal_entity_name varchar(200),
    company_type varchar(32) CHECK (company_type IN ('private_limited', 'public_limited', 'llp',
        'partnership', 'sole_proprietorship', 'other')),
    brand_email_id varchar(254),
    poc_name varchar(100),
    poc_designation varchar(100),
    poc_email_id varchar(254),
    poc_contact_number varchar(16),
    brand_bio text CHECK (char_length(brand_bio) <= 1000),
    profile_image varchar(2048),
    incorporation_document varchar(2048),
    gst_document varchar(2048),
    pan_document varchar(2048),
    is_profile_completed boolean NOT NULL DEFAULT false,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX brands_phone ON brands (phone);
CREATE UNIQUE INDEX brands_username_lower ON brands (lower(username));
CREATE UNIQUE INDEX brands_email_lower ON brands (lower(email));
CREATE INDEX brands_search ON brands USING gin (to_tsvector('simple'::regconfig,
    coalesce(brand_name, '') || ' ' || coalesce(username, '') || ' ' || coalesce(brand_bio, '')));

CREATE TABLE influencer_niches (
    id serial PRIMARY KEY,
    influencer_id integer NOT NULL REFERENCES influencers (id) ON DELETE CASCADE,
    niche_id integer NOT NULL REFERENCES niches (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX influencer_niches_influencer_id_niche_id
    ON influencer_niches (influencer_id, niche_id);
-- Leading niche_id serves the niche filter; the second column keeps keyset pages index-only.
CREATE INDEX influencer_niches_niche_id_influencer_id ON influencer_niches (niche_id, influencer_id);

CREATE TABLE brand_niches (
    id serial PRIMARY KEY,
    brand_id integer NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    niche_id integer NOT NULL REFERENCES niches (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX brand_niches_brand_id_niche_id ON brand_niches (brand_id, niche_id);
CREATE INDEX brand_niches_niche_id_brand_id ON brand_niches (niche_id, brand_id);

CREATE TABLE otps (
    id serial PRIMARY KEY,
    phone varchar(16) NOT NULL,
    otp varchar(64) NOT NULL,
    is_used boolean NOT NULL DEFAULT false,
    expires_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX otps_phone_created_at ON otps (phone, created_at);

CREATE TABLE sessions (
    id serial PRIMARY KEY,
    token_hash varchar(64) NOT NULL,
    subject_type varchar(16) NOT NULL CHECK (subject_type IN ('influencer', 'brand')),
    subject_id integer NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sessions_token_hash ON sessions (token_hash);
CREATE INDEX sessions_subject_type_subject_id ON sessions (subject_type, subject_id);
"""


def up(migrator, db):
    db.execute_sql(UP)
    for table in STAMPED:
        db.execute_sql(
            f"CREATE TRIGGER {table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION cloutsy_set_updated_at()"
        )


def down(migrator, db):
    for table in TABLES:
        db.execute_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    db.execute_sql("DROP FUNCTION IF EXISTS cloutsy_set_updated_at()")
