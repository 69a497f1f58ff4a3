"""The relay's SQL against the ledger's `outbox` table: its cursor, pages, parking, inspection.

The ledger (ledger/outbox.py) owns the table and writes its rows; these statements are the
relay's side, tuned for draining a backlog: pages are read off the seq index as the bytes Kafka
gets, and nothing is written per row: one cursor row and one `outbox_publications` row per
page (migration 0009_outbox_cursor explains the snapshot deltas).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from psycopg.rows import args_row
from sqlalchemy import Engine

from ledger.db import Conn
from ledger.uow import UnitOfWork

# Longest last_error kept: enough for a broker message, short enough for an ops table.
MAX_ERROR_CHARS = 2000


class ClaimedRow(NamedTuple):
    """One row to produce. `claim` gives bytes, exactly what Kafka gets; text (a row built by
    hand) is encoded by the producer."""

    id: bytes | str  # the event id (its text form): the ce_id header
    seq: int
    topic: str
    key: bytes | str
    value: bytes | str  # the CloudEvents envelope as UTF-8 JSON
    created_epoch_s: float


@dataclass(frozen=True)
class Cursor:
    """How far the relay got (the `outbox_cursor` row; migration 0009 explains the scheme).

    Every row whose transaction is visible in `done` is published (or parked). When `target`
    is set, a delta is in progress: of the rows visible in `target` and not in `done`, those
    with seq <= `after_seq` are published. Snapshots are kept in their text form.
    """

    done: str
    target: str | None = None
    after_seq: int = 0


@dataclass(frozen=True)
class Page:
    """One claimed page: its rows in seq order, and the cursor before and after it."""

    rows: list[ClaimedRow]
    start: Cursor
    end: Cursor

    @property
    def target(self) -> str:
        """The snapshot of the delta this page belongs to (only pages with rows have one)."""
        assert self.start.target is not None, "a page without rows has no delta"
        return self.start.target


# One relay publishes at a time: the holder of this session-level advisory lock (any
# constant; it only has to be the same in every relay). The others find the lock taken, claim
# nothing and poll; when the leader stops or its connection dies, the lock is released and
# the next poll of another relay takes over. The cursor is only ever written on the leader's
# own session, so a relay that lost its session (and so the lock) cannot move it any more.
LEADER_LOCK_KEY = 0x4C46_5245_4C41_5900  # "LFRELAY" in ASCII, as a signed 64-bit constant

# Where the next delta starts: a fresh snapshot and the lowest seq it adds to the done one
# (NULL: nothing new). A row not visible in the done snapshot was written by a transaction
# that was still running then (its xip list) or started after it (from its xmax on): both are
# read off the txid index, so a long transaction holding the xmin back does not make every
# poll walk the rows published since. Never prepared (prepare=False), here and for the page:
# a generic plan, blind to the snapshots, took min(seq) off the seq index from the table's
# first row, a scan of every published row at each poll (lag p50 27 -> 101 ms).
START_DELTA_SQL = """
WITH s AS (SELECT pg_current_snapshot() AS snap)
SELECT s.snap::text,
       (SELECT min(d.seq) FROM (
            SELECT o.seq, o.txid FROM outbox o
             WHERE o.txid >= pg_snapshot_xmax(%(done)s::pg_snapshot) AND o.published_at IS NULL AND NOT o.parked
            UNION ALL
            SELECT o.seq, o.txid FROM outbox o
             WHERE o.txid = ANY(ARRAY(SELECT pg_snapshot_xip(%(done)s::pg_snapshot)))
               AND o.published_at IS NULL AND NOT o.parked
            -- a fence: without it min(seq) is planned as a walk of the seq index
            OFFSET 0) d
         WHERE pg_visible_in_snapshot(d.txid, s.snap))
  FROM s
