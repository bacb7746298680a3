"""Settings: every environment variable of CONTRACT §3, read once into a frozen object.

A bad value stops start-up with a `ConfigError` whose message is one line naming
the variable; callers at the edge (tasks, the server) print it and exit non-zero.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
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
# Development-only PII keys, derived from a fixed phrase: anyone can recompute them, so
# staging and production refuse to start without CLOUTSY_DATA_KEYS / CLOUTSY_LOOKUP_KEY.
DEV_DATA_KEY_ID = "dev"
DEV_DATA_KEY = hashlib.sha256(b"cloutsy-development-data-key-do-not-use").digest()
DEV_LOOKUP_KEY = hashlib.sha256(b"cloutsy-development-lookup-key-do-not-use").digest()
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


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
    # PII encryption keys (id, 32 bytes), the first encrypts; and the blind-index key (§9).
    data_keys: tuple[tuple[str, bytes], ...] = ((DEV_DATA_KEY_ID, DEV_DATA_KEY),)
    lookup_key: bytes = DEV_LOOKUP_KEY
    # Who migrates / who the notebooks read as (None: the same server as database_url).
    migration_database_url: str | None = None
    analytics_database_url: str | None = None

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


def _key(name: str, raw: str) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} must hold base64 keys (invoke keys.generate)") from None
    if len(key) != 32:
        raise ConfigError(f"{name} keys must be 32 bytes (base64 of 32 random bytes)")
    return key


def parse_data_keys(raw: str) -> tuple[tuple[str, bytes], ...]:
    """`id:base64,id:base64` -> ((id, key), ...); ConfigError naming CLOUTSY_DATA_KEYS."""
    keys: list[tuple[str, bytes]] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        key_id, sep, b64 = part.strip().partition(":")
        if not sep or not KEY_ID.match(key_id):
            raise ConfigError("CLOUTSY_DATA_KEYS must be id:base64 pairs (id: 1-16 of A-Za-z0-9_-)")
        if any(key_id == seen for seen, _ in keys):
            raise ConfigError(f"CLOUTSY_DATA_KEYS names key id {key_id!r} twice")
        keys.append((key_id, _key("CLOUTSY_DATA_KEYS", b64)))
    if not keys:
        raise ConfigError("CLOUTSY_DATA_KEYS holds no key")
    return tuple(keys)


def _pii_keys(env: Mapping[str, str], cloutsy_env: str) -> dict[str, object]:
    """The data keys and lookup key; outside development both are required."""
    keys: dict[str, object] = {}
    raw_keys = env.get("CLOUTSY_DATA_KEYS", "").strip()
    raw_lookup = env.get("CLOUTSY_LOOKUP_KEY", "").strip()
    for name, raw in (("CLOUTSY_DATA_KEYS", raw_keys), ("CLOUTSY_LOOKUP_KEY", raw_lookup)):
        if not raw and cloutsy_env != "development":
            raise ConfigError(f"{name} is required when CLOUTSY_ENV={cloutsy_env}")
    if raw_keys:
        keys["data_keys"] = parse_data_keys(raw_keys)
    if raw_lookup:
        keys["lookup_key"] = _key("CLOUTSY_LOOKUP_KEY", raw_lookup)
    return keys


def _url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip() or None
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{name} must start with postgresql:// or postgres://")
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
        migration_database_url=_url(env, "MIGRATION_DATABASE_URL"),
        analytics_database_url=_url(env, "ANALYTICS_DATABASE_URL"),
        **_pii_keys(env, cloutsy_env),  # type: ignore[arg-type]
    )


_warned: set[str] = set()


def warn_if_insecure(settings: Settings) -> None:
    """Log once per process that a development-only key is in use (never outside development)."""
    dev = {
        "CLOUTSY_SECRET_KEY": settings.secret_key == DEV_SECRET_KEY,
        "CLOUTSY_DATA_KEYS": any(k == DEV_DATA_KEY for _, k in settings.data_keys),
        "CLOUTSY_LOOKUP_KEY": settings.lookup_key == DEV_LOOKUP_KEY,
    }
    for name, insecure in dev.items():
        if insecure and name not in _warned:
            _warned.add(name)
            log.warning("%s is not set: using the development-only key", name)
