"""The customer's in-app inbox (/v1/notifications), written by the relay's notifier; read-only here."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import text

from api import pagination, schemas
from api.contract import declare
from api.deps import CurrentCustomer, DbConn, EngineDep, record_foreign_access
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import not_found

router = APIRouter(tags=["customer: notifications"])


@router.get("/notifications", response_model=schemas.Page[schemas.Notification])
@declare(
    links={
        "GetNotification": {
            "target": "GET /v1/notifications/{notification_id}",
            "parameters": {"notification_id": "$response.body#/items/0/id"},
        }
    }
)
def list_notifications(
    customer: CurrentCustomer, conn: DbConn, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> schemas.Page[schemas.Notification]:
    after = pagination.decode_as(cursor, datetime.fromisoformat, UUID)
    params: dict[str, object] = {"c": customer.id, "n": limit + 1}
    where = "customer_id = :c"
    if after is not None:
        where += " AND (created_at, id) < (:at, :id)"
        params["at"], params["id"] = after
    rows = conn.execute(
        text(
            "SELECT id, channel, subject, body, transfer_id, created_at FROM notifications "
            f"WHERE {where} ORDER BY created_at DESC, id DESC LIMIT :n"
        ),
        params,
    ).all()
    items = [
        schemas.Notification(
            id=r.id,
            channel=r.channel,
            subject=r.subject,
            body=r.body,
            transfer_id=r.transfer_id,
            created_at=r.created_at,
        )
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = pagination.encode(last.created_at.isoformat(), str(last.id)) if last is not None else None
    return schemas.Page[schemas.Notification](items=items, next_cursor=next_cursor)


@router.get("/notifications/{notification_id}", response_model=schemas.Notification)
@declare("notification_not_found")
def get_notification(
    notification_id: UUID, customer: CurrentCustomer, conn: DbConn, engine: EngineDep
) -> schemas.Notification:
    """One message of the inbox; 404 notification_not_found also when it is another customer's."""
    row = conn.execute(
        text(
            "SELECT id, customer_id, channel, subject, body, transfer_id, created_at FROM notifications WHERE id = :id"
        ),
        {"id": notification_id},
    ).first()
    if row is None or row.customer_id != customer.id:
        if row is not None:
            record_foreign_access(engine, customer, "notification", notification_id)
        raise not_found("notification", "notification_not_found")
    return schemas.Notification(
        id=row.id,
        channel=row.channel,
        subject=row.subject,
        body=row.body,
        transfer_id=row.transfer_id,
        created_at=row.created_at,
    )
