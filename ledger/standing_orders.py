"""Standing orders (PSD2 RTS Art. 14): a recurring transfer to a trusted payee, approved once.

    pending_otp -> active <-> paused;  pending_otp | active | paused -> cancelled

Each run has the transfer id `run_transfer_id(order, date)`, and `standing_order_runs` has
one row per order and date (its primary key): however often the schedule fires for a date
(replayed, triggered, caught up, overlapping), one transfer at most (invariant 12).

The calendar rules (`is_run_date`, `next_run_on`) are pure: monthly on the 31st runs on the
last day of shorter months. Storage functions run inside the caller's transaction.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from ledger.db import Conn
from ledger.errors import LedgerError
from ledger.ids import derived_id
from ledger.money import Money
from ledger.outbox import insert_events, make_event
from ledger.states import Frequency as Frequency  # re-exported: the enum's old home
from ledger.states import StandingOrderStatus

OrderStatus = StandingOrderStatus  # its name before ledger.states


class StandingOrderNotFound(LedgerError):
    code = "standing_order_not_found"


class InvalidState(LedgerError):
    code = "invalid_state"


class StandingOrderNotActive(LedgerError):
    """A run asked for an order that is not active, or not as the run describes it."""

    code = "standing_order_not_active"


@dataclass(frozen=True, slots=True)
class StandingOrder:
    id: UUID
    customer_id: UUID
    source_account_id: UUID
    payee_id: UUID
    amount_minor: int
    currency: str
    frequency: Frequency
    start_date: date
    end_date: date | None
    description: str | None
    status: OrderStatus
    version: int
    created_at: datetime
    updated_at: datetime


COLUMNS: Final = ", ".join(f.name for f in dataclasses.fields(StandingOrder))


def from_row(row: Sequence[Any]) -> StandingOrder:
    values = list(row)
    values[6] = Frequency(values[6])
    values[10] = OrderStatus(values[10])
    return StandingOrder(*values)


# -- the calendar (pure) ----------------------------------------------------------------------


def last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def is_run_date(frequency: Frequency, start: date, end: date | None, day: date) -> bool:
    """Whether the order runs on `day`: daily; weekly on the start's weekday; monthly on the
    start's day of month, or the month's last day when the month is shorter."""
    if day < start or (end is not None and day > end):
        return False
    if frequency is Frequency.DAILY:
        return True
    if frequency is Frequency.WEEKLY:
        return (day - start).days % 7 == 0
    return day.day == min(start.day, last_day(day.year, day.month))


def next_run_on(frequency: Frequency, start: date, end: date | None, today: date) -> date | None:
    """The first run date on or after `today` (None when the order has ended)."""
    day = max(start, today)
    # A monthly order runs at least once every 31 days.
    for _ in range(32):
        if end is not None and day > end:
            return None
        if is_run_date(frequency, start, end, day):
            return day
        day += timedelta(days=1)
    return None  # pragma: no cover - unreachable for the three frequencies


def run_transfer_id(order_id: UUID, scheduled_for: date) -> UUID:
    """The transfer id of the order's run on `scheduled_for`: the same in every process."""
    return derived_id("standing-order-run", order_id, scheduled_for.isoformat())


def schedule_id(order_id: UUID) -> str:
    return f"standing-order-{order_id}"


# -- storage ----------------------------------------------------------------------------------


def create(
    conn: Conn,
    *,
    order_id: UUID,
    customer_id: UUID,
    source_account_id: UUID,
    payee_id: UUID,
    amount_minor: int,
    currency: str,
    frequency: Frequency,
    start_date: date,
    end_date: date | None,
    description: str | None,
) -> StandingOrder:
    row = conn.execute(
        "INSERT INTO standing_orders (id, customer_id, source_account_id, payee_id, amount_minor, currency, "
        "frequency, start_date, end_date, description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"RETURNING {COLUMNS}",
        (
            order_id,
            customer_id,
            source_account_id,
            payee_id,
            amount_minor,
            currency,
            frequency.value,
            start_date,
            end_date,
            description,
        ),
    ).fetchone()
    assert row is not None
    return from_row(row)


def get(conn: Conn, order_id: UUID, *, lock: str = "") -> StandingOrder:
    """`lock`: "", "FOR UPDATE" or "FOR SHARE". Raises: StandingOrderNotFound."""
    assert lock in ("", "FOR UPDATE", "FOR SHARE")
    row = conn.execute(f"SELECT {COLUMNS} FROM standing_orders WHERE id = %s {lock}", (order_id,)).fetchone()
    if row is None:
        raise StandingOrderNotFound(f"standing order not found: {order_id}")
    return from_row(row)


def list_for(conn: Conn, customer_id: UUID) -> list[StandingOrder]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM standing_orders WHERE customer_id = %s ORDER BY created_at DESC, id DESC",
        (customer_id,),
    ).fetchall()
    return [from_row(r) for r in rows]


def list_recent(conn: Conn, limit: int) -> list[StandingOrder]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM standing_orders ORDER BY created_at DESC, id DESC LIMIT %s", (limit,)
    ).fetchall()
    return [from_row(r) for r in rows]


# What each action may start from.
ALLOWED_FROM: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    OrderStatus.ACTIVE: frozenset({OrderStatus.PENDING_OTP, OrderStatus.PAUSED}),
    OrderStatus.PAUSED: frozenset({OrderStatus.ACTIVE}),
    OrderStatus.CANCELLED: frozenset({OrderStatus.PENDING_OTP, OrderStatus.ACTIVE, OrderStatus.PAUSED}),
}


