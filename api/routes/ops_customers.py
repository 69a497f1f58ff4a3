"""Customers as staff see them (/ops/v1/customers): list and detail with accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from sqlalchemy import text

from api import pagination, schemas, views
from api.contract import declare
from api.deps import AnyStaff, DbConn, LedgerDep
from api.errors import ledger_errors
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import not_found

router = APIRouter(tags=["ops: customers"])


@router.get("/customers", response_model=schemas.Page[schemas.Customer])
def list_customers(
    staff: AnyStaff,
    conn: DbConn,
    email: Annotated[
        str | None, Query(max_length=254, description="Filter: e-mail contains (case-insensitive)")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.Page[schemas.Customer]:
    after = pagination.decode_as(cursor, datetime.fromisoformat, UUID)
    where = ["TRUE"]
    params: dict[str, object] = {"n": limit + 1}
    if email:
        where.append("strpos(lower(email), lower(:email)) > 0")
        params["email"] = email.replace("\x00", "")
    if after is not None:
        where.append("(created_at, id) < (:at, :id)")
        params["at"], params["id"] = after
    rows = conn.execute(
        text(
            f"SELECT id, email, full_name, created_at FROM customers WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT :n"
        ),
        params,
    ).all()
    items = [
        schemas.Customer(customer_id=r.id, email=r.email, full_name=r.full_name, created_at=r.created_at)
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = pagination.encode(last.created_at.isoformat(), str(last.id)) if last is not None else None
    return schemas.Page[schemas.Customer](items=items, next_cursor=next_cursor)


@router.get("/customers/{customer_id}", response_model=schemas.CustomerDetail)
@declare("customer_not_found")
def get_customer(customer_id: UUID, staff: AnyStaff, conn: DbConn, ledger: LedgerDep) -> schemas.CustomerDetail:
    row = conn.execute(
        text("SELECT id, email, full_name, created_at FROM customers WHERE id = :id"), {"id": customer_id}
    ).first()
    if row is None:
        raise not_found("customer", "customer_not_found")
    with ledger_errors():
        accounts = [views.account_with_balance(ledger, a) for a in ledger.list_accounts(customer_id)]
    return schemas.CustomerDetail(
        customer_id=row.id, email=row.email, full_name=row.full_name, created_at=row.created_at, accounts=accounts
    )
