"""The service's exception tree. Translated only at the edges (HTTP in `api`, `Exit` in tasks).

Library code raises these, never a bare `RuntimeError`: the HTTP edge answers a request
error with its status and code; `tasks.edge()` turns any of them into one line and exit 1.

CloutsyError                  code               HTTP
├── BadRequest                bad_request         400
├── Invalid                   validation_error    400  (details: one per bad field)
├── Unauthorized              unauthorized        401
├── Forbidden                 forbidden           403
├── NotFound                  not_found           404
├── MethodNotAllowed          method_not_allowed  405
├── Conflict                  conflict            409  (details: one per taken value)
├── PayloadTooLarge           payload_too_large   413
├── IdempotencyKeyReused      idempotency_key_reused 422
├── RateLimited               rate_limited        429  (retry_after seconds)
├── Unavailable               unavailable         503  (database down, pool exhausted)
└── TaskError                 (tasks only)             a task could not do its job
    ├── ToolMissing                                    no PostgreSQL client tool of that version
    ├── NotebookFailed                                 a notebook raised or could not run
    ├── LoadTestFailed                                 locust produced no statistics
    └── BenchError (cloutsy.bench)                     the bench could not run or check
"""

from __future__ import annotations

from typing import Any


class CloutsyError(Exception):
    """Base of every error the service raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str = "", details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class BadRequest(CloutsyError):
    """The request could not be understood."""

    status, code = 400, "bad_request"


class Invalid(CloutsyError):
    """The request breaks a validation rule."""

    status, code = 400, "validation_error"


class Unauthorized(CloutsyError):
    """A valid bearer token is required."""

    status, code = 401, "unauthorized"


class Forbidden(CloutsyError):
    """You may not act on this resource."""

    status, code = 403, "forbidden"


class NotFound(CloutsyError):
    """No such resource."""

    status, code = 404, "not_found"


class MethodNotAllowed(CloutsyError):
    """Method not allowed on this resource."""

    status, code = 405, "method_not_allowed"


class Conflict(CloutsyError):
    """A unique value is already taken."""

    status, code = 409, "conflict"

    def __init__(self, field: str, message: str = "") -> None:
        message = message or f"{field} is already taken"
        super().__init__(message, [{"field": field, "message": message}])
        self.field = field

    @classmethod
    def of(cls, fields: list[str]) -> Conflict:
        """One conflict naming every taken field, a `details` entry for each."""
        if len(fields) == 1:
            return cls(fields[0])
        listed = ", ".join(fields[:-1]) + " and " + fields[-1]
        error = cls(fields[0], f"{listed} are already taken")
        error.details = [{"field": f, "message": f"{f} is already taken"} for f in fields]
        return error


class PayloadTooLarge(CloutsyError):
    """The request body is too large."""

    status, code = 413, "payload_too_large"


class IdempotencyKeyReused(CloutsyError):
    """This Idempotency-Key was already used with a different body."""

    status, code = 422, "idempotency_key_reused"


class RateLimited(CloutsyError):
    """Too many requests; try again later."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str = "", retry_after: int = 1, limit: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.limit = limit  # the abuse limit's name, for /metrics


class Unavailable(CloutsyError):
    """The database cannot be reached; try again shortly."""

    status, code = 503, "unavailable"

    def __init__(self, message: str = "", retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class TaskError(CloutsyError):
    """A task could not do its job; `tasks.edge()` prints the message as one line, exit 1."""


class ToolMissing(TaskError):
    """A PostgreSQL client tool (pg_dump, pg_ctl...) of the server's major version is missing."""


class NotebookFailed(TaskError):
    """A notebook raised or could not run; the message is one line naming it and the cause."""


class LoadTestFailed(TaskError):
    """The load generator could not produce its figures."""
