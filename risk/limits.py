"""Transfer limits per customer and currency: per-transfer maximum, daily total, hourly count.

The check runs in the transaction that places the hold (`check_within_limits`, handed to the
ledger's `create_transfer` as its precheck), after a transaction-scoped advisory lock on
(customer, currency). Concurrent transfers of one customer in one currency therefore pass
the check one at a time, each seeing every hold committed before it: they can never jointly
pass a limit (DESIGN invariant 11). Other customers and currencies do not wait.

What counts: the customer's transfers in that source currency whose hold is pending or
posted, that is every transfer not failed, cancelled, expired or rejected (those gave their
hold back). Amounts are what leaves the source account (`source_amount_minor`, what is held).
"Daily" is the UTC calendar day of the transfer's creation; "hourly" is the last 3,600
seconds (a rolling window, so a burst cannot straddle an hour boundary to get twice the count).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from ledger.db import Conn
from ledger.errors import LedgerError, VersionConflict
from ledger.money import validate_currency
from ledger.states import TransferStatus as S

DEFAULT_SCOPE: Final = "default"
# Statuses whose hold went back: they no longer count against a limit.
RELEASED: Final = (S.FAILED, S.CANCELLED, S.EXPIRED, S.REJECTED)
LIMIT_FIELDS: Final = ("per_transfer_max_minor", "daily_max_minor", "hourly_count_max")


class LimitExceeded(LedgerError):
    """The transfer would pass one of the customer's limits.

    `limit` names the field of the limit (`per_transfer_max_minor`, `daily_max_minor`,
    `hourly_count_max`); `remaining` is what is left (minor units, or a count for the hourly one).
    """

    code = "limit_exceeded"

    def __init__(self, limit: str, remaining: int, currency: str) -> None:
        super().__init__(f"the transfer exceeds the {limit} limit in {currency} ({remaining} left)")
        self.limit = limit
        self.remaining = remaining
        self.currency = currency

    @property
    def details(self) -> dict[str, Any]:
        """The problem's extra members (docs/api.md: `limit` and `remaining_minor` or `remaining_count`)."""
        key = "remaining_count" if self.limit == "hourly_count_max" else "remaining_minor"
        return {"limit": self.limit, key: self.remaining, "currency": self.currency}


class InvalidLimits(LedgerError, ValueError):
    code = "invalid_limits"


class LimitSetNotFound(LedgerError):
    code = "limit_set_not_found"


@dataclass(frozen=True, slots=True)
class CurrencyLimits:
    currency: str
    per_transfer_max_minor: int | None = None
    daily_max_minor: int | None = None
    hourly_count_max: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "per_transfer_max_minor": self.per_transfer_max_minor,
            "daily_max_minor": self.daily_max_minor,
            "hourly_count_max": self.hourly_count_max,
        }


