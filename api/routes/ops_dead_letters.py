"""What the event pipeline set aside for a person to look at (/ops/v1/dead-letters, /ops/v1/outbox/parked),
and where the relay stands (/ops/v1/outbox/relay).

Read-only: fixing the cause and replaying or requeueing is `python -m relay.ops`. Neither list
shows a message's body: a `notification.requested` event carries a one-time passcode.
"""

from __future__ import annotations

from typing import LiteralString, TypeVar

from fastapi import APIRouter
from sqlalchemy import text

from api import pagination, schemas
from api.deps import AnyStaff, DbConn
from api.pagination import DEFAULT_LIMIT, Cursor, Limit
from api.schemas import Page

router = APIRouter(tags=["ops: event pipeline"])

Item = TypeVar("Item", schemas.DeadLetter, schemas.ParkedEvent)


def _page(
    conn: DbConn, query: LiteralString, model: type[Item], position: str, limit: int, cursor: str | None
) -> Page[Item]:
    """One page of `query` (which selects rows after :after, ordered by `position`, LIMIT :n)."""
    after = pagination.decode_as(cursor, pagination.bigint)
    rows = conn.execute(text(query), {"after": after[0] if after is not None else 0, "n": limit + 1}).mappings().all()
    items = [model(**row) for row in rows[:limit]]
    next_cursor = pagination.encode(getattr(items[-1], position)) if len(rows) > limit else None
    return Page[Item](items=items, next_cursor=next_cursor)


@router.get("/dead-letters", response_model=Page[schemas.DeadLetter])
def list_dead_letters(
    _staff: AnyStaff, conn: DbConn, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[schemas.DeadLetter]:
    """Consumed events a consumer could not apply and parked, still open, oldest first."""
    return _page(
        conn,
        'SELECT id, consumer, topic, "partition", "offset", event_id, event_type, key, error, failed_at '
        "FROM consumer_dead_letters WHERE resolved_at IS NULL AND id > :after ORDER BY id LIMIT :n",
        schemas.DeadLetter,
        "id",
        limit,
        cursor,
    )


@router.get("/outbox/parked", response_model=Page[schemas.ParkedEvent])
def list_parked_events(
    _staff: AnyStaff, conn: DbConn, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[schemas.ParkedEvent]:
    """Outbox rows the relay could not publish and parked (poison rows), oldest first."""
    return _page(
        conn,
        "SELECT id, seq, topic::text AS topic, key, type, created_at, attempts, last_error FROM outbox "
        "WHERE parked AND published_at IS NULL AND seq > :after ORDER BY seq LIMIT :n",
        schemas.ParkedEvent,
        "seq",
        limit,
        cursor,
    )


@router.get("/outbox/relay", response_model=schemas.RelayStatus)
def relay_status(_staff: AnyStaff, conn: DbConn) -> schemas.RelayStatus:
    """Where the relay stands: rows waiting, its last published page, the failure it waits out."""
    row = (
        conn.execute(
            text(
                "SELECT (SELECT count(*) FROM outbox_waiting) AS waiting, "
                "(SELECT count(*) FROM outbox WHERE parked AND published_at IS NULL) AS parked, "
                "p.published_at AS last_published_at, p.events AS last_page_events, "
                "c.failures, c.last_error, c.last_error_at "
                "FROM outbox_cursor c LEFT JOIN LATERAL "
                "(SELECT published_at, events FROM outbox_publications ORDER BY id DESC LIMIT 1) p ON true"
            )
        )
        .mappings()
        .one()
    )
    return schemas.RelayStatus(**row)
