"""The rows of the two kinds of principal, customers and staff: what sign-up and staff creation
write, on a unit of work (the caller commits, with its audit row when it has one).

Both raise psycopg's UniqueViolation when the e-mail is taken (the tables' unique e-mail);
the routes answer it as 409 email_taken, the seed as StaffExists.
"""

from __future__ import annotations

from uuid import UUID

from api import schemas, security
from ledger.ids import uuid7
from ledger.uow import UnitOfWork


def insert_customer(uow: UnitOfWork, *, email: str, full_name: str, password: str) -> schemas.Customer:
    """Raises: psycopg.errors.UniqueViolation when the e-mail is taken."""
    row = uow.query(
        "INSERT INTO customers (id, email, full_name, password_hash) VALUES (%(id)s, %(e)s, %(n)s, %(h)s) "
        "RETURNING id, email, full_name, created_at",
        {"id": uuid7(), "e": email.strip(), "n": full_name, "h": security.hash_password(password)},
    ).fetchone()
    assert row is not None  # INSERT .. RETURNING
    return schemas.Customer(customer_id=row.id, email=row.email, full_name=row.full_name, created_at=row.created_at)


def insert_staff(uow: UnitOfWork, *, email: str, password: str, role: str, created_by: UUID | None) -> schemas.Staff:
    """Raises: psycopg.errors.UniqueViolation when the e-mail is taken."""
    row = uow.query(
        "INSERT INTO staff (id, email, password_hash, role, created_by) VALUES (%(id)s, %(e)s, %(h)s, %(r)s, %(by)s) "
        "RETURNING id, email, role, created_at",
        {"id": uuid7(), "e": email.strip(), "h": security.hash_password(password), "r": role, "by": created_by},
    ).fetchone()
    assert row is not None  # INSERT .. RETURNING
    return schemas.Staff(staff_id=row.id, email=row.email, role=row.role, created_at=row.created_at)
