"""Settings: every environment variable of CONTRACT §3, read once into a frozen object.

A bad value stops start-up with a `ConfigError` whose message is one line naming
the variable; callers at the edge (tasks, the server) print it and exit non-zero.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from cloutsy.domains import MAX_INT

log = logging.getLogger(__name__)

ENVIRONMENTS = ("development", "staging", "production")
DEV_SECRET_KEY = "cloutsy-development-secret-key-do-not-use-in-production"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_ADMIN_TOKEN = 32

# Abuse limits (CONTRACT §3 CLOUTSY_RATE_LIMITS): name -> "N/PERIOD". `login_*` and
# `otp_verify_*` count failed attempts, the others every attempt.
DEFAULT_RATE_LIMITS = {
    "login_email": "10/15m",
    "login_address": "100/15m",
    "otp_send_phone": "1/30s",
    "otp_send_phone_hourly": "5/1h",
    "otp_send_address": "30/1h",
    "otp_send_total": "10000/1h",
    "otp_verify_address": "60/1h",
    "signup_address": "60/1h",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LIMIT = re.compile(r"([0-9]{1,9})/([0-9]{0,6})([smhd])")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Development-only PII keys, derived from a fixed phrase: anyone can recompute them, so
# staging and production refuse to start without CLOUTSY_DATA_KEYS / CLOUTSY_LOOKUP_KEY.
DEV_DATA_KEY_ID = "dev"
DEV_DATA_KEY = hashlib.sha256(b"cloutsy-development-data-key-do-not-use").digest()
DEV_LOOKUP_KEY = hashlib.sha256(b"cloutsy-development-lookup-key-do-not-use").digest()
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class ConfigError(Exception):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class RateLimit:
    """At most `count` events per `seconds` (a sliding window), for one named limit."""

    name: str
    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.name}={self.count}/{self.seconds}s"


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
    # Backups (logical dumps, base backups, the WAL archive): CLOUTSY_BACKUP_DIR.
    backup_dir: Path = PROJECT_ROOT / "backups"
    # An external server's data directory on this host (CLOUTSY_PGDATA): lets
    # `db.restore --to` stop it, swap in the recovered copy and start it again.
    server_pgdata: Path | None = None
    # Cut runaway queries so a slow statement answers 503, not a hung worker.
    statement_timeout_ms: int = 5000
    connect_timeout_s: int = 2
    # Scale-out (CONTRACT §10): streaming replicas for public reads, PgBouncer mode.
    replica_urls: tuple[str, ...] = ()
    replica_max_lag_s: float = 5.0
    read_your_writes_s: float = 2.0
    # False behind PgBouncer in transaction mode: no SQL PREPARE, no startup options.
    prepared_statements: bool = True
    analytics_database_url: str | None = None
    # Every abuse limit by name; None = switched off with `name=off`.
    rate_limits: Mapping[str, RateLimit | None] = field(
        default_factory=lambda: parse_rate_limits("")
    )
    # Peers whose X-Forwarded-For is believed for the client address.
    trusted_proxies: tuple[IpNetwork, ...] = ()
    # Browser origins allowed to call the API (CORS); none by default.
    cors_origins: frozenset[str] = frozenset()
    # Seconds a worker reuses the /niches answer (0: build it on every request).
    niches_cache_s: float = 10.0
    # PII encryption keys (id, 32 bytes), the first encrypts; and the blind-index key (§9).
    data_keys: tuple[tuple[str, bytes], ...] = ((DEV_DATA_KEY_ID, DEV_DATA_KEY),)
    lookup_key: bytes = DEV_LOOKUP_KEY
    # Who migrates (None: DATABASE_URL; the embedded server: cloutsy_migrator).
    migration_database_url: str | None = None

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

    @property
    def debug_codes(self) -> bool:
        """True when OTP answers may carry the code: development on a loopback address only.

        Fails closed: a deployment that forgets CLOUTSY_ENV but listens publicly never
        hands out codes.
        """
        return self.is_development and is_loopback(self.host)

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

    def analytics_url(self) -> str | None:
        """What the notebooks read: ANALYTICS_DATABASE_URL, else the first replica, else
        the primary (None: the embedded server)."""
        if self.analytics_database_url:
            return self.analytics_database_url
        if self.replica_urls:
            return self.replica_urls[0]
        return self.external_url()

    def with_overrides(self, **changes: object) -> Settings:
        """Copy with some fields changed (tests, benchmarks)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); False for 0.0.0.0."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


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


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip() or None
    if raw and not raw.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{name} must start with postgresql:// or postgres://")
    return raw


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in env.get(name, "").split(",") if u.strip())
    for url in urls:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"{name}: each URL must start with postgresql:// or postgres://")
    return urls


def parse_rate_limits(raw: str) -> dict[str, RateLimit | None]:
    """The defaults overridden by `name=N/PERIOD` or `name=off` pairs; ConfigError on a bad one."""
    limits: dict[str, RateLimit | None] = {}
    pairs = [p.strip() for p in raw.split(",") if p.strip()]
    given = {}
    for pair in pairs:
        name, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or name not in DEFAULT_RATE_LIMITS:
            known = ", ".join(DEFAULT_RATE_LIMITS)
            raise ConfigError(f"CLOUTSY_RATE_LIMITS: unknown limit {name[:40]!r} (known: {known})")
        given[name] = value
    for name, default in DEFAULT_RATE_LIMITS.items():
        value = given.get(name, default).lower()
        if value == "off":
            limits[name] = None
            continue
        match = _LIMIT.fullmatch(value)
        count = int(match[1]) if match else 0
        amount = (int(match[2]) if match[2] else 1) if match else 0
        if not match or count < 1 or amount < 1:
            raise ConfigError(
                f"CLOUTSY_RATE_LIMITS: {name} must be N/PERIOD (like 5/1h, 10/15m, 1/30s) "
                f"or off, got {value[:40]!r}"
            )
        limits[name] = RateLimit(name, count, amount * _UNITS[match[3]])
    return limits


