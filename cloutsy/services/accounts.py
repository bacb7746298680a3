"""Accounts' writes, each in one transaction: sign-up, edits, niches, deactivation, erasure.

Every function takes the kind of account (`cloutsy.kinds`): what differs between
influencers and brands (a password to hash, the profile-completion flag) is read there.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, cast

from peewee import Expression, Field
from pydantic import BaseModel

from cloutsy import queries
from cloutsy.db import database
from cloutsy.errors import Conflict, NotFound
from cloutsy.integrity import translated, unknown_niche
from cloutsy.kinds import KINDS, AccountKind
from cloutsy.models import DIGEST_COLUMNS, ERASED_VALUES, Niche, Otp, PhoneChange, Session, utcnow
from cloutsy.passwords import hash_password
from cloutsy.services import sessions
from cloutsy.services.limits import Limiter
from cloutsy.services.lookup import digest_of, holding, with_digests


def _stored(kind: AccountKind, values: dict[str, Any]) -> dict[str, Any]:
    """Values as written: an empty PII value is no value (SQL cannot see inside ciphertext)."""
    pii = kind.pii
    return with_digests({k: (None if k in pii and v == "" else v) for k, v in values.items()})


def profile_completed(kind: AccountKind, values: dict[str, Any]) -> bool:
    """True once every profile and document field of the account holds a value."""
    return all(values.get(name) not in (None, "") for name in kind.profile_fields)


def link_niches(kind: AccountKind, owner_id: int, niche_ids: Sequence[int]) -> None:
    """Insert links to the given active niches in one statement; Invalid if any is unknown."""
    if not niche_ids:
        return
    cursor = database.execute_sql(
        f"INSERT INTO {kind.link_table} ({kind.link_column}, niche_id) "
        "SELECT %s, n.id FROM niches n WHERE n.id = ANY(%s) AND n.is_active RETURNING niche_id",
        (owner_id, list(niche_ids)),
    )
    linked = {row[0] for row in cursor.fetchall()}
    missing = [i for i in niche_ids if i not in linked]
    if missing:
        raise unknown_niche(missing[0])


def admit(kind: AccountKind, data: BaseModel, limiter: Limiter, client: str) -> dict[str, Any]:
    """Count a sign-up against `signup_address` before its write; hash a password if any.

    Committed even if the sign-up then fails: a 409 tells whether an email is taken, so
    probing it costs a slot. Argon2 is slow on purpose, so it runs while no pooled
    connection is held: the caller must not hold one either (the route of a kind with a
    password is registered with db=False).
    """
    with database.connected():
        limiter.take("signup_address", client)
    if kind.has_password:
        return {"password_hash": hash_password(cast(Any, data).password)}
    return {}


def create(kind: AccountKind, data: Any, password_hash: str | None = None) -> tuple[int, str]:
    """Create an account (its password hashed by `admit`) and its niche links in one
    transaction; return (id, private view JSON).

    A phone that only an unproved account of the kind holds is released from that one
    (CONTRACT §6).
    """
    fields = data.model_dump(exclude={"niche_ids", "password"}, exclude_none=True)
    if password_hash is not None:
        fields["password"] = password_hash
    if kind.profile_fields:
        fields["is_profile_completed"] = profile_completed(kind, fields)
    stored = _stored(kind, fields)
    model: Any = kind.model
    with database.connected(), translated(model, stored), database.atomic():
        release_unproved_claim(kind, data.phone)
        account = model.create(**stored)
        link_niches(kind, account.id, data.niche_ids)
        body = queries.account_json(kind, account.id, private=True)
    assert body is not None  # just created, in this transaction
    return account.id, body


# --- self-service ----------------------------------------------------------------------------


def _fields(kind: AccountKind, changes: dict[str, Any]) -> dict[Field, Any]:
    """The columns a change writes: an empty PII value as none, an email with its digest.

    A new phone never comes this way: it waits as a pending change (`_set_pending_phone`).
    """
    stored = _stored(kind, changes)
    return {getattr(kind.model, name): value for name, value in stored.items()}


def _profile_completed_sql(kind: AccountKind, changes: dict[str, Any]) -> Expression | bool:
    """`is_profile_completed` after `changes`: new values decided here, kept ones in SQL."""
    kept = []
    for name in kind.profile_fields:
        if name in changes:
            if changes[name] in (None, ""):
                return False
        else:
            column = getattr(kind.model, name)
            if name in kind.pii:
                kept.append(column.is_null(False))  # ciphertext; "" is stored as NULL
            else:
                kept.append(column.is_null(False) & (column != ""))
    return reduce(operator.and_, kept) if kept else True


def _update(
    kind: AccountKind, account_id: int, values: dict[Field, Any], phone: str | None = None
) -> str:
    """Apply `values` to an active account and return its private view; NotFound if none.

    A new `phone` is not applied: it is recorded as the account's pending change, which
    takes effect when a code sent to it is verified (CONTRACT §6). The same phone as now
    cancels a pending change; a phone another account of this kind has proved is 409.
    """
    model: Any = kind.model
    written = {f.name: v for f, v in values.items()}
    with translated(model, written, account_id), database.atomic():
        current = model.select(model.phone_digest).where((model.id == account_id) & model.is_active)
        row = current.for_update().tuples().first()
        if row is None:
            raise NotFound(f"no such {kind.name}")
        if values:
            model.update(values).where(model.id == account_id).execute()
        if phone is not None:
            same = row[0] == digest_of("phone", phone)
            _set_pending_phone(kind, account_id, None if same else phone)
        body = queries.account_json(kind, account_id, private=True)
    if body is None:
        raise NotFound(f"no such {kind.name}")
    return body


def update(kind: AccountKind, account_id: int, data: BaseModel) -> str:
    """Change the fields the client sent (recomputing `is_profile_completed` in the same
    statement, for a kind that has it); return the private view (409 on a taken value)."""
    changes = data.model_dump(exclude_unset=True)
    phone = changes.pop("phone", None)
    values = _fields(kind, changes)
    if values and kind.profile_fields:
        model: Any = kind.model
        values[model.is_profile_completed] = _profile_completed_sql(kind, changes)
    return _update(kind, account_id, values, phone)


def replace_niches(kind: AccountKind, account_id: int, niche_ids: Sequence[int]) -> list[dict]:
    """Make the account's niche set exactly `niche_ids`; return the niche refs, by id.

    All or nothing: an unknown or inactive niche raises Invalid before anything changes.
    Links that stay keep their created_at (when the niche was picked). The account row is
    locked first, so two concurrent replacements end in one of the two sets, not a mix.
    """
    model: Any = kind.model
    link: Any = kind.link
    ids = list(niche_ids)
    with database.atomic():
        owner = model.select(model.id).where((model.id == account_id) & model.is_active)
        if owner.for_update().first() is None:
            raise NotFound(f"no such {kind.name}")
        refs: list[dict] = []
        if ids:
            chosen = Niche.select(Niche.id, Niche.name, Niche.slug, Niche.icon)
            found = chosen.where(Niche.id.in_(ids) & Niche.is_active).order_by(Niche.id).dicts()
            refs = list(cast(Iterable[dict], found))  # peewee's hints type .dicts() rows as models
        missing = sorted(set(ids) - {ref["id"] for ref in refs})
        if missing:
            raise unknown_niche(missing[0])
        owner_column = kind.link_owner
        stale = owner_column == account_id
        if ids:
            stale &= link.niche.not_in(ids)
        link.delete().where(stale).execute()
        if ids:
            rows = [{owner_column: account_id, link.niche: i} for i in ids]
            link.insert_many(rows).on_conflict_ignore().execute()
    return refs


def deactivate(kind: AccountKind, account_id: int) -> None:
    """Switch an active account off (is_active=false) and end all its sessions, together."""
    model: Any = kind.model
    with database.atomic():
        changed = model.update(is_active=False).where((model.id == account_id) & model.is_active)
        if not changed.execute():
            raise NotFound(f"no such {kind.name}")
        sessions.revoke_all(kind.name, account_id)


# --- who a phone belongs to (CONTRACT §6) ------------------------------------------------
# Every lookup of an account by phone is one of the functions below, through the phone's
# blind index (`lookup.holding`): the column itself holds ciphertext (§9).


@dataclass(frozen=True)
class Holder:
    """The account of one kind whose `phone` column holds a number."""

    id: int
    proved: bool
    active: bool


def phone_holder(kind: AccountKind, phone: str) -> Holder | None:
    """The account of `kind` holding `phone` (unique per kind), active or not, or None."""
    model: Any = kind.model
    row = (
        model.select(model.id, model.is_phone_verified, model.is_active)
        .where(holding(model, "phone", phone))
        .tuples()
        .first()
    )
    return Holder(*row) if row else None


def release_unproved_claim(kind: AccountKind, phone: str) -> int:
    """Take `phone` from the account of `kind` that holds it without having proved it.

    Its `phone` becomes null (it must set and prove another). Returns how many (0 or 1).
    An account that proved the phone keeps it: the caller's insert then fails with 409.
    """
    model: Any = kind.model
    released = model.update(phone=None, phone_digest=None, is_phone_verified=False).where(
        holding(model, "phone", phone) & ~model.is_phone_verified
    )
    return int(released.execute())


def pending_change_for(kind: AccountKind, phone: str) -> int | None:
    """The active account of `kind` whose pending phone change is to `phone` (newest), or None."""
    model: Any = kind.model
    row = (
        PhoneChange.select(PhoneChange.subject_id)
        .join(model, on=(model.id == PhoneChange.subject_id))
        .where(
            (PhoneChange.subject_type == kind.name)
            & holding(PhoneChange, "phone", phone)
            & model.is_active
        )
        .order_by(PhoneChange.created_at.desc(), PhoneChange.id.desc())
        .tuples()
        .first()
    )
    return row[0] if row else None


def _set_pending_phone(kind: AccountKind, account_id: int, phone: str | None) -> None:
    """Record (or with None cancel) the account's pending phone change; 409 if proved elsewhere."""
    where = (PhoneChange.subject_type == kind.name) & (PhoneChange.subject_id == account_id)
    PhoneChange.delete().where(where).execute()
    if phone is None:
        return
    holder = phone_holder(kind, phone)
    if holder is not None and holder.proved and holder.id != account_id:
        raise Conflict("phone")
    PhoneChange.insert(
        subject_type=kind.name, subject_id=account_id, **with_digests({"phone": phone})
    ).execute()


