"""The list endpoints' query string as ONE pydantic model: it validates, OpenAPI reads it.

`GET /influencers` and `GET /brands` take `niche` (repeatable: any of them), `q`,
`verified`, `limit` and `cursor`. Each parameter is declared once, in `ListQuery`, with
its rule and the message a bad value gets (400 `bad_request`, CONTRACT §5); the routes'
OpenAPI parameters are generated from the same fields (`api/openapi.py`) and the names a
query string may use are its fields' names. The keyset cursor's codec lives here too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from cloutsy.errors import BadRequest
from cloutsy.schemas import positive_id

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
CURSOR_PREFIX = "v1:"
MAX_NICHES = 10  # niche filters in one request


@dataclass(frozen=True)
class Refusal:
    """The message for a value that breaks a field's declared constraints (length, range).

    A field's own validators raise ValueError with their own sentence instead.
    """

    message: str


def _single(parse: Callable[[str], Any] = str) -> BeforeValidator:
    """A parameter given at most once: its one value, read by `parse`."""

    def one(values: Any) -> Any:
        if isinstance(values, list):
            if len(values) > 1:
                raise PydanticCustomError("repeated", "may appear only once")
            values = values[0]
        return parse(values) if isinstance(values, str) else values

    return BeforeValidator(one)


def _few_niches(values: Any) -> Any:
    # Counted before any value is read, so eleven bad niches are refused for their number.
    if isinstance(values, list) and len(values) > MAX_NICHES:
        raise PydanticCustomError("too_long", "too many values")
    return values


def _niche(value: str) -> str:
    value = value.strip().lower()
    if value.isascii() and value.isdigit():
        if positive_id(value) is None:
            raise ValueError("niche id out of range")
    elif not SLUG.match(value):
        raise ValueError("niche must be a niche slug or id")
    return value


def _verified(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError("verified must be true or false")
    return value == "true"


def _limit(value: str) -> int:
    return positive_id(value) or 0  # out of range: the bounds below refuse it


def encode_cursor(last_id: int) -> str:
    """Opaque keyset cursor: the last id seen, versioned, base64url."""
    raw = f"{CURSOR_PREFIX}{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id behind a cursor; ValueError if it was not made by `encode_cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("cursor is not valid") from None
    value = positive_id(raw[len(CURSOR_PREFIX) :]) if raw.startswith(CURSOR_PREFIX) else None
    if value is None:
        raise ValueError("cursor is not valid")
    return value


NicheKey = Annotated[
    str,
    AfterValidator(_niche),
    WithJsonSchema({"type": "string", "pattern": "^([1-9][0-9]{0,8}|[a-z0-9][a-z0-9-]{0,99})$"}),
]


class ListQuery(BaseModel):
    """A list request: niche slugs/ids (any of), text query, verified flag, page size and
    the id the previous page ended at (`cursor`, decoded)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    niche: Annotated[
        tuple[NicheKey, ...],
        Field(max_length=MAX_NICHES, description="niche slug or id; repeat for any of several"),
        BeforeValidator(_few_niches),
        Refusal(f"at most {MAX_NICHES} niche filters"),
    ] = ()
    q: Annotated[
        str | None,
        Field(max_length=200, description="words to search for"),
        _single(),
        Refusal("q must be at most 200 characters"),
    ] = None
    verified: Annotated[bool | None, _single(_verified)] = None
    limit: Annotated[
        int,
        Field(ge=1, le=100),
        _single(_limit),
        Refusal("limit must be a whole number from 1 to 100"),
    ] = 20
    after_id: Annotated[
        int | None,
        _single(decode_cursor),
        Field(alias="cursor", description="nextCursor of the previous page"),
        WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_-]{4,24}$"}),
    ] = None

    @property
    def niche_ids(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.niche if v.isdigit())

    @property
    def niche_slugs(self) -> tuple[str, ...]:
        return tuple(v for v in self.niche if not v.isdigit())

    @classmethod
    def of(
        cls,
        niche_ids: Sequence[int] = (),
        q: str | None = None,
        verified: bool | None = None,
        limit: int = 20,
        after_id: int | None = None,
    ) -> ListQuery:
        """A list request made in Python (analytics, tests): values already valid."""
        niche = tuple(str(i) for i in niche_ids)
        return cls.model_construct(
            niche=niche, q=q, verified=verified, limit=limit, after_id=after_id
        )


Q = TypeVar("Q", bound=BaseModel)


def parameter_names(model: type[BaseModel]) -> set[str]:
    """The names a query string may use: the fields' aliases (else their names)."""
    return {f.alias or name for name, f in model.model_fields.items()}


def _refusal(model: type[BaseModel], parameter: str) -> str:
    for name, f in model.model_fields.items():
        if parameter in (name, f.alias):
            for meta in f.metadata:
                if isinstance(meta, Refusal):
                    return meta.message
    return f"query parameter {parameter} is not valid"


def _message(model: type[BaseModel], error: ErrorDetails) -> str:
    parameter = str(error["loc"][0]) if error["loc"] else "query"
    if error["type"] == "repeated":
        return f"query parameter {parameter} may appear only once"
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return _refusal(model, parameter)


def parse_query(model: type[Q], params: Mapping[str, list[str]]) -> Q:
    """`params` (name -> values) validated into `model`; BadRequest naming the first bad one.

    Fields are checked in their declared order, so the message is the first parameter's.
    """
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise BadRequest(_message(model, exc.errors(include_url=False)[0])) from None
