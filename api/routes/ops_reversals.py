"""Reversals of posted transfers, maker-checker (/ops/v1), see recon/reversals.py.

- POST /transfers/{id}/reversals (operator) {reason}: 201 Reversal `pending_approval`;
  409 `not_reversible` (not posted, or a reversal is already requested or approved).
- POST /reversals/{id}/approve (approver, not the requester) {force?, reason?}: 200 Reversal
  `approved`, the compensating entries posted; 403 `four_eyes_required`; 409
  `reversal_not_pending`; 409 `reversal_would_overdraw` (the payee lacks the money) unless
  `force`, which covers the shortfall from settlement and is recorded on the reversal and in
  the audit log.
- POST /reversals/{id}/reject (approver, not the requester) {reason}: 200 `rejected`.
- GET /reversals, /reversals/{id} (any staff).

Every action, refusals of the four-eyes and overdraw rules included, is in the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api import schemas
from api.contract import declare
from api.deps import AnyStaff, Approver, Operator, RuntimeDep, StaffPrincipal, client_ip
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import Problem
from api.recon_routes import OptionalIdempotencyKey, maybe_idempotent, recon_errors
from api.runtime import Runtime
from ledger import audit
from ledger.db import connection
from ledger.uow import UnitOfWork
from recon import reversals
from recon.errors import FourEyesRequired, ReconError, ReversalWouldOverdraw

router = APIRouter(tags=["ops: reversals"])

ReversalStatus = Literal["pending_approval", "approved", "rejected"]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class ReversalIn(schemas.Body):
    reason: Reason


class ApproveIn(schemas.Body):
    force: bool = Field(False, description="Approve even if the payee lacks the money (shortfall from settlement)")
    reason: Annotated[str | None, Field(max_length=500)] = None


class RejectIn(schemas.Body):
    reason: Reason


class ReversalOut(BaseModel):
    id: UUID
    transfer_id: UUID
    status: ReversalStatus
    requested_by: UUID
    reason: str
    requested_at: datetime
    decided_by: UUID | None
    decided_at: datetime | None
    decision_reason: str | None
    forced: bool
    transaction_id: UUID | None
    shortfall_minor: int
    shortfall_currency: str | None


class ReversalPage(BaseModel):
    items: list[ReversalOut]
    next_cursor: str | None


def _out(r: reversals.Reversal) -> ReversalOut:
    return ReversalOut(
        id=r.id,
        transfer_id=r.transfer_id,
        status=r.status,  # type: ignore[arg-type]  # the table's CHECK allows only these
        requested_by=r.requested_by,
        reason=r.reason,
        requested_at=r.requested_at,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        decision_reason=r.decision_reason,
        forced=r.forced,
        transaction_id=r.transaction_id,
        shortfall_minor=r.shortfall_minor,
        shortfall_currency=r.shortfall_currency,
    )


def _json(r: reversals.Reversal, status_code: int = 200) -> JSONResponse:
    return JSONResponse(_out(r).model_dump(mode="json"), status_code=status_code)


def _record_refusal(
    runtime: Runtime, staff: StaffPrincipal, action: str, reversal_id: UUID, err: ReconError, ip: str
) -> None:
    """Refusals of the control rules are evidence too; written in their own transaction (the
    refused one rolled back)."""
    with UnitOfWork(runtime.engine) as uow:
        audit.record(
            uow.sql,
            actor=staff.actor,
            action=action,
            outcome="denied",
            target_type="reversal",
            target_id=reversal_id,
            detail={"reason": err.code, **err.extra()},
            ip=ip,
        )
        uow.commit()


# -- request ---------------------------------------------------------------------------------


def _request(
    runtime: Runtime, staff: StaffPrincipal, transfer_id: UUID, reason: str, reversal_id: UUID, ip: str
) -> Response:
    with recon_errors(), UnitOfWork(runtime.engine) as uow:
        reversal, created = reversals.request_reversal(
            uow.conn, reversal_id=reversal_id, transfer_id=transfer_id, requested_by=staff.id, reason=reason
        )
        if created:
            audit.record(
                uow.sql,
                actor=staff.actor,
                action="reversal.request",
                target_type="reversal",
                target_id=reversal.id,
                after=reversal.as_audit(),
                detail={"transfer_id": str(transfer_id), "reason": reason},
                ip=ip,
            )
        uow.commit()
    return _json(reversal, 201)


@router.post("/transfers/{transfer_id}/reversals", status_code=201, response_model=ReversalOut)
@declare(
    "transfer_not_found",
    "not_reversible",
    links={
        "ApproveReversal": {
            "target": "POST /ops/v1/reversals/{reversal_id}/approve",
            "parameters": {"reversal_id": "$response.body#/id"},
        },
        "GetReversal": {
            "target": "GET /ops/v1/reversals/{reversal_id}",
            "parameters": {"reversal_id": "$response.body#/id"},
        },
    },
)
async def request_reversal(
    transfer_id: UUID,
    body: ReversalIn,
    staff: Operator,
    runtime: RuntimeDep,
    request: Request,
    key: OptionalIdempotencyKey = None,
) -> Response:
    ip = client_ip(request)

    async def work(reversal_id: UUID) -> Response:
        return await run_in_threadpool(_request, runtime, staff, transfer_id, body.reason, reversal_id, ip)

    return await maybe_idempotent(runtime, request, staff, key, work)


# -- decisions --------------------------------------------------------------------------------


def _approve(runtime: Runtime, staff: StaffPrincipal, reversal_id: UUID, body: ApproveIn, ip: str) -> Response:
    try:
        with recon_errors(), UnitOfWork(runtime.engine) as uow:
            approval = reversals.approve_reversal(
                uow,
                reversal_id=reversal_id,
                approver_id=staff.id,
                force=body.force,
                reason=body.reason,
            )
            audit.record(
                uow.sql,
                actor=staff.actor,
                action="reversal.approve",
                target_type="reversal",
                target_id=reversal_id,
                before={"status": "pending_approval"},
                after=approval.reversal.as_audit(),
                detail={
                    "force": body.force,
                    "reason": body.reason,
                    "shortfall_minor": approval.reversal.shortfall_minor,
                    "ledger_replayed": approval.replayed,
                },
                ip=ip,
            )
            uow.commit()
    except Problem as problem:
        cause = problem.__cause__
        if isinstance(cause, (FourEyesRequired, ReversalWouldOverdraw)):
            _record_refusal(runtime, staff, "reversal.approve", reversal_id, cause, ip)
        raise
    return _json(approval.reversal)


@router.post("/reversals/{reversal_id}/approve", response_model=ReversalOut)
@declare("reversal_not_found", "four_eyes_required", "reversal_not_pending", "reversal_would_overdraw")
async def approve_reversal(
    reversal_id: UUID,
    staff: Approver,
    runtime: RuntimeDep,
    request: Request,
    body: ApproveIn | None = None,
    key: OptionalIdempotencyKey = None,
) -> Response:
    ip = client_ip(request)
    decision = body or ApproveIn(force=False)

    async def work(_: UUID) -> Response:
        return await run_in_threadpool(_approve, runtime, staff, reversal_id, decision, ip)

    return await maybe_idempotent(runtime, request, staff, key, work)


def _reject(runtime: Runtime, staff: StaffPrincipal, reversal_id: UUID, reason: str, ip: str) -> Response:
    try:
        with recon_errors(), UnitOfWork(runtime.engine) as uow:
            reversal = reversals.reject_reversal(uow.conn, reversal_id=reversal_id, staff_id=staff.id, reason=reason)
            audit.record(
                uow.sql,
                actor=staff.actor,
                action="reversal.reject",
                target_type="reversal",
                target_id=reversal_id,
                before={"status": "pending_approval"},
                after=reversal.as_audit(),
                detail={"reason": reason},
                ip=ip,
            )
            uow.commit()
    except Problem as problem:
        if isinstance(problem.__cause__, FourEyesRequired):
            _record_refusal(runtime, staff, "reversal.reject", reversal_id, problem.__cause__, ip)
        raise
    return _json(reversal)


@router.post("/reversals/{reversal_id}/reject", response_model=ReversalOut)
@declare("reversal_not_found", "reversal_not_pending")
async def reject_reversal(
    reversal_id: UUID, body: RejectIn, staff: Approver, runtime: RuntimeDep, request: Request
) -> Response:
    return await run_in_threadpool(_reject, runtime, staff, reversal_id, body.reason, client_ip(request))


# -- reads -------------------------------------------------------------------------------------


@router.get("/reversals", response_model=ReversalPage)
def list_reversals(
    staff: AnyStaff,
    runtime: RuntimeDep,
    status: Annotated[ReversalStatus | None, Query()] = None,
    transfer_id: Annotated[UUID | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ReversalPage:
    with connection(runtime.engine) as conn:
        try:
            items, next_cursor = reversals.list_reversals(
                conn, status=status, transfer_id=transfer_id, limit=limit, cursor=cursor or None
            )
        except ValueError as err:
            raise Problem(
                422, "invalid_cursor", "Invalid cursor", "The cursor is not one this list handed out."
            ) from err
    return ReversalPage(items=[_out(r) for r in items], next_cursor=next_cursor)


@router.get("/reversals/{reversal_id}", response_model=ReversalOut)
@declare("reversal_not_found")
def get_reversal(reversal_id: UUID, staff: AnyStaff, runtime: RuntimeDep) -> ReversalOut:
    with recon_errors(), connection(runtime.engine) as conn:
        return _out(reversals.get_reversal(conn, reversal_id))
