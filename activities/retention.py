"""Retention sweep activities: thin adapters over recon.retention and recon.retention_runs.

One activity per batch, each one short transaction (the batch and its count in the run record
commit together), so a retried or re-run batch never counts a row twice and the sweep never
holds a lock longer than a batch.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Engine
from temporalio import activity

from ledger.uow import UnitOfWork
from recon import retention_runs
from recon.retention import cutoff_for, sweep_batch, target_named, targets
from recon.retention_io import (
    FinishSweepInput,
    StartSweepInput,
    StartSweepResult,
    SweepBatchInput,
    SweepBatchResult,
    TargetCutoff,
)


class RetentionActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="retention_start")
    def start(self, request: StartSweepInput) -> StartSweepResult:
        """Fix each target's cutoff from the database's clock and record the run."""
        with UnitOfWork(self._engine) as uow:
            conn = uow.conn
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            now: datetime = row[0]
            cutoffs = [TargetCutoff(t.name, cutoff_for(t, now).isoformat()) for t in targets(request.policy)]
            retention_runs.start(conn, UUID(request.run_id), request.workflow_id, {c.name: c.cutoff for c in cutoffs})
            # A retried start keeps the first record's cutoffs.
            stored = conn.execute("SELECT cutoffs FROM retention_runs WHERE id = %s", (request.run_id,)).fetchone()
            uow.commit()
        assert stored is not None
        # In the targets' order (a jsonb object keeps no order): the order is part of the plan.
        return StartSweepResult([TargetCutoff(c.name, stored[0].get(c.name, c.cutoff)) for c in cutoffs])

    @activity.defn(name="retention_sweep_batch")
    def sweep_batch(self, request: SweepBatchInput) -> SweepBatchResult:
        """Remove one batch of one target and count it in the run record, in one transaction."""
        target = target_named(request.policy, request.target)
        with UnitOfWork(self._engine) as uow:
            conn = uow.conn
            removed = sweep_batch(conn, target, datetime.fromisoformat(request.cutoff))
            retention_runs.add_removed(conn, UUID(request.run_id), target.name, removed)
            uow.commit()
        return SweepBatchResult(removed=removed, batch=target.batch)

    @activity.defn(name="retention_finish")
    def finish(self, request: FinishSweepInput) -> None:
        with UnitOfWork(self._engine) as uow:
            conn = uow.conn
            retention_runs.finish(conn, UUID(request.run_id), request.status, request.error)
            uow.commit()
