"""A one-activity workflow that proves the worker, Temporal and PostgreSQL talk to each other."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.health import HealthActivities
    from contracts.health import DbPingInput, DbPingResult


@workflow.defn(name="HealthCheck")
class HealthCheckWorkflow:
    @workflow.run
    async def run(self, probe_id: str) -> DbPingResult:
        return await workflow.execute_activity_method(
            HealthActivities.db_ping,
            DbPingInput(probe_id=probe_id),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
