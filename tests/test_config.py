"""Settings: defaults, one-line errors naming the variable, production's secret rule."""

import base64
import logging

import pytest

from cloutsy import config
from cloutsy.config import DEV_DATA_KEY, DEV_SECRET_KEY, ConfigError, load_settings

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()
KEYS = {
    "CLOUTSY_SECRET_KEY": "x" * 32,
    "CLOUTSY_DATA_KEYS": f"k1:{KEY}",
    "CLOUTSY_LOOKUP_KEY": KEY,
    "DATABASE_URL": "postgresql://app@db/cloutsy",  # staging/production refuse the embedded
}


def test_defaults_follow_the_contract():
    s = load_settings({})
    assert s.embedded
    assert (s.postgres_port, s.postgres_user, s.postgres_db) == (5432, "postgres", "cloutsy_db")
    assert (s.pool_max, s.pool_timeout, s.pool_stale) == (5, 30.0, 300)
    assert (s.host, s.port, s.workers, s.env) == ("127.0.0.1", 8080, 2, "development")
    assert s.secret_key == DEV_SECRET_KEY
    assert s.admin_token is None


def test_database_url_wins_over_postgres_variables():
    s = load_settings({"DATABASE_URL": "postgresql://u:p@db:6432/x", "POSTGRES_HOST": "other"})
    assert not s.embedded
    assert s.external_url() == "postgresql://u:p@db:6432/x"


