"""FastAPI dependencies as `Annotated` aliases: runtime, engine, the two realms' principals, roles.

A route declares what it needs in its signature (`customer: CurrentCustomer`,
`staff: Approver`) and the check runs before its body; nothing authorises by convention.
Authentication failures are 401 in both realms, a token of the other realm included; a
staff member without the role gets 403. Every refusal is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Final
from uuid import UUID

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Connection, Engine

from api import metrics, security
from api.idempotency import MAX_KEY_LENGTH
from api.problems import Problem
from api.runtime import Runtime
from ledger import audit
from ledger.service import Ledger
from ledger.uow import UnitOfWork

customer_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", scheme_name="CustomerToken", auto_error=False)
staff_scheme = OAuth2PasswordBearer(tokenUrl="/ops/v1/auth/token", scheme_name="StaffToken", auto_error=False)

ALL_ROLES: Final = ("operator", "approver", "auditor", "admin")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_engine(runtime: RuntimeDep) -> Engine:
    return runtime.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_ledger(runtime: RuntimeDep) -> Ledger:
    return runtime.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def get_connection(engine: EngineDep) -> Iterator[Connection]:
    """A read connection for the request (writes open a unit of work, ledger.uow)."""
    with engine.connect() as conn:
        yield conn


DbConn = Annotated[Connection, Depends(get_connection)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class CustomerPrincipal:
    id: UUID
    email: str
    full_name: str

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("customer", str(self.id), self.email)

    @property
    def scope(self) -> str:
        return f"customer:{self.id}"


@dataclass(frozen=True)
class StaffPrincipal:
    id: UUID
    email: str
    role: str

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("staff", str(self.id), self.email)

    @property
    def scope(self) -> str:
        return f"staff:{self.id}"

    def has_role(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles


def record_denial(
    engine: Engine,
    request: Request,
    *,
    actor: audit.Actor,
    reason: str,
    realm: str,
    detail: dict[str, object] | None = None,
) -> None:
    metrics.DENIALS.labels(realm, reason).inc()
    with UnitOfWork(engine) as uow:
        audit.record(
            uow.sql,
            actor=actor,
            action="access_denied",
            outcome="denied",
            target_type="route",
            target_id=f"{request.method} {request.url.path}",
            detail={"reason": reason, "realm": realm, **(detail or {})},
            ip=client_ip(request),
        )
        uow.commit()


def record_customer_action(
    engine: Engine, customer: CustomerPrincipal, action: str, target_type: str, target_id: object, after: object
) -> None:
    """One audit row for what a customer did, in a unit of its own (after the change committed:
    a payee added or trusted, a standing order set up or paused)."""
    with UnitOfWork(engine) as uow:
        audit.record(
            uow.sql, actor=customer.actor, action=action, target_type=target_type, target_id=target_id, after=after
        )
        uow.commit()


def record_foreign_access(engine: Engine, customer: CustomerPrincipal, target_type: str, target_id: object) -> None:
    """A customer named something that exists but is not theirs. They get the same 404 as for
    something that does not exist; the audit log keeps the difference."""
    metrics.DENIALS.labels(security.CUSTOMER, "not_owner").inc()
    with UnitOfWork(engine) as uow:
        audit.record(
            uow.sql,
            actor=customer.actor,
            action="access_denied",
            outcome="denied",
            target_type=target_type,
            target_id=target_id,
            detail={"reason": "not_owner", "realm": security.CUSTOMER},
        )
        uow.commit()


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _principal_row(conn: Connection, token: str) -> tuple[str, object] | None:
    """(realm of the token, its principal row) or None when the token is not live."""
    row = security.resolve_principal(conn, token)
    return None if row is None else (str(row.realm), row)


def _authenticate(request: Request, runtime: Runtime, realm: str, token: str | None) -> object:
    anonymous = audit.Actor("anonymous")
    if not token:
        record_denial(runtime.engine, request, actor=anonymous, reason="missing_token", realm=realm)
        raise _unauthorized("A bearer token is required.")
    with runtime.engine.connect() as conn:
        found = _principal_row(conn, token)
    if found is None:
        record_denial(runtime.engine, request, actor=anonymous, reason="invalid_token", realm=realm)
        raise _unauthorized("The bearer token is invalid, expired or revoked.")
    token_realm, row = found
    if token_realm != realm:
        # A valid token of the other realm: still 401 (the realms are separate worlds), but
        # the audit names who tried.
        who = audit.Actor(token_realm, str(row.id), row.email)  # type: ignore[attr-defined]
        record_denial(runtime.engine, request, actor=who, reason="wrong_realm", realm=realm)
        raise _unauthorized("This token is not valid here.")
    return row


def _require_enrolled(request: Request, runtime: Runtime, actor: audit.Actor, realm: str, row: object) -> None:
    """A principal who must have a second factor and has none may only enrol (and see who they
    are, and log out): every other route answers 403 mfa_enrolment_required."""
    if row.mfa_enabled:  # type: ignore[attr-defined]
        return
    record_denial(runtime.engine, request, actor=actor, reason="mfa_enrolment_required", realm=realm)
    raise Problem(
        403,
        "mfa_enrolment_required",
        "Two-factor enrolment required",
        f"Set up an authenticator app first: POST {'/ops/v1' if realm == security.STAFF else '/v1'}/me/totp.",
    )


def current_customer_enrolling(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Depends(customer_scheme)]
) -> CustomerPrincipal:
    """A signed-in customer, with or without a second factor (enrolment, /me, logout)."""
    row = _authenticate(request, runtime, security.CUSTOMER, token)
    return CustomerPrincipal(id=row.id, email=row.email, full_name=row.full_name)  # type: ignore[attr-defined]


def current_customer(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Depends(customer_scheme)]
) -> CustomerPrincipal:
    """With LEDGERFLOW_CUSTOMER_MFA=required, a customer without TOTP may only enrol (403)."""
    row = _authenticate(request, runtime, security.CUSTOMER, token)
    customer = CustomerPrincipal(id=row.id, email=row.email, full_name=row.full_name)  # type: ignore[attr-defined]
    if runtime.settings.customer_mfa == "required":
        _require_enrolled(request, runtime, customer.actor, security.CUSTOMER, row)
    return customer


def current_staff_enrolling(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Depends(staff_scheme)]
) -> StaffPrincipal:
    """A signed-in staff member, with or without a second factor: for enrolment, /staff/me and
    logout only. Every other staff route uses `current_staff`."""
    row = _authenticate(request, runtime, security.STAFF, token)
    return StaffPrincipal(id=row.id, email=row.email, role=row.role)  # type: ignore[attr-defined]


def current_staff(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Depends(staff_scheme)]
) -> StaffPrincipal:
    """Staff must have TOTP on (mandatory): until then, 403 mfa_enrolment_required."""
    row = _authenticate(request, runtime, security.STAFF, token)
    staff = StaffPrincipal(id=row.id, email=row.email, role=row.role)  # type: ignore[attr-defined]
    _require_enrolled(request, runtime, staff.actor, security.STAFF, row)
    return staff


def reject_foreign_token(request: Request, runtime: RuntimeDep) -> None:
    """For the realms' public routes (sign-up, login): a live token of the *other* realm is
    refused with 401 there too, so that no /v1 path accepts a staff token and vice versa."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return
    realm = security.STAFF if request.url.path.startswith("/ops/") else security.CUSTOMER
    with runtime.engine.connect() as conn:
        found = _principal_row(conn, token.strip())
    if found is not None and found[0] != realm:
        row = found[1]
        who = audit.Actor(found[0], str(row.id), row.email)  # type: ignore[attr-defined]
        record_denial(runtime.engine, request, actor=who, reason="wrong_realm", realm=realm)
        raise _unauthorized("This token is not valid here.")


