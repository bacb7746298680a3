"""Settings: defaults, one-line errors naming the variable, production's secret rule."""

import pytest

from cloutsy.config import DEV_SECRET_KEY, ConfigError, load_settings


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
    ],
)
def test_bad_values_stop_with_one_line_naming_the_variable(env, names):
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    message = str(err.value)
    assert names in message
    assert "\n" not in message


def test_production_starts_with_a_secret_key():
    s = load_settings({"CLOUTSY_ENV": "production", "CLOUTSY_SECRET_KEY": "x" * 32})
    assert s.is_production and s.secret_key == "x" * 32


def test_settings_are_frozen():
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]
