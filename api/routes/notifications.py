"""The customer's in-app inbox (/v1/notifications), written by the relay's notifier; read-only here.

An OTP message's code is stored sealed (otp/delivery.py). It is opened here, on the fly, only
for the message's owner (every query is scoped to the customer) and only while the challenge
can still be used; otherwise the body shows the mask and says why ("used", "expired", ...).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import text

from api import pagination, schemas
from api.contract import declare
from api.deps import CurrentCustomer, DbConn, EngineDep, RuntimeDep, record_foreign_access
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.problems import not_found
from otp.delivery import SealsText, reveal
from security.sealed import UnsealError

router = APIRouter(tags=["customer: notifications"])
log = logging.getLogger("ledgerflow.api")

# Whether each OTP message's code may be shown now, decided by the database in the same read.
_COLUMNS = (
    "id, customer_id, channel, subject, body, transfer_id, created_at, otp_challenge_ref, code_sealed, "
    "CASE WHEN otp_challenge_ref IS NULL THEN NULL "
    "ELSE otp_code_unusable(p_ref => otp_challenge_ref, p_now => now()) END AS unusable"
)


def _notification(sealer: SealsText, row: Any) -> schemas.Notification:
    body = row.body
    if row.otp_challenge_ref is not None:
        try:
            body = reveal(sealer, row.body, row.otp_challenge_ref, row.code_sealed, usable=row.unusable)
        except UnsealError as err:
            # A seal key retired from the ring: the code cannot be shown, the message still can.
            log.warning("inbox message %s: sealed code not opened: %s", row.id, err)
            body = reveal(sealer, row.body, row.otp_challenge_ref, None, usable="unavailable")
    return schemas.Notification(
        id=row.id,
        channel=row.channel,
        subject=row.subject,
        body=body,
        transfer_id=row.transfer_id,
        created_at=row.created_at,
    )


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
    customer: CurrentCustomer, conn: DbConn, runtime: RuntimeDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> schemas.Page[schemas.Notification]:
    after = pagination.decode_as(cursor, datetime.fromisoformat, UUID)
    params: dict[str, object] = {"c": customer.id, "n": limit + 1}
    where = "customer_id = :c"
    if after is not None:
        where += " AND (created_at, id) < (:at, :id)"
        params["at"], params["id"] = after
    rows = conn.execute(
        text(f"SELECT {_COLUMNS} FROM notifications WHERE {where} ORDER BY created_at DESC, id DESC LIMIT :n"),
        params,
    ).all()
    items = [_notification(runtime.sealer, r) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = pagination.encode(last.created_at.isoformat(), str(last.id)) if last is not None else None
    return schemas.Page[schemas.Notification](items=items, next_cursor=next_cursor)


@router.get("/notifications/{notification_id}", response_model=schemas.Notification)
@declare("notification_not_found")
def get_notification(
    notification_id: UUID, customer: CurrentCustomer, conn: DbConn, engine: EngineDep, runtime: RuntimeDep
) -> schemas.Notification:
    """One message of the inbox; 404 notification_not_found also when it is another customer's."""
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM notifications WHERE id = :id"), {"id": notification_id}).first()
    if row is None or row.customer_id != customer.id:
        if row is not None:
            record_foreign_access(engine, customer, "notification", notification_id)
        raise not_found("notification", "notification_not_found")
    return _notification(runtime.sealer, row)
