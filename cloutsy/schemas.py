"""Request and response schemas (pydantic v2): the one place for validation rules.

Field names are camelCase aliases exactly as the original design's ERD; unknown
fields are rejected. Request models normalise as they validate (lower-case
usernames and emails, E.164 phones). Response models exist for the OpenAPI
document and for tests; the hot read path returns JSON built by PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from cloutsy.domains import MAX_INT, AccountType, CompanyType, Gender
from cloutsy.errors import BadRequest, Invalid

# ASCII digits only: str.isdigit() is also true for '²' or '٣', which int() rejects or reads.
DECIMAL = re.compile(r"[0-9]{1,10}")
USERNAME = re.compile(r"^[a-z0-9._]{3,30}$")


def positive_id(raw: str) -> int | None:
    """`raw` as a database id (1 ..= MAX_INT written in ASCII digits), else None.

    The one parser for ids, limits and cursors in paths and query strings: no sign, no
    space, no Unicode digit, no overflow past PostgreSQL's integer.
    """
    if not DECIMAL.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_INT else None


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; refuse it here instead of failing in the driver.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _strip(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def _username(value: str) -> str:
    value = value.strip().lower()
    if not USERNAME.match(value):
        raise ValueError("3 to 30 characters of a-z, 0-9, '.' and '_'")
    return value


def _email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("not a valid email address") from None
    return result.normalized.lower()


def normalise_phone(value: str) -> str:
    """E.164 form of `value`; a bare 10-digit number is read as Indian (+91)."""
    raw = value.strip()
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else "IN")
    except phonenumbers.NumberParseException:
        raise ValueError("not a valid phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _date_of_birth(value: dt.date) -> dt.date:
    today = dt.date.today()
    if value >= today:
        raise ValueError("must be in the past")
    try:
        limit = today.replace(year=today.year - 13)
    except ValueError:  # 29 February
        limit = today.replace(year=today.year - 13, day=28)
    if value > limit:
        raise ValueError("must be at least 13 years ago")
    return value


def _url(value: str) -> str:
    value = value.strip()
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value, re.IGNORECASE):
        raise ValueError("must be an http(s) URL")
    return value


def _niche_ids(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise ValueError("must not contain duplicates")
    return value


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Drop `default: null` from fields whose type does not allow null (PATCH fields that
    may be left out but never cleared): it would contradict their type and fail validation."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and "anyOf" not in prop:
            del prop["default"]


def _absent() -> Any:
    """The default of a PATCH field that can be omitted but not cleared (null is refused)."""
    return Field(default=None)


def _doc(**schema: Any) -> Any:
    """Describe a rule in the JSON schema only (the validators above enforce it, with messages)."""
    return Field(json_schema_extra=schema)


Text = Annotated[str, BeforeValidator(_no_nul)]
Name = Annotated[
    Text, AfterValidator(_strip), Field(max_length=100), _doc(minLength=1, pattern=r"\S")
]
Username = Annotated[
    Text,
    Field(max_length=64),
    AfterValidator(_username),
    _doc(pattern=r"^\s*[A-Za-z0-9._]{3,30}\s*$"),
]
Email = Annotated[Text, Field(max_length=254), AfterValidator(_email), _doc(format="email")]
Phone = Annotated[
    Text,
    Field(max_length=32),
    AfterValidator(normalise_phone),
    _doc(pattern=r"^\+?[0-9][0-9 ()-]{6,30}$", description="E.164, or 10 digits read as +91"),
]
Bio = Annotated[Text, Field(max_length=1000)]
Url = Annotated[Text, Field(max_length=2048), AfterValidator(_url), _doc(pattern=r"^https?://\S+$")]
Short = Annotated[
    Text, AfterValidator(_strip), Field(max_length=200), _doc(minLength=1, pattern=r"\S")
]
DateOfBirth = Annotated[dt.date, AfterValidator(_date_of_birth)]
NicheId = Annotated[int, Field(ge=1, le=MAX_INT)]
NicheIds = Annotated[list[NicheId], Field(max_length=10), AfterValidator(_niche_ids)]
Password = Annotated[Text, Field(min_length=10, max_length=128)]


class Schema(BaseModel):
    """camelCase aliases, unknown fields rejected, no silent type coercion."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        str_max_length=10_000,
    )


# --- requests ----------------------------------------------------------------------------


class InfluencerCreate(Schema):
    name: Name
    username: Username
    email: Email
    phone: Phone
    date_of_birth: DateOfBirth | None = None
    gender: Gender | None = None
    bio: Bio | None = None
    profile_image: Url | None = None
    niche_ids: NicheIds = []


class InfluencerUpdate(Schema):
    """A partial update: only the fields sent change; `null` clears an optional field.

    Required columns take no `null` (their type is not nullable, so an explicit null is a
    validation error naming the field); leaving them out keeps them.
    """

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)

    name: Name = _absent()  # type: ignore[assignment]  # absent, never null
    username: Username = _absent()  # type: ignore[assignment]  # absent, never null
    email: Email = _absent()  # type: ignore[assignment]  # absent, never null
    phone: Phone = _absent()  # type: ignore[assignment]  # absent, never null
    date_of_birth: DateOfBirth | None = None
    gender: Gender | None = None
    bio: Bio | None = None
    profile_image: Url | None = None


class BrandProfile(Schema):
    """The optional profile and document fields of a brand."""

    legal_entity_name: Short | None = None
    company_type: CompanyType | None = None
    brand_email_id: Email | None = None
    poc_name: Name | None = None
    poc_designation: Name | None = None
    poc_email_id: Email | None = None
    poc_contact_number: Phone | None = None
    brand_bio: Bio | None = None
    profile_image: Url | None = None
    incorporation_document: Url | None = None
    gst_document: Url | None = None
    pan_document: Url | None = None


