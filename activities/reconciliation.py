"""Reconciliation activities: thin adapters from the workflow to recon.checks and recon.runs.

One activity per check, so the checks run in parallel and a check that cannot run (its
query times out, Temporal is unreachable) fails alone. Checks are read-only; begin/finish
are idempotent by the run id, so Temporal may retry any of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.client import WorkflowExecutionStatus as WfStatus
from temporalio.service import RPCError, RPCStatusCode

from ledger.uow import UnitOfWork
from recon import checks, runs
from recon.io import BeginRunInput, CheckInput, CheckResult, FinishRunInput, ReconciliationPolicy, RunSummary

# Workflow descriptions asked of Temporal at once by the stuck-transfer check.
_DESCRIBE_CONCURRENCY = 16


class ReconciliationActivities:
    def __init__(self, engine: Engine, client: Client) -> None:
        self._engine = engine
        # Used only to ask whether a transfer's workflow is still running.
        self._client = client

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for Worker(activities=[...])."""
        return [
            self.begin_run,
            self.check_trial_balance,
            self.check_projections,
            self.check_holds,
            self.check_outbox_published,
            self.check_consumer_counts,
            self.check_stuck_transfers,
            self.finish_run,
        ]

    @staticmethod
    def check(name: str) -> Callable[[ReconciliationActivities, CheckInput], Any]:
        """The activity method that runs check `name` (one of recon.io.CHECK_NAMES)."""
        return CHECKS[name]

    @activity.defn(name="recon_begin_run")
    def begin_run(self, data: BeginRunInput) -> None:
        with UnitOfWork(self._engine) as uow:
            conn = uow.conn
            runs.begin_run(
                conn,
                UUID(data.run_id),
                trigger=data.trigger,
                requested_by=UUID(data.requested_by) if data.requested_by else None,
            )
            uow.commit()

    def _check(self, fn: Callable[..., CheckResult], policy: ReconciliationPolicy) -> CheckResult:
        with checks.snapshot(self._engine) as conn:
            return fn(conn, policy)

    @activity.defn(name="recon_check_trial_balance")
    def check_trial_balance(self, data: CheckInput) -> CheckResult:
        return self._check(checks.check_trial_balance, data.policy)

    @activity.defn(name="recon_check_projections")
    def check_projections(self, data: CheckInput) -> CheckResult:
        return self._check(checks.check_projections, data.policy)

    @activity.defn(name="recon_check_holds")
    def check_holds(self, data: CheckInput) -> CheckResult:
        return self._check(checks.check_holds, data.policy)

    @activity.defn(name="recon_check_outbox_published")
    def check_outbox_published(self, data: CheckInput) -> CheckResult:
        return self._check(checks.check_outbox_published, data.policy)

    @activity.defn(name="recon_check_consumer_counts")
    def check_consumer_counts(self, data: CheckInput) -> CheckResult:
        return self._check(checks.check_consumer_counts, data.policy)

    def _candidates(self, policy: ReconciliationPolicy) -> tuple[list[checks.StuckCandidate], int]:
        with checks.snapshot(self._engine) as conn:
            return checks.stuck_candidates(conn, policy)

    async def _workflow_status(self, workflow_id: str) -> str:
        """`running`, another final status in lower case, or `not_found`.

        Raises: RPCError other than NOT_FOUND (Temporal unreachable: the activity retries).
        """
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return "not_found"
            raise
        status = description.status
        return "unknown" if status is None else WfStatus(status).name.lower()

    @activity.defn(name="recon_check_stuck_transfers")
    async def check_stuck_transfers(self, data: CheckInput) -> CheckResult:
        """A non-terminal transfer whose workflow is not running is stuck: nothing will ever
        move it (or release its hold). An overdue one whose workflow still runs is listed as
        `slow` (its activities are retrying) without failing the check."""
        # Async (it awaits Temporal), so the database part goes to a thread.
        candidates, total = await asyncio.to_thread(self._candidates, data.policy)
        gate = asyncio.Semaphore(_DESCRIBE_CONCURRENCY)

        async def status_of(candidate: checks.StuckCandidate) -> str:
            async with gate:
                return await self._workflow_status(candidate.workflow_id)

        statuses: Sequence[str] = await asyncio.gather(*(status_of(c) for c in candidates))
        stuck: list[dict[str, Any]] = []
        slow: list[dict[str, Any]] = []
        for candidate, status in zip(candidates, statuses, strict=True):
            row = {
                "transfer_id": str(candidate.transfer_id),
                "status": candidate.status,
                "workflow_id": candidate.workflow_id,
                "workflow_status": status,
                "in_status_s": round(candidate.age_s, 1),
                "deadline_s": candidate.deadline_s,
                "updated_at": candidate.updated_at.isoformat(),
            }
            if status != "running":
                stuck.append(row)
            elif candidate.overdue:
                slow.append(row)
        policy = data.policy
        return CheckResult(
            "stuck_transfers",
            not stuck,
            {
                "examined": len(candidates),
                "non_terminal_older_than_grace": total,
                "stuck_count": len(stuck),
                "stuck": stuck[: policy.max_rows],
                "slow_count": len(slow),
                "slow": slow[: policy.max_rows],
            },
        )

    @activity.defn(name="recon_finish_run")
    def finish_run(self, data: FinishRunInput) -> RunSummary:
        with UnitOfWork(self._engine) as uow:
            conn = uow.conn
            status, alert = runs.finish_run(conn, UUID(data.run_id), list(data.checks))
            uow.commit()
        return RunSummary(data.run_id, status, [c.name for c in data.checks if not c.ok], alert)


# Check name -> its activity (the activity type is `recon_check_<name>`, as histories recorded).
CHECKS: dict[str, Callable[[ReconciliationActivities, CheckInput], Any]] = {
    "trial_balance": ReconciliationActivities.check_trial_balance,
    "projections": ReconciliationActivities.check_projections,
    "holds": ReconciliationActivities.check_holds,
    "outbox_published": ReconciliationActivities.check_outbox_published,
    "consumer_counts": ReconciliationActivities.check_consumer_counts,
    "stuck_transfers": ReconciliationActivities.check_stuck_transfers,
}
