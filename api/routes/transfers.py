"""Customer transfers: initiate (idempotent), list, read, confirm with the OTP, cancel (/v1).

Initiation is a Temporal update-with-start: the workflow places the hold and the request
waits for that decision, so the answer is either a transfer in `pending_otp` or the reason
it was refused. The transfer id is made here and stored with the Idempotency-Key before
the workflow starts, so a client that retries after a timeout reaches the same transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import idempotency, metrics, schemas, transfer_flow, views
from api.contract import declare
from api.deps import (
    CurrentCustomer,
    CustomerPrincipal,
    IdempotencyKey,
    OtpSubmissionLimit,
    RuntimeDep,
    TransferCreationLimit,
    record_foreign_access,
)
from api.errors import from_ledger, ledger_errors, refusal
from api.lookups import account_by_number, owned_account
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import Problem
from api.runtime import Runtime
from contracts.transfer import TransferRequest
from ledger import payees
from ledger.accounts import Account, AccountKind
from ledger.db import connection
from ledger.errors import AccountNotFound, TransferNotFound, UnsupportedCurrency
from ledger.money import validate_currency
from ledger.service import Ledger
from ledger.states import OtpOutcome, TransferStatus
from ledger.transfers import Transfer

router = APIRouter(tags=["customer: transfers"])

# What initiation may refuse with: the API's own checks, and the ledger's when it places the
# hold (the workflow's failure_reason becomes the problem's code).
TRANSFER_REFUSALS = (
    "account_not_found",
    "same_account",
    "currency_mismatch",
    "insufficient_funds",
    "account_frozen",
    "account_closed",
    "account_not_active",
    "transfer_refused",
    # Account numbers, payees and limits (docs/api.md "Account numbers and trusted payees",
    # "Limits and risk"): refused at initiation, before any hold.
    "invalid_account_number",
    "invalid_destination",
    "payee_not_found",
    "payee_not_trusted",
    "limit_exceeded",
)


def owned_transfer(ledger: Ledger, customer: CustomerPrincipal, transfer_id: UUID) -> Transfer:
    """Raises: Problem 404 transfer_not_found (also when it is another customer's)."""
    try:
        transfer = ledger.get_transfer(transfer_id)
    except TransferNotFound as err:
        raise refusal("transfer_not_found", "No such transfer.") from err
    if transfer.customer_id != customer.id:
        record_foreign_access(ledger.engine, customer, "transfer", transfer_id)
        raise refusal("transfer_not_found", "No such transfer.")
    return transfer


@dataclass(frozen=True)
class Destination:
    """Where a transfer goes, resolved from whichever of the three fields the client gave."""

    account: Account
    # Asked of the workflow; its initiation step re-checks the payee before granting it.
    sca_exemption: str = ""
    payee_id: UUID | None = None


def _resolve(ledger: Ledger, customer: CustomerPrincipal, body: schemas.TransferIn) -> Destination:
    """The refusals the API can give before any workflow runs (the ledger re-checks all of
    them under its row locks; these only spare a workflow for requests that cannot work).

    A destination that is one of the customer's trusted payees (by payee_id, number or id)
    asks for the trusted-payee exemption (PSD2 RTS Art. 13).

    Raises:
        Problem: 404 account_not_found / payee_not_found, 422 invalid_destination (not exactly
        one destination field), invalid_account_number (check digits, before any lookup),
        payee_not_trusted, same_account, currency_mismatch.
    """
    if body.destinations_given != 1:
        raise refusal(
            "invalid_destination",
            "Give exactly one of destination_account_id, destination_account_number and payee_id.",
        )
    if body.destination_account_number is not None:
        destination_id = account_by_number(ledger, body.destination_account_number).id
    elif body.payee_id is not None:
        with connection(ledger.engine) as conn:
            try:
                payee = payees.get(conn, body.payee_id)
            except payees.PayeeNotFound as err:
                raise refusal("payee_not_found", "No such payee.") from err
        if payee.customer_id != customer.id or payee.status is payees.PayeeStatus.DELETED:
            if payee.customer_id != customer.id:
                record_foreign_access(ledger.engine, customer, "payee", body.payee_id)
            raise refusal("payee_not_found", "No such payee.")
        if payee.status is not payees.PayeeStatus.TRUSTED:
            raise refusal("payee_not_trusted", "Confirm the payee with its code before paying it.")
        destination_id = payee.account_id
    else:
        assert body.destination_account_id is not None  # exactly one is given (schemas.TransferIn)
        destination_id = body.destination_account_id
    source = owned_account(ledger, customer, body.source_account_id)
    if body.source_account_id == destination_id:
        raise refusal("same_account", "Source and destination are the same account.")
    try:
        destination = ledger.get_account(destination_id)
    except AccountNotFound as err:
        raise refusal("account_not_found", "No such destination account.") from err
    if destination.kind is not AccountKind.CUSTOMER:
        raise refusal("account_not_found", "No such destination account.")
    try:
        validate_currency(body.currency)
    except UnsupportedCurrency as err:
        raise refusal("currency_mismatch", "The currency must be the source's or the destination's.") from err
    if body.currency not in (source.currency, destination.currency):
        raise refusal("currency_mismatch", "The currency must be the source's or the destination's.")
    with connection(ledger.engine) as conn:
        trusted = payees.trusted_for(conn, customer.id, destination.id, payee_id=body.payee_id)
    if trusted is None:
        return Destination(destination)
    return Destination(destination, payees.ScaExemption.TRUSTED_PAYEE.value, trusted.id)


def _transfer_response(view: schemas.Transfer, status_code: int = 200) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status_code)


