"""The Temporal Schedule that runs reconciliation (daily by default).

`ensure_schedule` is called at every worker start: it creates the schedule, or brings an
existing one in step with this code (interval, task queue, policy) while keeping what an
operator set by hand (paused, note). Overlapping runs are skipped: a run still going when the
next one is due means the database is slow, and a second full scan would not help.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Final

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from recon.io import ReconciliationPolicy

SCHEDULE_ID: Final = "reconciliation-daily"
DAILY: Final = timedelta(days=1)
# 02:00 UTC: after the day's cut-off, before the business day in Europe.
DAILY_OFFSET: Final = timedelta(hours=2)
# Each scheduled action's workflow id is this plus the scheduled time (Temporal appends it).
SCHEDULED_WORKFLOW_ID: Final = "reconciliation-scheduled"


def reconciliation_schedule(
    task_queue: str,
    *,
    every: timedelta = DAILY,
    offset: timedelta | None = DAILY_OFFSET,
    policy: ReconciliationPolicy | None = None,
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ScheduledReconciliation",
            policy or ReconciliationPolicy(),
            id=SCHEDULED_WORKFLOW_ID,
            task_queue=task_queue,
            # A run that has not finished by then is stuck; the next one starts fresh.
            execution_timeout=min(every, timedelta(hours=6)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every, offset=offset)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=1)),
        state=ScheduleState(note="Ledgerflow reconciliation: ledger, holds, outbox, consumers, stuck transfers"),
    )


async def ensure_schedule(
    client: Client,
    task_queue: str,
    *,
    schedule_id: str = SCHEDULE_ID,
    every: timedelta = DAILY,
    offset: timedelta | None = DAILY_OFFSET,
    policy: ReconciliationPolicy | None = None,
) -> ScheduleHandle:
    """Create the schedule, or update it to this definition; idempotent.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    schedule = reconciliation_schedule(task_queue, every=every, offset=offset, policy=policy)
    return await upsert_schedule(client, schedule_id, schedule)


async def upsert_schedule(client: Client, schedule_id: str, schedule: Schedule) -> ScheduleHandle:
    """Create `schedule_id` as `schedule`, or bring the existing one to it while keeping its
    state (an operator's pause and note); idempotent. Shared by every schedule a worker ensures.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    try:
        return await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # The operator's pause (and its note) survive a worker restart.
        return ScheduleUpdate(dataclasses.replace(schedule, state=current.description.schedule.state))

    await handle.update(keep_state)
    return handle
