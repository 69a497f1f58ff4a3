"""The transactional outbox: CloudEvents 1.0 envelopes written with what they announce.

Events are built here and handed to the posting functions, which insert them in the same
database transaction as the legs, hold or status change they announce. Their ids derive
from the business id (ledger.ids.event_id), so a retried activity re-inserts nothing.
The relay (relay/outbox_store.py) reads the table through its cursor; the view `outbox_state`
says which rows are published, and when (migration 0009_outbox_cursor).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final
from uuid import UUID

from psycopg.types.json import Jsonb

from ledger.db import Conn
from ledger.ids import event_id
from ledger.states import Topic as Topic  # re-exported: the enum's old home

# Every event type of docs/api.md "Events on Kafka", and its topic.
EVENT_TOPICS: Final[dict[str, Topic]] = {
    "transfer.initiated": Topic.TRANSFERS,
    "transfer.posted": Topic.TRANSFERS,
    "transfer.failed": Topic.TRANSFERS,
    "transfer.cancelled": Topic.TRANSFERS,
    "transfer.expired": Topic.TRANSFERS,
    "transfer.rejected": Topic.TRANSFERS,
    "transfer.reversed": Topic.TRANSFERS,
    "account.opened": Topic.ACCOUNTS,
    "account.deposited": Topic.ACCOUNTS,
    "account.status_changed": Topic.ACCOUNTS,
    "notification.requested": Topic.NOTIFICATIONS,
    "reconciliation.failed": Topic.OPS,
    "risk.assessed": Topic.RISK,
}

SOURCE: Final = "/ledgerflow/ledger"
SPEC_VERSION: Final = "1.0"


def rfc3339(at: datetime) -> str:
    """UTC timestamp as RFC 3339 with microseconds and a Z (what the database writes too)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: object) -> object:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return str(value)  # rates travel as decimal strings, never floats
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: object) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One outbox row: `payload` is the whole CloudEvents structured-mode envelope."""

    id: UUID
    topic: str
    key: str
    type: str
    source: str
    subject: str | None
    payload: Mapping[str, Any]

    def as_row(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "topic": self.topic,
            "key": self.key,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "payload": self.payload,
        }


def make_event(
    event_type: str,
    *,
    business_id: UUID,
    key: UUID | str,
    data: Mapping[str, Any],
    subject: UUID | str | None = None,
    discriminators: Sequence[object] = (),
    time: datetime | None = None,
    source: str = SOURCE,
) -> OutboxEvent:
    """Build an event; its id is derived from (business_id, event_type, *discriminators).

    The posting functions replace `time` with the database's transaction time, so the
    envelope tells when the change was made (for transfer.posted: its posted_at). `data` is
    kept as given (UUIDs, datetimes, Decimals) and serialised once, on its way to the database.

    Raises:
        KeyError: event_type is not one of EVENT_TOPICS.
    """
    topic = EVENT_TOPICS[event_type]
    eid = event_id(business_id, event_type, *discriminators)
    subject_text = str(subject if subject is not None else key)
    envelope = {
        "specversion": SPEC_VERSION,
        "id": str(eid),
        "source": source,
        "type": event_type,
        "subject": subject_text,
        "time": rfc3339(time or datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": data,
    }
    return OutboxEvent(eid, topic.value, str(key), event_type, source, subject_text, envelope)


def event_param(event: OutboxEvent | None) -> str | None:
    """The JSON object the SQL functions take as p_event, as text (cast with ::jsonb): a
    plain string is the cheapest parameter for the driver to send."""
    return None if event is None else dumps(event.as_row())


_INSERT_MANY: Final = (
    "INSERT INTO outbox (id, topic, key, type, source, subject, payload) "
    "SELECT e.id, e.topic, e.key, e.type, e.source, e.subject, e.payload "
    "FROM jsonb_to_recordset(%s) "
    "AS e(id uuid, topic text, key text, type text, source text, subject text, payload jsonb) "
    "ON CONFLICT (id) DO NOTHING"
)


def insert_events(conn: Conn, events: Iterable[OutboxEvent]) -> int:
    """Insert events on `conn`, inside the caller's transaction, in one statement; an event
    whose id is already there is skipped (a retry). Returns how many rows were new."""
    rows = [e.as_row() for e in events]
    if not rows:
        return 0
    return conn.execute(_INSERT_MANY, (Jsonb(rows, dumps=dumps),)).rowcount


def insert_event(conn: Conn, event: OutboxEvent) -> bool:
    """Insert one event (see insert_events); True if it was new."""
    return insert_events(conn, [event]) == 1


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: UUID
    seq: int
    topic: str
    key: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    published_at: datetime | None
    attempts: int
    last_error: str | None
    parked: bool


_STORED_COLUMNS = "id, seq, topic, key, type, payload, created_at, published_at, attempts, last_error, parked"
# outbox_state: the outbox with each row's effective publication (the relay's cursor, or a
# stamp from before migration 0009).


def _stored(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(*row)


def events_for_key(conn: Conn, key: UUID | str) -> list[StoredEvent]:
    """Every event with this Kafka key (a transfer's or an account's history), oldest first."""
    rows = conn.execute(
        f"SELECT {_STORED_COLUMNS} FROM outbox_state WHERE key = %s ORDER BY seq", (str(key),)
    ).fetchall()
    return [_stored(r) for r in rows]
