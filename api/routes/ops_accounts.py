"""Accounts as staff see them (/ops/v1/accounts): read with ETag, change status with If-Match.

The ETag is the account's version; a PATCH is a compare-and-set on it in the ledger, so two
operators acting on the same stale view cannot both win: the second gets 412.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response

from api import schemas, views
from api.contract import declare
from api.deps import AnyStaff, EngineDep, LedgerDep, Operator, client_ip
from api.errors import ledger_errors, refusal
from api.lookups import account_by_number
from api.preconditions import expected_version
from api.problems import Problem
from ledger import audit
from ledger.errors import AccountNotFound, IllegalTransition, VersionConflict
from ledger.uow import UnitOfWork

router = APIRouter(tags=["ops: accounts"])


@router.get(
    "/accounts",
    response_model=schemas.Account,
    summary="Find an account by its number",
    description="422 invalid_account_number (check digits), 404 account_not_found.",
)
@declare("account_not_found", "invalid_account_number")
def find_account(
    staff: AnyStaff, ledger: LedgerDep, response: Response, account_number: Annotated[str, Query(max_length=64)]
) -> schemas.Account:
    account = account_by_number(ledger, account_number)
    with ledger_errors():
        view = views.account_with_balance(ledger, account)
    response.headers["ETag"] = views.etag(account.version)
    return view


@router.get("/accounts/{account_id}", response_model=schemas.Account)
@declare(
    "account_not_found",
    etag=True,
    links={
        "PatchAccount": {
            "target": "PATCH /ops/v1/accounts/{account_id}",
            "parameters": {"account_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"},
        }
    },
)
def get_account(account_id: UUID, staff: AnyStaff, ledger: LedgerDep, response: Response) -> schemas.Account:
    try:
        account = ledger.get_account(account_id)
    except AccountNotFound as err:
        raise refusal("account_not_found", "No such account.") from err
    with ledger_errors():
        view = views.account_with_balance(ledger, account)
    response.headers["ETag"] = views.etag(account.version)
    return view


@router.patch("/accounts/{account_id}", response_model=schemas.Account)
@declare("account_not_found", "illegal_transition", etag=True)
def patch_account(
    account_id: UUID,
    body: schemas.AccountPatch,
    staff: Operator,
    ledger: LedgerDep,
    engine: EngineDep,
    request: Request,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=64)] = None,
) -> schemas.Account:
    expected = expected_version(if_match)
    try:
        before = ledger.get_account(account_id)
    except AccountNotFound as err:
        raise refusal("account_not_found", "No such account.") from err
    try:
        after = ledger.set_account_status(account_id, body.status, expected)
    except VersionConflict as err:
        raise Problem(
            412,
            "version_conflict",
            "Version conflict",
            "The account changed since you read it; read it again.",
            current_version=err.actual,
        ) from err
    except IllegalTransition as err:
        raise Problem(409, "illegal_transition", "Not allowed", str(err)) from err
    with ledger_errors():
        view = views.account_with_balance(ledger, after)
    with UnitOfWork(engine) as uow:
        conn = uow.sql
        audit.record(
            conn,
            actor=staff.actor,
            action="account.status_change",
            target_type="account",
            target_id=account_id,
            before={"status": before.status.value, "version": before.version},
            after={"status": after.status.value, "version": after.version},
            ip=client_ip(request),
        )
        uow.commit()
    response.headers["ETag"] = views.etag(after.version)
    return view
