"""The Temporal Schedule that runs the retention sweep (hourly by default).

Ensured at every worker start, like the reconciliation schedule (recon/schedule.py): created,
or brought in step with this code while keeping an operator's pause. Overlapping runs are
skipped: a sweep still going when the next is due will reach the same rows anyway.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)

from recon.retention import RetentionPolicy
from recon.retention_io import SweepInput
from recon.schedule import upsert_schedule

SCHEDULE_ID: Final = "retention-sweep"
# Each scheduled action's workflow id is this plus the scheduled time (Temporal appends it).
SCHEDULED_WORKFLOW_ID: Final = "retention-sweep-scheduled"


def retention_schedule(task_queue: str, *, every: timedelta, policy: RetentionPolicy) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "RetentionSweep",
            SweepInput(policy=policy),
            id=SCHEDULED_WORKFLOW_ID,
            task_queue=task_queue,
            # A sweep not done by the next one's time is stuck: the next starts afresh.
            execution_timeout=max(every, timedelta(minutes=10)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(minutes=10)),
        state=ScheduleState(note="Ledgerflow retention sweep: published outbox, dedupe rows, expired keys and tokens"),
    )


async def ensure_retention_schedule(
    client: Client, task_queue: str, *, every: timedelta, policy: RetentionPolicy, schedule_id: str = SCHEDULE_ID
) -> ScheduleHandle:
    """Create the schedule, or update it to this definition; idempotent.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    return await upsert_schedule(client, schedule_id, retention_schedule(task_queue, every=every, policy=policy))
