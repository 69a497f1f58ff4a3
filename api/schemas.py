"""Request and response bodies of the HTTP API (pydantic), separate from storage rows.

Field names and shapes follow the contract (docs/api.md). Money is `amount_minor` (int) plus a
currency code; FX rates are decimal strings; ids are UUIDs; times are RFC 3339 UTC.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)

T = TypeVar("T")

# RFC 3339 date-time, as the OpenAPI's `format: date-time` promises: seconds and an offset
# required. Pydantic alone would also take "0.5" (a Unix time) or a naive time.
_RFC3339: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _instant_text(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-12-03T10:15:30Z")
    return value


def _instant_or_date_text(value: Any) -> Any:
    if isinstance(value, str) and not (_RFC3339.match(value) or _DATE.match(value)):
        raise ValueError("must be an RFC 3339 date-time with an offset, or a date (YYYY-MM-DD, UTC)")
    return value


Instant = Annotated[datetime, BeforeValidator(_instant_text)]
InstantOrDate = Annotated[
    datetime,
    BeforeValidator(_instant_or_date_text),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}),
]

# The pattern spells its whitespace out: `\s` means different sets in ECMA (the OpenAPI's
# reading), Python and Rust (pydantic's), and a client generator must accept exactly what we do.
# One trailing newline is dropped first: Python's `$` matches before it, so a generator in
# Python produces "a@b\n" from this very pattern.
Email = Annotated[
    str,
    Field(min_length=3, max_length=254, pattern=r"^[^@ \t\n\r\x0b\x0c\x00]+@[^@ \t\n\r\x0b\x0c\x00]+$"),
    BeforeValidator(lambda v: v[:-1] if isinstance(v, str) and v.endswith("\n") else v),
]
Password = Annotated[str, Field(min_length=8, max_length=256)]
CurrencyCode = Annotated[str, Field(min_length=3, max_length=3, examples=["USD"])]
# Strict: 10.0 or "10" is refused (a float never becomes money). The problem handler turns a
# failure on this field into the contract's `invalid_amount` instead of `validation_error`.
AmountMinor = Annotated[StrictInt, Field(gt=0, le=2**63 - 1, examples=[1000])]


def _json_integer(value: Any) -> Any:
    """JSON Schema's `integer` includes 168.0; a count that is not money takes it (money never
    does: `AmountMinor` refuses every float)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Role = Literal["operator", "approver", "auditor", "admin"]
AccountStatus = Literal["active", "frozen", "closed"]
ScaExemption = Literal["trusted_payee", "recurring"]
TransferStatus = Literal[
    "pending_otp", "processing", "in_review", "posted", "failed", "cancelled", "expired", "rejected", "reversed"
]
# The list filters' `status` query parameter (both realms).
StatusFilter = Literal[
    "pending_otp", "processing", "in_review", "posted", "failed", "cancelled", "expired", "rejected", "reversed"
]


def _no_nul_in_strings(schema: dict[str, Any]) -> None:
    """Say in the schema what `_storable_text` enforces: no string field may hold NUL."""
    for prop in schema.get("properties", {}).values():
        for option in [prop, *prop.get("anyOf", [])]:
            if option.get("type") == "string" and "pattern" not in option and "format" not in option:
                option["pattern"] = "^[^\\x00]*$"


class Body(BaseModel):
    """Request bodies refuse unknown fields: a typo must not be silently ignored on money."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_nul_in_strings)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8:
        # refuse both here (422) rather than fail later in the database (500).
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError("must be valid Unicode text") from err
        return value


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class ProblemDoc(BaseModel):
    """RFC 9457 problem document (extra members such as `attempts_left` or `errors` may follow)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str
    title: str
    status: int
    detail: str
    code: str


# -- auth and people -----------------------------------------------------------------------


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class SignupIn(Body):
    email: Email
    password: Password
    full_name: Annotated[str, Field(min_length=1, max_length=200)]


class Customer(BaseModel):
    customer_id: UUID
    email: str
    full_name: str
    created_at: datetime


class StaffIn(Body):
    email: Email
    password: Password
    role: Role


class Staff(BaseModel):
    staff_id: UUID
    email: str
    role: Role
    created_at: datetime


# -- accounts --------------------------------------------------------------------------------