def code_target(phone: str, kind_name: str | None) -> tuple[str, int] | None:
    """The one account a code sent to `phone` is for: (kind, id), or None if none yet.

    With a kind, only accounts of that kind; without, the influencer holding the phone if
    there is one, else the brand. Within a kind: the account that proved the phone, else
    the account whose pending change is to it (a signed-in owner asked for it), else the
    account holding it unproved. Inactive accounts are never a target.
    """
    kinds = [KINDS[kind_name]] if kind_name else list(KINDS.values())
    for kind in kinds:
        holder = phone_holder(kind, phone)
        if holder is not None and holder.active and holder.proved:
            return kind.name, holder.id
        pending = pending_change_for(kind, phone)
        if pending is not None:
            return kind.name, pending
        if holder is not None and holder.active:
            return kind.name, holder.id
    return None


def prove_phone(kind_name: str, account_id: int, phone: str) -> bool:
    """Mark `phone` proved for this one account (in the caller's transaction).

    If it is the account's phone, it becomes verified. If it is the account's pending
    change, the change takes effect: another account of the kind that holds the number
    unproved loses it, and every session of the account is revoked (the caller issues the
    new one). False when the account is inactive or the phone is neither (changed since).
    """
    kind = KINDS[kind_name]
    model: Any = kind.model
    row = (
        model.select(model.phone_digest)
        .where((model.id == account_id) & model.is_active)
        .for_update()
        .tuples()
        .first()
    )
    if row is None:
        return False
    if row[0] == digest_of("phone", phone):
        model.update(is_phone_verified=True).where(model.id == account_id).execute()
        return True
    where = (PhoneChange.subject_type == kind.name) & (PhoneChange.subject_id == account_id)
    if not PhoneChange.delete().where(where & holding(PhoneChange, "phone", phone)).execute():
        return False
    with translated():
        release_unproved_claim(kind, phone)
        changed = with_digests({"phone": phone, "is_phone_verified": True})
        model.update(changed).where(model.id == account_id).execute()
    sessions.revoke_all(kind.name, account_id)
    return True


