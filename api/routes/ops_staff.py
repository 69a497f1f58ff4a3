"""Staff accounts (/ops/v1/staff): admins create them; anyone signed in can see who they are."""

from __future__ import annotations

from fastapi import APIRouter, Request
from psycopg.errors import UniqueViolation
from sqlalchemy import text

from api import principals, schemas
from api.contract import declare
from api.deps import Admin, DbConn, EngineDep, EnrollingStaff, client_ip
from api.problems import Problem
from ledger import audit
from ledger.uow import UnitOfWork

router = APIRouter(tags=["ops: staff"])


@router.post("/staff", status_code=201, response_model=schemas.Staff)
@declare("email_taken")
def create_staff(body: schemas.StaffIn, admin: Admin, engine: EngineDep, request: Request) -> schemas.Staff:
    try:
        with UnitOfWork(engine) as uow:
            staff = principals.insert_staff(
                uow, email=body.email, password=body.password, role=body.role, created_by=admin.id
            )
            audit.record(
                uow.sql,
                actor=admin.actor,
                action="staff.create",
                target_type="staff",
                target_id=staff.staff_id,
                after=staff.model_dump(mode="json"),
                ip=client_ip(request),
            )
            uow.commit()
    except UniqueViolation as err:
        raise Problem(409, "email_taken", "E-mail taken", "A staff member with this e-mail already exists.") from err
    return staff


@router.get("/staff/me", response_model=schemas.Staff)
def whoami(staff: EnrollingStaff, conn: DbConn) -> schemas.Staff:
    row = conn.execute(text("SELECT id, email, role, created_at FROM staff WHERE id = :id"), {"id": staff.id}).one()
    return schemas.Staff(staff_id=row.id, email=row.email, role=row.role, created_at=row.created_at)
