"""Point-in-time recovery with PostgreSQL's own continuous archiving.

No home-made WAL shipping: the server archives each finished WAL segment itself
(`archive_mode = on`, `archive_command` = the `test ! -f … && cp …` of PostgreSQL's
documentation) into `<backup dir>/wal/`; `pg_basebackup` takes the physical base
backups into `<backup dir>/base/base-<UTC stamp>/data`; a restore copies the newest
base backup that ends before the target into a new data directory next to the
server's, lets PostgreSQL replay the archive up to `recovery_target_time`
(`restore_command`, `recovery.signal`, `recovery_target_action = 'promote'`), and only
then, after confirmation, stops the server, swaps the directories (the old one is kept
as `<pgdata>.before-<stamp>`) and starts it again.

It works on the embedded server (its PostgreSQL 16 tools ship in the pgserver wheel)
and on an external server on this host (`CLOUTSY_PGDATA` names its data directory; the
tools of its major version come from /usr/lib/postgresql/<major>/bin). Every base
backup gets a manifest like a dump's (tables, rows, checksums), read from a scratch
copy of the backup started right after it was taken; `verify_base` runs
`pg_verifybackup` and the same drill again later.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg2

from cloutsy import embedded
from cloutsy.backup import (
    Verification,
    compare,
    conn_params,
    find_tool,
    make_private,
    manifest_of,
    pg_env,
    private_dir,
    read_manifest,
    run_tool,
    write_manifest,
)
from cloutsy.config import Settings
from cloutsy.db import connection_url
from cloutsy.errors import BadRequest, Unavailable
from cloutsy.ports import free_port
from cloutsy.progress import Say

RECOVERY_KEYS = ("restore_command", "recovery_target_time", "recovery_target_action")


def _say(progress: Say | None, message: str) -> None:
    if progress is not None:
        progress(message)


def server_pgdata(settings: Settings) -> Path | None:
    """The data directory of the configured server, when it is on this host."""
    if settings.embedded:
        return settings.data_dir / "pgdata"
    return settings.server_pgdata


def wal_dir(settings: Settings) -> Path:
    return settings.backup_dir / "wal"


def base_root(settings: Settings) -> Path:
    return settings.backup_dir / "base"


def base_backups(settings: Settings) -> list[Path]:
    """Base backups with a manifest, oldest first."""
    root = base_root(settings)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("base-*") if (p / "manifest.json").is_file())


def _os_user(settings: Settings, pgdata: Path | None = None) -> str | None:
    """The OS user the server runs as (None: this process's user, when not root)."""
    if os.geteuid() != 0:
        return None
    pgdata = pgdata or server_pgdata(settings)
    if pgdata is not None and pgdata.exists():
        return pwd.getpwuid(pgdata.stat().st_uid).pw_name
    return "pgserver" if settings.embedded else "postgres"


def _uid(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_uid if user else None


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _major(pgdata: Path) -> int:
    return int((pgdata / "PG_VERSION").read_text().strip())


def admin_params(settings: Settings) -> dict[str, Any]:
    """Connection to the configured server with rights to archive and back up.

    Embedded: its `postgres` superuser over the socket. External: the configured URL,
    whose role needs REPLICATION and superuser (`ALTER SYSTEM`).
    """
    if settings.embedded:
        uri = embedded.server_uri(settings.data_dir / "pgdata", settings.postgres_db)
        return conn_params(settings, uri)
    return conn_params(settings, connection_url(settings, "admin"))


def _query(params: dict[str, Any], statement: str, autocommit: bool = True) -> list[tuple]:
    conn = psycopg2.connect(**params)
    try:
        conn.autocommit = autocommit
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


# --- archiving -------------------------------------------------------------------------------


def archive_command(wal: Path) -> str:
    """PostgreSQL's documented archive_command: copy a finished segment, never overwrite."""
    target = shlex.quote(str(wal))
    return f"test ! -f {target}/%f && cp %p {target}/%f"


def ensure_archiving(settings: Settings, progress: Say | None = None) -> None:
    """Turn on continuous archiving into `wal_dir` (restarting a server on this host if needed)."""
    params = admin_params(settings)
    user = _os_user(settings)
    private_dir(settings.backup_dir)
    wal = private_dir(wal_dir(settings), _uid(user))
    if user and os.geteuid() == 0:
        # The server's user must reach wal/ through the 0700 backup directory.
        os.chown(settings.backup_dir, _uid(user) or 0, -1)
    command = archive_command(wal)
    ((mode, current, level),) = _query(
        params,
        "SELECT current_setting('archive_mode'), current_setting('archive_command'), "
        "current_setting('wal_level')",
    )
    if mode == "on" and current == command and level in ("replica", "logical"):
        return
    _say(progress, f"turning on WAL archiving into {wal}")
    conn = psycopg2.connect(**params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET archive_command = %s", (command,))
            cur.execute("ALTER SYSTEM SET archive_mode = 'on'")
            # A segment is archived at least once a minute even when little is written:
            # a point-in-time restore loses at most the last minute.
            cur.execute("ALTER SYSTEM SET archive_timeout = '60s'")
            if level == "minimal":
                cur.execute("ALTER SYSTEM SET wal_level = 'replica'")
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()
    if mode == "on" and level != "minimal":
        return  # archive_command is reloaded without a restart
    pgdata = server_pgdata(settings)
    if pgdata is None:
        raise BadRequest(
            "archive_mode needs a server restart: restart PostgreSQL (or set CLOUTSY_PGDATA "
            "to its data directory) and run this again"
        )
    _say(progress, "restarting the server to start archiving")
    from cloutsy.db import close_database

    close_database()
    pg_ctl(pgdata, user, "-l", str(server_log(settings, pgdata)), "-m", "fast", "restart")


def pg_ctl(pgdata: Path, user: str | None, *args: str, timeout: float = 120) -> None:
    """Run `pg_ctl -D pgdata -w ARGS` of the data directory's major version as `user`.

    Output goes to a file, not a pipe: a server started without `-l` would inherit the
    pipe and keep it open, and the call would never return.
    """
    import tempfile

    tool = find_tool("pg_ctl", _major(pgdata))
    cmd = [str(tool), "-D", str(pgdata), "-w", "-t", str(int(timeout)), *args]
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, user=user, timeout=timeout + 10
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(f"pg_ctl {args[-1]} did not finish in {timeout:.0f} s") from None
        out.seek(0)
        lines = [x for x in out.read().strip().splitlines() if x.strip()]
    if result.returncode != 0:
        raise Unavailable(f"pg_ctl {args[-1]} failed: {lines[-1] if lines else 'no output'}")


def server_log(settings: Settings, pgdata: Path) -> Path:
    """Where a server this module (re)starts writes its log (pgserver's own place if embedded)."""
    return pgdata / ("log" if settings.embedded else "server.log")


def switch_wal(settings: Settings, timeout: float = 30.0) -> None:
    """Close the current WAL segment and wait until the archiver has copied it."""
    params = admin_params(settings)
    ((segment,),) = _query(params, "SELECT pg_walfile_name(pg_switch_wal())")
    wal = wal_dir(settings)
    deadline = time.monotonic() + timeout
    while not (wal / segment).exists():
        ((failed,),) = _query(params, "SELECT last_failed_wal FROM pg_stat_archiver")
        if time.monotonic() > deadline:
            raise Unavailable(
                f"WAL segment {segment} not archived after {timeout:.0f} s ({failed})"
            )
        time.sleep(0.1)


# --- base backups ---------------------------------------------------------------------------


@contextmanager
def scratch_cluster(
    settings: Settings,
    source: Path,
    into: Path | None = None,
    archive: bool = False,
    ready: Callable[[dict[str, Any]], bool] | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Copy the data directory `source` and start it on a private socket; stop it after.

    Yields connection parameters for the configured database on the copy. `into` keeps
    the copy (a restore); otherwise it is deleted. `archive=False` keeps a drill from
    writing into the WAL archive.
    """
    user = _os_user(settings)
    keep = into is not None
    scratch_parent = private_dir(settings.data_dir / "scratch", _uid(user))
    work = into or scratch_parent / f"cluster-{os.getpid()}-{time.monotonic_ns()}"
    shutil.copytree(source, work, symlinks=True)
    # The source server's pid and socket lock files came along with a copy of a live directory.
    for stale in ("postmaster.pid", "postmaster.opts", *(p.name for p in work.glob(".s.PGSQL.*"))):
        (work / stale).unlink(missing_ok=True)
    if prepare is not None:
        prepare(work)
    work.chmod(0o700)
    _chown_tree(work, user)
    port = free_port()
    options = f"-c port={port} -c listen_addresses='' -k {shlex.quote(str(work))}"
    if not archive:
        options += " -c archive_mode=off"
    if not keep:
        # A drill's copy is thrown away: skip the fsync of the whole directory at start-up
        # and of every write (measured: the start took 11 s of a 67 s test on this disk).
        options += " -c fsync=off"
    else:
        options += " -c recovery_init_sync_method=syncfs"
    params = {**conn_params(settings), "host": str(work), "port": port}
    params.pop("password", None)
    started = False
    try:
        pg_ctl(work, user, "-l", str(work / "scratch.log"), "-o", options, "start")
        started = True
        deadline = time.monotonic() + 300
        while ready is not None and not ready(params):
            if time.monotonic() > deadline:
                raise Unavailable("the restored cluster did not finish recovery in 300 s")
            time.sleep(0.2)
        yield params
    finally:
        if started:
            with suppress(Unavailable):
                pg_ctl(work, user, "-m", "fast", "stop")
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _backup_label(data: Path) -> dict[str, str]:
    out = {}
    for line in (data / "backup_label").read_text().splitlines():
        key, _, value = line.partition(": ")
        out[key.strip()] = value.strip()
    return out


def base_backup(settings: Settings, keep: int = 0, progress: Say | None = None) -> Path:
    """Take a base backup (pg_basebackup) with its manifest; keep the newest `keep`."""
    ensure_archiving(settings, progress)
    params = admin_params(settings)
    ((version_num, version),) = _query(
        params,
        "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
    )
    tool = find_tool("pg_basebackup", version_num // 10000)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = private_dir(base_root(settings)) / f"base-{stamp}"
    private_dir(target)
    _say(progress, f"pg_basebackup into {target}")
    started = time.perf_counter()
    run_tool(
        [str(tool), "-D", str(target / "data"), "-Fp", "-X", "stream", "--checkpoint=fast"],
        pg_env(params),
    )
    ((consistent_at,),) = _query(params, "SELECT now()")
    seconds = round(time.perf_counter() - started, 2)
    label = _backup_label(target / "data")
    _say(progress, "reading the manifest from a scratch copy of the backup")
    with scratch_cluster(settings, target / "data") as scratch:
        tables = manifest_of(scratch)
    make_private(target)
    write_manifest(
        target / "manifest.json",
        {
            "kind": "base",
            "database": params["dbname"],
            "server_version": version,
            "taken_at": label.get("START TIME", ""),
            "consistent_at": consistent_at.isoformat(),
            "wal_start_file": label.get("START WAL LOCATION", "")
            .rsplit("file ", 1)[-1]
            .rstrip(")"),
            "seconds": seconds,
            "tables": tables,
        },
    )
    if keep:
        prune_base(settings, keep)
    return target


def prune_base(settings: Settings, keep: int) -> list[Path]:
    """Delete all but the newest `keep` base backups and the WAL only they needed."""
    if keep < 1:
        raise BadRequest("--keep must be at least 1")
    backups = base_backups(settings)
    old, kept = backups[:-keep], backups[-keep:]
    for path in old:
        shutil.rmtree(path)
    if kept and wal_dir(settings).is_dir():
        oldest = read_manifest(kept[0] / "manifest.json").get("wal_start_file")
        if oldest:
            tool = find_tool("pg_archivecleanup", _major(kept[0] / "data"))
            run_tool([str(tool), str(wal_dir(settings)), oldest])
    return old


# --- verify and restore -----------------------------------------------------------------------


def verify_base(settings: Settings, path: Path, progress: Say | None = None) -> Verification:
    """pg_verifybackup, then start a scratch copy and compare its tables with the manifest."""
    started = time.perf_counter()
    manifest = read_manifest(path / "manifest.json")
    data = path / "data"
    try:
        tool = find_tool("pg_verifybackup", _major(data))
        run_tool([str(tool), "--no-parse-wal", str(data)])
        _say(progress, "pg_verifybackup: every file matches backup_manifest")
        with scratch_cluster(settings, data) as scratch:
            found = manifest_of(scratch)
    except (Unavailable, OSError, psycopg2.Error) as exc:
        reason = exc.message if isinstance(exc, Unavailable) else str(exc).strip().splitlines()[0]
        return Verification(path, (), f"restore failed: {reason}", time.perf_counter() - started)
    return Verification(
        path, compare(manifest["tables"], found), None, time.perf_counter() - started
    )


def _done_recovering(params: dict[str, Any]) -> bool:
    try:
        ((recovering,),) = _query(params, "SELECT pg_is_in_recovery()")
    except psycopg2.OperationalError:
        return False
    return not recovering


def _replay_options(pgdata: Path) -> str:
    """The options the running server was started with (postmaster.opts), minus -D."""
    opts = (pgdata / "postmaster.opts").read_text().split(None, 1)
    return embedded._strip_datadir(opts[1].strip() if len(opts) > 1 else "")


def restore_to(
    settings: Settings,
    when: dt.datetime,
    confirm: Callable[[str], bool],
    progress: Say | None = None,
) -> Path:
    """Bring the configured server back to `when`; return where the old data directory went."""
    pgdata = server_pgdata(settings)
    if pgdata is None or not (pgdata / "PG_VERSION").exists():
        raise BadRequest("point-in-time restore needs the server's data directory (CLOUTSY_PGDATA)")
    if when.tzinfo is None:
        raise BadRequest("give the time with its offset, e.g. 2026-11-29 10:15:00+00")
    candidates = [
        p
        for p in base_backups(settings)
        if dt.datetime.fromisoformat(read_manifest(p / "manifest.json")["consistent_at"]) <= when
    ]
    if not candidates:
        raise BadRequest(f"no base backup ends before {when.isoformat()}")
    base = candidates[-1]
    user = _os_user(settings, pgdata)
    running = (pgdata / "postmaster.pid").exists()
    if running:
        _say(progress, "archiving the current WAL segment")
        switch_wal(settings)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    restored = pgdata.parent / f"{pgdata.name}.restored-{stamp}"
    _say(progress, f"replaying {base.name} + archived WAL up to {when.isoformat()} into {restored}")
    source = base / "data"
    with _recovering(settings, source, restored, when) as params:
        counts = {t: v["rows"] for t, v in manifest_of(params).items()}
    _say(progress, "restored: " + ", ".join(f"{t} {n:,}" for t, n in sorted(counts.items())))
    question = (
        f"Stop the server and swap in the copy restored to {when.isoformat()}? "
        f"(the current data stays in {pgdata.name}.before-{stamp})"
    )
    if not confirm(question):
        raise BadRequest(f"restore cancelled; the restored copy is in {restored}")
    options = _replay_options(pgdata) if (pgdata / "postmaster.opts").exists() else ""
    if running:
        from cloutsy.db import close_database

        close_database()
        pg_ctl(pgdata, user, "-m", "fast", "stop")
    before = pgdata.parent / f"{pgdata.name}.before-{stamp}"
    pgdata.rename(before)
    restored.rename(pgdata)
    if settings.embedded:
        _forget_embedded(pgdata)
        embedded.server_uri(pgdata)
    else:
        args = ["-l", str(server_log(settings, pgdata))]
        if options:
            args += ["-o", options]
        pg_ctl(pgdata, user, *args, "start")
    _say(progress, f"the server runs on the restored data; the old data is in {before}")
    return before


@contextmanager
def _recovering(
    settings: Settings, source: Path, restored: Path, when: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Start a copy of `source` in `restored` that replays the archive up to `when`."""
    wal = shlex.quote(str(wal_dir(settings)))

    def prepare(work: Path) -> None:
        (work / "recovery.signal").touch()
        with (work / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"restore_command = 'cp {wal}/%f %p'\n"
                f"recovery_target_time = '{when.isoformat()}'\n"
                "recovery_target_action = 'promote'\n"
            )

    with scratch_cluster(
        settings, source, into=restored, archive=True, ready=_done_recovering, prepare=prepare
    ) as params:
        yield params
    _strip_recovery_settings(restored / "postgresql.auto.conf")


def _strip_recovery_settings(conf: Path) -> None:
    """The restore settings served once; a later restart must not act on them."""
    lines = conf.read_text().splitlines(keepends=True)
    conf.write_text("".join(x for x in lines if not x.startswith(RECOVERY_KEYS)))


def _forget_embedded(pgdata: Path) -> None:
    """Drop pgserver's per-process handle: the next server_uri() starts the swapped-in data."""
    with suppress(Exception):
        from pgserver.postgres_server import PostgresServer

        PostgresServer._instances.pop(pgdata.resolve(), None)
