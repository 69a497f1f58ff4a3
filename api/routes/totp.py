"""TOTP enrolment of both realms: `/v1/me/totp` (customers) and `/ops/v1/me/totp` (staff).

POST .../me/totp           -> 201 {otpauth_uri, secret}: a pending enrolment
POST .../me/totp/confirm   -> 200 {enabled: true, recovery_codes}: on, codes shown this once
DELETE .../me/totp {code}  -> 204: off, with a TOTP code or a recovery code
GET .../me/totp            -> 200 {enabled, pending, required, recovery_codes_left}

These routes take a signed-in principal *without* a second factor (api/deps.py `Enrolling*`):
they are what a staff member, or a customer under LEDGERFLOW_CUSTOMER_MFA=required, may use
before enrolling. A wrong code at confirmation or disable counts as a failed login in the
login throttle (api/throttle.py) and is audited, so a stolen bearer token cannot be used to
guess codes at leisure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from api import security, throttle
from api.contract import declare
from api.deps import CustomerPrincipal, EnrollingCustomer, EnrollingStaff, RuntimeDep, StaffPrincipal, client_ip
from api.problems import Problem
from api.runtime import Runtime
from api.schemas import Body
from ledger import audit
from ledger.uow import UnitOfWork
from mfa import store

customer_router = APIRouter(tags=["customer: two-factor"])
ops_router = APIRouter(tags=["ops: two-factor"])


class TotpEnrolment(BaseModel):
    otpauth_uri: str
    secret: str


class TotpCodeIn(Body):
    # Not constrained to six digits: a recovery code is accepted where a TOTP code is.
    code: Annotated[str, Field(min_length=1, max_length=64)]


class TotpConfirmed(BaseModel):
    enabled: Literal[True] = True
    recovery_codes: list[str]


class TotpStatus(BaseModel):
    enabled: bool
    pending: bool
    required: bool
    recovery_codes_left: int


@dataclass(frozen=True)
class _Principal:
    """What the handlers need of either realm's principal."""

    realm: str
    id: UUID
    email: str
    actor: audit.Actor


def _customer(customer: CustomerPrincipal) -> _Principal:
    return _Principal(security.CUSTOMER, customer.id, customer.email, customer.actor)


def _staff(staff: StaffPrincipal) -> _Principal:
    return _Principal(security.STAFF, staff.id, staff.email, staff.actor)


def _throttled(retry_after: int) -> Problem:
    return Problem(
        429,
        "too_many_attempts",
        "Too many attempts",
        "Too many failed attempts; try again later.",
        headers={"Retry-After": str(retry_after)},
    )


def _invalid() -> Problem:
    return Problem(422, "invalid_totp", "Invalid code", "The code is not valid (or was already used).")


def _record(conn: Connection, who: _Principal, request: Request, action: str, **kwargs: Any) -> None:
    audit.record(
        conn,
        actor=who.actor,
        action=action,
        target_type=who.realm,
        target_id=who.id,
        ip=client_ip(request),
        **kwargs,
    )


def _status(runtime: Runtime, who: _Principal) -> TotpStatus:
    with runtime.engine.connect() as conn:
        now = store.status(conn, who.realm, who.id)
        left = store.recovery_codes_left(conn, who.realm, who.id) if now.enabled else 0
    required = who.realm == security.STAFF or runtime.settings.customer_mfa == "required"
    return TotpStatus(enabled=now.enabled, pending=now.pending, required=required, recovery_codes_left=left)


def _begin(runtime: Runtime, who: _Principal, request: Request) -> TotpEnrolment:
    try:
        with UnitOfWork(runtime.engine) as uow:
            conn = uow.sql
            enrolment = store.begin(conn, runtime.sealer, realm=who.realm, principal_id=who.id, account=who.email)
            _record(conn, who, request, "mfa.enrolment_started")
            uow.commit()
    except store.AlreadyEnabled as err:
        raise Problem(
            409, "totp_already_enabled", "Already enabled", "Two-factor is on; disable it first to enrol anew."
        ) from err
    return TotpEnrolment(otpauth_uri=enrolment.otpauth_uri, secret=enrolment.secret)


