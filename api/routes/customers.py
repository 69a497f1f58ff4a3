"""Customer sign-up, login, logout and profile (/v1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from psycopg.errors import UniqueViolation
from sqlalchemy import text

from api import login as login_mod
from api import principals, schemas, security
from api.contract import declare
from api.deps import DbConn, EngineDep, EnrollingCustomer, RuntimeDep, customer_scheme, reject_foreign_token
from api.problems import Problem
from ledger.uow import UnitOfWork

router = APIRouter(tags=["customer: auth"])


@router.post("/signup", status_code=201, response_model=schemas.Customer, dependencies=[Depends(reject_foreign_token)])
@declare(
    "email_taken",
    links={
        "OpsGetCustomer": {
            "target": "GET /ops/v1/customers/{customer_id}",
            "parameters": {"customer_id": "$response.body#/customer_id"},
        }
    },
)
def signup(body: schemas.SignupIn, engine: EngineDep) -> schemas.Customer:
    try:
        with UnitOfWork(engine) as uow:
            customer = principals.insert_customer(
                uow, email=body.email, full_name=body.full_name, password=body.password
            )
            uow.commit()
    except UniqueViolation as err:
        raise Problem(409, "email_taken", "E-mail taken", "An account with this e-mail already exists.") from err
    return customer


@router.post("/auth/token", response_model=schemas.Token, dependencies=[Depends(reject_foreign_token)])
@declare("invalid_credentials", "mfa_required", "too_many_attempts")
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    runtime: RuntimeDep,
    totp: Annotated[str | None, Form(max_length=64, description="TOTP code or recovery code, when enabled")] = None,
) -> schemas.Token:
    return login_mod.login(
        runtime.engine, request, security.CUSTOMER, form.username, form.password, totp=totp, sealer=runtime.sealer
    )


@router.post("/auth/logout", status_code=204, response_class=Response)
def logout(
    customer: EnrollingCustomer, engine: EngineDep, bearer: Annotated[str | None, Depends(customer_scheme)]
) -> Response:
    login_mod.logout(engine, bearer)
    return Response(status_code=204)


@router.get("/me", response_model=schemas.Customer)
def me(customer: EnrollingCustomer, conn: DbConn) -> schemas.Customer:
    row = conn.execute(
        text("SELECT id, email, full_name, created_at FROM customers WHERE id = :id"), {"id": customer.id}
    ).one()
    return schemas.Customer(customer_id=row.id, email=row.email, full_name=row.full_name, created_at=row.created_at)