async def _read_if_any(runtime: Runtime, transfer_id: UUID, otp: schemas.Otp | None = None) -> schemas.Transfer | None:
    """The transfer as the API shows it, or None when the ledger has no row for it (it refused
    the transfer before placing the hold): one read serves both questions."""

    def read() -> schemas.Transfer | None:
        with ledger_errors():
            try:
                t = runtime.ledger.get_transfer(transfer_id)
            except TransferNotFound:
                return None
            return views.one_transfer(runtime.ledger, runtime.engine, t, otp)

    return await run_in_threadpool(read)


async def _read(runtime: Runtime, transfer_id: UUID, otp: schemas.Otp | None = None) -> schemas.Transfer:
    view = await _read_if_any(runtime, transfer_id, otp)
    if view is None:
        raise from_ledger(TransferNotFound(transfer_id))
    return view


@router.post(
    "/transfers",
    status_code=201,
    response_model=schemas.Transfer,
    summary="Initiate a transfer (Idempotency-Key required)",
)
@declare(
    *TRANSFER_REFUSALS,
    location=True,
    links={
        "SubmitOtp": {
            "target": "POST /v1/transfers/{transfer_id}/otp",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
        "GetTransfer": {
            "target": "GET /v1/transfers/{transfer_id}",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
        "Cancel": {
            "target": "POST /v1/transfers/{transfer_id}/cancel",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
        "OpsGetTransfer": {
            "target": "GET /ops/v1/transfers/{transfer_id}",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
        "Reject": {
            "target": "POST /ops/v1/transfers/{transfer_id}/reject",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
    },
)
async def create_transfer(
    body: schemas.TransferIn,
    customer: CurrentCustomer,
    _limit: TransferCreationLimit,
    key: IdempotencyKey,
    request: Request,
    runtime: RuntimeDep,
) -> Response:
    req = await idempotency.request_of(request, customer.scope, key)

    async def work(transfer_id: UUID) -> Response:
        destination = await run_in_threadpool(_resolve, runtime.ledger, customer, body)
        client = await runtime.temporal()
        settings = runtime.settings
        state = await transfer_flow.initiate(
            client,
            TransferRequest(
                transfer_id=str(transfer_id),
                customer_id=str(customer.id),
                source_account_id=str(body.source_account_id),
                destination_account_id=str(destination.account.id),
                amount_minor=body.amount_minor,
                currency=body.currency,
                description=body.description or "",
                otp_ttl_s=settings.otp_ttl_s,
                otp_max_attempts=settings.otp_max_attempts,
                sca_exemption=destination.sca_exemption,
                payee_id=str(destination.payee_id) if destination.payee_id else "",
            ),
            task_queue=settings.temporal_task_queue,
            # Shown in the Temporal UI: enough to recognise the transfer, nothing secret.
            memo={
                "customer_id": str(customer.id),
                "amount_minor": body.amount_minor,
                "currency": body.currency,
                "source_account_id": str(body.source_account_id),
                "destination_account_id": str(destination.account.id),
            },
        )
        if state.status == "initiating":
            raise Problem(503, "workflow_timeout", "Service unavailable", "The transfer is still being initiated.")
        expires_at = datetime.fromisoformat(state.otp_expires_at) if state.otp_expires_at else None
        # Shown only while the transfer is pending_otp (views.transfer): null when exempt.
        otp = schemas.Otp(expires_at=expires_at, attempts_left=state.attempts_left)
        view = await _read_if_any(runtime, transfer_id, otp)
        if view is None:
            # No transfer row: the ledger refused it before placing the hold.
            metrics.TRANSFER_TRANSITIONS.labels("failed").inc()
            problem = refusal(state.failure_reason or "transfer_refused", "The transfer was refused.")
            if state.failure_reason == "limit_exceeded" and state.refusal:
                problem.detail = "The transfer would pass one of your limits (see GET /v1/limits)."
                problem.extra.update(state.refusal)
            raise problem
        metrics.TRANSFER_TRANSITIONS.labels(state.status).inc()
        response = _transfer_response(view, 201)
        response.headers["Location"] = f"/v1/transfers/{transfer_id}"
        return response

    response = await idempotency.run(runtime.engine, req, work)
    if response.headers.get(idempotency.REPLAYED_HEADER):
        metrics.IDEMPOTENT_REPLAYS.labels("/v1/transfers").inc()
    return response


@router.get("/transfers", response_model=schemas.Page[schemas.Transfer])
def list_transfers(
    customer: CurrentCustomer,
    runtime: RuntimeDep,
    status: Annotated[schemas.StatusFilter | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.Page[schemas.Transfer]:
    with ledger_errors():
        page = runtime.ledger.list_transfers(customer_id=customer.id, status=status, limit=limit, cursor=cursor or None)
        items = views.transfers(runtime.ledger, runtime.engine, page.items)
    return schemas.Page[schemas.Transfer](items=items, next_cursor=page.next_cursor)


@router.get("/transfers/{transfer_id}", response_model=schemas.Transfer)
@declare("transfer_not_found")
def get_transfer(transfer_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep) -> schemas.Transfer:
    transfer = owned_transfer(runtime.ledger, customer, transfer_id)
    with ledger_errors():
        return views.one_transfer(runtime.ledger, runtime.engine, transfer)


@router.post(
    "/transfers/{transfer_id}/otp",
    response_model=schemas.Transfer,
    summary="Confirm a transfer with its one-time passcode",
    description=(
        "200 once the code is taken (status processing, in_review or posted). 422 invalid_otp with "
        "attempts_left for a wrong code (attempts_left 0: the transfer is now failed/otp_locked). "
        "409 otp_not_pending when the transfer no longer waits for a code (expired, cancelled, locked, "
        "already approved). 429 otp_throttled when this customer has failed too many codes in the last hour; "
        "429 rate_limited when codes are submitted too fast (Retry-After)."
    ),
)
@declare(
    "transfer_not_found",
    "invalid_otp",
    "otp_not_pending",
    "otp_throttled",
    links={
        "GetTransfer": {
            "target": "GET /v1/transfers/{transfer_id}",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
        "GetSourceBalance": {
            "target": "GET /v1/accounts/{account_id}/balance",
            "parameters": {"account_id": "$response.body#/source_account_id"},
        },
        "RequestReversal": {
            "target": "POST /ops/v1/transfers/{transfer_id}/reversals",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
        "Approve": {
            "target": "POST /ops/v1/transfers/{transfer_id}/approve",
            "parameters": {"transfer_id": "$response.body#/id"},
        },
    },
)
async def submit_otp(
    transfer_id: UUID, body: schemas.OtpIn, customer: CurrentCustomer, _limit: OtpSubmissionLimit, runtime: RuntimeDep
) -> Response:
    transfer = await run_in_threadpool(owned_transfer, runtime.ledger, customer, transfer_id)
    if transfer.status is not TransferStatus.PENDING_OTP:
        status = transfer.status.value
        raise transfer_flow.not_pending(f"The transfer is {status}.", transfer_status=status)
    client = await runtime.temporal()
    # The code goes to the workflow and nowhere else: not in logs, problems or metric labels.
    result = await transfer_flow.submit_otp(client, runtime.engine, transfer.id, transfer.workflow_id, body.code)
    outcome = result.outcome
    if outcome != OtpOutcome.ACCEPTED:
        metrics.OTP_FAILURES.labels(outcome).inc()
    if outcome == OtpOutcome.INVALID:
        raise Problem(
            422, "invalid_otp", "Invalid code", "The code is not correct.", attempts_left=result.attempts_left
        )
    if outcome == OtpOutcome.LOCKED:
        metrics.TRANSFER_TRANSITIONS.labels(TransferStatus.FAILED).inc()
        raise Problem(
            422,
            "invalid_otp",
            "Invalid code",
            "The code is not correct and no attempts are left: the transfer failed (otp_locked).",
            attempts_left=0,
        )
    if outcome == OtpOutcome.THROTTLED:
        raise Problem(
            429,
            "otp_throttled",
            "Too many wrong codes",
            "Too many wrong codes in the last hour; try again later.",
            headers={"Retry-After": "3600"},
        )
    if outcome != OtpOutcome.ACCEPTED:
        # expired, not_pending, already_approved, cancelled, not_found
        raise transfer_flow.not_pending(f"The transfer no longer waits for a code ({outcome}).", reason=outcome)
    # The accepting check moved the transfer on (processing or in_review) in its own
    # transaction, and the posting usually ran in the same workflow task: the ledger's row
    # is the answer, with no polling of the workflow.
    view = await _read(runtime, transfer_id)
    metrics.TRANSFER_TRANSITIONS.labels(view.status).inc()
    return _transfer_response(view)


@router.post("/transfers/{transfer_id}/cancel", response_model=schemas.Transfer)
@declare("transfer_not_found", "not_cancellable")
async def cancel_transfer(transfer_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep) -> Response:
    transfer = await run_in_threadpool(owned_transfer, runtime.ledger, customer, transfer_id)
    not_cancellable = Problem(
        409, "not_cancellable", "Not cancellable", "Only a transfer waiting for its code can be cancelled."
    )
    if transfer.status is not TransferStatus.PENDING_OTP:
        raise not_cancellable
    client = await runtime.temporal()
    state = await transfer_flow.current_state(client, transfer.workflow_id)
    if state is None or state.status != TransferStatus.PENDING_OTP:
        raise not_cancellable
    final = await transfer_flow.signal_and_wait(
        client, transfer.workflow_id, signal="cancel", arg=None, leaves=TransferStatus.PENDING_OTP
    )
    if final is None or final.status == TransferStatus.PENDING_OTP:
        raise Problem(503, "workflow_timeout", "Service unavailable", "The cancellation is not confirmed yet.")
    if final.status != TransferStatus.CANCELLED:
        raise not_cancellable
    metrics.TRANSFER_TRANSITIONS.labels(TransferStatus.CANCELLED).inc()
    return _transfer_response(await _read(runtime, transfer_id))