class Balance(BaseModel):
    account_id: UUID
    currency: str
    ledger_minor: int
    available_minor: int
    held_minor: int
    as_of: datetime


class AccountIn(Body):
    currency: Annotated[str, Field(max_length=16, examples=["USD"])]
    label: Annotated[str | None, Field(max_length=100)] = None


class Account(BaseModel):
    id: UUID
    # LF + 2 check digits + 16 digits; portals print it in groups of four.
    account_number: str
    customer_id: UUID | None
    currency: str
    label: str | None
    status: AccountStatus
    balance: Balance
    version: int
    created_at: datetime


class AccountLookup(BaseModel):
    account_number: str
    # Initials only ("A. M."): enough to recognise a payee, too little to harvest names.
    holder_name_hint: str


# A payee's name is bound into its OTP hash with a control-character separator, and printed in
# messages: no control characters.
PayeeName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class PayeeIn(Body):
    account_number: Annotated[str, Field(min_length=1, max_length=64, examples=["LF77 1000 0000 0000 0001"])]
    name: PayeeName


class Payee(BaseModel):
    id: UUID
    account_number: str
    name: str
    status: Literal["pending_otp", "trusted", "deleted"]
    created_at: datetime


class AccountPatch(Body):
    status: AccountStatus


class CustomerDetail(Customer):
    accounts: list[Account]


class Entry(BaseModel):
    id: UUID
    transaction_id: UUID
    transfer_id: UUID | None
    direction: Literal["debit", "credit"]
    amount_minor: int
    currency: str
    balance_after_minor: int
    posted_at: datetime
    description: str | None


# -- transfers -------------------------------------------------------------------------------


class TransferIn(Body):
    """Exactly one of destination_account_id, destination_account_number (spaces ignored)
    and payee_id names where the money goes."""

    source_account_id: UUID
    destination_account_id: UUID | None = None
    destination_account_number: Annotated[str | None, Field(max_length=64, examples=["LF77 1000 0000 0000 0001"])] = (
        None
    )
    payee_id: UUID | None = None
    amount_minor: AmountMinor
    currency: CurrencyCode
    description: Annotated[str | None, Field(max_length=200)] = None

    @property
    def destinations_given(self) -> int:
        """How many of the three destination fields are set (the route wants exactly one and
        answers 422 `invalid_destination` otherwise: a business rule the schema leaves out,
        because a oneOf over optional fields leaves generated clients nothing to fill in)."""
        given = [self.destination_account_id, self.destination_account_number, self.payee_id]
        return sum(v is not None for v in given)


class Fx(BaseModel):
    quote_id: str | None
    rate: str
    spread_bps: int
    source_currency: str
    destination_currency: str


class Otp(BaseModel):
    channel: Literal["in_app"] = "in_app"
    expires_at: datetime | None
    attempts_left: int


class Leg(BaseModel):
    account_id: UUID
    direction: Literal["debit", "credit"]
    amount_minor: int
    currency: str


class Risk(BaseModel):
    """A transfer's risk assessment: the verdict the workflow acted on when it did not simply
    go on (`review`, `block`, or `review` for `risk_unavailable`), else the consumer's."""

    verdict: Literal["allow", "review", "block"]
    reasons: list[str]
    assessed_at: datetime


class Transfer(BaseModel):
    id: UUID
    status: TransferStatus
    source_account_id: UUID
    destination_account_id: UUID
    amount_minor: int
    currency: str
    source_amount_minor: int | None
    destination_amount_minor: int | None
    fx: Fx | None
    otp: Otp | None
    failure_reason: str | None
    legs: list[Leg]
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    risk: Risk | None = None
    # Why no OTP was asked (PSD2 RTS Art. 13 trusted payee, Art. 14 recurring); null when
    # the customer approved it with a code.
    sca_exemption: ScaExemption | None = None
    payee_id: UUID | None = None
    standing_order_id: UUID | None = None
    # What people read (portals, statements): the accounts' numbers.
    source_account_number: str | None = None
    destination_account_number: str | None = None


Frequency = Literal["daily", "weekly", "monthly"]


