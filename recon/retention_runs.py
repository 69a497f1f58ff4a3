"""The record of each retention sweep (table `retention_runs`): when it ran, its cutoffs, and how
many rows it removed per target, updated in the transaction of every batch, so the record is
the sweep's progress as well as its result (ops API and the event pipeline page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from ledger.db import Conn


@dataclass(frozen=True)
class SweepRun:
    id: UUID
    workflow_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    cutoffs: dict[str, str]
    removed: dict[str, int]
    batches: int
    error: str | None


def start(conn: Conn, run_id: UUID, workflow_id: str, cutoffs: dict[str, str]) -> None:
    """Record a run (idempotent by id: a retried start keeps the first record)."""
    conn.execute(
        "INSERT INTO retention_runs (id, workflow_id, status, cutoffs) VALUES (%s, %s, 'running', %s) "
        "ON CONFLICT (id) DO NOTHING",
        (run_id, workflow_id, Jsonb(cutoffs)),
    )


def add_removed(conn: Conn, run_id: UUID, target: str, count: int) -> None:
    """Add one batch's count; in the batch's own transaction, so the total is exact."""
    conn.execute(
        "UPDATE retention_runs SET batches = batches + 1, "
        "removed = jsonb_set(removed, ARRAY[%(t)s], to_jsonb(coalesce((removed ->> %(t)s)::bigint, 0) + %(n)s)) "
        "WHERE id = %(id)s",
        {"t": target, "n": count, "id": run_id},
    )


def finish(conn: Conn, run_id: UUID, status: str, error: str | None) -> None:
    conn.execute(
        "UPDATE retention_runs SET status = %s, error = %s, finished_at = coalesce(finished_at, now()) WHERE id = %s",
        (status, error, run_id),
    )


_COLUMNS = "id, workflow_id, status, started_at, finished_at, cutoffs, removed, batches, error"


def _run(row: Any) -> SweepRun:
    return SweepRun(
        row[0], row[1], row[2], row[3], row[4], dict(row[5]), {k: int(v) for k, v in row[6].items()}, row[7], row[8]
    )


def latest(conn: Conn, *, limit: int = 1) -> list[SweepRun]:
    """The newest runs, newest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM retention_runs ORDER BY started_at DESC, id DESC LIMIT %s", (limit,)
    ).fetchall()
    return [_run(r) for r in rows]


def last_outbox_cutoff(conn: Conn) -> datetime | None:
    """The newest outbox cutoff a sweep used: outbox rows created before it may be gone."""
    row = conn.execute(
        "SELECT max((cutoffs ->> 'outbox')::timestamptz) FROM retention_runs WHERE removed ? 'outbox'"
    ).fetchone()
    return row[0] if row else None