def check_transition(order: StandingOrder, to: OrderStatus) -> None:
    """Raises: InvalidState."""
    if order.status not in ALLOWED_FROM[to]:
        raise InvalidState(f"the standing order is {order.status.value}; it cannot become {to.value}")


def set_status(conn: Conn, order_id: UUID, to: OrderStatus) -> StandingOrder:
    """Compare-and-set under the row lock. Raises: StandingOrderNotFound, InvalidState."""
    current = get(conn, order_id, lock="FOR UPDATE")
    check_transition(current, to)
    row = conn.execute(
        f"UPDATE standing_orders SET status = %s, version = version + 1, updated_at = now() WHERE id = %s "
        f"RETURNING {COLUMNS}",
        (to.value, order_id),
    ).fetchone()
    assert row is not None
    return from_row(row)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What one run transfers (the order as it stands when the run begins)."""

    transfer_id: UUID
    order: StandingOrder
    destination_account_id: UUID


def begin_run(conn: Conn, order_id: UUID, scheduled_for: date) -> tuple[RunPlan | None, str]:
    """Claim the order's run for `scheduled_for`; (None, why) when there is nothing to run.

    The run row is inserted once (primary key: order and date); a second call for the same
    date returns the same plan, so the caller starts the same transfer id and Temporal's
    workflow-id rules keep it to one workflow.
    """
    order = get(conn, order_id, lock="FOR SHARE")
    if order.status is not OrderStatus.ACTIVE:
        return None, f"order {order.status.value}"
    if not is_run_date(order.frequency, order.start_date, order.end_date, scheduled_for):
        return None, "not a run date"
    row = conn.execute("SELECT account_id, status FROM payees WHERE id = %s", (order.payee_id,)).fetchone()
    if row is None or row[1] != "trusted":
        return None, "payee no longer trusted"
    transfer_id = run_transfer_id(order.id, scheduled_for)
    conn.execute(
        "INSERT INTO standing_order_runs (standing_order_id, scheduled_for, transfer_id) VALUES (%s, %s, %s) "
        "ON CONFLICT (standing_order_id, scheduled_for) DO NOTHING",
        (order.id, scheduled_for, transfer_id),
    )
    return RunPlan(transfer_id, order, row[0]), ""


def check_run_request(
    conn: Conn,
    *,
    order_id: UUID,
    customer_id: UUID,
    source_account_id: UUID,
    destination_account_id: UUID,
    amount_minor: int,
    currency: str,
) -> None:
    """A transfer claiming to be this order's run must be what the customer approved.

    Raises: StandingOrderNotActive.
    """
    order = get(conn, order_id, lock="FOR SHARE")
    payee = conn.execute("SELECT account_id FROM payees WHERE id = %s", (order.payee_id,)).fetchone()
    approved = (order.customer_id, order.source_account_id, order.amount_minor, order.currency)
    if (
        order.status is not OrderStatus.ACTIVE
        or approved != (customer_id, source_account_id, amount_minor, currency)
        or payee is None
        or payee[0] != destination_account_id
    ):
        raise StandingOrderNotActive(f"standing order {order_id} does not authorise this transfer")


def record_run_failure(conn: Conn, *, order_id: UUID, scheduled_for: date, reason: str) -> bool:
    """Mark the run failed (before any transfer row existed) and tell the customer, once.

    Returns whether this call recorded it (False: already recorded by an earlier attempt).
    """
    row = conn.execute(
        "UPDATE standing_order_runs SET status = 'failed', failure_reason = %s, updated_at = now() "
        "WHERE standing_order_id = %s AND scheduled_for = %s AND status = 'started' "
        "RETURNING transfer_id",
        (reason, order_id, scheduled_for),
    ).fetchone()
    if row is None:
        return False
    order = get(conn, order_id)
    amount = Money(order.amount_minor, order.currency)
    why = "there were not enough funds" if reason == "insufficient_funds" else f"it was refused ({reason})"
    event = make_event(
        "notification.requested",
        business_id=row[0],
        key=order.customer_id,
        discriminators=("standing_order_run_failed",),
        data={
            "customer_id": order.customer_id,
            "channel": "in_app",
            "subject": f"Standing order payment of {amount} not made",
            "body": (
                f"Your standing order payment of {amount} due on {scheduled_for.isoformat()} was not made: "
                f"{why}. The standing order stays in place; the next payment is attempted as planned."
            ),
        },
    )
    insert_events(conn, [event])
    return True


@dataclass(frozen=True, slots=True)
class Run:
    scheduled_for: date
    transfer_id: UUID
    status: str  # the transfer's status, or the run's own ("failed", "started") without one
    failure_reason: str | None


def runs_of(conn: Conn, order_ids: Sequence[UUID]) -> dict[UUID, list[Run]]:
    """Each order's runs, newest first."""
    rows = conn.execute(
        "SELECT r.standing_order_id, r.scheduled_for, r.transfer_id, "
        "       COALESCE(t.status, r.status), COALESCE(t.failure_reason, r.failure_reason) "
        "FROM standing_order_runs r LEFT JOIN transfers t ON t.id = r.transfer_id "
        "WHERE r.standing_order_id = ANY(%s) ORDER BY r.scheduled_for DESC",
        (list(order_ids),),
    ).fetchall()
    out: dict[UUID, list[Run]] = {o: [] for o in order_ids}
    for r in rows:
        out[r[0]].append(Run(r[1], r[2], r[3], r[4]))
    return out
