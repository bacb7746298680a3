"""Settings: every environment variable of CONTRACT §3, read once into a frozen object.

A bad value stops start-up with a `ConfigError` whose message is one line naming
the variable; callers at the edge (tasks, the server) print it and exit non-zero.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

ENVIRONMENTS = ("development", "staging", "production")
DEV_SECRET_KEY = "cloutsy-development-secret-key-do-not-use-in-production"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    postgres_host: str | None
    postgres_port: int
    postgres_user: str
    postgres_password: str
    postgres_db: str
    env: str
    secret_key: str
    admin_token: str | None
    pool_max: int
    pool_timeout: float
    pool_stale: int
    host: str
    port: int
    workers: int
    data_dir: Path
    # Cut runaway queries so a slow statement answers 503, not a hung worker.
    statement_timeout_ms: int = 5000
    connect_timeout_s: int = 2

    @property
    def embedded(self) -> bool:
        """True when no server is configured and the embedded pgserver is used."""
        return not self.database_url and not self.postgres_host

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    def external_url(self) -> str | None:
        """The configured server's URL (None when embedded); DATABASE_URL wins."""
        if self.database_url:
            return self.database_url
        if self.postgres_host:
            auth = quote(self.postgres_user, safe="")
            if self.postgres_password:
                auth += ":" + quote(self.postgres_password, safe="")
            return (
                f"postgresql://{auth}@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
            )
        return None

    def with_overrides(self, **changes: object) -> Settings:
        """Copy with some fields changed (tests, benchmarks)."""
        return replace(self, **changes)  # type: ignore[arg-type]


PORT_MAX = 65535


def whole_number(name: str, raw: str, minimum: int = 0, maximum: int | None = None) -> int:
    """`raw` as an int within [minimum, maximum]; ConfigError naming `name` otherwise.

    The one check behind every numeric setting and task argument, so each bad value
    gets the same one-line message before anything starts.
    """
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw.strip()!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = (
            f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        )
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    return whole_number(name, raw, minimum, maximum)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {raw}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the environment; raise ConfigError naming a bad variable."""
    env = os.environ if environ is None else environ
    cloutsy_env = env.get("CLOUTSY_ENV", "development").strip().lower() or "development"
    if cloutsy_env not in ENVIRONMENTS:
        raise ConfigError(
            f"CLOUTSY_ENV must be one of {', '.join(ENVIRONMENTS)}, got {cloutsy_env!r}"
        )
    secret = env.get("CLOUTSY_SECRET_KEY", "").strip()
    if not secret:
        if cloutsy_env == "production":
            raise ConfigError("CLOUTSY_SECRET_KEY is required when CLOUTSY_ENV=production")
        secret = DEV_SECRET_KEY
    elif len(secret) < 16:
        raise ConfigError("CLOUTSY_SECRET_KEY must be at least 16 characters")

    database_url = env.get("DATABASE_URL", "").strip() or None
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL must start with postgresql:// or postgres://")

    data_dir = Path(env.get("CLOUTSY_DATA_DIR", "").strip() or PROJECT_ROOT / ".cloutsy")
    return Settings(
        database_url=database_url,
        postgres_host=env.get("POSTGRES_HOST", "").strip() or None,
        postgres_port=_int(env, "POSTGRES_PORT", 5432, minimum=1, maximum=PORT_MAX),
        postgres_user=env.get("POSTGRES_USER", "").strip() or "postgres",
        postgres_password=env.get("POSTGRES_PASSWORD", ""),
        postgres_db=env.get("POSTGRES_DB", "").strip() or "cloutsy_db",
        env=cloutsy_env,
        secret_key=secret,
        admin_token=env.get("CLOUTSY_ADMIN_TOKEN", "").strip() or None,
        pool_max=_int(env, "POSTGRES_POOL_MAX", 5, minimum=1, maximum=1000),
        pool_timeout=_float(env, "POSTGRES_POOL_TIMEOUT", 30.0),
        pool_stale=_int(env, "POSTGRES_POOL_STALE", 300, minimum=1),
        host=env.get("CLOUTSY_HOST", "").strip() or "127.0.0.1",
        port=_int(env, "CLOUTSY_PORT", 8080, minimum=1, maximum=PORT_MAX),
        workers=_int(env, "CLOUTSY_WORKERS", 2, minimum=1, maximum=256),
        data_dir=data_dir,
        statement_timeout_ms=_int(
            env, "CLOUTSY_STATEMENT_TIMEOUT_MS", 5000, minimum=0, maximum=2_147_483_647
        ),
    )


# Set by `invoke serve` for the server it starts: the task has already warned once,
# so the server process and its workers stay quiet (one warning per `serve`).
WARNED_ENV = "CLOUTSY_SECRET_WARNING_SHOWN"
_warned = False


def warn_if_insecure(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Log that the development secret is in use, once per process (never in production)."""
    global _warned
    env = os.environ if environ is None else environ
    if settings.secret_key != DEV_SECRET_KEY or _warned or env.get(WARNED_ENV) == "1":
        return
    _warned = True
    log.warning("CLOUTSY_SECRET_KEY is not set: using the development-only key")
