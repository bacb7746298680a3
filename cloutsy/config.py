"""Settings: every environment variable of CONTRACT §3, read once into a frozen object.

A bad value stops start-up with a `ConfigError` whose message is one line naming
the variable; callers at the edge (tasks, the server) print it and exit non-zero.
"""

from __future__ import annotations

import logging
import os
import re
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
    # Browser origins allowed to call the API (CORS); none by default.
    cors_origins: frozenset[str] = frozenset()
    # Seconds a worker reuses the /niches answer (0: build it on every request).
    niches_cache_s: float = 10.0

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


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw}")
    return value


ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


def _origins(env: Mapping[str, str], name: str) -> frozenset[str]:
    """Exact origins (`https://app.example[:port]`), comma-separated; never a wildcard."""
    found = set()
    for raw in env.get(name, "").split(","):
        origin = raw.strip().lower()
        if not origin:
            continue
        if not ORIGIN.match(origin):
            raise ConfigError(
                f"{name} must list exact origins like https://app.example, got {raw.strip()!r}"
            )
        found.add(origin)
    return frozenset(found)


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
    niches_cache_s = _float(env, "CLOUTSY_NICHES_CACHE_S", 10.0)
    if niches_cache_s > 60:  # /niches is public, max-age=60: a cached copy must not outlive it
        raise ConfigError(f"CLOUTSY_NICHES_CACHE_S must be at most 60, got {niches_cache_s:g}")
    return Settings(
        database_url=database_url,
        postgres_host=env.get("POSTGRES_HOST", "").strip() or None,
        postgres_port=_int(env, "POSTGRES_PORT", 5432, minimum=1),
        postgres_user=env.get("POSTGRES_USER", "").strip() or "postgres",
        postgres_password=env.get("POSTGRES_PASSWORD", ""),
        postgres_db=env.get("POSTGRES_DB", "").strip() or "cloutsy_db",
        env=cloutsy_env,
        secret_key=secret,
        admin_token=env.get("CLOUTSY_ADMIN_TOKEN", "").strip() or None,
        pool_max=_int(env, "POSTGRES_POOL_MAX", 5, minimum=1),
        pool_timeout=_float(env, "POSTGRES_POOL_TIMEOUT", 30.0),
        pool_stale=_int(env, "POSTGRES_POOL_STALE", 300, minimum=1),
        host=env.get("CLOUTSY_HOST", "").strip() or "127.0.0.1",
        port=_int(env, "CLOUTSY_PORT", 8080, minimum=1),
        workers=_int(env, "CLOUTSY_WORKERS", 2, minimum=1),
        data_dir=data_dir,
        statement_timeout_ms=_int(env, "CLOUTSY_STATEMENT_TIMEOUT_MS", 5000, minimum=0),
        cors_origins=_origins(env, "CLOUTSY_CORS_ORIGINS"),
        niches_cache_s=niches_cache_s,
    )


def warn_if_insecure(settings: Settings) -> None:
    """Log once that the development secret is in use (never in production)."""
    if settings.secret_key == DEV_SECRET_KEY:
        log.warning("CLOUTSY_SECRET_KEY is not set: using the development-only key")
