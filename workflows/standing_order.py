"""One run of a standing order: the action of its Temporal Schedule `standing-order-<id>`.

The run reads its scheduled time (the schedule sets `TemporalScheduledStartTime`; a manual
trigger sets the trigger's time), claims the order's run for that UTC date in the database,
and starts an ordinary transfer workflow as an abandoned child, with the transfer id derived
from the order and the date. Whatever the schedule does (a replayed, triggered, caught-up or
overlapping action), a second run for the same date finds the same transfer id: the child
start is refused (REJECT_DUPLICATE on a closed one, always on a running one), so there is at
most one transfer per order per date (invariant 12).
"""

from __future__ import annotations

from datetime import UTC, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.standing_order import StandingOrderActivities
    from contracts.standing_order import BeginRunInput, StandingOrderRunInput
    from workflows.transfer import TransferWorkflow, workflow_id_for

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=30,
)


@workflow.defn(name="StandingOrderRun")
class StandingOrderRunWorkflow:
    @workflow.run
    async def run(self, run: StandingOrderRunInput) -> str:
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        scheduled_for = scheduled.astimezone(UTC).date().isoformat()
        begun = await workflow.execute_activity_method(
            StandingOrderActivities.begin_run,
            BeginRunInput(standing_order_id=run.standing_order_id, scheduled_for=scheduled_for),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=RETRY,
        )
        if begun.request is None:
            return f"skipped {scheduled_for}: {begun.reason}"
        request = begun.request
        try:
            await workflow.start_child_workflow(
                TransferWorkflow.run,
                request,
                id=workflow_id_for(request.transfer_id),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # The transfer lives on by itself (it may wait for an ops review for days).
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                memo={
                    "customer_id": request.customer_id,
                    "standing_order_id": request.standing_order_id,
                    "scheduled_for": scheduled_for,
                    "amount_minor": request.amount_minor,
                    "currency": request.currency,
                },
            )
        except WorkflowAlreadyStartedError:
            return f"already started {scheduled_for}: transfer {request.transfer_id}"
        return f"started {scheduled_for}: transfer {request.transfer_id}"