CurrentCustomer = Annotated[CustomerPrincipal, Depends(current_customer)]
CurrentStaff = Annotated[StaffPrincipal, Depends(current_staff)]
# Enrolment routes (and /me, logout): signed in, second factor not required yet.
EnrollingCustomer = Annotated[CustomerPrincipal, Depends(current_customer_enrolling)]
EnrollingStaff = Annotated[StaffPrincipal, Depends(current_staff_enrolling)]


def require_roles(*roles: str) -> Callable[..., StaffPrincipal]:
    """A dependency admitting staff with one of `roles` (admin is always admitted)."""

    def check(request: Request, runtime: RuntimeDep, staff: CurrentStaff) -> StaffPrincipal:
        if not staff.has_role(*roles):
            record_denial(
                runtime.engine,
                request,
                actor=staff.actor,
                reason="missing_role",
                realm=security.STAFF,
                detail={"role": staff.role, "needs": list(roles)},
            )
            raise Problem(403, "forbidden", "Forbidden", f"This action needs the role {' or '.join(roles)}.")
        return staff

    return check


AnyStaff = Annotated[StaffPrincipal, Depends(require_roles(*ALL_ROLES))]
Operator = Annotated[StaffPrincipal, Depends(require_roles("operator"))]
Approver = Annotated[StaffPrincipal, Depends(require_roles("approver"))]
Admin = Annotated[StaffPrincipal, Depends(require_roles("admin"))]
AuditReader = Annotated[StaffPrincipal, Depends(require_roles("auditor"))]


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_KEY_LENGTH,
            description="Required: a client-chosen unique key; a retry with the same key replays the first answer.",
        ),
    ] = None,
) -> str:
    if key is None or not key.strip():
        raise Problem(
            400,
            "idempotency_key_missing",
            "Idempotency-Key missing",
            "This request moves money: send an Idempotency-Key header so a retry cannot repeat it.",
        )
    return key


IdempotencyKey = Annotated[str, Depends(idempotency_key)]


def limit_transfer_creation(request: Request, runtime: RuntimeDep, customer: CurrentCustomer) -> None:
    """Raises: Problem 429 rate_limited (api/ratelimit.py)."""
    policy = runtime.rate_limits.policy
    runtime.rate_limits.enforce(
        [(policy.transfers_per_customer, customer.scope), (policy.transfers_per_ip, client_ip(request))]
    )


def limit_otp_submission(request: Request, runtime: RuntimeDep, customer: CurrentCustomer) -> None:
    """Raises: Problem 429 rate_limited (api/ratelimit.py)."""
    policy = runtime.rate_limits.policy
    runtime.rate_limits.enforce([(policy.otp_per_customer, customer.scope), (policy.otp_per_ip, client_ip(request))])


TransferCreationLimit = Annotated[None, Depends(limit_transfer_creation)]
OtpSubmissionLimit = Annotated[None, Depends(limit_otp_submission)]