class StandingOrderIn(Body):
    source_account_id: UUID
    payee_id: UUID
    amount_minor: AmountMinor
    currency: CurrencyCode
    frequency: Frequency
    start_date: date
    end_date: date | None = None
    description: Annotated[str | None, Field(max_length=200)] = None

    @model_validator(mode="after")
    def _dates(self) -> StandingOrderIn:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class StandingOrderRun(BaseModel):
    scheduled_for: date
    transfer_id: UUID
    # The transfer's status; `failed` with failure_reason when it was refused before a
    # transfer existed (e.g. insufficient_funds); `started` while it is being created.
    status: str
    failure_reason: str | None


class StandingOrder(BaseModel):
    id: UUID
    status: Literal["pending_otp", "active", "paused", "cancelled"]
    source_account_id: UUID
    payee_id: UUID
    amount_minor: int
    currency: str
    frequency: Frequency
    start_date: date
    end_date: date | None
    description: str | None
    next_run_at: datetime | None
    runs: list[StandingOrderRun]
    # The Temporal Schedule that runs it (Web UI).
    schedule_id: str
    created_at: datetime


class OpsStandingOrder(StandingOrder):
    customer_id: UUID


class OtpIn(Body):
    # Not constrained to six digits here: a malformed code is simply a wrong code (it costs an
    # attempt), and the schema must not tell a guesser which shapes are worth trying.
    code: Annotated[str, Field(min_length=1, max_length=32)]


class OutboxEvent(BaseModel):
    id: UUID
    type: str
    topic: str
    created_at: datetime
    published_at: datetime | None


class OpsTransfer(Transfer):
    customer_id: UUID
    events: list[OutboxEvent]
    temporal_ui_url: str


class ReviewIn(Body):
    reason: Annotated[str, Field(max_length=500)] = ""


# -- deposits, notifications, FX, audit --------------------------------------------------------


class DepositIn(Body):
    account_id: UUID
    amount_minor: AmountMinor
    currency: CurrencyCode
    external_reference: Annotated[str, Field(min_length=1, max_length=200)]


class Deposit(BaseModel):
    transaction_id: UUID
    account_id: UUID
    amount_minor: int
    currency: str
    posted_at: datetime


class Notification(BaseModel):
    id: UUID
    channel: str
    subject: str | None
    body: str
    transfer_id: UUID | None
    created_at: datetime


class Quote(BaseModel):
    """An indicative quote: not stored and not binding (the transfer takes a firm one)."""

    source_currency: str
    destination_currency: str
    rate: str
    spread_bps: int
    source_amount_minor: int
    spread_minor: int
    destination_amount_minor: int
    indicative: Literal[True] = True
    as_of: datetime


class FxRateIn(Body):
    rate: Annotated[str, Field(max_length=40, pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["0.9182"])]
    spread_bps: Annotated[StrictInt, Field(ge=0, le=9999), BeforeValidator(_json_integer)]


class FxRate(BaseModel):
    base: str
    quote: str
    rate: str
    spread_bps: int
    updated_at: datetime
    updated_by: str
    version: int


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_realm: str
    actor_id: str | None
    actor_email: str | None
    action: str
    outcome: Literal["ok", "denied"]
    target_type: str | None
    target_id: str | None
    before: Any
    after: Any
    detail: Any
    ip: str | None
    prev_hash: str
    hash: str


class DeadLetter(BaseModel):
    """A consumed event a consumer parked (its body is not shown: it may hold a passcode)."""

    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    event_id: UUID | None
    event_type: str | None
    key: str | None
    error: str
    failed_at: datetime


class RelayStatus(BaseModel):
    """Where the outbox relay stands (its cursor, migration 0009): what waits, what went out
    last, and the failure it is waiting out (Kafka down), if any."""

    waiting: int  # outbox rows not published yet, parked ones excluded
    parked: int  # rows set aside for a person (see /ops/v1/outbox/parked)
    last_published_at: datetime | None  # when the last page was acknowledged and recorded
    last_page_events: int | None
    failures: int  # failed pages since the database was created
    last_error: str | None  # cleared by the next page published
    last_error_at: datetime | None


class ParkedEvent(BaseModel):
    """An outbox row the relay parked instead of publishing (its payload is not shown)."""

    id: UUID
    seq: int
    topic: str
    key: str
    type: str
    created_at: datetime
    attempts: int
    last_error: str | None
