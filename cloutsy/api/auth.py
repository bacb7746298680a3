"""Who is calling: the bearer token of an account, the admin token, or nobody.

Rules (CONTRACT §5-6): a missing or invalid token is 401; a valid token acting on
someone else's resource is 403; with CLOUTSY_ADMIN_TOKEN unset, admin endpoints are
403 for everyone. Authorisation comes before existence: a caller who may not act on an
id gets 403 whether or not it exists, so ids of other accounts cannot be probed; only
the admin (who may act on any) learns 404. The admin token is not an account: routes
about "my account" (/me, logout, edits) answer it 403.
"""

from __future__ import annotations

import hmac

import bottle

from cloutsy.api.http import path_id
from cloutsy.config import Settings
from cloutsy.errors import Forbidden, NotFound, Unauthorized
from cloutsy.services import sessions
from cloutsy.services.sessions import Caller


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`; 401 for another scheme or a blank one."""
    header = bottle.request.environ.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise Unauthorized("use Authorization: Bearer <token>")
    return token


def _is_admin_token(settings: Settings, token: str) -> bool:
    admin = settings.admin_token
    return admin is not None and hmac.compare_digest(admin.encode(), token.encode())


def caller(settings: Settings) -> Caller | None:
    """The caller, or None when no token was sent; 401 for a token that is not valid."""
    token = bearer_token()
    if token is None:
        return None
    if _is_admin_token(settings, token):
        return Caller("admin")
    account = sessions.authenticate(token)
    if account is None:
        raise Unauthorized("the token is not valid")
    return account


def require_caller(settings: Settings) -> Caller:
    """The caller; 401 without a valid token."""
    found = caller(settings)
    if found is None:
        raise Unauthorized("a bearer token is required")
    return found


def require_admin(settings: Settings) -> Caller:
    """The admin; 401 without a valid token, 403 for any other caller or when admin is off."""
    if settings.admin_token is None:
        raise Forbidden("admin endpoints are disabled (CLOUTSY_ADMIN_TOKEN is not set)")
    found = require_caller(settings)
    if not found.is_admin:
        raise Forbidden("admin only")
    return found


def require_account(settings: Settings) -> Caller:
    """An account's caller; 401 without a valid token, 403 for the admin token (no account)."""
    found = require_caller(settings)
    if found.is_admin:
        raise Forbidden("the admin token is not an account; use an account's token")
    return found


def require_self(settings: Settings, kind: str, raw_id: str, admin: bool = False) -> int:
    """The id of the account in the path, if the caller is that account (or, with
    `admin`, the admin); 401 without a valid token, else 403 (404 only for the admin).
    """
    found = require_caller(settings)
    if found.is_admin:
        if not admin:
            raise Forbidden(f"only the {kind} itself may do this")
        return path_id(raw_id)
    try:
        account_id = path_id(raw_id)
    except NotFound:
        account_id = None
    if account_id is None or not found.owns(kind, account_id):
        raise Forbidden(f"only the {kind} itself may do this")
    return account_id
