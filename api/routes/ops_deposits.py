"""Deposits by operators (/ops/v1/deposits), Idempotency-Key required.

The deposit id is made when the key is claimed and is the ledger's idempotency key for the
posting, so even a retry after a crash between posting and answering posts once.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import idempotency, metrics, schemas
from api.contract import declare
from api.deps import IdempotencyKey, Operator, RuntimeDep, client_ip
from api.errors import ledger_errors, refusal
from api.runtime import Runtime
from ledger import audit
from ledger.accounts import AccountKind
from ledger.errors import AccountNotFound
from ledger.money import Money
from ledger.uow import UnitOfWork

router = APIRouter(tags=["ops: deposits"])


def _deposit(runtime: Runtime, body: schemas.DepositIn, deposit_id: UUID, actor: audit.Actor, ip: str) -> JSONResponse:
    try:
        account = runtime.ledger.get_account(body.account_id)
    except AccountNotFound as err:
        raise refusal("account_not_found", "No such account.") from err
    if account.kind is not AccountKind.CUSTOMER:
        raise refusal("account_not_found", "Deposits go to customer accounts.")
    if account.currency != body.currency:
        raise refusal("currency_mismatch", f"The account is in {account.currency}, not {body.currency}.")
    with ledger_errors():
        deposit = runtime.ledger.deposit(
            deposit_id,
            body.account_id,
            Money.parse(body.amount_minor, body.currency),
            external_reference=body.external_reference,
            description=f"Deposit {body.external_reference}",
        )
    out = schemas.Deposit(
        transaction_id=deposit.transaction_id,
        account_id=deposit.account_id,
        amount_minor=deposit.amount_minor,
        currency=deposit.currency,
        posted_at=deposit.posted_at,
    )
    with UnitOfWork(runtime.engine) as uow:
        conn = uow.sql
        audit.record(
            conn,
            actor=actor,
            action="deposit.create",
            target_type="account",
            target_id=body.account_id,
            after={
                **out.model_dump(mode="json"),
                "deposit_id": str(deposit_id),
                "external_reference": body.external_reference,
                "replayed": deposit.replayed,
            },
            ip=ip,
        )
        uow.commit()
    response = JSONResponse(out.model_dump(mode="json"), status_code=201)
    return response


@router.post("/deposits", status_code=201, response_model=schemas.Deposit, summary="Deposit (Idempotency-Key required)")
@declare(
    "account_not_found",
    "currency_mismatch",
    "account_frozen",
    "account_closed",
    "account_not_active",
    links={
        "Transfer": {
            "target": "POST /v1/transfers",
            "requestBody": {"source_account_id": "$response.body#/account_id", "currency": "$response.body#/currency"},
        },
        "GetBalance": {
            "target": "GET /v1/accounts/{account_id}/balance",
            "parameters": {"account_id": "$response.body#/account_id"},
        },
    },
)
async def create_deposit(
    body: schemas.DepositIn, staff: Operator, key: IdempotencyKey, request: Request, runtime: RuntimeDep
) -> Response:
    req = await idempotency.request_of(request, staff.scope, key)
    ip = client_ip(request)

    async def work(deposit_id: UUID) -> Response:
        return await run_in_threadpool(_deposit, runtime, body, deposit_id, staff.actor, ip)

    response = await idempotency.run(runtime.engine, req, work)
    if response.headers.get(idempotency.REPLAYED_HEADER):
        metrics.IDEMPOTENT_REPLAYS.labels("/ops/v1/deposits").inc()
    return response
