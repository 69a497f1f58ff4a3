"""Reconciliation for staff (/ops/v1): runs, bank statement imports, account statement export.

- POST /reconciliation/runs (operator): start a run (the `Reconciliation` workflow, id
  `reconciliation-<run id>`), 202 {id, status}. GET /reconciliation/runs[/{id}] (any staff).
- POST /reconciliation/statements?account_id= (operator): a bank statement CSV as the body
  (recon/statements.py); 201 with the match report, 200 with the first report when the same
  file was imported before. 422 `invalid_statement` names the line.
- GET /accounts/{id}/statement.csv?from=&to= (any staff): the account's statement for
  [from, to) with opening and closing balances (point in time).

Idempotency-Key is optional on these POSTs (the contract does not mark them [idem]); when
sent, it has the usual semantics (api/idempotency.py). Helpers shared with ops_reversals
live in api/recon_routes.py: `recon_errors`, `maybe_idempotent`. Writes go through a unit of work (ledger.uow):
recon's functions take its psycopg connection, the audit chain its SQLAlchemy one, one
transaction.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, cast
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.contract import declare
from api.deps import AnyStaff, Operator, RuntimeDep, StaffPrincipal, client_ip
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import Problem
from api.recon_routes import OptionalIdempotencyKey, maybe_idempotent, recon_errors
from api.runtime import Runtime
from api.schemas import InstantOrDate
from ledger import audit
from ledger.db import connection
from ledger.uow import UnitOfWork
from recon import export, runs, statements
from recon.io import ReconciliationPolicy, RunInput
from workflows.reconciliation import ReconciliationWorkflow

router = APIRouter(tags=["ops: reconciliation"])

# A statement file may be large (a month of a busy settlement account). The app's default body
# limit is far smaller: the app must give this path its own limit (see the closing note).
MAX_STATEMENT_BYTES: Final = 10 * 1024 * 1024
STATEMENTS_PATH: Final = "/reconciliation/statements"

# -- runs --------------------------------------------------------------------------------


class RunStarted(BaseModel):
    id: UUID
    status: Literal["queued", "running", "passed", "failed"]


class CheckOut(BaseModel):
    name: str
    ok: bool
    details: dict[str, Any]


class RunOut(BaseModel):
    id: UUID
    status: Literal["queued", "running", "passed", "failed"]
    trigger: Literal["api", "schedule"]
    requested_by: UUID | None
    workflow_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    alert: dict[str, Any] | None
    checks: list[CheckOut]
    temporal_ui_url: str


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


def _run_out(runtime: Runtime, run: runs.Run) -> RunOut:
    return RunOut(
        id=run.id,
        status=cast(Any, run.status),
        trigger=cast(Any, run.trigger),
        requested_by=run.requested_by,
        workflow_id=run.workflow_id,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        alert=run.alert,
        checks=[CheckOut(name=c.name, ok=c.ok, details=c.details) for c in run.checks],
        temporal_ui_url=runtime.temporal_ui_url(run.workflow_id),
    )


def _record_run(runtime: Runtime, run_id: UUID, staff: StaffPrincipal, ip: str) -> str:
    with UnitOfWork(runtime.engine) as uow:
        # The workflow's first activity may have created the row already: that is fine, the
        # request is audited either way.
        runs.create_run(uow.conn, run_id, trigger="api", requested_by=staff.id)
        status = runs.get_run(uow.conn, run_id).status
        audit.record(
            uow.sql,
            actor=staff.actor,
            action="reconciliation.run.start",
            target_type="reconciliation_run",
            target_id=run_id,
            after={"status": status, "workflow_id": runs.workflow_id_for(run_id)},
            ip=ip,
        )
        uow.commit()
    return status


@router.post("/reconciliation/runs", status_code=202, response_model=RunStarted)
@declare(
    location=True,
    links={
        "GetRun": {"target": "GET /ops/v1/reconciliation/runs/{run_id}", "parameters": {"run_id": "$response.body#/id"}}
    },
)
async def start_run(
    staff: Operator, runtime: RuntimeDep, request: Request, key: OptionalIdempotencyKey = None
) -> Response:
    ip = client_ip(request)

    async def work(run_id: UUID) -> Response:
        client = await runtime.temporal()
        policy = ReconciliationPolicy(otp_ttl_s=runtime.settings.otp_ttl_s)
        # Started before its row is written: if the row's write fails, the workflow's first
        # activity creates it, so a run never exists without its workflow. Already started: a
        # retry of this request (same key, same run id).
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client.start_workflow(
                ReconciliationWorkflow.run,
                RunInput(run_id=str(run_id), trigger="api", requested_by=str(staff.id), policy=policy),
                id=runs.workflow_id_for(run_id),
                task_queue=runtime.settings.temporal_task_queue,
            )
        status = await run_in_threadpool(_record_run, runtime, run_id, staff, ip)
        return JSONResponse(
            RunStarted(id=run_id, status=cast(Any, status)).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/ops/v1/reconciliation/runs/{run_id}"},
        )

    return await maybe_idempotent(runtime, request, staff, key, work)


@router.get("/reconciliation/runs", response_model=RunPage)
def list_runs(staff: AnyStaff, runtime: RuntimeDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> RunPage:
    with connection(runtime.engine) as conn:
        try:
            items, next_cursor = runs.list_runs(conn, limit=limit, cursor=cursor or None)
        except ValueError as err:
            raise Problem(
                422, "invalid_cursor", "Invalid cursor", "The cursor is not one this list handed out."
            ) from err
    return RunPage(items=[_run_out(runtime, r) for r in items], next_cursor=next_cursor)


@router.get("/reconciliation/runs/{run_id}", response_model=RunOut)
@declare("reconciliation_run_not_found")
def get_run(run_id: UUID, staff: AnyStaff, runtime: RuntimeDep) -> RunOut:
    with recon_errors(), connection(runtime.engine) as conn:
        return _run_out(runtime, runs.get_run(conn, run_id))


# -- statements ----------------------------------------------------------------------------


class MatchOut(BaseModel):
    group: int
    rule: Literal["reference", "amount_date"]
    kind: str
    lines: list[int]
    entry_ids: list[UUID]
    reference: str
    statement_minor: int
    ledger_minor: int
    drift_minor: int


class StatementImport(BaseModel):
    id: UUID
    account_id: UUID
    currency: str
    file_sha256: str
    period: dict[str, str]
    summary: dict[str, int]
    matched: list[MatchOut]
    unmatched_statement: list[dict[str, Any]]
    unmatched_ledger: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    replayed: bool = False


_CSV_BODY: Final = {
    "requestBody": {
        "required": True,
        "description": "The statement: CSV with header date,amount,currency,reference,description (UTF-8).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def _import(
    runtime: Runtime, account_id: UUID, data: bytes, import_id: UUID, staff: StaffPrincipal, ip: str
) -> Response:
    with recon_errors(), UnitOfWork(runtime.engine) as uow:
        result = statements.import_statement(
            uow.conn, import_id=import_id, account_id=account_id, data=data, imported_by=staff.id
        )
        audit.record(
            uow.sql,
            actor=staff.actor,
            action="statement.import",
            target_type="statement_import",
            target_id=result.import_id,
            after=result.report["summary"],
            detail={
                "account_id": str(account_id),
                "file_sha256": result.report["file_sha256"],
                "replayed": result.replayed,
                "bytes": len(data),
            },
            ip=ip,
        )
        uow.commit()
    body = StatementImport(**result.report, replayed=result.replayed)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if result.replayed else 201)


@router.post(
    STATEMENTS_PATH,
    status_code=201,
    response_model=StatementImport,
    openapi_extra=_CSV_BODY,
    summary="Import a bank statement (CSV body); the same file again answers 200 with the first report",
)
@declare(
    "invalid_statement",
    "not_a_settlement_account",
    "account_not_found",
    links={
        "GetImport": {
            "target": "GET /ops/v1/reconciliation/statements/{import_id}",
            "parameters": {"import_id": "$response.body#/id"},
        }
    },
)
async def import_statement(
    staff: Operator,
    runtime: RuntimeDep,
    request: Request,
    account_id: Annotated[UUID, Query(description="The settlement account the statement is of")],
    key: OptionalIdempotencyKey = None,
) -> Response:
    data = await request.body()
    if len(data) > MAX_STATEMENT_BYTES:
        raise Problem(
            413, "payload_too_large", "Payload too large", f"A statement is at most {MAX_STATEMENT_BYTES} bytes."
        )
    ip = client_ip(request)

    async def work(import_id: UUID) -> Response:
        return await run_in_threadpool(_import, runtime, account_id, data, import_id, staff, ip)

    return await maybe_idempotent(runtime, request, staff, key, work)


@router.get(STATEMENTS_PATH + "/{import_id}", response_model=StatementImport)
@declare("statement_not_found")
def get_statement_import(import_id: UUID, staff: AnyStaff, runtime: RuntimeDep) -> StatementImport:
    with recon_errors(), connection(runtime.engine) as conn:
        return StatementImport(**statements.get_import(conn, import_id), replayed=True)


# -- account statement export ----------------------------------------------------------------

_EARLIEST: Final = datetime(1900, 1, 1, tzinfo=UTC)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@router.get(
    "/accounts/{account_id}/statement.csv",
    response_class=Response,
    responses={200: {"description": "The statement as CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Account statement for [from, to) as CSV, with opening and closing balances",
)
@declare("invalid_period", "account_not_found")
def statement_csv(
    account_id: UUID,
    staff: AnyStaff,
    runtime: RuntimeDep,
    start: Annotated[InstantOrDate, Query(alias="from", description="Start (inclusive), RFC 3339 or a date (UTC)")],
    end: Annotated[InstantOrDate | None, Query(alias="to", description="End (exclusive); default now")] = None,
) -> Response:
    start_utc = _utc(start)
    end_utc = _utc(end) if end is not None else datetime.now(UTC)
    if start_utc < _EARLIEST or start_utc >= end_utc:
        raise Problem(422, "invalid_period", "Invalid period", "`from` must be before `to`, and not before 1900-01-01.")
    with recon_errors():
        lines = export.open_statement(runtime.engine, account_id, start_utc, end_utc)
    name = f"statement-{account_id}-{start_utc:%Y%m%dT%H%M%SZ}-{end_utc:%Y%m%dT%H%M%SZ}.csv"
    return StreamingResponse(
        lines, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