def _confirm(runtime: Runtime, who: _Principal, request: Request, code: str) -> TotpConfirmed:
    ip = client_ip(request)
    failure: Problem | None = None
    recovery: list[str] = []
    # No exception inside the transaction: a failure's throttle row and audit row must commit.
    with UnitOfWork(runtime.engine) as uow:
        conn = uow.sql
        throttle.serialise(conn, who.realm, who.email)
        retry_after = throttle.retry_after_s(conn, who.realm, who.email, ip)
        if retry_after is not None:
            failure = _throttled(retry_after)
        else:
            try:
                recovery = store.confirm(
                    conn, runtime.sealer, realm=who.realm, principal_id=who.id, code=code, now=datetime.now(UTC)
                )
                _record(conn, who, request, "mfa.enabled", detail={"recovery_codes": len(recovery)})
            except store.NotPending:
                failure = Problem(409, "totp_not_pending", "Nothing to confirm", "Start an enrolment first.")
            except store.AlreadyEnabled:
                failure = Problem(409, "totp_already_enabled", "Already enabled", "Two-factor is already on.")
            except store.InvalidCode:
                throttle.record_failure(conn, who.realm, who.email, ip)
                _record(conn, who, request, "mfa.failed", outcome="denied", detail={"context": "confirm"})
                failure = _invalid()
        uow.commit()
    if failure is not None:
        raise failure
    return TotpConfirmed(recovery_codes=recovery)


def _disable(runtime: Runtime, who: _Principal, request: Request, code: str) -> Response:
    ip = client_ip(request)
    failure: Problem | None = None
    with UnitOfWork(runtime.engine) as uow:
        conn = uow.sql
        throttle.serialise(conn, who.realm, who.email)
        retry_after = throttle.retry_after_s(conn, who.realm, who.email, ip)
        if retry_after is not None:
            failure = _throttled(retry_after)
        else:
            try:
                factor = store.disable(
                    conn, runtime.sealer, realm=who.realm, principal_id=who.id, code=code, now=datetime.now(UTC)
                )
                if factor == "recovery_code":
                    _record(conn, who, request, "mfa.recovery_code_used", detail={"context": "disable"})
                _record(conn, who, request, "mfa.disabled", detail={"factor": factor})
            except store.NotEnabled:
                failure = Problem(409, "totp_not_enabled", "Not enabled", "Two-factor is not on.")
            except store.InvalidCode:
                throttle.record_failure(conn, who.realm, who.email, ip)
                _record(conn, who, request, "mfa.failed", outcome="denied", detail={"context": "disable"})
                failure = _invalid()
        uow.commit()
    if failure is not None:
        raise failure
    return Response(status_code=204)


# -- customers (/v1) ----------------------------------------------------------------------------


@customer_router.get("/me/totp", response_model=TotpStatus)
def customer_status(customer: EnrollingCustomer, runtime: RuntimeDep) -> TotpStatus:
    return _status(runtime, _customer(customer))


@customer_router.post("/me/totp", status_code=201, response_model=TotpEnrolment)
@declare("totp_already_enabled")
def customer_begin(customer: EnrollingCustomer, runtime: RuntimeDep, request: Request) -> TotpEnrolment:
    return _begin(runtime, _customer(customer), request)


@customer_router.post("/me/totp/confirm", response_model=TotpConfirmed)
@declare("invalid_totp", "too_many_attempts", "totp_already_enabled", "totp_not_pending")
def customer_confirm(
    body: TotpCodeIn, customer: EnrollingCustomer, runtime: RuntimeDep, request: Request
) -> TotpConfirmed:
    return _confirm(runtime, _customer(customer), request, body.code)


@customer_router.delete("/me/totp", status_code=204, response_class=Response)
@declare("invalid_totp", "too_many_attempts", "totp_not_enabled")
def customer_disable(body: TotpCodeIn, customer: EnrollingCustomer, runtime: RuntimeDep, request: Request) -> Response:
    return _disable(runtime, _customer(customer), request, body.code)


# -- staff (/ops/v1) ----------------------------------------------------------------------------


@ops_router.get("/me/totp", response_model=TotpStatus)
def staff_status(staff: EnrollingStaff, runtime: RuntimeDep) -> TotpStatus:
    return _status(runtime, _staff(staff))


@ops_router.post("/me/totp", status_code=201, response_model=TotpEnrolment)
@declare("totp_already_enabled")
def staff_begin(staff: EnrollingStaff, runtime: RuntimeDep, request: Request) -> TotpEnrolment:
    return _begin(runtime, _staff(staff), request)


@ops_router.post("/me/totp/confirm", response_model=TotpConfirmed)
@declare("invalid_totp", "too_many_attempts", "totp_already_enabled", "totp_not_pending")
def staff_confirm(body: TotpCodeIn, staff: EnrollingStaff, runtime: RuntimeDep, request: Request) -> TotpConfirmed:
    return _confirm(runtime, _staff(staff), request, body.code)


@ops_router.delete("/me/totp", status_code=204, response_class=Response)
@declare("invalid_totp", "too_many_attempts", "totp_not_enabled")
def staff_disable(body: TotpCodeIn, staff: EnrollingStaff, runtime: RuntimeDep, request: Request) -> Response:
    return _disable(runtime, _staff(staff), request, body.code)
