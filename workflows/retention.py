"""The retention sweep (docs/design.md invariant 13), started by the Temporal Schedule `retention-sweep`.

Deterministic: no I/O, no clock. The run's cutoffs come from the first activity (database
time), then each target is swept batch by batch, one activity per batch, until a batch comes
back short. The `progress` query answers where the sweep is; the run record in
`retention_runs` says the same, committed with each batch. A long sweep continues as new
every `max_batches_per_run` batches (500), carrying its position, so its history stays small.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from recon.retention_io import (
        FinishSweepInput,
        StartSweepInput,
        SweepBatchInput,
        SweepInput,
        SweepProgress,
    )

BATCH_TIMEOUT = timedelta(seconds=90)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


@workflow.defn(name="RetentionSweep")
class RetentionSweepWorkflow:
    def __init__(self) -> None:
        self._run_id: str | None = None
        self._target: str | None = None
        self._removed: dict[str, int] = {}
        self._batches = 0
        self._done = False

    @workflow.query
    def progress(self) -> SweepProgress:
        return SweepProgress(self._run_id, self._target, dict(self._removed), self._batches, self._done)

    @workflow.run
    async def run(self, request: SweepInput) -> SweepProgress:
        # workflow.uuid4 draws on the workflow's seeded random: the same id on every replay.
        run_id = request.run_id or str(workflow.uuid4())
        self._run_id = run_id
        self._removed = dict(request.removed)
        self._batches = request.batches
        cutoffs = request.cutoffs
        if not cutoffs:
            started = await workflow.execute_activity_method(
                RetentionActivities.start,
                StartSweepInput(run_id, workflow.info().workflow_id, request.policy),
                start_to_close_timeout=BATCH_TIMEOUT,
                retry_policy=BATCH_RETRY,
            )
            cutoffs = started.cutoffs
        batches_here = 0
        try:
            for index in range(request.next_target, len(cutoffs)):
                cutoff = cutoffs[index]
                self._target = cutoff.name
                while True:
                    if batches_here >= request.max_batches_per_run:
                        workflow.continue_as_new(
                            replace(
                                request,
                                run_id=run_id,
                                cutoffs=cutoffs,
                                next_target=index,
                                removed=dict(self._removed),
                                batches=self._batches,
                            )
                        )
                    result = await workflow.execute_activity_method(
                        RetentionActivities.sweep_batch,
                        SweepBatchInput(run_id, cutoff.name, cutoff.cutoff, request.policy),
                        start_to_close_timeout=BATCH_TIMEOUT,
                        retry_policy=BATCH_RETRY,
                    )
                    batches_here += 1
                    self._batches += 1
                    self._removed[cutoff.name] = self._removed.get(cutoff.name, 0) + result.removed
                    if result.removed < result.batch:
                        break
        except ActivityError as err:
            await self._finish(run_id, "failed", str(err.cause or err))
            raise
        self._target = None
        await self._finish(run_id, "completed", None)
        self._done = True
        return self.progress()

    async def _finish(self, run_id: str, status: str, error: str | None) -> None:
        await workflow.execute_activity_method(
            RetentionActivities.finish,
            FinishSweepInput(run_id, status, error),
            start_to_close_timeout=BATCH_TIMEOUT,
            retry_policy=BATCH_RETRY,
        )
