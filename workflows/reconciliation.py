"""Reconciliation workflows: the run (`reconciliation-<run id>`) and its scheduled starter.

Deterministic: no I/O, no wall clock, no uuid4. Each check is its own activity and they run
in parallel; a check whose activity gives up is recorded as a failed check (a check that
could not run proves nothing), never as a passed one. The outcome is stored by
`recon_finish_run`, which also raises the alarm of a failed run.

A Temporal Schedule cannot name each run's workflow id, so it starts
`ScheduledReconciliation`, which makes the run id (a UUIDv7 from the workflow clock and its
deterministic random) and runs `Reconciliation` as a child under `reconciliation-<run id>`,
like a run started from the API.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import ReconciliationActivities
    from recon.io import (
        CHECK_NAMES,
        BeginRunInput,
        CheckInput,
        CheckResult,
        FinishRunInput,
        ReconciliationPolicy,
        RunInput,
        RunSummary,
    )

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
DB_TIMEOUT = timedelta(seconds=30)
# A check scans whole tables: give it minutes, and retry a few times (a restarted database, an
# unreachable Temporal frontend), then record it as failed rather than hold the run forever.
CHECK_TIMEOUT = timedelta(minutes=10)
CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)


def workflow_id_for(run_id: str) -> str:
    return f"reconciliation-{run_id}"


@workflow.defn(name="Reconciliation")
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, data: RunInput) -> RunSummary:
        await workflow.execute_activity_method(
            ReconciliationActivities.begin_run,
            BeginRunInput(
                run_id=data.run_id,
                trigger=data.trigger,
                requested_by=data.requested_by,
                workflow_id=workflow.info().workflow_id,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        results = await asyncio.gather(*(self._check(name, data) for name in CHECK_NAMES))
        return await workflow.execute_activity_method(
            ReconciliationActivities.finish_run,
            FinishRunInput(run_id=data.run_id, checks=list(results)),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )

    async def _check(self, name: str, data: RunInput) -> CheckResult:
        try:
            result: CheckResult = await workflow.execute_activity_method(
                ReconciliationActivities.check(name),
                CheckInput(run_id=data.run_id, policy=data.policy),
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=CHECK_RETRY,
            )
        except ActivityError as err:
            cause = err.cause if err.cause is not None else err
            return CheckResult(name, False, {"error": f"{type(cause).__name__}: {cause}"})
        return result


def _uuid7(unix_ms: int, random_bits: int) -> str:
    """A UUIDv7 (RFC 9562) from a millisecond time and 74 random bits."""
    rand_a = (random_bits >> 62) & 0xFFF
    rand_b = random_bits & ((1 << 62) - 1)
    value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(UUID(int=value))


@workflow.defn(name="ScheduledReconciliation")
class ScheduledReconciliationWorkflow:
    @workflow.run
    async def run(self, policy: ReconciliationPolicy) -> RunSummary:
        # Time and randomness from the workflow: the same id on every replay.
        run_id = _uuid7(int(workflow.now().timestamp() * 1000), workflow.random().getrandbits(74))
        summary: RunSummary = await workflow.execute_child_workflow(
            "Reconciliation",
            RunInput(run_id=run_id, trigger="schedule", requested_by=None, policy=policy),
            id=workflow_id_for(run_id),
            result_type=RunSummary,
            task_queue=workflow.info().task_queue,
        )
        return summary
