"""TOTP enrolments and recovery codes in PostgreSQL (migration 0012_totp).

Every function runs inside the caller's transaction (`conn`), so an enrolment step, its audit
row and its throttle bookkeeping commit together or not at all. The secret is sealed with
purpose `SEAL_PURPOSE` before it reaches a statement, and opened only in this module.

A time step is spent by one conditional UPDATE (`last_used_step < :step`): under READ
COMMITTED a concurrent UPDATE of the same row waits for the first to commit and then re-checks
the condition, so of two logins with the same code exactly one passes. A recovery code is spent
the same way (`used_at IS NULL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mfa import codes
from security.sealed import Sealer

SEAL_PURPOSE: Final = "totp-secret"

Factor = Literal["totp", "recovery_code"]


class MfaError(Exception):
    """Base of the enrolment errors below."""


class AlreadyEnabled(MfaError):
    """The principal already has TOTP enabled (disable it first to enrol a new secret)."""


class NotPending(MfaError):
    """There is no pending enrolment to confirm."""


class NotEnabled(MfaError):
    """TOTP is not enabled for the principal."""


class InvalidCode(MfaError):
    """The code is wrong, malformed, or its time step (or recovery code) was already used."""


@dataclass(frozen=True)
class Status:
    enabled: bool
    pending: bool


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def status(conn: Connection, realm: str, principal_id: UUID) -> Status:
    row = conn.execute(
        text("SELECT enabled_at FROM totp_credentials WHERE realm = :realm AND principal_id = :pid"),
        {"realm": realm, "pid": principal_id},
    ).first()
    if row is None:
        return Status(enabled=False, pending=False)
    return Status(enabled=row.enabled_at is not None, pending=row.enabled_at is None)


def begin(conn: Connection, sealer: Sealer, *, realm: str, principal_id: UUID, account: str) -> Enrolment:
    """A pending enrolment: a new secret, or the pending one if there is one already (so the URI
    that `ledgerflow staff create` printed and the portal's QR code are the same secret).

    Raises:
        AlreadyEnabled: TOTP is already on.
    """
    row = conn.execute(
        text(
            "SELECT secret_sealed, enabled_at FROM totp_credentials "
            "WHERE realm = :realm AND principal_id = :pid FOR UPDATE"
        ),
        {"realm": realm, "pid": principal_id},
    ).first()
    if row is not None and row.enabled_at is not None:
        raise AlreadyEnabled()
    if row is not None:
        secret = sealer.open_text(SEAL_PURPOSE, str(row.secret_sealed))
    else:
        secret = codes.new_secret()
        inserted = conn.execute(
            text(
                "INSERT INTO totp_credentials (realm, principal_id, secret_sealed) VALUES (:realm, :pid, :s) "
                "ON CONFLICT (realm, principal_id) DO NOTHING"
            ),
            {"realm": realm, "pid": principal_id, "s": sealer.seal_text(SEAL_PURPOSE, secret)},
        )
        if inserted.rowcount == 0:
            # A concurrent request enrolled first (FOR UPDATE found no row to lock): theirs stands.
            return begin(conn, sealer, realm=realm, principal_id=principal_id, account=account)
    return Enrolment(secret=secret, otpauth_uri=codes.provisioning_uri(secret, account))


def enrol_enabled(conn: Connection, sealer: Sealer, *, realm: str, principal_id: UUID, account: str) -> Enrolment:
    """Enabled at once, with no recovery codes: for the dev seed's admin only, whose URI is
    written to a local file instead of being confirmed by a person. Replaces a pending one.

    Raises:
        AlreadyEnabled: TOTP is already on.
    """
    if status(conn, realm, principal_id).enabled:
        raise AlreadyEnabled()
    secret = codes.new_secret()
    conn.execute(
        text(
            "INSERT INTO totp_credentials (realm, principal_id, secret_sealed, enabled_at) "
            "VALUES (:realm, :pid, :s, now()) "
            "ON CONFLICT (realm, principal_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, "
            "enabled_at = now(), last_used_step = NULL"
        ),
        {"realm": realm, "pid": principal_id, "s": sealer.seal_text(SEAL_PURPOSE, secret)},
    )
    return Enrolment(secret=secret, otpauth_uri=codes.provisioning_uri(secret, account))


def enabled_secret(conn: Connection, sealer: Sealer, *, realm: str, principal_id: UUID) -> str | None:
    """The enabled secret in clear (for the dev seed's local file), or None."""
    row = conn.execute(
        text(
            "SELECT secret_sealed FROM totp_credentials "
            "WHERE realm = :realm AND principal_id = :pid AND enabled_at IS NOT NULL"
        ),
        {"realm": realm, "pid": principal_id},
    ).first()
    return None if row is None else sealer.open_text(SEAL_PURPOSE, str(row.secret_sealed))


def confirm(conn: Connection, sealer: Sealer, *, realm: str, principal_id: UUID, code: str, now: datetime) -> list[str]:
    """Turn the pending enrolment on with its first code; returns the recovery codes in clear
    (the only time they exist in clear: only their hashes are stored).

    Raises:
        AlreadyEnabled: it is on already.
        NotPending: nothing to confirm.
        InvalidCode: the code does not match the pending secret.
    """
    row = conn.execute(
        text(
            "SELECT secret_sealed, enabled_at FROM totp_credentials "
            "WHERE realm = :realm AND principal_id = :pid FOR UPDATE"
        ),
        {"realm": realm, "pid": principal_id},
    ).first()
    if row is None:
        raise NotPending()
    if row.enabled_at is not None:
        raise AlreadyEnabled()
    step = codes.matching_step(sealer.open_text(SEAL_PURPOSE, str(row.secret_sealed)), code.strip(), now)
    if step is None:
        raise InvalidCode()
    conn.execute(
        text(
            "UPDATE totp_credentials SET enabled_at = now(), last_used_step = :step "
            "WHERE realm = :realm AND principal_id = :pid"
        ),
        {"realm": realm, "pid": principal_id, "step": step},
    )
    recovery = codes.new_recovery_codes()
    conn.execute(
        text("INSERT INTO totp_recovery_codes (realm, principal_id, code_hash) VALUES (:realm, :pid, :h)"),
        [
            {"realm": realm, "pid": principal_id, "h": codes.recovery_code_hash(realm, str(principal_id), c)}
            for c in recovery
        ],
    )
    return recovery


def verify(
    conn: Connection, sealer: Sealer, *, realm: str, principal_id: UUID, code: str, now: datetime
) -> Factor | None:
    """Check and spend a second factor of an enabled principal: a TOTP code of a time step later
    than any accepted before, or an unused recovery code. Returns which factor passed, or None.
    """
    code = code.strip()
    if codes.is_totp_code(code):
        row = conn.execute(
            text(
                "SELECT secret_sealed FROM totp_credentials "
                "WHERE realm = :realm AND principal_id = :pid AND enabled_at IS NOT NULL"
            ),
            {"realm": realm, "pid": principal_id},
        ).first()
        if row is None:
            return None
        step = codes.matching_step(sealer.open_text(SEAL_PURPOSE, str(row.secret_sealed)), code, now)
        if step is None:
            return None
        spent = conn.execute(
            text(
                "UPDATE totp_credentials SET last_used_step = :step "
                "WHERE realm = :realm AND principal_id = :pid AND enabled_at IS NOT NULL "
                "AND (last_used_step IS NULL OR last_used_step < :step)"
            ),
            {"realm": realm, "pid": principal_id, "step": step},
        )
        return "totp" if spent.rowcount == 1 else None
    if not codes.normalise_recovery_code(code):
        return None
    spent = conn.execute(
        text(
            "UPDATE totp_recovery_codes SET used_at = now() "
            "WHERE realm = :realm AND principal_id = :pid AND code_hash = :h AND used_at IS NULL "
            "AND EXISTS (SELECT 1 FROM totp_credentials c WHERE c.realm = :realm AND c.principal_id = :pid "
            "AND c.enabled_at IS NOT NULL)"
        ),
        {"realm": realm, "pid": principal_id, "h": codes.recovery_code_hash(realm, str(principal_id), code)},
    )
    return "recovery_code" if spent.rowcount == 1 else None


def disable(conn: Connection, sealer: Sealer, *, realm: str, principal_id: UUID, code: str, now: datetime) -> Factor:
    """Turn TOTP off (secret and recovery codes deleted) with a valid second factor.

    Raises:
        NotEnabled: TOTP is not on.
        InvalidCode: the code does not pass `verify`.
    """
    if not status(conn, realm, principal_id).enabled:
        raise NotEnabled()
    factor = verify(conn, sealer, realm=realm, principal_id=principal_id, code=code, now=now)
    if factor is None:
        raise InvalidCode()
    conn.execute(
        text("DELETE FROM totp_credentials WHERE realm = :realm AND principal_id = :pid"),
        {"realm": realm, "pid": principal_id},
    )
    return factor


def recovery_codes_left(conn: Connection, realm: str, principal_id: UUID) -> int:
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM totp_recovery_codes "
                "WHERE realm = :realm AND principal_id = :pid AND used_at IS NULL"
            ),
            {"realm": realm, "pid": principal_id},
        ).scalar_one()
    )
