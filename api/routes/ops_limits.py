"""Transfer limits as staff manage them: the defaults (admin) and a customer's overrides
(operator), each read with an ETag and replaced with If-Match, every change audited.

A customer without overrides reads as `{limits: [], version: 0}` (ETag "0"); a PUT with
If-Match "0" creates their set. The limit check itself runs in the ledger's hold transaction
(risk.limits), so a change here applies to the next transfer.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response
from sqlalchemy import Engine

from api import views
from api.contract import declare
from api.deps import Admin, AnyStaff, EngineDep, Operator, StaffPrincipal, client_ip
from api.preconditions import expected_version
from api.problems import Problem, not_found
from api.schemas_risk import CurrencyLimit, Limits, LimitsIn
from ledger import audit
from ledger.db import Conn
from ledger.errors import VersionConflict
from ledger.uow import UnitOfWork
from risk import limits as risk_limits

router = APIRouter(tags=["ops: limits"])

IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=64)]


def _view(limit_set: risk_limits.LimitSet | None) -> Limits:
    if limit_set is None:
        return Limits(limits=[], version=0)
    return Limits(
        limits=[CurrencyLimit(**lim.as_json()) for lim in limit_set.limits],
        version=limit_set.version,
        updated_at=limit_set.updated_at,
        updated_by=limit_set.updated_by,
    )


def _customer_exists(conn: Conn, customer_id: UUID) -> bool:
    return conn.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is not None


def _read(engine: Engine, scope: str, response: Response) -> Limits:
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        view = _view(risk_limits.get_limit_set(conn, scope))
        uow.commit()
    response.headers["ETag"] = views.etag(view.version)
    return view


def _replace(
    engine: Engine, scope: str, body: LimitsIn, version: int, staff: StaffPrincipal, request: Request
) -> Limits:
    """Compare-and-set the scope's limits and audit the change, in one transaction.

    Raises: Problem 412 version_conflict, 422 invalid_limits.
    """
    entries = [
        risk_limits.CurrencyLimits(
            currency=e.currency,
            per_transfer_max_minor=e.per_transfer_max_minor,
            daily_max_minor=e.daily_max_minor,
            hourly_count_max=e.hourly_count_max,
        )
        for e in body.limits
    ]
    try:
        with UnitOfWork(engine) as uow:
            sa_conn = uow.sql
            conn = uow.conn
            before = risk_limits.get_limit_set(conn, scope)
            after = risk_limits.put_limit_set(
                conn, scope, entries, expected_version=None if version == 0 else version, updated_by=staff.email
            )
            view = _view(after)
            audit.record(
                sa_conn,
                actor=staff.actor,
                action="limits.set",
                target_type="limits",
                target_id=scope,
                before=_view(before).model_dump(mode="json"),
                after=view.model_dump(mode="json"),
                ip=client_ip(request),
            )
            uow.commit()
    except VersionConflict as err:
        raise Problem(
            412,
            "version_conflict",
            "Version conflict",
            "The limits changed since you read them; read them again.",
            current_version=err.actual or 0,
        ) from err
    except risk_limits.InvalidLimits as err:
        raise Problem(422, "invalid_limits", "Invalid limits", str(err)) from err
    return view


@router.get("/limits/defaults", response_model=Limits, summary="The default limits (for customers without their own)")
def get_defaults(staff: Admin, engine: EngineDep, response: Response) -> Limits:
    return _read(engine, risk_limits.DEFAULT_SCOPE, response)


@router.put("/limits/defaults", response_model=Limits, summary="Replace the default limits (If-Match)")
@declare("invalid_limits")
def put_defaults(
    body: LimitsIn, staff: Admin, engine: EngineDep, request: Request, response: Response, if_match: IfMatch = None
) -> Limits:
    view = _replace(engine, risk_limits.DEFAULT_SCOPE, body, expected_version(if_match), staff, request)
    response.headers["ETag"] = views.etag(view.version)
    return view


@router.get("/customers/{customer_id}/limits", response_model=Limits, summary="A customer's own limits")
@declare("customer_not_found")
def get_customer_limits(customer_id: UUID, staff: AnyStaff, engine: EngineDep, response: Response) -> Limits:
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        if not _customer_exists(conn, customer_id):
            raise not_found("customer", "customer_not_found")
        uow.commit()
    return _read(engine, str(customer_id), response)


@router.put("/customers/{customer_id}/limits", response_model=Limits, summary="Replace a customer's limits (If-Match)")
@declare("customer_not_found", "invalid_limits")
def put_customer_limits(
    customer_id: UUID,
    body: LimitsIn,
    staff: Operator,
    engine: EngineDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> Limits:
    version = expected_version(if_match)
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        if not _customer_exists(conn, customer_id):
            raise not_found("customer", "customer_not_found")
        uow.commit()
    view = _replace(engine, str(customer_id), body, version, staff, request)
    response.headers["ETag"] = views.etag(view.version)
    return view
