"""Authentication routes: OTP send and verify, brand login, logout, and /me.

The OTP sender is looked up per request in `app.config["cloutsy.otp_sender"]` (an SMS
gateway in production, a fake in tests), defaulting to one that only logs a masked number.
"""

from __future__ import annotations

from typing import Any

import bottle

from cloutsy import passwords, queries
from cloutsy.api import auth
from cloutsy.api.endpoints import Api
from cloutsy.api.http import body_as, client_address, json_body
from cloutsy.api.idempotent import Idempotent
from cloutsy.config import Settings
from cloutsy.errors import Unauthorized
from cloutsy.kinds import KINDS
from cloutsy.schemas import (
    ErrorOut,
    LoginIn,
    OtpSend,
    OtpSent,
    OtpVerify,
    TokenOut,
    Verified,
)
from cloutsy.services import otp, sessions

SENDER_KEY = "cloutsy.otp_sender"
# What an OTP request can be refused with (409/422: its Idempotency-Key; 429: the limits).
REFUSED: dict[int, Any] = {s: ErrorOut for s in (400, 409, 413, 422, 429)}


def register(api: Api, settings: Settings) -> None:
    default_sender = otp.LogSender()

    def sender() -> otp.Sender:
        return api.app.config.get(SENDER_KEY) or default_sender

    def sent_again(stored: dict[str, Any]) -> bytes:
        """A replayed send: no new code; the first code's expiry (the code is kept hashed)."""
        return json_body({"expiresAt": stored.get("expiresAt")}, 202)

    def verified_again(stored: dict[str, Any]) -> bytes:
        """A replayed verify: the same account, with a fresh token if it is still active."""
        out: dict[str, Any] = {"verified": True}
        account = stored.get("account")
        if account:
            token = sessions.issue_if_active(account["type"], account["id"])
            if token is not None:
                out["token"] = token
                out["account"] = account
        return json_body(out)

    @api.route(
        "POST",
        "/auth/otp/send",
        summary="Send a one-time code to a phone, for one account (limits: CLOUTSY_RATE_LIMITS)",
        tag="auth",
        body=OtpSend,
        responses={202: OtpSent, **REFUSED},
        idempotent=Idempotent(settings, ("expiresAt",), sent_again),
    )
    def send_otp() -> bytes:
        data = body_as(OtpSend)
        client = client_address(settings.trusted_proxies)
        issued = otp.send_code(
            data.phone, settings.secret_key, sender(), api.limiter, client, data.account_type
        )
        out: dict[str, Any] = {"expiresAt": issued.expires_at}
        if settings.debug_codes:  # development on loopback only: the code must reach only the phone
            out["debugOtp"] = issued.code
        return json_body(out, 202)

    @api.route(
        "POST",
        "/auth/otp/verify",
        summary="Verify a code: marks the phone verified, a token for its account",
        tag="auth",
        body=OtpVerify,
        responses={200: Verified, **REFUSED},
        idempotent=Idempotent(settings, ("account",), verified_again),
    )
    def verify_otp() -> bytes:
        data = body_as(OtpVerify)
        client = client_address(settings.trusted_proxies)
        result = otp.verify_code(data.phone, data.otp, settings.secret_key, api.limiter, client)
        out: dict[str, Any] = {"verified": True}
        if result.token is not None:
            out["token"] = result.token
            out["account"] = {"type": result.account_type, "id": result.account_id}
        return json_body(out)

    @api.route(
        "POST",
        "/auth/brands/login",
        summary="Brand login with email and password; a bearer token",
        tag="auth",
        body=LoginIn,
        responses={
            200: TokenOut,
            400: ErrorOut,
            401: ErrorOut,
            413: ErrorOut,
            429: ErrorOut,
            503: ErrorOut,
        },
        db=False,  # no pooled connection is held while Argon2 runs (the service connects)
    )
    def brand_login() -> bytes:
        # The hashing slot first: under a flood a refusal (503) costs no parsing at all.
        with passwords.slot():
            data = body_as(LoginIn)
            client = client_address(settings.trusted_proxies)
            token, expires = sessions.login_brand(data.email, data.password, api.limiter, client)
        return json_body({"token": token, "expiresAt": expires})

    @api.route(
        "POST",
        "/auth/logout",
        summary="End the session of this bearer token",
        tag="auth",
        auth="bearer",
        responses={204: None, 401: ErrorOut, 403: ErrorOut},
    )
    def logout() -> bytes:
        who = auth.require_account(settings)
        assert who.token_hash is not None  # an account's caller always carries its token's hash
        sessions.revoke(who.token_hash)
        bottle.response.status = 204
        return b""

    @api.route(
        "GET",
        "/me",
        summary="The caller's own account (private view)",
        tag="auth",
        auth="bearer",
        responses={
            200: tuple(kind.private for kind in KINDS.values()),
            401: ErrorOut,
            403: ErrorOut,
        },
        cache="private",
        vary_auth=True,
    )
    def me() -> str:
        who = auth.require_account(settings)
        assert who.id is not None
        body = queries.account_json(KINDS[who.kind], who.id, private=True)
        if body is None:  # deactivated between authentication and this read
            raise Unauthorized("the token is not valid")
        return body
