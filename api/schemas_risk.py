"""Request and response bodies of the limits and risk endpoints (docs/api.md "Limits and risk")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt

from api.schemas import Body, CurrencyCode

# Strict like every amount: a float or a string is refused. Null means "no limit of this kind".
# The bounds on the integer itself (not on the union), so the OpenAPI states them. 2**53 - 1:
# the largest integer a JSON client in JavaScript (or any float-based validator) holds exactly,
# so the stated maximum means the same to every client (2**63 - 1 reads as 2**63 in a float).
LimitMinor = Annotated[StrictInt, Field(ge=0, le=2**53 - 1)] | None
LimitCount = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] | None


class CurrencyLimit(Body):
    currency: CurrencyCode
    per_transfer_max_minor: LimitMinor = None
    daily_max_minor: LimitMinor = None
    hourly_count_max: LimitCount = None


class LimitsIn(Body):
    limits: Annotated[list[CurrencyLimit], Field(max_length=50)]


class Limits(BaseModel):
    limits: list[CurrencyLimit]
    version: int
    updated_at: datetime | None = None
    updated_by: str | None = None


class CustomerLimit(BaseModel):
    """One currency's limits for the customer and what is left of them now."""

    currency: str
    per_transfer_max_minor: int | None
    daily_max_minor: int | None
    hourly_count_max: int | None
    daily_used_minor: int
    daily_remaining_minor: int | None
    hourly_count_used: int
    hourly_remaining_count: int | None
    # Where the daily total starts again: the next midnight UTC.
    day_resets_at: datetime


class CustomerLimits(BaseModel):
    limits: list[CustomerLimit]


RiskAction = Literal["review", "block"]


class RiskRule(BaseModel):
    name: str
    enabled: bool
    action: RiskAction
    params: dict[str, Any]
    version: int
    updated_at: datetime
    updated_by: str | None


class RiskRuleIn(Body):
    enabled: bool
    action: RiskAction
    params: dict[str, Any]
