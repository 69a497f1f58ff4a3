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


# Claim the oldest unpublished rows (commit-sequence order: `seq`), skipping rows another
# relay holds. Then hold back every row whose key still has an older unpublished row outside
# this claim (held by another relay, or committed late with a lower seq): publishing it now
# would overtake its predecessor and break per-key order. Held-back rows stay locked until
# this transaction ends and are claimed again next time. The `blockers` scan uses the
# partial index of unpublished rows, so with one relay it reads about one batch of entries.
# The payload is fetched by ctid after the hold-back test, so the CTEs stay small and in
# memory; the caller sorts by seq (cheaper in Python than a sort of the payloads here).
CLAIM_SQL = """
WITH claimed AS MATERIALIZED (
    SELECT ctid AS tid, id, seq, key
      FROM outbox
     WHERE published_at IS NULL AND NOT parked
     ORDER BY seq
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), blockers AS (
    SELECT o.key, min(o.seq) AS seq
      FROM outbox o
     WHERE o.published_at IS NULL AND NOT o.parked
       AND o.seq < (SELECT max(seq) FROM claimed)
       AND NOT EXISTS (SELECT 1 FROM claimed c WHERE c.id = o.id)
       AND o.id <> ALL(%(in_flight)s::uuid[])
     GROUP BY o.key
)
SELECT o.id::text, o.seq, o.topic, o.key, o.payload::text, extract(epoch FROM o.created_at)::float8
  FROM claimed c
  JOIN outbox o ON o.ctid = c.tid
 WHERE NOT EXISTS (SELECT 1 FROM blockers b WHERE b.key = c.key AND b.seq < c.seq)
"""

# Per claim transaction: the relay's commits may be lost in a PostgreSQL crash without
# harm (the rows are then published again: at least once is the contract), so they need not
# wait for the WAL flush; and the claim's hash tables must not spill to disk.
TRANSACTION_SETTINGS = "SET LOCAL synchronous_commit = off; SET LOCAL work_mem = '64MB'"


def begin_claim_transaction(conn: Conn) -> None:
    """Apply the relay's per-transaction settings (the transaction starts implicitly)."""
    conn.execute(TRANSACTION_SETTINGS)


def claim(conn: Conn, limit: int, in_flight: Sequence[str] = ()) -> list[ClaimedRow]:
    """Lock and return up to `limit` publishable rows in seq order. Call inside a transaction:
    the row locks are the claim and last until it ends.

    `in_flight` are rows this relay claimed in another transaction that is still open; they
    do not hold back rows of the same key, because they are produced before this claim is.
    """
    with conn.cursor(row_factory=args_row(ClaimedRow)) as cur:
        cur.execute(CLAIM_SQL, {"limit": limit, "in_flight": list(in_flight)})
        rows = cur.fetchall()
    rows.sort(key=_seq)
    return rows


def _seq(row: ClaimedRow) -> int:
    return row.seq


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