def test_postgres_variables_build_a_url_with_quoted_password():
    s = load_settings({"POSTGRES_HOST": "db", "POSTGRES_PASSWORD": "p@ss/word", "POSTGRES_DB": "c"})
    assert s.external_url() == "postgresql://postgres:p%40ss%2Fword@db:5432/c"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CLOUTSY_PORT": "eighty"}, "CLOUTSY_PORT"),
        ({"POSTGRES_PORT": "0"}, "POSTGRES_PORT"),
        ({"POSTGRES_POOL_MAX": "-1"}, "POSTGRES_POOL_MAX"),
        ({"POSTGRES_POOL_TIMEOUT": "soon"}, "POSTGRES_POOL_TIMEOUT"),
        ({"CLOUTSY_ENV": "prod"}, "CLOUTSY_ENV"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"CLOUTSY_ENV": "production"}, "CLOUTSY_SECRET_KEY"),
        ({"CLOUTSY_ENV": "staging", "DATABASE_URL": "postgresql://db/x"}, "CLOUTSY_SECRET_KEY"),
        ({"CLOUTSY_SECRET_KEY": "short"}, "CLOUTSY_SECRET_KEY"),
        ({"CLOUTSY_ADMIN_TOKEN": "x" * 31}, "CLOUTSY_ADMIN_TOKEN"),
        ({"CLOUTSY_ENV": "staging", "CLOUTSY_SECRET_KEY": "x" * 32}, "DATABASE_URL"),
        ({"CLOUTSY_ENV": "production", "CLOUTSY_SECRET_KEY": "x" * 32}, "DATABASE_URL"),
        ({"CLOUTSY_RATE_LIMITS": "login_emial=5/1m"}, "CLOUTSY_RATE_LIMITS"),
        ({"CLOUTSY_RATE_LIMITS": "login_email=5"}, "CLOUTSY_RATE_LIMITS"),
        ({"CLOUTSY_RATE_LIMITS": "login_email=0/1m"}, "CLOUTSY_RATE_LIMITS"),
        ({"CLOUTSY_RATE_LIMITS": "login_email=5/0m"}, "CLOUTSY_RATE_LIMITS"),
        ({"CLOUTSY_RATE_LIMITS": "login_email=5/1w"}, "CLOUTSY_RATE_LIMITS"),
        ({"CLOUTSY_TRUSTED_PROXIES": "10.0.0.0/33"}, "CLOUTSY_TRUSTED_PROXIES"),
        ({"CLOUTSY_ENV": "staging", **KEYS, "CLOUTSY_DATA_KEYS": ""}, "CLOUTSY_DATA_KEYS"),
        ({"CLOUTSY_ENV": "production", **KEYS, "CLOUTSY_LOOKUP_KEY": ""}, "CLOUTSY_LOOKUP_KEY"),
        ({"CLOUTSY_DATA_KEYS": "k1"}, "CLOUTSY_DATA_KEYS"),
        ({"CLOUTSY_DATA_KEYS": "k1:" + base64.b64encode(b"short").decode()}, "CLOUTSY_DATA_KEYS"),
        ({"CLOUTSY_DATA_KEYS": f"k1:{KEY},k1:{KEY}"}, "CLOUTSY_DATA_KEYS"),
        ({"CLOUTSY_LOOKUP_KEY": "not base64!"}, "CLOUTSY_LOOKUP_KEY"),
        ({"MIGRATION_DATABASE_URL": "mysql://x"}, "MIGRATION_DATABASE_URL"),
        ({"ANALYTICS_DATABASE_URL": "mysql://x"}, "ANALYTICS_DATABASE_URL"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_variable(env, names):
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    message = str(err.value)
    assert names in message
    assert "\n" not in message


PRODUCTION = {"CLOUTSY_ENV": "production", **KEYS}


def test_production_starts_with_a_secret_key_and_a_database_url():
    s = load_settings(PRODUCTION)
    assert s.is_production and s.secret_key == "x" * 32 and not s.embedded


def test_staging_no_longer_runs_on_the_development_secret():
    s = load_settings(dict(PRODUCTION, CLOUTSY_ENV="staging"))
    assert s.secret_key != DEV_SECRET_KEY


def test_an_admin_token_of_32_characters_is_accepted():
    assert load_settings({"CLOUTSY_ADMIN_TOKEN": "y" * 32}).admin_token == "y" * 32


def test_rate_limits_have_the_contract_defaults():
    limits = {name: (r.count, r.seconds) for name, r in load_settings({}).rate_limits.items()}
    assert limits == {
        "login_email": (10, 900),
        "login_address": (100, 900),
        "otp_send_phone": (1, 30),
        "otp_send_phone_hourly": (5, 3600),
        "otp_send_address": (30, 3600),
        "otp_send_total": (10000, 3600),
        "otp_verify_address": (60, 3600),
        "signup_address": (60, 3600),
    }


def test_rate_limits_are_changed_or_switched_off_by_name():
    s = load_settings(
        {"CLOUTSY_RATE_LIMITS": " login_email=3/2m , signup_address=OFF,otp_send_total=5/h"}
    )
    assert (s.rate_limits["login_email"].count, s.rate_limits["login_email"].seconds) == (3, 120)
    assert s.rate_limits["signup_address"] is None
    assert s.rate_limits["otp_send_total"].seconds == 3600
    assert s.rate_limits["login_address"].count == 100  # the rest keep their defaults


def test_trusted_proxies_are_networks():
    s = load_settings({"CLOUTSY_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1,::1"})
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]


@pytest.mark.parametrize(
    ("env", "host", "debug"),
    [
        ("development", "127.0.0.1", True),
        ("development", "localhost", True),
        ("development", "::1", True),
        ("development", "0.0.0.0", False),
        ("development", "10.1.2.3", False),
        ("development", "example.com", False),
        ("staging", "127.0.0.1", False),
        ("production", "127.0.0.1", False),
    ],
)
def test_debug_codes_only_in_development_on_a_loopback_address(env, host, debug):
    s = load_settings(dict(PRODUCTION, CLOUTSY_ENV=env, CLOUTSY_HOST=host))
    assert s.debug_codes is debug


def test_production_starts_with_its_secret_and_pii_keys():
    s = load_settings({"CLOUTSY_ENV": "production", **KEYS})
    assert s.is_production and s.secret_key == "x" * 32
    assert s.data_keys == (("k1", bytes(range(32))),) and s.lookup_key == bytes(range(32))


