"""The customer's accounts: open, list, read, balance (now or as of an instant), entries (/v1)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from sqlalchemy import text

from api import schemas, views
from api.contract import declare
from api.deps import (
    CurrentCustomer,
    EngineDep,
    LedgerDep,
    TransferCreationLimit,
)
from api.errors import ledger_errors, refusal
from api.lookups import account_by_number, owned_account
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from ledger import account_numbers, audit
from ledger.errors import UnsupportedCurrency
from ledger.ids import uuid7
from ledger.money import validate_currency
from ledger.uow import UnitOfWork

router = APIRouter(tags=["customer: accounts"])


@router.post("/accounts", status_code=201, response_model=schemas.Account)
@declare(
    "unsupported_currency",
    etag=True,
    location=True,
    links={
        "GetAccount": {"target": "GET /v1/accounts/{account_id}", "parameters": {"account_id": "$response.body#/id"}},
        "GetBalance": {
            "target": "GET /v1/accounts/{account_id}/balance",
            "parameters": {"account_id": "$response.body#/id"},
        },
        "ListEntries": {
            "target": "GET /v1/accounts/{account_id}/entries",
            "parameters": {"account_id": "$response.body#/id"},
        },
        "Deposit": {
            "target": "POST /ops/v1/deposits",
            "requestBody": {"account_id": "$response.body#/id", "currency": "$response.body#/currency"},
        },
        "OpsGetAccount": {
            "target": "GET /ops/v1/accounts/{account_id}",
            "parameters": {"account_id": "$response.body#/id"},
        },
    },
)
def open_account(
    body: schemas.AccountIn, customer: CurrentCustomer, ledger: LedgerDep, engine: EngineDep, response: Response
) -> schemas.Account:
    try:
        currency = validate_currency(body.currency)
    except UnsupportedCurrency as err:
        raise refusal("unsupported_currency", f"{body.currency!r} is not a currency this ledger keeps.") from err
    with ledger_errors():
        account = ledger.open_account(customer.id, currency, label=body.label, account_id=uuid7())
        view = views.account_with_balance(ledger, account)
    response.headers["ETag"] = views.etag(account.version)
    response.headers["Location"] = f"/v1/accounts/{account.id}"
    with UnitOfWork(engine) as uow:
        conn = uow.sql
        audit.record(
            conn,
            actor=customer.actor,
            action="account.open",
            target_type="account",
            target_id=account.id,
            after=views.dump(view),
        )
        uow.commit()
    return view


@router.get("/accounts", response_model=schemas.Page[schemas.Account])
@declare(
    links={
        "Transfer": {
            "target": "POST /v1/transfers",
            "requestBody": {
                "source_account_id": "$response.body#/items/0/id",
                "destination_account_id": "$response.body#/items/1/id",
                # One destination (the body's oneOf): the other two absent.
                "destination_account_number": None,
                "payee_id": None,
                "currency": "$response.body#/items/0/currency",
                # Small enough for any funded account, so the chain goes on to the OTP.
                "amount_minor": 100,
            },
        }
    }
)
def list_accounts(customer: CurrentCustomer, ledger: LedgerDep) -> schemas.Page[schemas.Account]:
    # A customer has a handful of accounts: one page holds them all.
    with ledger_errors():
        items = [views.account_with_balance(ledger, a) for a in ledger.list_accounts(customer.id)]
    return schemas.Page[schemas.Account](items=items, next_cursor=None)


@router.get(
    "/accounts/lookup",
    response_model=schemas.AccountLookup,
    summary="Check an account number before paying it",
    description=(
        "200 with the holder's initials, 404 account_not_found, 422 invalid_account_number when the check "
        "digits are wrong (caught before any lookup). Counts against the transfer-creation rate limit, "
        "so numbers cannot be harvested faster than transfers can be made."
    ),
)
@declare("account_not_found", "invalid_account_number")
def lookup_account(
    customer: CurrentCustomer,
    _limit: TransferCreationLimit,
    ledger: LedgerDep,
    engine: EngineDep,
    account_number: Annotated[str, Query(max_length=64)],
) -> schemas.AccountLookup:
    account = account_by_number(ledger, account_number)
    with engine.connect() as conn:
        full_name = conn.execute(
            text("SELECT full_name FROM customers WHERE id = :id"), {"id": account.customer_id}
        ).scalar_one_or_none()
    return schemas.AccountLookup(
        account_number=account.account_number, holder_name_hint=account_numbers.initials(full_name or "")
    )


@router.get("/accounts/{account_id}", response_model=schemas.Account)
@declare("account_not_found", etag=True)
def get_account(account_id: UUID, customer: CurrentCustomer, ledger: LedgerDep, response: Response) -> schemas.Account:
    account = owned_account(ledger, customer, account_id)
    with ledger_errors():
        view = views.account_with_balance(ledger, account)
    response.headers["ETag"] = views.etag(account.version)
    return view


@router.get("/accounts/{account_id}/balance", response_model=schemas.Balance)
@declare("account_not_found")
def get_balance(
    account_id: UUID,
    customer: CurrentCustomer,
    ledger: LedgerDep,
    as_of: Annotated[schemas.Instant | None, Query(description="RFC 3339 instant; default now")] = None,
) -> schemas.Balance:
    owned_account(ledger, customer, account_id)
    with ledger_errors():
        return views.balance(ledger.balance(account_id, views.utc(as_of)))


@router.get("/accounts/{account_id}/entries", response_model=schemas.Page[schemas.Entry])
@declare("account_not_found")
def list_entries(
    account_id: UUID,
    customer: CurrentCustomer,
    ledger: LedgerDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.Page[schemas.Entry]:
    owned_account(ledger, customer, account_id)
    with ledger_errors():
        page = ledger.statement(account_id, limit, cursor or None)
    return schemas.Page[schemas.Entry](items=[views.entry(e) for e in page.items], next_cursor=page.next_cursor)
