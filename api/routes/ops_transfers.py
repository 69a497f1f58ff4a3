"""Transfers as staff see them (/ops/v1/transfers): list, detail with events and the
workflow's Temporal UI link, and the review decision on transfers held for review."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import metrics, schemas, transfer_flow, views
from api.contract import declare
from api.deps import AnyStaff, Approver, RuntimeDep, StaffPrincipal, client_ip
from api.errors import ledger_errors, refusal
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import Problem
from api.runtime import Runtime
from api.schemas import StatusFilter
from ledger import audit
from ledger.errors import TransferNotFound
from ledger.states import TransferStatus
from ledger.transfers import Transfer
from ledger.uow import UnitOfWork

router = APIRouter(tags=["ops: transfers"])


def _get(runtime: Runtime, transfer_id: UUID) -> Transfer:
    try:
        return runtime.ledger.get_transfer(transfer_id)
    except TransferNotFound as err:
        raise refusal("transfer_not_found", "No such transfer.") from err


def ops_view(runtime: Runtime, transfer: Transfer) -> schemas.OpsTransfer:
    with ledger_errors():
        base = views.one_transfer(runtime.ledger, runtime.engine, transfer)
        events = [
            schemas.OutboxEvent(
                id=e.id, type=e.type, topic=e.topic, created_at=e.created_at, published_at=e.published_at
            )
            for e in runtime.ledger.events_for(transfer.id)
        ]
    return schemas.OpsTransfer(
        **base.model_dump(),
        customer_id=transfer.customer_id,
        events=events,
        temporal_ui_url=runtime.temporal_ui_url(transfer.workflow_id),
    )


@router.get("/transfers", response_model=schemas.Page[schemas.Transfer])
def list_transfers(
    staff: AnyStaff,
    runtime: RuntimeDep,
    status: Annotated[StatusFilter | None, Query()] = None,
    customer_id: Annotated[UUID | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.Page[schemas.Transfer]:
    with ledger_errors():
        page = runtime.ledger.list_transfers(customer_id=customer_id, status=status, limit=limit, cursor=cursor or None)
        items = views.transfers(runtime.ledger, runtime.engine, page.items)
    return schemas.Page[schemas.Transfer](items=items, next_cursor=page.next_cursor)


@router.get("/transfers/{transfer_id}", response_model=schemas.OpsTransfer)
@declare("transfer_not_found")
def get_transfer(transfer_id: UUID, staff: AnyStaff, runtime: RuntimeDep) -> schemas.OpsTransfer:
    return ops_view(runtime, _get(runtime, transfer_id))


async def _review(
    runtime: Runtime, staff: StaffPrincipal, transfer_id: UUID, approved: bool, reason: str, ip: str
) -> Response:
    transfer = await run_in_threadpool(_get, runtime, transfer_id)
    not_in_review = Problem(409, "not_in_review", "Not in review", f"The transfer is {transfer.status.value}.")
    if transfer.status is not TransferStatus.IN_REVIEW:
        raise not_in_review
    client = await runtime.temporal()
    state = await transfer_flow.current_state(client, transfer.workflow_id)
    if state is None or state.status != TransferStatus.IN_REVIEW:
        raise not_in_review
    final = await transfer_flow.signal_and_wait(
        client,
        transfer.workflow_id,
        signal="review",
        arg=transfer_flow.review_decision(approved, str(staff.id), reason),
        leaves=TransferStatus.IN_REVIEW,
    )
    if final is None or final.status == TransferStatus.IN_REVIEW:
        raise Problem(503, "workflow_timeout", "Service unavailable", "The decision is not confirmed yet.")
    metrics.TRANSFER_TRANSITIONS.labels(final.status).inc()

    def finish() -> schemas.OpsTransfer:
        after = _get(runtime, transfer_id)
        with UnitOfWork(runtime.engine) as uow:
            conn = uow.sql
            audit.record(
                conn,
                actor=staff.actor,
                action="transfer.approve" if approved else "transfer.reject",
                target_type="transfer",
                target_id=transfer_id,
                before={"status": transfer.status.value, "version": transfer.version},
                after={"status": after.status.value, "version": after.version, "workflow_status": final.status},
                detail={"reason": reason},
                ip=ip,
            )
            uow.commit()
        return ops_view(runtime, after)

    view = await run_in_threadpool(finish)
    return JSONResponse(view.model_dump(mode="json"))


@router.post("/transfers/{transfer_id}/approve", response_model=schemas.OpsTransfer)
@declare("transfer_not_found", "not_in_review")
async def approve(
    transfer_id: UUID, staff: Approver, runtime: RuntimeDep, request: Request, body: schemas.ReviewIn | None = None
) -> Response:
    return await _review(runtime, staff, transfer_id, True, body.reason if body else "", client_ip(request))


@router.post("/transfers/{transfer_id}/reject", response_model=schemas.OpsTransfer)
@declare("transfer_not_found", "not_in_review")
async def reject(
    transfer_id: UUID, staff: Approver, runtime: RuntimeDep, request: Request, body: schemas.ReviewIn | None = None
) -> Response:
    return await _review(runtime, staff, transfer_id, False, body.reason if body else "", client_ip(request))
