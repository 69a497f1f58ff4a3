"""Dev seed data and staff creation, for the `ledgerflow` CLI and the launcher.

`seed_dev` is idempotent: run it on every start. It never resets an existing password (a
developer who changed the admin's password keeps it), nor an enabled TOTP secret.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from psycopg.errors import UniqueViolation

from api import principals
from api.security import STAFF
from config.settings import Settings
from ledger import audit
from ledger.db import make_engine
from ledger.money import CURRENCY_EXPONENTS
from ledger.service import Ledger
from ledger.uow import UnitOfWork
from mfa import codes as mfa_codes
from mfa import store as mfa_store
from security.sealed import load_sealer

DEV_ADMIN_EMAIL: Final = "admin@ledgerflow.local"
DEV_ADMIN_PASSWORD: Final = "admin-password"
# Under <home>/secrets/: the dev admin's otpauth:// URI, for local development only.
DEV_ADMIN_TOTP_FILE: Final = "dev-admin-totp"
ROLES: Final = ("operator", "approver", "auditor", "admin")


class StaffExists(Exception):
    """A staff member with this e-mail already exists."""


@dataclass(frozen=True)
class NewStaff:
    staff_id: str
    # The member's TOTP enrolment URI (otpauth://), to be shown once: pending (confirmed by the
    # member's first code) or already enabled (`totp="enabled"`).
    otpauth_uri: str


def create_staff(
    database_url: str,
    email: str,
    password: str,
    role: str,
    *,
    settings: Settings | None = None,
    totp: Literal["pending", "enabled"] = "pending",
) -> NewStaff:
    """Create a staff member with a TOTP enrolment; returns the id and the enrolment URI.

    Pending by default (what `ledgerflow staff create` does): the member adds the URI to an
    authenticator app and confirms it with a first code, and only then gets recovery codes,
    shown to them alone rather than to whoever ran the command. Until then their password
    gives them nothing but enrolment. `enabled` skips the confirmation (the dev seed, tests).

    Raises:
        ValueError: unknown role or too short a password.
        StaffExists: the e-mail is taken.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    sealer = load_sealer(settings or Settings())
    engine = make_engine(database_url, pool_size=1, application_name="ledgerflow-seed")
    try:
        with UnitOfWork(engine) as uow:
            conn = uow.sql  # the audit chain and the MFA store speak SQLAlchemy
            staff = principals.insert_staff(uow, email=email, password=password, role=role, created_by=None)
            audit.record(
                conn,
                actor=audit.SYSTEM,
                action="staff.create",
                target_type="staff",
                target_id=staff.staff_id,
                after=staff.model_dump(mode="json"),
            )
            enrol = mfa_store.enrol_enabled if totp == "enabled" else mfa_store.begin
            enrolment = enrol(conn, sealer, realm=STAFF, principal_id=staff.staff_id, account=staff.email)
            audit.record(
                conn,
                actor=audit.SYSTEM,
                action="mfa.enabled" if totp == "enabled" else "mfa.enrolment_started",
                target_type="staff",
                target_id=staff.staff_id,
            )
            uow.commit()
        return NewStaff(staff_id=str(staff.staff_id), otpauth_uri=enrolment.otpauth_uri)
    except UniqueViolation as err:
        raise StaffExists(email) from err
    finally:
        engine.dispose()


def dev_admin_totp_path(home: Path) -> Path:
    return home / "secrets" / DEV_ADMIN_TOTP_FILE


def seed_dev(database_url: str, settings: Settings | None = None) -> str:
    """The dev admin (admin@ledgerflow.local / admin-password, role admin, TOTP enabled) and the
    house accounts of every currency the ledger keeps, created if missing. Returns the dev
    admin's otpauth:// URI, also written to `<home>/secrets/dev-admin-totp` (mode 0600) for
    `ledgerflow totp` and for adding to an authenticator app.

    An admin without TOTP (never enrolled, or disabled since) is enrolled again: staff cannot
    work without it. An enabled secret is kept (a developer who re-enrolled keeps theirs) and
    the file is rewritten from it, so the file always holds the secret in force.
    """
    settings = settings or Settings()
    sealer = load_sealer(settings)
    engine = make_engine(database_url, pool_size=1, application_name="ledgerflow-seed")
    try:
        Ledger(engine).ensure_house_accounts(sorted(CURRENCY_EXPONENTS))
        with UnitOfWork(engine) as uow:  # reads only: rolled back
            exists = uow.execute(
                "SELECT 1 FROM staff WHERE lower(email) = lower(%(e)s)", {"e": DEV_ADMIN_EMAIL}
            ).fetchone()
        if exists is None:
            # A concurrent seed may win the race: same outcome.
            with contextlib.suppress(StaffExists):
                create_staff(
                    database_url, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, "admin", settings=settings, totp="enabled"
                )
        with UnitOfWork(engine) as uow:
            conn = uow.sql  # the MFA store and the audit chain speak SQLAlchemy
            admin_id = uow.execute(
                "SELECT id FROM staff WHERE lower(email) = lower(%(e)s) FOR UPDATE", {"e": DEV_ADMIN_EMAIL}
            ).fetchone()[0]
            secret = mfa_store.enabled_secret(conn, sealer, realm=STAFF, principal_id=admin_id)
            if secret is None:
                secret = mfa_store.enrol_enabled(
                    conn, sealer, realm=STAFF, principal_id=admin_id, account=DEV_ADMIN_EMAIL
                ).secret
                audit.record(conn, actor=audit.SYSTEM, action="mfa.enabled", target_type="staff", target_id=admin_id)
            uow.commit()
    finally:
        engine.dispose()
    uri = mfa_codes.provisioning_uri(secret, DEV_ADMIN_EMAIL)
    write_private(dev_admin_totp_path(settings.home.resolve()), uri + "\n")
    return uri


def write_private(path: Path, content: str) -> None:
    """Write `content` to `path` with mode 0600 from the start (replacing it atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.replace(tmp, path)
