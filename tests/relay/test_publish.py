"""The relay publishes every outbox row to its topic, keyed, as the CloudEvents envelope."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Engine

from ledger.db import connection, transaction
from ledger.money import Money
from ledger.outbox import insert_events, make_event
from ledger.service import Ledger
from relay import outbox_store
from relay.outbox_store import ClaimedRow, parked_rows, requeue_parked
from relay.producer import EventProducer
from relay.publisher import OutboxRelay
from relay.topics import ACCOUNTS, TRANSFERS
from tests.relay.helpers import FAST, Tail, outbox_ids, posted_transfer, unpublished


def test_transfer_events_reach_kafka_keyed_by_transfer_with_the_envelope(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str
) -> None:
    transfers = [posted_transfer(ledger) for _ in range(3)]
    ids = outbox_ids(engine)
    with connection(engine) as conn:
        stored = {str(r[0]): r[1] for r in conn.execute("SELECT id, payload FROM outbox").fetchall()}

    relay = OutboxRelay(engine, relay_topics, FAST)
    try:
        assert relay.drain(timeout_s=30) == len(ids)
    finally:
        relay.close()
    assert unpublished(engine) == 0

    received = tail.read(ids)
    assert sorted(r.id for r in received) == sorted(ids), "every row exactly once"
    for message in received:
        assert message.envelope == stored[message.id], "the value is the stored envelope"
        assert message.headers["ce_id"] == message.id.encode()
        assert {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"} <= set(
            message.envelope
        )

    for transfer in transfers:
        mine = [r for r in received if r.key == str(transfer.id)]
        assert [r.envelope["type"] for r in mine] == ["transfer.initiated", "transfer.posted"], "in order"
        assert {(r.topic, r.partition) for r in mine} == {(TRANSFERS, mine[0].partition)}, "one partition"
        posted = mine[1].envelope
        assert posted["data"]["transfer_id"] == str(transfer.id)
        assert {leg["direction"] for leg in posted["data"]["legs"]} == {"debit", "credit"}
        deposits = [
            r for r in received if r.envelope["type"] == "account.deposited" and r.key == str(transfer.source_account)
        ]
        assert len(deposits) == 1 and deposits[0].topic == ACCOUNTS, "account events keyed by account id"


def test_published_rows_get_their_page_time_after_the_ack(engine: Engine, ledger: Ledger, relay_topics: str) -> None:
    """The cursor, not a per-row stamp, says a row is published; `outbox_state` gives each
    row the commit time of the page that published it, and the rows themselves are not
    rewritten."""
    posted_transfer(ledger)
    with connection(engine) as conn:
        assert conn.execute("SELECT count(*) FROM outbox_state WHERE published").fetchone() == (0,)
    relay = OutboxRelay(engine, relay_topics, FAST)
    try:
        report = relay.publish_once()
    finally:
        relay.close()
    assert report.claimed == report.published == 5
    with connection(engine) as conn:
        rows = conn.execute(
            "SELECT s.published, s.published_at, s.created_at, o.published_at, o.attempts, o.parked "
            "FROM outbox_state s JOIN outbox o USING (id)"
        ).fetchall()
        pages = conn.execute("SELECT events, published_at FROM outbox_publications").fetchall()
    assert len(pages) == 1 and pages[0][0] == 5
    for published, published_at, created_at, stamp, attempts, parked in rows:
        assert published and published_at == pages[0][1] and published_at >= created_at
        assert (stamp, attempts, parked) == (None, 0, False), "the row itself is not rewritten"


def test_poison_row_is_parked_and_the_rows_behind_it_still_flow(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str
) -> None:
    account = ledger.open_account(uuid.uuid4(), "USD")
    # Bigger than any message Kafka accepts (message.max.bytes is 1 MB): rejected for good.
    poison = make_event(
        "account.status_changed",
        business_id=account.id,
        key=account.id,
        data={"account_id": str(account.id), "blob": "x" * 2_000_000},
        discriminators=("poison",),
    )
    with transaction(engine) as conn:
        insert_events(conn, [poison])
    ledger.deposit(uuid.uuid4(), account.id, Money(500, "USD"))  # same key, after the poison row
    later = outbox_ids(engine, where=f"type = 'account.deposited' AND key = '{account.id}'")

    relay = OutboxRelay(engine, relay_topics, FAST)
    try:
        relay.drain(timeout_s=30)
        assert relay.drain(timeout_s=10) == 0, "the parked row is not retried"
    finally:
        relay.close()

    parked = parked_rows(engine)
    assert [str(p.id) for p in parked] == [str(poison.id)]
    assert parked[0].last_error is not None and "MSG_SIZE_TOO_LARGE" in parked[0].last_error
    assert parked[0].payload_bytes > 2_000_000
    assert unpublished(engine) == 1, "only the poison row is unpublished"
    received = tail.read(later)
    assert [r.id for r in received] == later

    # An operator can hand it back; it is refused again and parked again, nothing else moves.
    assert requeue_parked(engine, [poison.id]) == 1
    relay = OutboxRelay(engine, relay_topics, FAST)
    try:
        report = relay.publish_once()
    finally:
        relay.close()
    assert (report.claimed, report.parked, report.published) == (1, 1, 0)
    assert [str(p.id) for p in parked_rows(engine)] == [str(poison.id)]
    with connection(engine) as conn:
        attempts = conn.execute("SELECT attempts FROM outbox WHERE id = %s", (poison.id,)).fetchone()
    assert attempts is not None and attempts[0] == 2
    assert unpublished(engine) == 1, "parked again, still not published"


def test_unserialisable_row_is_parked(engine: Engine, relay_topics: str) -> None:
    """A value that cannot be encoded (here a lone surrogate, which Python refuses to write as
    UTF-8) is parked at once, without going near Kafka."""
    producer = EventProducer(relay_topics, FAST)
    good = ClaimedRow(str(uuid.uuid4()), 1, TRANSFERS, "k", json.dumps({"ok": True}), 0.0)
    bad = ClaimedRow(str(uuid.uuid4()), 2, TRANSFERS, "k", "\ud800", 0.0)
    outcome = producer.publish([bad, good])
    producer.close()
    assert [i for i, _ in outcome.poison] == [0]
    assert "cannot serialise" in outcome.poison[0][1]
    assert outcome.delivered == [1]


def test_only_the_leader_publishes_and_another_relay_takes_over_when_it_stops(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str
) -> None:
    """The leader lock (a session-level advisory lock) keeps a second relay off the outbox
    while one publishes; released, the next relay publishes everything, once."""
    posted_transfer(ledger)
    ids = outbox_ids(engine)
    with connection(engine, autocommit=False) as leader:
        assert outbox_store.try_lead(leader), "nobody leads yet"
        leader.commit()
        relay = OutboxRelay(engine, relay_topics, FAST)
        try:
            assert relay.publish_once().claimed == 0, "a single batch finds the lock taken"
            assert relay.drain(timeout_s=1) == 0, "the pipeline finds the lock taken"
            assert unpublished(engine) == len(ids)
            outbox_store.resign(leader)
            leader.commit()
            assert relay.drain(timeout_s=30) == len(ids)
        finally:
            relay.close()
        assert outbox_store.try_lead(leader), "the relay gave the lock back when its pass ended"
        outbox_store.resign(leader)
    assert unpublished(engine) == 0
    assert sorted(r.id for r in tail.read(ids)) == sorted(ids), "each row once"
