"""The retention sweep as ops see it (/ops/v1/retention): the settings, the last sweep (when,
how many rows per target, how far it got while it runs) and the ones before it.

Read-only. The sweep is the Temporal Schedule `retention-sweep` (recon/retention.py says what
it removes); pausing or triggering it is done on the schedule, in the Temporal Web UI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import AnyStaff, DbConn, RuntimeDep

router = APIRouter(tags=["ops: event pipeline"])


class RetentionSweep(BaseModel):
    """One sweep: `removed` counts rows per target (for `inbox_otp_codes`: codes erased), and
    grows batch by batch while `status` is `running`."""

    id: UUID
    workflow_id: str
    status: str  # running | completed | failed
    started_at: datetime
    finished_at: datetime | None
    cutoffs: dict[str, datetime]
    removed: dict[str, int]
    removed_total: int
    batches: int
    error: str | None


class RetentionStatus(BaseModel):
    outbox_retention_days: int
    idempotency_retention_h: int
    sweep_every_s: int
    batch_rows: int
    last_sweep: RetentionSweep | None
    recent: list[RetentionSweep]


def _sweep(row: Any) -> RetentionSweep:
    removed = {str(k): int(v) for k, v in row.removed.items()}
    return RetentionSweep(
        id=row.id,
        workflow_id=row.workflow_id,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cutoffs={str(k): datetime.fromisoformat(v) for k, v in row.cutoffs.items()},
        removed=removed,
        removed_total=sum(removed.values()),
        batches=row.batches,
        error=row.error,
    )


@router.get("/retention", response_model=RetentionStatus)
def retention_status(
    _staff: AnyStaff, conn: DbConn, runtime: RuntimeDep, limit: int = Query(10, ge=1, le=50)
) -> RetentionStatus:
    """The retention settings and the latest sweeps, newest first."""
    rows = conn.execute(
        text(
            "SELECT id, workflow_id, status, started_at, finished_at, cutoffs, removed, batches, error "
            "FROM retention_runs ORDER BY started_at DESC, id DESC LIMIT :n"
        ),
        {"n": limit},
    ).all()
    sweeps = [_sweep(r) for r in rows]
    s = runtime.settings
    return RetentionStatus(
        outbox_retention_days=s.outbox_retention_days,
        idempotency_retention_h=s.idempotency_retention_h,
        sweep_every_s=s.retention_sweep_every_s,
        batch_rows=s.retention_batch_rows,
        last_sweep=sweeps[0] if sweeps else None,
        recent=sweeps,
    )
