"""Dev seed data and staff creation, for the `ledgerflow` CLI and the launcher.

`seed_dev` is idempotent: run it on every start. It never resets an existing password (a
developer who changed the admin's password keeps it).
"""

from __future__ import annotations

import contextlib
from typing import Final

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from api import audit
from api.routes.ops_staff import insert_staff
from ledger.db import make_engine
from ledger.money import CURRENCY_EXPONENTS
from ledger.service import Ledger

DEV_ADMIN_EMAIL: Final = "admin@ledgerflow.local"
DEV_ADMIN_PASSWORD: Final = "admin-password"
ROLES: Final = ("operator", "approver", "auditor", "admin")


class StaffExists(Exception):
    """A staff member with this e-mail already exists."""


def create_staff(database_url: str, email: str, password: str, role: str) -> str:
    """Create a staff member; returns the new staff id.

    Raises:
        ValueError: unknown role or too short a password.
        StaffExists: the e-mail is taken.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    engine = make_engine(database_url, pool_size=1, application_name="ledgerflow-seed")
    try:
        with engine.begin() as conn:
            staff = insert_staff(conn, email=email, password=password, role=role, created_by=None)
            audit.record(
                conn,
                actor=audit.SYSTEM,
                action="staff.create",
                target_type="staff",
                target_id=staff.staff_id,
                after=staff.model_dump(mode="json"),
            )
        return str(staff.staff_id)
    except IntegrityError as err:
        raise StaffExists(email) from err
    finally:
        engine.dispose()


def seed_dev(database_url: str) -> None:
    """The dev admin (admin@ledgerflow.local / admin-password, role admin) and the house
    accounts of every currency the ledger keeps, created if missing."""
    engine = make_engine(database_url, pool_size=1, application_name="ledgerflow-seed")
    try:
        Ledger(engine).ensure_house_accounts(sorted(CURRENCY_EXPONENTS))
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM staff WHERE lower(email) = lower(:e)"), {"e": DEV_ADMIN_EMAIL}
            ).first()
    finally:
        engine.dispose()
    if exists is None:
        # A concurrent seed may win the race: same outcome.
        with contextlib.suppress(StaffExists):
            create_staff(database_url, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, "admin")
