"""Standing orders (PSD2 RTS Art. 14): create, approve once with an OTP, pause, resume, cancel,
list and inspect with their runs (/v1); staff list a customer's orders (/ops/v1).

The code that approves an order is bound to its amount, currency, payee and frequency. Once
approved, the order is the Temporal Schedule `standing-order-<id>` (api/standing_order_schedule.py)
and each run is an ordinary transfer with `sca_exemption: "recurring"`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import challenges, idempotency, schemas, views
from api import standing_order_schedule as schedule
from api.contract import declare
from api.deps import (
    AnyStaff,
    CurrentCustomer,
    CustomerPrincipal,
    IdempotencyKey,
    OtpSubmissionLimit,
    RuntimeDep,
    record_customer_action,
    record_foreign_access,
)
from api.errors import ledger_errors, refusal
from api.lookups import owned_account, owned_payee
from api.pagination import DEFAULT_LIMIT, Limit
from api.problems import Problem
from api.runtime import Runtime
from ledger import account_numbers, payees
from ledger import standing_orders as so
from ledger.db import Conn, connection
from ledger.errors import AccountNotFound
from ledger.money import Money
from ledger.uow import UnitOfWork
from otp.codes import Binding
from otp.delivery import CODE_SLOT

router = APIRouter(tags=["customer: standing orders"])
ops_router = APIRouter(tags=["ops: standing orders"])


def binding(order: so.StandingOrder, payee_account_number: str) -> Binding:
    """What the approving code authorises: this amount, currency, payee and frequency."""
    return Binding(
        transfer_id=str(order.id),
        amount_minor=order.amount_minor,
        currency=order.currency,
        payee_account_id=payee_account_number,
        context=f"standing-order:{order.frequency.value}",
    )


def _next_run_at(order: so.StandingOrder, runtime: Runtime) -> datetime | None:
    if order.status is not so.OrderStatus.ACTIVE:
        return None
    now = datetime.now(UTC)
    hour = runtime.settings.standing_order_run_hour_utc
    # Today's run is still ahead only before the run hour.
    first = now.date() if now.time() < time(hour) else date.fromordinal(now.date().toordinal() + 1)
    day = so.next_run_on(order.frequency, order.start_date, order.end_date, first)
    return datetime.combine(day, time(hour), tzinfo=UTC) if day is not None else None


def _fields(order: so.StandingOrder, runs: list[so.Run], runtime: Runtime) -> dict[str, object]:
    return {
        "id": order.id,
        "status": order.status.value,
        "source_account_id": order.source_account_id,
        "payee_id": order.payee_id,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "frequency": order.frequency.value,
        "start_date": order.start_date,
        "end_date": order.end_date,
        "description": order.description,
        "next_run_at": _next_run_at(order, runtime),
        "runs": [
            schemas.StandingOrderRun(
                scheduled_for=r.scheduled_for,
                transfer_id=r.transfer_id,
                status=r.status,
                failure_reason=r.failure_reason,
            )
            for r in runs
        ],
        "schedule_id": so.schedule_id(order.id),
        "created_at": order.created_at,
    }


def view(conn: Conn, order: so.StandingOrder, runtime: Runtime) -> schemas.StandingOrder:
    return schemas.StandingOrder.model_validate(_fields(order, so.runs_of(conn, [order.id])[order.id], runtime))


def owned_order(
    conn: Conn, runtime: Runtime, customer: CustomerPrincipal, order_id: UUID, *, lock: str = ""
) -> so.StandingOrder:
    """Raises: Problem 404 standing_order_not_found (also another customer's)."""
    try:
        order = so.get(conn, order_id, lock=lock)
    except so.StandingOrderNotFound as err:
        raise refusal("standing_order_not_found", "No such standing order.") from err
    if order.customer_id != customer.id:
        record_foreign_access(runtime.engine, customer, "standing_order", order_id)
        raise refusal("standing_order_not_found", "No such standing order.")
    return order


def _audit(runtime: Runtime, customer: CustomerPrincipal, action: str, order: schemas.StandingOrder) -> None:
    record_customer_action(runtime.engine, customer, action, "standing_order", order.id, views.dump(order))


@router.post(
    "/standing-orders",
    status_code=201,
    response_model=schemas.StandingOrder,
    summary="Set up a standing order to a trusted payee (Idempotency-Key required)",
    description=(
        "201 pending_otp, and an OTP bound to the amount, currency, payee and frequency arrives in the inbox. "
        "404 account_not_found / payee_not_found; 422 payee_not_trusted, currency_mismatch, validation_error "
        "(a start date in the past, an end before the start)."
    ),
)
@declare("account_not_found", "currency_mismatch", "payee_not_found", "payee_not_trusted", "same_account")
async def create_standing_order(
    body: schemas.StandingOrderIn,
    customer: CurrentCustomer,
    key: IdempotencyKey,
    request: Request,
    runtime: RuntimeDep,
) -> Response:
    req = await idempotency.request_of(request, customer.scope, key)

    def create(order_id: UUID) -> schemas.StandingOrder:
        source = owned_account(runtime.ledger, customer, body.source_account_id)
        if body.start_date < datetime.now(UTC).date():
            raise Problem(422, "validation_error", "Request is not valid", "start_date is in the past.")
        with UnitOfWork(runtime.engine) as uow:
            conn = uow.conn
            payee = owned_payee(conn, runtime, customer, body.payee_id)
            if payee.status is not payees.PayeeStatus.TRUSTED:
                raise refusal("payee_not_trusted", "Confirm the payee with its code first.")
            try:
                destination = runtime.ledger.get_account(payee.account_id)
            except AccountNotFound as err:  # pragma: no cover - a payee's account exists (foreign key)
                raise refusal("account_not_found", "No such destination account.") from err
            if body.currency not in (source.currency, destination.currency):
                raise refusal("currency_mismatch", "The currency must be the source's or the payee's.")
            if source.id == destination.id:
                raise refusal("same_account", "Source and payee are the same account.")
            order = so.create(
                conn,
                order_id=order_id,
                customer_id=customer.id,
                source_account_id=source.id,
                payee_id=payee.id,
                amount_minor=body.amount_minor,
                currency=body.currency,
                frequency=so.Frequency(body.frequency),
                start_date=body.start_date,
                end_date=body.end_date,
                description=body.description,
            )
            amount = str(Money(body.amount_minor, body.currency))
            challenges.issue(
                conn,
                runtime.settings,
                binding=binding(order, payee.account_number),
                customer_id=customer.id,
                subject=f"Approve your standing order of {amount}",
                sealer=runtime.sealer,
                body=(
                    f"Your code to approve a {order.frequency.value} standing order of {amount} to {payee.name}, "
                    f"account {account_numbers.grouped(payee.account_number)}, from {order.start_date.isoformat()}, "
                    f"is {CODE_SLOT}. It expires in {runtime.settings.otp_ttl_s // 60} minutes and authorises only "
                    "this standing order. Never share it with anyone."
                ),
            )
            result = view(conn, order, runtime)
            uow.commit()
        _audit(runtime, customer, "standing_order.create", result)
        return result

    async def work(order_id: UUID) -> Response:
        result = await run_in_threadpool(create, order_id)
        return JSONResponse(
            result.model_dump(mode="json"), status_code=201, headers={"Location": f"/v1/standing-orders/{order_id}"}
        )

    return await idempotency.run(runtime.engine, req, work)


@router.post(
    "/standing-orders/{order_id}/otp",
    response_model=schemas.StandingOrder,
    summary="Approve a standing order with its one-time passcode",
    description="200 active. 422 invalid_otp with attempts_left; 409 otp_not_pending; 429 otp_throttled.",
)
@declare("invalid_otp", "otp_not_pending", "otp_throttled", "standing_order_not_found")
async def approve_standing_order(
    order_id: UUID, body: schemas.OtpIn, customer: CurrentCustomer, _limit: OtpSubmissionLimit, runtime: RuntimeDep
) -> schemas.StandingOrder:
    def approve() -> tuple[so.StandingOrder, str]:
        with UnitOfWork(runtime.engine) as uow:
            conn = uow.conn
            order = owned_order(conn, runtime, customer, order_id, lock="FOR UPDATE")
            if order.status is not so.OrderStatus.PENDING_OTP:
                raise challenges.not_pending("standing order")
            payee = payees.get(conn, order.payee_id)
            active = challenges.confirm(
                uow,
                runtime.settings,
                binding=binding(order, payee.account_number),
                code=body.code,
                what="standing order",
                accept=lambda: so.set_status(conn, order.id, so.OrderStatus.ACTIVE),
            )
        return active, payee.account_number

    order, payee_number = await run_in_threadpool(approve)
    client = await runtime.temporal()
    # Approved and committed first: if Temporal is unreachable now, POST .../resume creates
    # the schedule later (it is idempotent on an active order).
    await schedule.ensure_running(client, order, payee_number, runtime.settings)
    return await run_in_threadpool(_finish, runtime, customer, "standing_order.approve", order_id)


def _finish(runtime: Runtime, customer: CustomerPrincipal, action: str, order_id: UUID) -> schemas.StandingOrder:
    with connection(runtime.engine) as conn:
        result = view(conn, so.get(conn, order_id), runtime)
    _audit(runtime, customer, action, result)
    return result


def _set_status(runtime: Runtime, customer: CustomerPrincipal, order_id: UUID, to: so.OrderStatus) -> so.StandingOrder:
    with UnitOfWork(runtime.engine) as uow, ledger_errors():
        owned_order(uow.conn, runtime, customer, order_id, lock="FOR UPDATE")
        order = so.set_status(uow.conn, order_id, to)
        uow.commit()
    return order


@router.post("/standing-orders/{order_id}/pause", response_model=schemas.StandingOrder)
@declare("invalid_state", "standing_order_not_found")
async def pause_standing_order(order_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep) -> schemas.StandingOrder:
    """200 paused: no run moves money from now on (each run checks the order). 409 invalid_state."""
    order = await run_in_threadpool(_set_status, runtime, customer, order_id, so.OrderStatus.PAUSED)
    await schedule.pause(await runtime.temporal(), order)
    return await run_in_threadpool(_finish, runtime, customer, "standing_order.pause", order_id)


@router.post("/standing-orders/{order_id}/resume", response_model=schemas.StandingOrder)
@declare("invalid_state", "standing_order_not_found")
async def resume_standing_order(
    order_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep
) -> schemas.StandingOrder:
    """200 active (also for an active order: its schedule is made sure of). 409 invalid_state."""

    def read() -> tuple[so.StandingOrder, str]:
        with UnitOfWork(runtime.engine) as uow:  # a read: nothing to commit
            conn = uow.conn
            order = owned_order(conn, runtime, customer, order_id)
            if order.status not in (so.OrderStatus.PAUSED, so.OrderStatus.ACTIVE):
                raise refusal("invalid_state", f"The standing order is {order.status.value}.")
            return order, payees.get(conn, order.payee_id).account_number

    order, payee_number = await run_in_threadpool(read)
    # The schedule first: if the status change then fails, runs still see a paused order.
    await schedule.ensure_running(await runtime.temporal(), order, payee_number, runtime.settings)
    if order.status is so.OrderStatus.PAUSED:
        await run_in_threadpool(_set_status, runtime, customer, order_id, so.OrderStatus.ACTIVE)
    return await run_in_threadpool(_finish, runtime, customer, "standing_order.resume", order_id)


@router.post("/standing-orders/{order_id}/cancel", response_model=schemas.StandingOrder)
@declare("invalid_state", "standing_order_not_found")
async def cancel_standing_order(
    order_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep
) -> schemas.StandingOrder:
    """200 cancelled (final; runs already made stay). 409 invalid_state."""
    order = await run_in_threadpool(_set_status, runtime, customer, order_id, so.OrderStatus.CANCELLED)
    await schedule.delete(await runtime.temporal(), order)
    return await run_in_threadpool(_finish, runtime, customer, "standing_order.cancel", order_id)


@router.get("/standing-orders", response_model=schemas.Page[schemas.StandingOrder])
def list_standing_orders(customer: CurrentCustomer, runtime: RuntimeDep) -> schemas.Page[schemas.StandingOrder]:
    # A person has a handful of standing orders: one page holds them all.
    with connection(runtime.engine) as conn:
        orders = so.list_for(conn, customer.id)
        runs = so.runs_of(conn, [o.id for o in orders])
    items = [schemas.StandingOrder.model_validate(_fields(o, runs[o.id], runtime)) for o in orders]
    return schemas.Page[schemas.StandingOrder](items=items, next_cursor=None)


@router.get("/standing-orders/{order_id}", response_model=schemas.StandingOrder)
@declare("standing_order_not_found")
def get_standing_order(order_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep) -> schemas.StandingOrder:
    with connection(runtime.engine) as conn:
        return view(conn, owned_order(conn, runtime, customer, order_id), runtime)


@ops_router.get("/standing-orders", response_model=schemas.Page[schemas.OpsStandingOrder])
def ops_list_standing_orders(
    staff: AnyStaff,
    runtime: RuntimeDep,
    customer_id: Annotated[UUID | None, Query(description="Filter: the customer's orders")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> schemas.Page[schemas.OpsStandingOrder]:
    """Newest first, with each order's runs (the transfer and outcome of every date)."""
    with connection(runtime.engine) as conn:
        orders = so.list_for(conn, customer_id) if customer_id is not None else so.list_recent(conn, limit)
        orders = orders[:limit]
        runs = so.runs_of(conn, [o.id for o in orders])
    items = [
        schemas.OpsStandingOrder.model_validate(_fields(o, runs[o.id], runtime) | {"customer_id": o.customer_id})
        for o in orders
    ]
    return schemas.Page[schemas.OpsStandingOrder](items=items, next_cursor=None)
