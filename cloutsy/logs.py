"""Logging set-up and the filter that keeps secrets out of every log line.

Whatever logs (the app, peewee's query log, the server's access log), records pass
through `RedactingFilter`: phone numbers are masked to their last four digits,
bearer tokens, passwords and OTP codes are dropped, and peewee's query
parameters are replaced by their types (values of secret columns never appear).

Why a record factory as well as filters: a filter on a logger does not see records of
its child loggers (`cloutsy.api` is not filtered by a filter on `cloutsy`), a filter on
one handler does not protect the next handler someone adds (pytest's, a log shipper's),
and the server (granian) configures its own handlers when it starts. Redacting each
record as it is created covers every logger and every handler in the process.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from cloutsy.config import Settings

# E.164 (`+919812345678`) or a bare run of 10-13 digits (`9812345678`); longer runs
# (connection ids) and dates are left alone.
PHONE = re.compile(r"(?<![\w+])\+\d{8,15}(?!\d)|(?<![\w.:+-])\d{10,13}(?![\w.:-])")
BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]+")
# `key=value`, `"key": "value"` (JSON) and `'key': 'value'` (a dict's repr).
SECRET_KV = re.compile(
    r"(?i)([\"']?(?:password|otp|debugOtp|token|secret|authorization)[\"']?\s*[:=]\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,&})]+)"
)
# A DB-API placeholder is not a value: `"password" = %s` in the query log stays readable.
PLACEHOLDER = re.compile(r"%s|%\(\w+\)s|\?")
QUERY_SECRET = re.compile(r"(?i)([?&](?:token|otp|password|code)=)[^&\s]+")


def mask_phone(phone: str) -> str:
    """`+919812345678` -> `+91******5678`: enough to tell numbers apart, not to dial one."""
    digits = phone.strip()
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def _drop_value(match: re.Match[str]) -> str:
    if PLACEHOLDER.fullmatch(match.group(2)):
        return match.group(0)
    return match.group(1) + "[redacted]"


def redact(text: str) -> str:
    """Mask phones and drop tokens, passwords and codes from free text."""
    text = BEARER.sub(r"\1[redacted]", text)
    text = SECRET_KV.sub(_drop_value, text)
    text = QUERY_SECRET.sub(r"\1[redacted]", text)
    return PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def _describe(param: Any) -> str:
    if param is None or isinstance(param, (bool, int, float)):
        return repr(param)
    return f"<{type(param).__name__}>"


class RedactingFilter(logging.Filter):
    """Rewrite each record so no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if record.name.startswith("peewee") and isinstance(msg, tuple) and len(msg) == 2:
            sql, params = msg
            if isinstance(params, dict):  # named parameters (the read side's raw SQL)
                shown = ", ".join(f"{k}={_describe(v)}" for k, v in params.items())
            else:
                shown = ", ".join(_describe(p) for p in params or ())
            record.msg, record.args = "%s -- params: [%s]", (sql, shown)
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: keep only its template
            text = str(record.msg)
        record.msg, record.args = redact(text), None
        if record.exc_info and record.exc_info[1] is not None:
            # Keep the traceback for operators, but not the values in exception text.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_REDACTOR = RedactingFilter()


def redact_every_record() -> None:
    """Redact each log record when it is made, whichever logger or handler it reaches (idempotent).

    Only records a logger's level lets through are made, so disabled debug logging costs nothing.
    """
    base = logging.getLogRecordFactory()
    if getattr(base, "_cloutsy_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _REDACTOR.filter(record)
        return record

    factory._cloutsy_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def install_filter(logger: logging.Logger) -> None:
    """Attach the redacting filter to `logger` and each of its handlers (idempotent)."""
    targets: list[Any] = [logger, *logger.handlers]
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())


def configure_logging(
    settings: Settings, stream: Any = None, query_log: bool | None = None
) -> None:
    """Log to stderr through the filter; peewee's query log in development unless told."""
    redact_every_record()
    root = logging.getLogger()
    if not any(getattr(h, "_cloutsy", False) for h in root.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._cloutsy = True  # type: ignore[attr-defined]
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    peewee_log = logging.getLogger("peewee")
    if query_log is None:
        query_log = settings.is_development
    peewee_log.setLevel(logging.DEBUG if query_log else logging.WARNING)
    logging.getLogger("peewee.pool").setLevel(logging.INFO)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    for name in ("peewee", "_granian", "granian.access", "cloutsy"):
        install_filter(logging.getLogger(name))
