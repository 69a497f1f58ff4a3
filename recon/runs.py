"""Storage of reconciliation runs (`reconciliation_runs`) and their checks
(`reconciliation_checks`), and the alarm a failed run raises (recon.alerts).

Every write is idempotent (a retried activity, or the API and the workflow both creating the
run row, changes nothing the second time): rows are keyed on the run id and the check name,
the alarm's outbox row on an id derived from the run id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg.types.json import Jsonb

from ledger import cursors
from ledger.db import Conn
from ledger.outbox import insert_event
from recon import alerts
from recon.errors import RunNotFound
from recon.io import CHECK_NAMES, CheckResult

log = logging.getLogger("ledgerflow.recon")


def workflow_id_for(run_id: UUID | str) -> str:
    return f"reconciliation-{run_id}"


@dataclass(frozen=True, slots=True)
class StoredCheck:
    name: str
    ok: bool
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Run:
    id: UUID
    status: str
    trigger: str
    requested_by: UUID | None
    workflow_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    alert: dict[str, Any] | None
    checks: list[StoredCheck]


def create_run(conn: Conn, run_id: UUID, *, trigger: str, requested_by: UUID | None) -> bool:
    """Insert the run as `queued` unless it exists; True if this call created it."""
    cur = conn.execute(
        "INSERT INTO reconciliation_runs (id, status, trigger, requested_by, workflow_id) "
        "VALUES (%s, 'queued', %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (run_id, trigger, requested_by, workflow_id_for(run_id)),
    )
    return cur.rowcount == 1


def begin_run(conn: Conn, run_id: UUID, *, trigger: str, requested_by: UUID | None) -> None:
    """Mark the run `running` (creating it for scheduled runs); a finished run stays finished."""
    create_run(conn, run_id, trigger=trigger, requested_by=requested_by)
    conn.execute(
        "UPDATE reconciliation_runs SET status = 'running', started_at = coalesce(started_at, now()) "
        "WHERE id = %s AND status = 'queued'",
        (run_id,),
    )


def _alert(conn: Conn, run_id: UUID, checks: list[CheckResult], at: datetime) -> dict[str, Any]:
    """Write the failed run's `reconciliation.failed` event in the caller's transaction; what
    the run stores as its `alert`."""
    event = alerts.failed_run_event(run_id, checks, workflow_id=workflow_id_for(run_id), at=at)
    # ON CONFLICT DO NOTHING on the derived id: written at most once whatever retries.
    insert_event(conn, event)
    failed = [c.name for c in checks if not c.ok]
    log.error("reconciliation run %s failed (%s); %s event %s written", run_id, failed, event.type, event.id)
    return {
        "emitted": True,
        "event_type": event.type,
        "event_id": str(event.id),
        "topic": event.topic,
        "failed_checks": failed,
    }


def finish_run(conn: Conn, run_id: UUID, checks: list[CheckResult]) -> tuple[str, dict[str, Any] | None]:
    """Store the checks and the outcome (passed / failed) in the caller's transaction; a failed
    run writes its `reconciliation.failed` outbox event in the same transaction (see _alert).
    Returns (status, alert). Idempotent: a run finished before keeps its first outcome, and
    writes no second event.

    Raises:
        RunNotFound: no run row with this id (begin_run or create_run makes it).
    """
    row = conn.execute(
        "SELECT status, alert, now() FROM reconciliation_runs WHERE id = %s FOR UPDATE", (run_id,)
    ).fetchone()
    if row is None:
        raise RunNotFound(f"reconciliation run {run_id} not found")
    status_before, alert_before, now = row
    if status_before in ("passed", "failed"):
        return str(status_before), alert_before
    for check in checks:
        conn.execute(
            "INSERT INTO reconciliation_checks (run_id, name, ok, details) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (run_id, name) DO UPDATE SET ok = EXCLUDED.ok, details = EXCLUDED.details, checked_at = now()",
            (run_id, check.name, check.ok, Jsonb(check.details)),
        )
    failed = any(not c.ok for c in checks)
    status = "failed" if failed else "passed"
    # now() is the transaction's time: the event's `time` is the run's finished_at.
    alert = _alert(conn, run_id, checks, now) if failed else None
    conn.execute(
        "UPDATE reconciliation_runs SET status = %s, started_at = coalesce(started_at, now()), finished_at = now(), "
        "alert = %s WHERE id = %s",
        (status, None if alert is None else Jsonb(alert), run_id),
    )
    return status, alert


_RUN_COLUMNS: Final = "id, status, trigger, requested_by, workflow_id, created_at, started_at, finished_at, alert"


def _order(name: str) -> int:
    return CHECK_NAMES.index(name) if name in CHECK_NAMES else len(CHECK_NAMES)


def _run_from(row: Any, checks: list[StoredCheck]) -> Run:
    rid, status, trigger, requested_by, workflow_id, created_at, started_at, finished_at, alert = row
    return Run(rid, status, trigger, requested_by, workflow_id, created_at, started_at, finished_at, alert, checks)


def get_run(conn: Conn, run_id: UUID) -> Run:
    """Raises: RunNotFound."""
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        raise RunNotFound(f"reconciliation run {run_id} not found")
    checks = [
        StoredCheck(r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT name, ok, details FROM reconciliation_checks WHERE run_id = %s", (run_id,)
        ).fetchall()
    ]
    checks.sort(key=lambda c: _order(c.name))
    return _run_from(row, checks)


def list_runs(conn: Conn, *, limit: int, cursor: str | None) -> tuple[list[Run], str | None]:
    """Runs newest first, without their checks; keyset cursor on (created_at, id).

    Raises: ValueError (a cursor this list did not hand out).
    """
    params: dict[str, Any] = {"n": limit + 1}
    where = "TRUE"
    if cursor:
        params["at"], params["rid"] = cursors.decode(cursor)
        where = "(created_at, id) < (%(at)s, %(rid)s)"
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %(n)s",
        params,
    ).fetchall()
    runs = [_run_from(r, []) for r in rows[:limit]]
    return runs, (cursors.encode(runs[-1].created_at, runs[-1].id) if len(rows) > limit else None)
