"""Each standing order is the Temporal Schedule `standing-order-<id>` (what staff see in the Web UI).

The database is the authority on an order's state: every run checks it before it moves money
(activities/standing_order.py), so a schedule that lags behind a pause or a cancellation
makes no transfer. The schedule only decides when runs are attempted: pausing it saves the
attempts, and cancelling deletes it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from contracts.standing_order import StandingOrderRunInput
from ledger import account_numbers
from ledger.standing_orders import Frequency, StandingOrder, schedule_id

# A run's workflow id is this plus the scheduled time (Temporal appends it).
RUN_WORKFLOW_PREFIX = "standing-order-run-"


def calendar(order: StandingOrder, hour_utc: int) -> ScheduleCalendarSpec:
    """When runs are attempted. Monthly from the 29th, 30th or 31st fires on the 28th to the
    31st: the run takes only the order's day, or the month's last day when the month is
    shorter (ledger.standing_orders.is_run_date), so the 31st runs on 30 April and 28 February.
    """
    every_day = ScheduleCalendarSpec(
        hour=[ScheduleRange(hour_utc)], minute=[ScheduleRange(0)], second=[ScheduleRange(0)], comment=order.frequency
    )
    if order.frequency is Frequency.WEEKLY:
        # Temporal counts weekdays from Sunday = 0; isoweekday() from Monday = 1 to Sunday = 7.
        return dataclasses.replace(every_day, day_of_week=[ScheduleRange(order.start_date.isoweekday() % 7)])
    if order.frequency is Frequency.MONTHLY:
        days = ScheduleRange(order.start_date.day) if order.start_date.day <= 28 else ScheduleRange(28, 31)
        return dataclasses.replace(every_day, day_of_month=[days])
    return every_day


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def schedule_of(order: StandingOrder, payee_account_number: str, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "StandingOrderRun",
            StandingOrderRunInput(standing_order_id=str(order.id)),
            id=f"{RUN_WORKFLOW_PREFIX}{order.id}",
            task_queue=settings.temporal_task_queue,
            # A run only claims its date and starts the transfer: minutes are plenty.
            execution_timeout=timedelta(hours=1),
        ),
        spec=ScheduleSpec(
            calendars=[calendar(order, settings.standing_order_run_hour_utc)],
            start_at=_midnight(order.start_date),
            end_at=_midnight(order.end_date + timedelta(days=1)) if order.end_date else None,
            time_zone_name="UTC",
        ),
        # Overlaps are harmless (one transfer id per date), so none is skipped for being late.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.ALLOW_ALL,
            catchup_window=timedelta(seconds=settings.standing_order_catchup_s),
        ),
        state=ScheduleState(
            note=(
                f"Standing order {order.id}: {order.amount_minor} {order.currency} (minor units) "
                f"{order.frequency.value} to {account_numbers.grouped(payee_account_number)}"
            )
        ),
    )


def memo_of(order: StandingOrder, payee_account_number: str) -> dict[str, object]:
    """What staff read in the Web UI (payloads are encrypted by the codec, as every memo)."""
    return {
        "standing_order_id": str(order.id),
        "customer_id": str(order.customer_id),
        "source_account_id": str(order.source_account_id),
        "payee_account_number": payee_account_number,
        "amount": f"{order.amount_minor} {order.currency} (minor units)",
        "frequency": order.frequency.value,
        "start_date": order.start_date.isoformat(),
        "end_date": order.end_date.isoformat() if order.end_date else None,
    }


async def ensure_running(client: Client, order: StandingOrder, payee_account_number: str, settings: Settings) -> None:
    """Create the order's schedule, or unpause the existing one (idempotent)."""
    try:
        await client.create_schedule(
            schedule_id(order.id),
            schedule_of(order, payee_account_number, settings),
            memo=memo_of(order, payee_account_number),
        )
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id(order.id)).unpause(note="resumed by the customer")


async def pause(client: Client, order: StandingOrder) -> None:
    try:
        await client.get_schedule_handle(schedule_id(order.id)).pause(note="paused by the customer")
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise


async def delete(client: Client, order: StandingOrder) -> None:
    try:
        await client.get_schedule_handle(schedule_id(order.id)).delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