def erase(kind: AccountKind, account_id: int) -> None:
    """Erase an account (CONTRACT §9, DPDP Act 2023 / GDPR art. 17), in one transaction.

    Sets `erased_at`, empties every PII column and digest (so the email and phone can sign
    up again at once), replaces the public profile with placeholders (the username with
    one no sign-up accepts, freeing the real one), deletes its sessions and OTP rows, and
    keeps its sign-up time and niche links for the analytics; a pending phone change goes
    too. NotFound if it is already
    erased or never existed; a deactivated account can still be erased.
    """
    model: Any = kind.model
    with database.atomic():
        row = (
            model.select(model.id, model.phone_digest)
            .where((model.id == account_id) & model.erased_at.is_null())
            .for_update()
            .first()
        )
        if row is None:
            raise NotFound(f"no such {kind.name}")
        phone_key = row.phone_digest  # what otps.phone holds for this number
        values: dict[str, Any] = {c: None for c in kind.pii}
        values.update({digest: None for digest in DIGEST_COLUMNS.values()})
        values.update(ERASED_VALUES[kind.table])
        values.update(
            erased_at=utcnow(), is_active=False, is_phone_verified=False, username=f"~{account_id}"
        )
        model.update(values).where(model.id == account_id).execute()
        Session.delete().where(
            (Session.subject_type == kind.name) & (Session.subject_id == account_id)
        ).execute()
        PhoneChange.delete().where(
            (PhoneChange.subject_type == kind.name) & (PhoneChange.subject_id == account_id)
        ).execute()
        if phone_key is not None:
            Otp.delete().where(Otp.phone == phone_key).execute()