class BrandCreate(BrandProfile):
    email: Email
    password: Password
    phone: Phone
    brand_name: Short
    username: Username
    niche_ids: NicheIds = []


class BrandUpdate(BrandProfile):
    """A partial update like InfluencerUpdate; the password is not changed this way."""

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)

    email: Email = _absent()  # type: ignore[assignment]  # absent, never null
    phone: Phone = _absent()  # type: ignore[assignment]  # absent, never null
    brand_name: Short = _absent()  # type: ignore[assignment]  # absent, never null
    username: Username = _absent()  # type: ignore[assignment]  # absent, never null


class NicheSet(Schema):
    niche_ids: NicheIds


# --- responses (documentation and tests) ---------------------------------------------------


class View(Schema):
    """A response body, exactly: no field beyond those declared (`additionalProperties: false`),
    so a public view never validates as a private one and `oneOf` tells them apart."""

    model_config = ConfigDict(extra="forbid")


class NicheRef(View):
    id: int
    name: str
    slug: str
    icon: str | None


class NicheOut(NicheRef):
    description: str | None
    influencer_count: int
    brand_count: int


class NicheList(View):
    items: list[NicheOut]


class NicheSetOut(View):
    items: list[NicheRef]


class InfluencerPublic(View):
    id: int
    name: str
    username: str
    gender: Gender | None
    bio: str | None
    profile_image: str | None
    is_phone_verified: bool
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    niches: list[NicheRef]


class InfluencerPrivate(InfluencerPublic):
    email: str
    phone: str | None = Field(description="null once an unproved claim was released")
    pending_phone: str | None = Field(
        description="a phone change waiting for its code to be verified"
    )
    date_of_birth: dt.date | None


class InfluencerPage(View):
    items: list[InfluencerPublic]
    next_cursor: str | None


class BrandPublic(View):
    id: int
    brand_name: str
    username: str
    legal_entity_name: str | None
    company_type: CompanyType | None
    brand_bio: str | None
    profile_image: str | None
    is_phone_verified: bool
    is_profile_completed: bool
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    niches: list[NicheRef]


class BrandPrivate(BrandPublic):
    email: str
    phone: str | None = Field(description="null once an unproved claim was released")
    pending_phone: str | None = Field(
        description="a phone change waiting for its code to be verified"
    )
    brand_email_id: str | None
    poc_name: str | None
    poc_designation: str | None
    poc_email_id: str | None
    poc_contact_number: str | None
    incorporation_document: str | None
    gst_document: str | None
    pan_document: str | None


class BrandPage(View):
    items: list[BrandPublic]
    next_cursor: str | None


class SeedOut(View):
    created: int
    updated: int
    total: int


class PoolOut(View):
    max: int
    in_use: int
    idle: int


class DatabaseHealth(View):
    ok: bool
    latency_ms: float | None = None
    pool: PoolOut
    pending_migrations: int | None = None


class ReplicaHealth(View):
    name: str = Field(description="host:port/database of the replica")
    state: Literal["ok", "lagging", "down"]
    lag_s: float | None = Field(description="seconds behind the primary; null when unknown")


class HealthOut(View):
    status: Literal["ok", "degraded", "unavailable"]
    # Why the service is degraded (pending migrations, schema differing from the models).
    reason: str | None = None
    database: DatabaseHealth
    replicas: list[ReplicaHealth] | None = Field(
        default=None, description="with DATABASE_REPLICA_URLS only"
    )


class ErrorDetail(View):
    field: str
    message: str


class ErrorBody(View):
    code: str
    message: str
    details: list[ErrorDetail] = []
    request_id: str | None = None


class ErrorOut(View):
    error: ErrorBody


# --- accounts and security (issue 4) -------------------------------------------------------

OtpCode = Annotated[
    Text,
    Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$", description="the 6-digit code"),
    _doc(pattern=r"^[0-9]{6}$"),
]
# Login takes any password up to the sign-up maximum: a short one simply does not match (401).
LoginPassword = Annotated[Text, Field(min_length=1, max_length=128)]


class OtpSend(Schema):
    phone: Phone
    # The one account the code proves the phone for; absent: the influencer holding it
    # if there is one, else the brand (CONTRACT §6).
    account_type: AccountType | None = None


class OtpVerify(Schema):
    phone: Phone
    otp: OtpCode


class LoginIn(Schema):
    email: Email
    password: LoginPassword


class OtpSent(View):
    expires_at: dt.datetime
    debug_otp: str | None = Field(default=None, description="development only: the code sent")


class AccountRef(View):
    type: AccountType
    id: int


class Verified(View):
    """A verified code; `token` and `account` only when an active account has that phone."""

    verified: bool
    token: str | None = None
    account: AccountRef | None = None


class TokenOut(View):
    token: str
    expires_at: dt.datetime


# --- parsing -------------------------------------------------------------------------------


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ".".join(parts) or "body"


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: bytes) -> M:
    """Validate a JSON body into `model`: BadRequest if it is not JSON, else Invalid per field.

    pydantic parses the bytes itself (strict JSON mode: no "5" for 5, dates as ISO strings).
    """
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise BadRequest("the body is not valid JSON") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in errors):
            raise Invalid(
                "the body must be a JSON object",
                [{"field": "body", "message": "must be a JSON object"}],
            ) from None
        details = []
        seen = set()
        for error in errors:
            field = _field_name(error["loc"])
            if field in seen:
                continue
            seen.add(field)
            details.append({"field": field, "message": _message(error)})
        raise Invalid("the request has invalid fields", details) from None
