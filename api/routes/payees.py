"""Trusted payees (PSD2 RTS Art. 13): add, confirm with an OTP, list, delete (/v1).

Adding a payee issues an OTP bound to its account number and name, delivered like a
transfer's code; once confirmed, transfers to it need no OTP. Deleting it ends that at once.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api import challenges, schemas, views
from api.contract import declare
from api.deps import CurrentCustomer, CustomerPrincipal, OtpSubmissionLimit, RuntimeDep, record_customer_action
from api.lookups import account_by_number, owned_payee
from api.runtime import Runtime
from ledger import account_numbers, payees
from ledger.ids import uuid7
from ledger.uow import UnitOfWork
from otp.codes import Binding
from otp.delivery import CODE_SLOT

router = APIRouter(tags=["customer: payees"])


def binding(payee: payees.Payee) -> Binding:
    """What a payee's code authorises: trusting this number under this name, nothing else."""
    return Binding(
        transfer_id=str(payee.id),
        amount_minor=0,
        currency="",
        payee_account_id=payee.account_number,
        context=f"payee-name:{payee.name}",
    )


def view(p: payees.Payee) -> schemas.Payee:
    return schemas.Payee(
        id=p.id, account_number=p.account_number, name=p.name, status=p.status.value, created_at=p.created_at
    )


def _audit(runtime: Runtime, customer: CustomerPrincipal, action: str, payee: payees.Payee) -> None:
    record_customer_action(runtime.engine, customer, action, "payee", payee.id, views.dump(view(payee)))


@router.post(
    "/payees",
    status_code=201,
    response_model=schemas.Payee,
    summary="Add a payee; confirm it with the code sent to the inbox",
    description="422 invalid_account_number (check digits, before any lookup); 404 account_not_found.",
)
@declare("account_not_found", "invalid_account_number")
def add_payee(
    body: schemas.PayeeIn, customer: CurrentCustomer, runtime: RuntimeDep, response: Response
) -> schemas.Payee:
    account = account_by_number(runtime.ledger, body.account_number)
    name = body.name.strip() or body.name
    with UnitOfWork(runtime.engine) as uow:
        conn = uow.conn
        payee = payees.create(
            conn,
            payee_id=uuid7(),
            customer_id=customer.id,
            account_id=account.id,
            account_number=account.account_number,
            name=name,
        )
        number = account_numbers.grouped(payee.account_number)
        challenges.issue(
            conn,
            runtime.settings,
            binding=binding(payee),
            customer_id=customer.id,
            subject=f"Confirm your new payee {payee.name}",
            sealer=runtime.sealer,
            body=(
                f"Your code to add {payee.name}, account {number}, as a trusted payee is {CODE_SLOT}. "
                f"It expires in {runtime.settings.otp_ttl_s // 60} minutes. Once trusted, payments to this "
                "payee need no code: never share it with anyone."
            ),
        )
        uow.commit()
    _audit(runtime, customer, "payee.create", payee)
    response.headers["Location"] = f"/v1/payees/{payee.id}"
    return view(payee)


@router.post(
    "/payees/{payee_id}/otp",
    response_model=schemas.Payee,
    summary="Confirm a payee with its one-time passcode",
    description=(
        "200 trusted. 422 invalid_otp with attempts_left; 409 otp_not_pending (expired, used, locked, "
        "or the payee is not waiting for a code); 429 otp_throttled."
    ),
)
@declare("invalid_otp", "otp_not_pending", "otp_throttled", "payee_not_found")
async def confirm_payee(
    payee_id: UUID, body: schemas.OtpIn, customer: CurrentCustomer, _limit: OtpSubmissionLimit, runtime: RuntimeDep
) -> schemas.Payee:
    def confirm() -> payees.Payee:
        with UnitOfWork(runtime.engine) as uow:
            conn = uow.conn
            # The row lock serialises a confirmation with a deletion of the same payee.
            payee = owned_payee(conn, runtime, customer, payee_id, lock="FOR UPDATE")
            if payee.status is not payees.PayeeStatus.PENDING_OTP:
                raise challenges.not_pending("payee")
            return challenges.confirm(
                uow,
                runtime.settings,
                binding=binding(payee),
                code=body.code,
                what="payee",
                accept=lambda: payees.set_status(conn, payee.id, payees.PayeeStatus.TRUSTED),
            )

    payee = await run_in_threadpool(confirm)
    await run_in_threadpool(_audit, runtime, customer, "payee.trust", payee)
    return view(payee)


@router.get("/payees", response_model=schemas.Page[schemas.Payee])
def list_payees(customer: CurrentCustomer, runtime: RuntimeDep) -> schemas.Page[schemas.Payee]:
    # A person has a handful of payees: one page holds them all.
    with UnitOfWork(runtime.engine) as uow:
        conn = uow.conn
        items = [view(p) for p in payees.list_for(conn, customer.id)]
        uow.commit()
    return schemas.Page[schemas.Payee](items=items, next_cursor=None)


@router.get("/payees/{payee_id}", response_model=schemas.Payee)
@declare("payee_not_found")
def get_payee(payee_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep) -> schemas.Payee:
    with UnitOfWork(runtime.engine) as uow:  # a read: nothing to commit
        return view(owned_payee(uow.conn, runtime, customer, payee_id))


@router.delete("/payees/{payee_id}", status_code=204, summary="Delete a payee: its exemption ends at once")
@declare("payee_not_found")
def delete_payee(payee_id: UUID, customer: CurrentCustomer, runtime: RuntimeDep) -> Response:
    with UnitOfWork(runtime.engine) as uow:
        conn = uow.conn
        # FOR UPDATE waits for any initiation holding the payee's share lock, and every later
        # one sees the deletion (ledger/payees.py).
        owned_payee(conn, runtime, customer, payee_id, lock="FOR UPDATE")
        payee = payees.set_status(conn, payee_id, payees.PayeeStatus.DELETED)
        uow.commit()
    _audit(runtime, customer, "payee.delete", payee)
    return Response(status_code=204)