"""

# The next page of the delta in progress, in seq order, read off the seq index. The payload
# comes as the UTF-8 bytes Kafka gets (binary results: no decode and encode in Python).
PAGE_SQL = """
SELECT convert_to(id::text, 'UTF8'), seq, topic, convert_to(key, 'UTF8'), convert_to(payload::text, 'UTF8'),
       extract(epoch FROM created_at)::float8
  FROM outbox
 WHERE seq > %(after)s
   AND txid >= pg_snapshot_xmin(%(done)s::pg_snapshot)
   AND NOT pg_visible_in_snapshot(txid, %(done)s::pg_snapshot)
   AND pg_visible_in_snapshot(txid, %(target)s::pg_snapshot)
   AND published_at IS NULL AND NOT parked
 ORDER BY seq
 LIMIT %(limit)s
"""


def try_lead(conn: Conn) -> bool:
    """Become the publishing relay for as long as `conn`'s session holds the lock (it survives
    commits; `resign` or the end of the session releases it). False: another relay leads.

    The leader's session also stops waiting for the WAL flush at commit (see
    TRANSACTION_SETTINGS); `resign` puts that back."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
    leading = bool(row and row[0])
    if leading:
        conn.execute("SET synchronous_commit = off")
    return leading


def try_lead_transaction(conn: Conn) -> bool:
    """Like `try_lead`, for the current transaction only (released at commit or rollback)."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def resign(conn: Conn) -> None:
    """Release the session-level leader lock taken by `try_lead` on `conn`."""
    conn.execute("RESET synchronous_commit")
    conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))


# The relay's commits may be lost in a PostgreSQL crash without harm (the cursor then moves
# back and the rows are published again: at least once is the contract), so they need not
# wait for the WAL flush.
TRANSACTION_SETTINGS = "SET LOCAL synchronous_commit = off"


def load_cursor(conn: Conn) -> Cursor:
    """The committed cursor.

    Raises:
        RuntimeError: the `outbox_cursor` row is missing (migration 0009 not applied).
    """
    row = conn.execute("SELECT done_snapshot::text, target_snapshot::text, after_seq FROM outbox_cursor").fetchone()
    if row is None:
        raise RuntimeError("outbox_cursor has no row: run the migrations (0009_outbox_cursor)")
    return Cursor(row[0], row[1], int(row[2]))


def claim(conn: Conn, cursor: Cursor, limit: int) -> Page:
    """The next page after `cursor`: at most `limit` rows, in seq order. No rows: nothing new
    has committed (the page's `end` may still be ahead of `cursor`, past deltas found empty).

    Reads only: nothing is final until `commit_page` records the page after its acks. Only
    the leader (`try_lead`) may publish what it returns.
    """
    while True:
        if cursor.target is None:
            row = conn.execute(START_DELTA_SQL, {"done": cursor.done}, prepare=False).fetchone()
            assert row is not None
            snapshot, first_seq = row
            if first_seq is None:  # nothing committed in between: the new snapshot is done too
                end = Cursor(snapshot)
                return Page([], end, end)
            cursor = Cursor(cursor.done, snapshot, int(first_seq) - 1)
        target = cursor.target
        assert target is not None  # set just above, or by the caller's page
        with conn.cursor(binary=True, row_factory=args_row(ClaimedRow)) as cur:
            cur.execute(
                PAGE_SQL,
                {"after": cursor.after_seq, "done": cursor.done, "target": target, "limit": limit},
                prepare=False,
            )
            rows = cur.fetchall()
        if not rows:
            # The delta in progress had nothing after `after_seq` (its last page was full):
            # it is done, and the next one starts from its target.
            cursor = Cursor(target)
            continue
        if len(rows) < limit:  # the delta is exhausted: its target becomes the done snapshot
            return Page(rows, cursor, Cursor(target))
        return Page(rows, cursor, Cursor(cursor.done, target, rows[-1].seq))


def commit_page(
    conn: Conn, page: Page, *, through: int, events: int, parked: Sequence[tuple[bytes | str, str]] = ()
) -> None:
    """Record, on the leader's session, that the first `through` rows of `page` are done:
    `events` of them acknowledged by Kafka, the `parked` ones parked with their error. When
    that is the whole page the cursor moves to the page's end (past deltas that were empty,
    for a page without rows); otherwise to just after row `through`, and the rest goes out
    again.

    One statement (so one round trip, and atomic even in autocommit mode): parking, the
    cursor and the page's `outbox_publications` row commit together or not at all.
    """
    parts: list[str] = []
    params: dict[str, object] = {}
    if parked:
        parts.append(
            "parked AS (UPDATE outbox o SET parked = true, attempts = o.attempts + 1, last_error = f.error "
            "FROM unnest(%(park_ids)s::uuid[], %(park_errors)s::text[]) AS f(id, error) "
            "WHERE o.id = f.id AND o.published_at IS NULL RETURNING 1)"
        )
        params["park_ids"] = [text_of(i) for i, _ in parked]
        params["park_errors"] = [e[:MAX_ERROR_CHARS] for _, e in parked]
    if through:
        end = (
            page.end if through == len(page.rows) else Cursor(page.start.done, page.target, page.rows[through - 1].seq)
        )
        parts.append(
            "moved AS (UPDATE outbox_cursor SET done_snapshot = %(done)s::pg_snapshot, "
            "target_snapshot = %(target)s::pg_snapshot, after_seq = %(after)s, updated_at = now(), "
            "last_error = NULL RETURNING 1)"
        )
        params.update(done=end.done, target=end.target, after=end.after_seq)
        final = (
            "INSERT INTO outbox_publications (done_snapshot, target_snapshot, from_seq, to_seq, events) "
            "VALUES (%(page_done)s::pg_snapshot, %(page_target)s::pg_snapshot, %(from_seq)s, %(to_seq)s, %(events)s)"
        )
        params.update(
            page_done=page.start.done,
            page_target=page.target,
            from_seq=page.start.after_seq,
            to_seq=page.rows[through - 1].seq,
            events=events,
        )
    elif parts:
        final = "SELECT 1"
    else:
        return
    conn.execute(("WITH " + ", ".join(parts) + " " if parts else "") + final, params)


def record_failure(conn: Conn, error: str) -> None:
    """Note a transient failure on the cursor (Kafka down): the rows stay where they are and
    go out once it is back; ops see the error and when it happened."""
    conn.execute(
        "UPDATE outbox_cursor SET failures = failures + 1, last_error = %s, last_error_at = now()",
        (error[:MAX_ERROR_CHARS],),
    )


def park(conn: Conn, failures: Sequence[tuple[bytes | str, str]]) -> None:
    """Park rows that can never be published as they are, each with its error."""
    if not failures:
        return
    conn.execute(
        "UPDATE outbox o SET parked = true, attempts = o.attempts + 1, last_error = f.error "
        "FROM unnest(%s::uuid[], %s::text[]) AS f(id, error) WHERE o.id = f.id AND o.published_at IS NULL",
        ([text_of(i) for i, _ in failures], [e[:MAX_ERROR_CHARS] for _, e in failures]),
    )


def text_of(value: bytes | str) -> str:
    """A row field as text (for SQL parameters and logs)."""
    return value.decode() if isinstance(value, bytes) else value


def backlog(conn: Conn) -> int:
    """Rows waiting to be published (what the backlog gauge shows)."""
    row = conn.execute("SELECT count(*) FROM outbox_waiting").fetchone()
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
    with UnitOfWork(engine) as uow, uow.conn.cursor(row_factory=args_row(ParkedRow)) as cur:
        cur.execute(
            "SELECT id, seq, topic, key, type, created_at, attempts, last_error, octet_length(payload::text) "
            "FROM outbox WHERE parked AND published_at IS NULL ORDER BY seq LIMIT %s",
            (limit,),
        )
        return cur.fetchall()


def requeue_parked(engine: Engine, ids: Sequence[UUID | str]) -> int:
    """Give parked rows back to the relay (after the cause was fixed, e.g. the topic's
    max.message.bytes raised). Returns how many rows were requeued."""
    with UnitOfWork(engine) as uow:
        requeued: int = uow.conn.execute(
            # A new transaction id puts the row in a delta the cursor has not reached yet.
            "UPDATE outbox SET parked = false, txid = pg_current_xact_id() "
            "WHERE id = ANY(%s::uuid[]) AND parked AND published_at IS NULL",
            ([str(i) for i in ids],),
        ).rowcount
        uow.commit()
    return requeued
