"""The audit log for auditors and admins (/ops/v1/audit-log), newest first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import text

from api import pagination, schemas
from api.deps import AuditReader, DbConn
from api.pagination import DEFAULT_LIMIT, Cursor, Limit

router = APIRouter(tags=["ops: audit"])


@router.get("/audit-log", response_model=schemas.Page[schemas.AuditEntry])
def list_audit_log(
    staff: AuditReader,
    conn: DbConn,
    action: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Annotated[Literal["ok", "denied"] | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.Page[schemas.AuditEntry]:
    after = pagination.decode_as(cursor, pagination.bigint)
    where = ["TRUE"]
    params: dict[str, object] = {"n": limit + 1}
    if action:
        where.append("action = :action")
        params["action"] = action.replace("\x00", "")
    if outcome:
        where.append("outcome = :outcome")
        params["outcome"] = outcome
    if after is not None:
        where.append("id < :after")
        params["after"] = after[0]
    rows = (
        conn.execute(text(f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :n"), params)
        .mappings()
        .all()
    )
    items = [schemas.AuditEntry(**row) for row in rows[:limit]]
    next_cursor = pagination.encode(items[-1].id) if len(rows) > limit else None
    return schemas.Page[schemas.AuditEntry](items=items, next_cursor=next_cursor)