@dataclass(frozen=True, slots=True)
class LimitSet:
    scope: str
    limits: tuple[CurrencyLimits, ...]
    version: int
    updated_at: datetime
    updated_by: str | None

    def for_currency(self, currency: str) -> CurrencyLimits | None:
        return next((lim for lim in self.limits if lim.currency == currency), None)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a customer used today (UTC) and in the last hour, in one currency."""

    currency: str
    daily_used_minor: int
    hourly_count: int


def _limits_from_json(raw: Any) -> tuple[CurrencyLimits, ...]:
    items = raw if isinstance(raw, list) else json.loads(raw)
    return tuple(
        CurrencyLimits(
            currency=str(item["currency"]),
            per_transfer_max_minor=item.get("per_transfer_max_minor"),
            daily_max_minor=item.get("daily_max_minor"),
            hourly_count_max=item.get("hourly_count_max"),
        )
        for item in items
    )


def validate_limits(limits: list[CurrencyLimits]) -> tuple[CurrencyLimits, ...]:
    """Raises InvalidLimits: a currency twice or unknown, or a limit that is not a non-negative int."""
    seen: set[str] = set()
    for lim in limits:
        try:
            validate_currency(lim.currency)
        except LedgerError as err:
            raise InvalidLimits(f"unsupported currency {lim.currency!r}") from err
        if lim.currency in seen:
            raise InvalidLimits(f"currency {lim.currency} is listed twice")
        seen.add(lim.currency)
        for name in LIMIT_FIELDS:
            value = getattr(lim, name)
            # bool is an int in Python: refuse it like any other non-integer.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidLimits(f"{name} of {lim.currency} must be a non-negative integer or null")
    return tuple(sorted(limits, key=lambda lim: lim.currency))


def scope_of(customer_id: UUID | None) -> str:
    return DEFAULT_SCOPE if customer_id is None else str(customer_id)


def get_limit_set(conn: Conn, scope: str) -> LimitSet | None:
    row = conn.execute(
        "SELECT scope, limits, version, updated_at, updated_by FROM limit_sets WHERE scope = %s", (scope,)
    ).fetchone()
    if row is None:
        return None
    return LimitSet(row[0], _limits_from_json(row[1]), int(row[2]), row[3], row[4])


def put_limit_set(
    conn: Conn, scope: str, limits: list[CurrencyLimits], *, expected_version: int | None, updated_by: str
) -> LimitSet:
    """Replace a scope's limits: compare-and-set on `expected_version` (None: create it, or
    for the defaults, no check).

    Raises: InvalidLimits, VersionConflict (stale version, or the set exists when None was given).
    """
    clean = validate_limits(limits)
    payload = json.dumps([lim.as_json() for lim in clean])
    if expected_version is None:
        row = conn.execute(
            "INSERT INTO limit_sets (scope, limits, updated_by) VALUES (%s, %s::jsonb, %s) "
            "ON CONFLICT (scope) DO NOTHING RETURNING scope, limits, version, updated_at, updated_by",
            (scope, payload, updated_by),
        ).fetchone()
    else:
        row = conn.execute(
            "UPDATE limit_sets SET limits = %s::jsonb, version = version + 1, updated_at = now(), updated_by = %s "
            "WHERE scope = %s AND version = %s RETURNING scope, limits, version, updated_at, updated_by",
            (payload, updated_by, scope, expected_version),
        ).fetchone()
    if row is None:
        current = get_limit_set(conn, scope)
        raise VersionConflict("limit_set", scope, expected_version or 0, current.version if current else None)
    return LimitSet(row[0], _limits_from_json(row[1]), int(row[2]), row[3], row[4])


def effective_limits(conn: Conn, customer_id: UUID, currency: str) -> CurrencyLimits | None:
    """The customer's own entry for `currency`, else the default entry, else None (no limit)."""
    rows = conn.execute(
        "SELECT scope, elem FROM limit_sets, jsonb_array_elements(limits) AS elem "
        "WHERE scope IN (%s, 'default') AND elem ->> 'currency' = %s",
        (str(customer_id), currency),
    ).fetchall()
    by_scope = {scope: _limits_from_json([elem])[0] for scope, elem in rows}
    return by_scope.get(str(customer_id)) or by_scope.get(DEFAULT_SCOPE)


def day_start(now: datetime) -> datetime:
    """Midnight UTC of `now`'s UTC day: where the daily total starts."""
    utc = now.astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


def usage(conn: Conn, customer_id: UUID, currency: str, now: datetime) -> Usage:
    """What counts against the limits at `now` (see the module docstring)."""
    start = day_start(now)
    hour_ago = now - timedelta(hours=1)
    row = conn.execute(
        "SELECT coalesce(sum(source_amount_minor) FILTER (WHERE created_at >= %(day)s), 0), "
        "       count(*) FILTER (WHERE created_at > %(hour)s) "
        "FROM transfers WHERE customer_id = %(customer)s AND source_currency = %(currency)s "
        "AND created_at >= least(%(day)s, %(hour)s) AND status <> ALL(%(released)s)",
        {"day": start, "hour": hour_ago, "customer": customer_id, "currency": currency, "released": list(RELEASED)},
    ).fetchone()
    assert row is not None
    return Usage(currency=currency, daily_used_minor=int(row[0]), hourly_count=int(row[1]))


def lock_key(customer_id: UUID, currency: str) -> str:
    return f"limits:{customer_id}:{currency}"


def check_within_limits(conn: Conn, customer_id: UUID, currency: str, amount_minor: int) -> None:
    """Serialise on (customer, currency), then refuse a transfer of `amount_minor` (what leaves
    the source) that would pass a limit. Must run in the transaction that places the hold.

    Raises: LimitExceeded.
    """
    limits = effective_limits(conn, customer_id, currency)
    if limits is None or all(getattr(limits, name) is None for name in LIMIT_FIELDS):
        return
    if limits.per_transfer_max_minor is not None and amount_minor > limits.per_transfer_max_minor:
        raise LimitExceeded("per_transfer_max_minor", limits.per_transfer_max_minor, currency)
    if limits.daily_max_minor is None and limits.hourly_count_max is None:
        return
    # Held until commit or rollback: the next transfer of this customer in this currency reads
    # the usage only after this one's hold is committed (or gone).
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(customer_id, currency),))
    # The transaction's time: the same one that stamps this transfer's created_at, so the
    # transfer counts in the UTC day it is recorded in.
    now_row = conn.execute("SELECT now()").fetchone()
    assert now_row is not None
    used = usage(conn, customer_id, currency, now_row[0])
    if limits.daily_max_minor is not None and used.daily_used_minor + amount_minor > limits.daily_max_minor:
        raise LimitExceeded("daily_max_minor", max(0, limits.daily_max_minor - used.daily_used_minor), currency)
    if limits.hourly_count_max is not None and used.hourly_count + 1 > limits.hourly_count_max:
        raise LimitExceeded("hourly_count_max", max(0, limits.hourly_count_max - used.hourly_count), currency)
