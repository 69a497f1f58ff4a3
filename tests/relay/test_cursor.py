"""The relay's cursor (migration 0009): snapshot deltas, pages, partial pages, legacy rows.

A row is published when the cursor passes it; these tests pin down the cases a simpler
cursor gets wrong: a row that commits after a row with a higher seq was published, a delta
whose last page was exactly full, a page delivered only in part, and the rows written before
the migration.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from ledger.db import connection, transaction
from ledger.migrate import downgrade, upgrade
from ledger.outbox import OutboxEvent, insert_events, make_event
from relay import outbox_store
from relay.publisher import OutboxRelay
from tests.relay.helpers import FAST, Tail, unpublished


def _events(n: int) -> list[OutboxEvent]:
    return [
        make_event(
            "account.status_changed",
            business_id=uuid.uuid4(),
            key=(key := uuid.uuid4()),
            data={"account_id": str(key), "status": "frozen"},
        )
        for _ in range(n)
    ]


def _write(engine: Engine, events: list[OutboxEvent]) -> list[str]:
    with transaction(engine) as conn:
        insert_events(conn, events)
    return [str(e.id) for e in events]


def _published(engine: Engine) -> set[str]:
    with connection(engine) as conn:
        return {str(r[0]) for r in conn.execute("SELECT id FROM outbox_state WHERE published").fetchall()}


def test_a_row_that_commits_late_with_a_lower_seq_is_still_published(
    engine: Engine, tail: Tail, relay_topics: str
) -> None:
    """The flaw of a seq watermark: `late` takes its seq first but commits after `early`,
    which is published meanwhile. The late row lands in the next delta and goes out."""
    [late], [early] = _events(1), _events(1)
    with connection(engine, autocommit=False) as open_transaction:
        insert_events(open_transaction, [late])  # seq taken, not committed yet
        _write(engine, [early])
        relay = OutboxRelay(engine, relay_topics, FAST)
        try:
            assert relay.drain(timeout_s=30) == 1
            assert _published(engine) == {str(early.id)}
            open_transaction.commit()
            assert relay.drain(timeout_s=30) == 1, "the late row is found"
        finally:
            relay.close()
    with connection(engine) as conn:
        seqs = dict(conn.execute("SELECT id::text, seq FROM outbox").fetchall())
    assert seqs[str(late.id)] < seqs[str(early.id)], "the late row has the lower seq"
    assert _published(engine) == {str(late.id), str(early.id)} and unpublished(engine) == 0
    assert sorted(r.id for r in tail.read([str(late.id), str(early.id)])) == sorted([str(late.id), str(early.id)])


def test_new_rows_after_a_delta_whose_last_page_was_exactly_full(engine: Engine, relay_topics: str) -> None:
    """A full last page leaves the cursor inside its delta (after_seq at the last row); the
    next pass must find that delta empty and go on to the next one, not stop there."""
    options = replace(FAST, batch_size=5)
    _write(engine, _events(10))
    relay = OutboxRelay(engine, relay_topics, options)
    try:
        assert relay.drain(timeout_s=30) == 10
        with connection(engine) as conn:
            cursor = outbox_store.load_cursor(conn)
        assert cursor.target is not None, "the last page was full: the delta is still open"
        more = _write(engine, _events(3))
        assert relay.drain(timeout_s=30) == 3
    finally:
        relay.close()
    assert set(more) <= _published(engine) and unpublished(engine) == 0


def test_pages_resume_inside_a_delta_and_a_partial_page_moves_the_cursor_to_its_last_good_row(
    engine: Engine,
) -> None:
    ids = _write(engine, _events(5))
    with connection(engine) as conn:
        first = outbox_store.claim(conn, outbox_store.load_cursor(conn), 2)
        assert [outbox_store.text_of(r.id) for r in first.rows] == ids[:2]
        outbox_store.commit_page(conn, first, through=2, events=2)
        resumed = outbox_store.load_cursor(conn)
        assert (resumed.target, resumed.after_seq) == (first.end.target, first.rows[-1].seq)

        second = outbox_store.claim(conn, resumed, 10)
        assert [outbox_store.text_of(r.id) for r in second.rows] == ids[2:], "in seq order, from where it stopped"
        assert second.end.target is None, "a short page ends its delta"
        # Kafka took the first of the three and failed the second: the cursor stops there.
        outbox_store.commit_page(conn, second, through=1, events=1)
        assert _published(engine) == set(ids[:3])
        third = outbox_store.claim(conn, outbox_store.load_cursor(conn), 10)
        assert [outbox_store.text_of(r.id) for r in third.rows] == ids[3:]
        pages = conn.execute("SELECT from_seq, to_seq, events FROM outbox_publications ORDER BY id").fetchall()
    seq = [r.seq for r in first.rows + second.rows]
    assert pages == [(seq[0] - 1, seq[1], 2), (seq[1], seq[2], 1)]
    with connection(engine) as conn:
        times = dict(conn.execute("SELECT id::text, published_at FROM outbox_state").fetchall())
    assert times[ids[0]] == times[ids[1]] is not None and times[ids[2]] is not None
    assert times[ids[3]] is None and times[ids[4]] is None


def _legacy_row(conn: psycopg.Connection[Any], *, stamped: bool = False, parked: bool = False) -> str:
    event_id = str(uuid.uuid4())
    payload = {"specversion": "1.0", "id": event_id, "type": "account.opened", "source": "/test", "data": {}}
    conn.execute(
        "INSERT INTO outbox (id, topic, key, type, source, payload, published_at, parked) "
        "VALUES (%s, 'ledgerflow.accounts', %s, 'account.opened', '/test', %s, "
        "CASE WHEN %s THEN now() - interval '1 hour' END, %s)",
        (event_id, event_id, Jsonb(payload), stamped, parked),
    )
    return event_id


def test_0009_keeps_what_was_published_picks_up_what_was_not_and_goes_down_cleanly(db_url: str) -> None:
    upgrade(db_url, "0008_recon_alerts")
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        stamped = _legacy_row(conn, stamped=True)
        waiting = _legacy_row(conn)
        parked = _legacy_row(conn, parked=True)
        upgrade(db_url, "0009_outbox_cursor")

        state = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id::text, published, published_at FROM outbox_state")}
        assert state[stamped][0] and state[stamped][1] is not None, "published before: keeps its time"
        assert state[waiting] == (False, None) and state[parked] == (False, None)
        assert conn.execute("SELECT count(*) FROM outbox_waiting").fetchone() == (1,)
        page = outbox_store.claim(conn, outbox_store.load_cursor(conn), 10)
        assert [outbox_store.text_of(r.id) for r in page.rows] == [waiting], "only the waiting row goes out"
        value = page.rows[0].value
        assert isinstance(value, bytes) and value.startswith(b'{"id": "'), "the envelope as jsonb rendered it"
        outbox_store.commit_page(conn, page, through=1, events=1)

        downgrade(db_url, "0008_recon_alerts")
        stamps: dict[str, Any] = dict(conn.execute("SELECT id::text, published_at FROM outbox").fetchall())
        assert stamps[stamped] is not None and stamps[waiting] is not None, "the cursor's rows are stamped"
        assert stamps[parked] is None
        upgrade(db_url)
        assert conn.execute("SELECT count(*) FROM outbox_state WHERE NOT published").fetchone() == (1,)
