"""The relay's SQL against the ledger's `outbox` table: claim, mark, fail, park, inspect.

The ledger (ledger/outbox.py) owns the table and writes its rows; these statements are the
relay's side, tuned for draining a backlog: the payload is read as JSON text (no parse and
re-serialise in Python), and a batch is marked with one UPDATE ... WHERE id = ANY(...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from psycopg.rows import args_row
from sqlalchemy import Engine

from ledger.db import Conn, connection, transaction

# Longest last_error kept: enough for a broker message, short enough for an ops table.
MAX_ERROR_CHARS = 2000


class ClaimedRow(NamedTuple):
    id: str  # the event id as text: it goes into the ce_id header and back into ANY(...::uuid[])
    seq: int
    topic: str
    key: str
    value: str  # the CloudEvents envelope as JSON text
    created_epoch_s: float


# One relay publishes at a time: the holder of this session-level advisory lock (any
# constant; it only has to be the same in every relay). The others find the lock taken, claim
# nothing and poll; when the leader stops or its connection dies, the lock is released and
# the next poll of another relay takes over. Why a leader instead of row locks: claiming with
# FOR UPDATE SKIP LOCKED writes a lock (tuple header + WAL record) on every claimed row and
# needs a hold-back scan for keys whose older rows another relay holds; together they were
# about half of PostgreSQL's time per row (25 us of wall time per row against 9 without, on
# the 2-core development machine). With one publisher, per-key order needs no hold-back: rows
# are produced in seq order, batch after batch, on one idempotent producer.
LEADER_LOCK_KEY = 0x4C46_5245_4C41_5900  # "LFRELAY" in ASCII, as a signed 64-bit constant

# The oldest unpublished, unparked rows, minus those of the batch still in flight on the
# pipeline's other transaction (produced but not yet marked: they are not published yet as far
# as the table knows). Reads the partial index of unpublished rows in seq order.
CLAIM_SQL = """
SELECT id::text, seq, topic, key, payload::text, extract(epoch FROM created_at)::float8
  FROM outbox
 WHERE published_at IS NULL AND NOT parked
   AND id <> ALL(%(in_flight)s::uuid[])
 ORDER BY seq
 LIMIT %(limit)s
"""


def try_lead(conn: Conn) -> bool:
    """Become the publishing relay for as long as `conn`'s session holds the lock (it survives
    commits; `resign` or the end of the session releases it). False: another relay leads."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def try_lead_transaction(conn: Conn) -> bool:
    """Like `try_lead`, for the current transaction only (released at commit or rollback)."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def resign(conn: Conn) -> None:
    """Release the session-level leader lock taken by `try_lead` on `conn`."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))


# Per claim transaction: the relay's commits may be lost in a PostgreSQL crash without
# harm (the rows are then published again: at least once is the contract), so they need not
# wait for the WAL flush.
TRANSACTION_SETTINGS = "SET LOCAL synchronous_commit = off"


def begin_claim_transaction(conn: Conn) -> None:
    """Apply the relay's per-transaction settings (the transaction starts implicitly)."""
    conn.execute(TRANSACTION_SETTINGS)


def claim(conn: Conn, limit: int, in_flight: Sequence[str] = ()) -> list[ClaimedRow]:
    """Up to `limit` publishable rows in seq order. Only the leader (`try_lead`) may call it:
    the leader lock, not row locks, keeps other relays off these rows.

    `in_flight` are rows this relay claimed in its other transaction, produced but not yet
    marked: they are skipped here, and produced before this claim is (so no row of theirs is
    overtaken).
    """
    with conn.cursor(row_factory=args_row(ClaimedRow)) as cur:
        cur.execute(CLAIM_SQL, {"limit": limit, "in_flight": list(in_flight)})
        return cur.fetchall()


def mark_published(conn: Conn, ids: Sequence[str]) -> int:
    """Stamp rows as published at the current time (after their acks, not at claim time)."""
    if not ids:
        return 0
    cur = conn.execute(
        "UPDATE outbox SET published_at = clock_timestamp(), attempts = attempts + 1 "
        "WHERE id = ANY(%s::uuid[]) AND published_at IS NULL",
        (list(ids),),
    )
    return cur.rowcount


def record_failures(conn: Conn, ids: Sequence[str], error: str) -> None:
    """Count a transient failure on rows that stay in the outbox to be retried (not parked:
    Kafka being down for an hour must not park an hour of events)."""
    if not ids:
        return
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = %s "
        "WHERE id = ANY(%s::uuid[]) AND published_at IS NULL",
        (error[:MAX_ERROR_CHARS], list(ids)),
    )


def park(conn: Conn, failures: Sequence[tuple[str, str]]) -> None:
    """Park rows that can never be published as they are, each with its error."""
    if not failures:
        return
    conn.execute(
        "UPDATE outbox o SET parked = true, attempts = o.attempts + 1, last_error = f.error "
        "FROM unnest(%s::uuid[], %s::text[]) AS f(id, error) WHERE o.id = f.id AND o.published_at IS NULL",
        ([i for i, _ in failures], [e[:MAX_ERROR_CHARS] for _, e in failures]),
    )


def backlog(conn: Conn) -> int:
    """Rows waiting to be published (what the backlog gauge shows)."""
    row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL AND NOT parked").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class ParkedRow:
    id: UUID
    seq: int
    topic: str
    key: str
    type: str
    created_at: datetime
    attempts: int
    last_error: str | None
    payload_bytes: int


def parked_rows(engine: Engine, *, limit: int = 100) -> list[ParkedRow]:
    """Parked outbox rows, oldest first: what an operator has to look at (fix, then requeue)."""
    with connection(engine) as conn, conn.cursor(row_factory=args_row(ParkedRow)) as cur:
        cur.execute(
            "SELECT id, seq, topic, key, type, created_at, attempts, last_error, octet_length(payload::text) "
            "FROM outbox WHERE parked AND published_at IS NULL ORDER BY seq LIMIT %s",
            (limit,),
        )
        return cur.fetchall()


def requeue_parked(engine: Engine, ids: Sequence[UUID | str]) -> int:
    """Give parked rows back to the relay (after the cause was fixed, e.g. the topic's
    max.message.bytes raised). Returns how many rows were requeued."""
    with transaction(engine) as conn:
        cur = conn.execute(
            "UPDATE outbox SET parked = false WHERE id = ANY(%s::uuid[]) AND parked AND published_at IS NULL",
            ([str(i) for i in ids],),
        )
        return cur.rowcount
