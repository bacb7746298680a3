"""The value domains that the database and the request schemas share, written once.

The CHECK constraints in `models`, the pydantic `Literal` types in `schemas` and the demo
data all read these, so a new gender or company type is one line here (and a migration).
"""

from __future__ import annotations

from typing import Literal, get_args

# PostgreSQL `integer`: ids, limits and cursors parse into it, integer settings stay in it.
MAX_INT = 2_147_483_647

Gender = Literal["female", "male", "non_binary", "other", "prefer_not_to_say"]
CompanyType = Literal[
    "private_limited", "public_limited", "llp", "partnership", "sole_proprietorship", "other"
]
# Who an account, a session or a phone change belongs to (`cloutsy.kinds` names its entries so).
AccountType = Literal["influencer", "brand"]

GENDERS: tuple[str, ...] = get_args(Gender)
COMPANY_TYPES: tuple[str, ...] = get_args(CompanyType)
ACCOUNT_TYPES: tuple[str, ...] = get_args(AccountType)