def test_data_keys_the_first_encrypts_all_decrypt():
    s = load_settings({"CLOUTSY_DATA_KEYS": f"k2:{KEY2}, k1:{KEY}"})
    assert [key_id for key_id, _ in s.data_keys] == ["k2", "k1"]


def test_development_falls_back_to_fixed_keys_with_one_warning_per_process(caplog, monkeypatch):
    monkeypatch.setattr(config, "_warned", set())
    s = load_settings({"CLOUTSY_SECRET_KEY": "x" * 32})
    assert s.data_keys == (("dev", DEV_DATA_KEY),)
    with caplog.at_level(logging.WARNING, logger="cloutsy.config"):
        config.warn_if_insecure(s)
        config.warn_if_insecure(s)
    lines = [r.getMessage() for r in caplog.records]
    assert sorted(lines) == [
        "CLOUTSY_DATA_KEYS is not set: using the development-only key",
        "CLOUTSY_LOOKUP_KEY is not set: using the development-only key",
    ]


def test_settings_are_frozen():
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_scale_out_settings_default_to_one_primary_with_prepared_statements():
    s = load_settings({})
    assert s.replica_urls == () and s.prepared_statements is True
    assert (s.replica_max_lag_s, s.read_your_writes_s) == (5.0, 2.0)
    assert s.analytics_url() is None  # the embedded server


def test_analytics_reads_the_first_replica_unless_named():
    primary = "postgresql://app@p:5432/c"
    env = {
        "DATABASE_URL": primary,
        "DATABASE_REPLICA_URLS": " postgresql://r1:5432/c , postgresql://r2:5432/c ",
    }
    s = load_settings(env)
    assert s.replica_urls == ("postgresql://r1:5432/c", "postgresql://r2:5432/c")
    assert s.analytics_url() == "postgresql://r1:5432/c"
    named = load_settings({**env, "ANALYTICS_DATABASE_URL": "postgresql://a@x/c"})
    assert named.analytics_url() == "postgresql://a@x/c"
    assert load_settings({"DATABASE_URL": primary}).analytics_url() == primary


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"POSTGRES_PREPARED_STATEMENTS": "maybe"}, "POSTGRES_PREPARED_STATEMENTS"),
        ({"DATABASE_REPLICA_URLS": "postgresql://a/c,mysql://b"}, "DATABASE_REPLICA_URLS"),
        ({"CLOUTSY_REPLICA_MAX_LAG_S": "-1"}, "CLOUTSY_REPLICA_MAX_LAG_S"),
        ({"CLOUTSY_READ_YOUR_WRITES_S": "soon"}, "CLOUTSY_READ_YOUR_WRITES_S"),
        ({"ANALYTICS_DATABASE_URL": "sqlite://x"}, "ANALYTICS_DATABASE_URL"),
    ],
)
def test_bad_scale_out_values_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_prepared_statements_off_sends_no_startup_options_and_keeps_multi_host_urls():
    from cloutsy.db import connect_params, plain_sql

    url = "postgresql://app:p%40ss@a:5432,b:5433/cloutsy?target_session_attrs=read-write"
    on = connect_params(url, load_settings({}))
    assert "statement_timeout=5000" in on["options"]
    off = connect_params(url, load_settings({"POSTGRES_PREPARED_STATEMENTS": "false"}))
    assert "options" not in off  # PgBouncer refuses startup options: the role carries them
    assert (off["host"], off["port"], off["target_session_attrs"]) == (
        "a,b",
        "5432,5433",
        "read-write",
    )
    assert (off["database"], off["user"], off["password"]) == ("cloutsy", "app", "p@ss")
    assert plain_sql("SELECT $1, $2 LIKE 'a%', $1") == "SELECT %(p1)s, %(p2)s LIKE 'a%%', %(p1)s"
