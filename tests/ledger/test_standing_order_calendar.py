"""The standing-order calendar (pure): which dates run, the next run, the derived transfer id,
and the schedule spec that fires on them (monthly on the 31st runs on the month's last day)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from temporalio.client import ScheduleRange

from api.standing_order_schedule import calendar
from config.settings import Settings
from ledger.standing_orders import (
    Frequency,
    OrderStatus,
    StandingOrder,
    is_run_date,
    next_run_on,
    run_transfer_id,
)


def runs(frequency: Frequency, start: date, end: date | None, first: date, last: date) -> list[date]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if is_run_date(frequency, start, end, d)]


def test_monthly_on_the_31st_runs_on_each_months_last_day() -> None:
    got = runs(Frequency.MONTHLY, date(2027, 1, 31), None, date(2027, 1, 1), date(2027, 12, 31))
    assert got == [
        date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30), date(2027, 5, 31),
        date(2027, 6, 30), date(2027, 7, 31), date(2027, 8, 31), date(2027, 9, 30), date(2027, 10, 31),
        date(2027, 11, 30), date(2027, 12, 31),
    ]  # fmt: skip
    # A leap year's February has its 29th; an order on the 30th runs then too.
    assert runs(Frequency.MONTHLY, date(2028, 1, 30), None, date(2028, 2, 1), date(2028, 3, 31)) == [
        date(2028, 2, 29),
        date(2028, 3, 30),
    ]


def test_daily_weekly_and_the_dates_bounds() -> None:
    start, end = date(2027, 3, 3), date(2027, 3, 24)
    assert runs(Frequency.WEEKLY, start, end, date(2027, 3, 1), date(2027, 4, 30)) == [
        date(2027, 3, 3), date(2027, 3, 10), date(2027, 3, 17), date(2027, 3, 24),
    ]  # fmt: skip
    assert runs(Frequency.DAILY, start, date(2027, 3, 5), date(2027, 3, 1), date(2027, 3, 9)) == [
        date(2027, 3, 3), date(2027, 3, 4), date(2027, 3, 5),
    ]  # fmt: skip
    assert next_run_on(Frequency.MONTHLY, date(2027, 1, 31), None, date(2027, 2, 1)) == date(2027, 2, 28)
    assert next_run_on(Frequency.DAILY, start, date(2027, 3, 5), date(2027, 3, 6)) is None


def test_one_transfer_id_per_order_and_date() -> None:
    order = uuid.uuid4()
    assert run_transfer_id(order, date(2027, 1, 31)) == run_transfer_id(order, date(2027, 1, 31))
    assert run_transfer_id(order, date(2027, 1, 31)) != run_transfer_id(order, date(2027, 2, 28))
    assert run_transfer_id(order, date(2027, 1, 31)) != run_transfer_id(uuid.uuid4(), date(2027, 1, 31))


def order(frequency: Frequency, start: date) -> StandingOrder:
    now = datetime.now(UTC)
    return StandingOrder(
        uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 100, "USD", frequency, start, None, None,
        OrderStatus.ACTIVE, 1, now, now,
    )  # fmt: skip


def test_schedule_fires_on_every_possible_run_date() -> None:
    hour = Settings().standing_order_run_hour_utc
    monthly_31 = calendar(order(Frequency.MONTHLY, date(2027, 1, 31)), hour)
    assert list(monthly_31.day_of_month) == [ScheduleRange(28, 31)]
    assert list(monthly_31.hour) == [ScheduleRange(hour)]
    assert list(calendar(order(Frequency.MONTHLY, date(2027, 1, 15)), hour).day_of_month) == [ScheduleRange(15)]
    # 2027-03-07 is a Sunday: Temporal's weekday 0.
    assert list(calendar(order(Frequency.WEEKLY, date(2027, 3, 7)), hour).day_of_week) == [ScheduleRange(0)]
    assert list(calendar(order(Frequency.WEEKLY, date(2027, 3, 3)), hour).day_of_week) == [ScheduleRange(3)]