def parse_networks(raw: str) -> tuple[IpNetwork, ...]:
    """CIDRs (or single addresses), comma-separated; ConfigError naming a bad one."""
    networks = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"CLOUTSY_TRUSTED_PROXIES: {item[:60]!r} is not an address or CIDR"
            ) from None
    return tuple(networks)


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
        if cloutsy_env != "development":
            raise ConfigError(f"CLOUTSY_SECRET_KEY is required when CLOUTSY_ENV={cloutsy_env}")
        secret = DEV_SECRET_KEY
    elif len(secret) < 16:
        raise ConfigError("CLOUTSY_SECRET_KEY must be at least 16 characters")

    database_url = _url(env, "DATABASE_URL")

    admin_token = env.get("CLOUTSY_ADMIN_TOKEN", "").strip() or None
    if admin_token is not None and len(admin_token) < MIN_ADMIN_TOKEN:
        raise ConfigError(
            f"CLOUTSY_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    postgres_host = env.get("POSTGRES_HOST", "").strip() or None
    if cloutsy_env != "development" and not database_url and not postgres_host:
        raise ConfigError(
            f"DATABASE_URL (or POSTGRES_HOST) is required when CLOUTSY_ENV={cloutsy_env}: "
            "the embedded server is for development only"
        )

    data_dir = Path(env.get("CLOUTSY_DATA_DIR", "").strip() or PROJECT_ROOT / ".cloutsy")
    backup_dir = Path(env.get("CLOUTSY_BACKUP_DIR", "").strip() or PROJECT_ROOT / "backups")
    server_pgdata = env.get("CLOUTSY_PGDATA", "").strip()
    niches_cache_s = _float(env, "CLOUTSY_NICHES_CACHE_S", 10.0)
    if niches_cache_s > 60:  # /niches is public, max-age=60: a cached copy must not outlive it
        raise ConfigError(f"CLOUTSY_NICHES_CACHE_S must be at most 60, got {niches_cache_s:g}")
    return Settings(
        database_url=database_url,
        postgres_host=postgres_host,
        postgres_port=_int(env, "POSTGRES_PORT", 5432, minimum=1, maximum=PORT_MAX),
        postgres_user=env.get("POSTGRES_USER", "").strip() or "postgres",
        postgres_password=env.get("POSTGRES_PASSWORD", ""),
        postgres_db=env.get("POSTGRES_DB", "").strip() or "cloutsy_db",
        env=cloutsy_env,
        secret_key=secret,
        admin_token=admin_token,
        pool_max=_int(env, "POSTGRES_POOL_MAX", 5, minimum=1, maximum=1000),
        pool_timeout=_float(env, "POSTGRES_POOL_TIMEOUT", 30.0),
        pool_stale=_int(env, "POSTGRES_POOL_STALE", 300, minimum=1),
        host=env.get("CLOUTSY_HOST", "").strip() or "127.0.0.1",
        port=_int(env, "CLOUTSY_PORT", 8080, minimum=1, maximum=PORT_MAX),
        workers=_int(env, "CLOUTSY_WORKERS", 2, minimum=1, maximum=256),
        data_dir=data_dir,
        backup_dir=backup_dir.absolute(),
        server_pgdata=Path(server_pgdata).absolute() if server_pgdata else None,
        statement_timeout_ms=_int(
            env, "CLOUTSY_STATEMENT_TIMEOUT_MS", 5000, minimum=0, maximum=MAX_INT
        ),
        replica_urls=_urls(env, "DATABASE_REPLICA_URLS"),
        replica_max_lag_s=_float(env, "CLOUTSY_REPLICA_MAX_LAG_S", 5.0),
        read_your_writes_s=_float(env, "CLOUTSY_READ_YOUR_WRITES_S", 2.0),
        prepared_statements=_bool(env, "POSTGRES_PREPARED_STATEMENTS", True),
        analytics_database_url=_url(env, "ANALYTICS_DATABASE_URL"),
        migration_database_url=_url(env, "MIGRATION_DATABASE_URL"),
        rate_limits=parse_rate_limits(env.get("CLOUTSY_RATE_LIMITS", "")),
        trusted_proxies=parse_networks(env.get("CLOUTSY_TRUSTED_PROXIES", "")),
        cors_origins=_origins(env, "CLOUTSY_CORS_ORIGINS"),
        niches_cache_s=niches_cache_s,
        **_pii_keys(env, cloutsy_env),  # type: ignore[arg-type]
    )


# Set by `invoke serve` for the server it starts: the task has already warned once,
# so the server process and its workers stay quiet (one warning per `serve`).
WARNED_ENV = "CLOUTSY_SECRET_WARNING_SHOWN"
_warned: set[str] = set()


def warn_if_insecure(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Log once per process each development-only key in use (never outside development)."""
    env = os.environ if environ is None else environ
    if env.get(WARNED_ENV) == "1":
        return
    dev = {
        "CLOUTSY_SECRET_KEY": settings.secret_key == DEV_SECRET_KEY,
        "CLOUTSY_DATA_KEYS": any(k == DEV_DATA_KEY for _, k in settings.data_keys),
        "CLOUTSY_LOOKUP_KEY": settings.lookup_key == DEV_LOOKUP_KEY,
    }
    for name, insecure in dev.items():
        if insecure and name not in _warned:
            _warned.add(name)
            log.warning("%s is not set: using the development-only key", name)
