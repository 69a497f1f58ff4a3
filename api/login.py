"""The password login shared by both realms: throttle, verify, issue a token, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api import metrics, second_factor, security, throttle
from api.deps import client_ip
from api.problems import Problem
from api.schemas import Token
from ledger import audit
from ledger.uow import UnitOfWork
from security.sealed import Sealer

_TABLES: Final = {security.CUSTOMER: "customers", security.STAFF: "staff"}


def login(
    engine: Engine,
    request: Request,
    realm: str,
    username: str,
    password: str,
    *,
    totp: str | None,
    sealer: Sealer,
) -> Token:
    """Exchange username and password (and, for a principal with TOTP on, a second factor in
    `totp`: a TOTP code or a recovery code) for a bearer token of `realm`.

    The second factor is checked only after the password passed, and a wrong one is refused
    exactly like a wrong password (and counted by the same throttle), so an answer never tells
    which factor failed. `mfa_required` comes only with the right password and no code at all.

    Raises:
        Problem: 429 too_many_attempts (window full), 401 mfa_required, 401 invalid_credentials.
    """
    ip = client_ip(request)
    table = _TABLES[realm]
    outcome: str
    issued: security.IssuedToken | None = None
    retry_after: int | None = None
    # One unit of work, and no exception raised inside it: the failure row must be committed.
    # The throttle, second factor, token and audit helpers speak SQLAlchemy: they join `uow.sql`.
    with UnitOfWork(engine) as uow:
        conn = uow.sql
        throttle.serialise(conn, realm, username)
        retry_after = throttle.retry_after_s(conn, realm, username, ip)
        if retry_after is not None:
            outcome = "throttled"
            principal = None
        else:
            principal = conn.execute(
                text(f"SELECT id, email, password_hash FROM {table} WHERE lower(email) = lower(:u)"),
                {"u": username.replace("\x00", "")},
            ).first()
            if security.verify_password(principal.password_hash if principal else None, password):
                assert principal is not None
                outcome = second_factor.check(
                    conn, sealer, realm=realm, principal=principal, code=totp, ip=ip, now=datetime.now(UTC)
                )
                if outcome == "ok":
                    throttle.clear(conn, realm, username)
                    issued = security.issue_token(conn, realm, principal.id)
                elif outcome == second_factor.INVALID:
                    throttle.record_failure(conn, realm, username, ip)
            else:
                outcome = "invalid_credentials"
                throttle.record_failure(conn, realm, username, ip)
        # Staff logins are audited either way; customer logins only when refused.
        if outcome != "ok" or realm == security.STAFF:
            actor = (
                audit.Actor(realm, str(principal.id), principal.email)
                if principal is not None
                else audit.Actor("anonymous", None, throttle.normalise(username))
            )
            audit.record(
                conn,
                actor=actor,
                action=f"{realm}.login",
                outcome="ok" if outcome == "ok" else "denied",
                target_type=realm,
                target_id=None if principal is None else principal.id,
                # The audit keeps the difference the answer hides: which factor failed.
                detail=None if outcome == "ok" else {"reason": outcome},
                ip=ip,
            )
        uow.commit()
    metrics.LOGINS.labels(realm, outcome).inc()
    if outcome == "throttled":
        raise Problem(
            429,
            "too_many_attempts",
            "Too many attempts",
            "Too many failed logins; try again later.",
            headers={"Retry-After": str(retry_after)},
        )
    if outcome == second_factor.MISSING:
        raise Problem(
            401,
            "mfa_required",
            "Second factor required",
            "Send the code from your authenticator app (or a recovery code) in the form field `totp`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if issued is None:
        raise Problem(
            401,
            "invalid_credentials",
            "Invalid credentials",
            "The username or password is not correct.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Token(access_token=issued.access_token, expires_in=issued.expires_in)


def logout(engine: Engine, token: str | None) -> None:
    if token:
        with UnitOfWork(engine) as uow:
            security.revoke_token(uow.sql, token)
            uow.commit()
