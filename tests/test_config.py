"""Settings: defaults, one-line errors naming the variable, production's secret rule."""

import base64
import logging

import pytest

from cloutsy import config
from cloutsy.config import DEV_DATA_KEY, DEV_SECRET_KEY, ConfigError, load_settings

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()
KEYS = {"CLOUTSY_SECRET_KEY": "x" * 32, "CLOUTSY_DATA_KEYS": f"k1:{KEY}", "CLOUTSY_LOOKUP_KEY": KEY}


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
        ({"CLOUTSY_SECRET_KEY": "short"}, "CLOUTSY_SECRET_KEY"),
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
