"""Dead letters: consumed events a consumer could not apply, parked for an operator.

A consumer that cannot apply an event (not a CloudEvents envelope, a payload without what it
needs, an error in the handler) must neither retry it forever nor stop its partition: it
parks the message in `consumer_dead_letters` with the error, in the same transaction as the
rest of its batch, and moves on. Operators list them (`dead_letters`), fix the cause (a
consumer bug, a producer that wrote a bad payload) and replay them (`replay`), or dismiss
them (`dismiss`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final
from uuid import UUID

from psycopg.rows import args_row
from sqlalchemy import Engine

from ledger.db import Conn
from ledger.uow import UnitOfWork
from relay.envelope import MalformedEvent, parse_event

if TYPE_CHECKING:
    from relay.consumer import Handler

log = logging.getLogger(__name__)

# Longest error kept: a traceback's last line or a validation message, not a novel.
MAX_ERROR_CHARS: Final = 2000


class DeadLetterNotFound(LookupError):
    """No open dead letter with this id."""


@dataclass(frozen=True)
class DeadLetter:
    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    event_id: UUID | None
    event_type: str | None
    key: str | None
    value: bytes | None
    error: str
    failed_at: datetime
    resolved_at: datetime | None


def envelope_id(value: bytes | None) -> tuple[UUID | None, str | None]:
    """Best-effort (id, type) of a message that may not be a valid envelope; (None, None)
    when they cannot be read."""
    try:
        envelope = json.loads(value or b"")
        event_id = UUID(str(envelope["id"])) if isinstance(envelope, dict) and "id" in envelope else None
        event_type = envelope.get("type") if isinstance(envelope, dict) else None
        return event_id, event_type if isinstance(event_type, str) else None
    except (ValueError, TypeError, UnicodeDecodeError):
        return None, None


def park(
    conn: Conn,
    *,
    consumer: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | None,
    error: str,
) -> bool:
    """Park one message on `conn`, inside the caller's transaction. False when it was parked
    already (the same position redelivered, or the same event id published twice)."""
    event_id, event_type = envelope_id(value)
    key_text = key.decode(errors="replace") if isinstance(key, bytes) else key
    cur = conn.execute(
        'INSERT INTO consumer_dead_letters (consumer, topic, "partition", "offset", event_id, event_type, key, '
        "value, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (consumer, topic, partition, offset, event_id, event_type, key_text, value, error[:MAX_ERROR_CHARS]),
    )
    return cur.rowcount == 1


_COLUMNS: Final = (
    'id, consumer, topic, "partition", "offset", event_id, event_type, key, value, error, failed_at, resolved_at'
)


def dead_letters(
    engine: Engine, *, consumer: str | None = None, include_resolved: bool = False, limit: int = 100
) -> list[DeadLetter]:
    """Dead letters, oldest first: by default the open ones, of every consumer."""
    with UnitOfWork(engine) as uow, uow.conn.cursor(row_factory=args_row(DeadLetter)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM consumer_dead_letters "
            "WHERE (%(consumer)s::text IS NULL OR consumer = %(consumer)s) "
            "AND (%(all)s OR resolved_at IS NULL) ORDER BY failed_at, id LIMIT %(limit)s",
            {"consumer": consumer, "all": include_resolved, "limit": limit},
        )
        return cur.fetchall()


def dead_letter(engine: Engine, dead_letter_id: int) -> DeadLetter | None:
    """One dead letter by id, open or resolved."""
    with UnitOfWork(engine) as uow, uow.conn.cursor(row_factory=args_row(DeadLetter)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM consumer_dead_letters WHERE id = %s", (dead_letter_id,))
        return cur.fetchone()


def replay(engine: Engine, handler: Handler, dead_letter_id: int) -> None:
    """Apply a parked event again through `handler` (after the cause was fixed) and mark it
    resolved, with the event's dedup row, in one transaction.

    Raises:
        DeadLetterNotFound: no open dead letter of this handler with this id.
        MalformedEvent: the message is still not something the handler can apply; the
            dead letter stays open with the new error.
    """
    failure: MalformedEvent | None = None
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        row = conn.execute(
            "SELECT value FROM consumer_dead_letters WHERE id = %s AND consumer = %s AND resolved_at IS NULL "
            "FOR UPDATE",
            (dead_letter_id, handler.name),
        ).fetchone()
        if row is None:
            raise DeadLetterNotFound(dead_letter_id)
        try:
            with uow.savepoint():
                event = parse_event(row[0])
                inserted = conn.execute(
                    "INSERT INTO processed_events (consumer, event_id, type) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (handler.name, event.id, event.type),
                ).rowcount
                if inserted and handler.handles(event.type):
                    handler.apply(conn, event)
        except MalformedEvent as exc:
            # The savepoint undid the attempt; the new error is kept (raised after the commit).
            failure = exc
            conn.execute(
                "UPDATE consumer_dead_letters SET error = %s WHERE id = %s",
                (str(exc)[:MAX_ERROR_CHARS], dead_letter_id),
            )
        else:
            conn.execute("UPDATE consumer_dead_letters SET resolved_at = now() WHERE id = %s", (dead_letter_id,))
        uow.commit()
    if failure is not None:
        raise failure


def dismiss(engine: Engine, ids: Sequence[int]) -> int:
    """Close dead letters without applying them (the event is not needed: a test message, a
    duplicate handled by hand). Returns how many were open."""
    with UnitOfWork(engine) as uow:
        dismissed: int = uow.conn.execute(
            "UPDATE consumer_dead_letters SET resolved_at = now() WHERE id = ANY(%s) AND resolved_at IS NULL",
            (list(ids),),
        ).rowcount
        uow.commit()
    return dismissed
