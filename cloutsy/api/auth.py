"""Who is calling: the bearer token of an account, the admin token, or nobody.

Rules (CONTRACT §5-6): a missing or invalid token is 401; a valid token acting on
someone else's resource is 403; with CLOUTSY_ADMIN_TOKEN unset, admin endpoints are
403 for everyone.
"""

from __future__ import annotations

import hmac

import bottle

from cloutsy.config import Settings
from cloutsy.errors import Forbidden, Unauthorized
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
