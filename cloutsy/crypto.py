"""The one codec for PII columns (CONTRACT §9): AES-256-GCM values and HMAC blind indexes.

A stored value is `<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`:

- a random 96-bit nonce per value, so equal values encrypt differently;
- the key id travels with the value, so any key of `CLOUTSY_DATA_KEYS` decrypts it and
  `invoke keys.rotate` can find what still sits under an old key;
- the associated data is `table.column`: a value copied into another column (or another
  table) fails authentication instead of decrypting.

Lookups and uniqueness cannot use ciphertext (every encryption differs), so the account
tables also keep `email_digest` / `phone_digest`: HMAC-SHA256 under `CLOUTSY_LOOKUP_KEY`
of the normalised value. They leak equality only, and only to someone holding the key.

Every writer and reader (sign-up, PATCH, private views, OTP, login, seed.demo, the bench,
migration 0002, rotation, erasure) goes through this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloutsy.config import Settings, load_settings, warn_if_insecure
from cloutsy.errors import CloutsyError

NONCE_BYTES = 12


class Undecryptable(CloutsyError):
    """A stored value could not be decrypted (wrong column, unknown key or tampered)."""

    status, code = 500, "internal_error"


@dataclass(frozen=True)
class Keyring:
    """The data keys (the first encrypts, all decrypt) and the blind-index key."""

    current_id: str
    ciphers: Mapping[str, AESGCM]
    lookup_key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        ciphers = {key_id: AESGCM(key) for key_id, key in settings.data_keys}
        return cls(settings.data_keys[0][0], ciphers, settings.lookup_key)

    def encrypt(self, table: str, column: str, value: str | None) -> str | None:
        """The stored form of `value` in `table.column` (None stays None)."""
        if value is None:
            return None
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.ciphers[self.current_id].encrypt(
            nonce, str(value).encode(), f"{table}.{column}".encode()
        )
        return f"{self.current_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def encrypt_many(self, table: str, column: str, values: list[Any]) -> list[str | None]:
        """`encrypt` over a list (bulk loads): one nonce draw and one AAD for all of them."""
        cipher = self.ciphers[self.current_id].encrypt
        aad = f"{table}.{column}".encode()
        prefix = self.current_id + ":"
        nonces = os.urandom(NONCE_BYTES * len(values))
        encode = base64.urlsafe_b64encode
        out: list[str | None] = []
        for i, value in enumerate(values):
            if value is None:
                out.append(None)
                continue
            text = value.isoformat() if hasattr(value, "isoformat") else str(value)
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            out.append(prefix + encode(nonce + cipher(nonce, text.encode(), aad)).decode())
        return out

    def decrypt(self, table: str, column: str, stored: str | None) -> str | None:
        """The value behind a stored form of `table.column`; Undecryptable if it is not one."""
        if stored is None:
            return None
        key_id, _, body = stored.partition(":")
        cipher = self.ciphers.get(key_id)
        if cipher is None:
            raise Undecryptable(f"{table}.{column} holds a value under an unknown key")
        try:
            raw = base64.urlsafe_b64decode(body)
            return cipher.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{table}.{column}".encode()
            ).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise Undecryptable(f"{table}.{column} holds a value that does not decrypt") from None

    def digest(self, value: str | None) -> str | None:
        """The blind index of a normalised value (lower-case email, E.164 phone)."""
        if value is None:
            return None
        return hmac.digest(self.lookup_key, value.encode(), hashlib.sha256).hex()


def key_id(stored: str) -> str:
    """The id of the key a stored value was encrypted under."""
    return stored.partition(":")[0]


_keyring: Keyring | None = None


def configure(settings: Settings) -> Keyring:
    """Use the keys of `settings` in this process (the app, tasks and tests call this)."""
    global _keyring
    warn_if_insecure(settings)
    _keyring = Keyring.from_settings(settings)
    return _keyring


def keyring() -> Keyring:
    """The process's keyring; configured from the environment on first use if nobody did."""
    return _keyring if _keyring is not None else configure(load_settings())


def encrypt(table: str, column: str, value: str | None) -> str | None:
    return keyring().encrypt(table, column, value)


def decrypt(table: str, column: str, stored: str | None) -> str | None:
    return keyring().decrypt(table, column, stored)


def digest(value: str | None) -> str | None:
    return keyring().digest(value)


def digest_of(column: str, value: str | None) -> str | None:
    """The blind index of `value` as `column` ("email": lower-cased; "phone": E.164 as is)."""
    if value is None:
        return None
    return keyring().digest(value.lower() if column == "email" else value)


def seal_row(table: str, columns: Iterable[str], row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each of `columns` present in it encrypted (dates as ISO text)."""
    ring = keyring()
    sealed = dict(row)
    for column in columns:
        if column in sealed and sealed[column] is not None:
            value = sealed[column]
            text = value.isoformat() if hasattr(value, "isoformat") else str(value)
            sealed[column] = ring.encrypt(table, column, text)
    return sealed


def reveal(table: str, columns: Mapping[str, str], view: dict[str, Any]) -> dict[str, Any]:
    """Decrypt, in a rendered view, each JSON key of `columns` (JSON key -> column)."""
    ring = keyring()
    for json_key, column in columns.items():
        if json_key in view:
            view[json_key] = ring.decrypt(table, column, view[json_key])
    return view
