"""Events a consumer cannot apply are parked as dead letters, and the partition keeps flowing."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine

from config.settings import get_settings
from ledger.db import Conn
from relay import ops
from relay.consumer import EventConsumer
from relay.dead_letters import DeadLetterNotFound, dead_letters, dismiss, replay
from relay.envelope import Event, MalformedEvent
from relay.notifier import Notifier
from relay.options import ConsumerOptions
from relay.topics import NOTIFICATIONS
from tests.relay.helpers import (
    Tail,
    Threads,
    consumed,
    notification_event,
    produce_notifications,
    scalar,
    wait_until,
)


class FlakyNotifier(Notifier):
    """The notifier with a bug: it fails on subjects starting with "boom"."""

    name = "flaky-notifier"

    def apply(self, conn: Conn, event: Event) -> None:
        if str(event.data.get("subject", "")).startswith("boom"):
            raise RuntimeError("handler bug")
        super().apply(conn, event)


def _consumer(engine: Engine, bootstrap: str, tail: Tail, handler: Notifier, group: str) -> EventConsumer:
    return EventConsumer(
        engine,
        bootstrap,
        handler,
        group_id=group,
        options=ConsumerOptions(poll_timeout_s=0.2),
        start_offsets=tail.start,
    )


def test_unreadable_events_are_parked_with_their_error_and_later_ones_applied(
    engine: Engine, tail: Tail, relay_topics: str, threads: Threads
) -> None:
    customer = uuid.uuid4()
    key = str(customer).encode()
    not_json = b"{this is not json"
    no_customer = notification_event(customer, channel="in_app", subject="no customer id", body="?")
    fine = notification_event(customer, customer_id=str(customer), channel="in_app", subject="Hello", body="Welcome")
    # One partition (one key): the bad messages come first, in front of the good one.
    produce_notifications(relay_topics, [(key, not_json), (key, no_customer), (key, fine)])
    malformed_before = consumed("notifier", "malformed")

    group = f"test-dl-{uuid.uuid4().hex[:8]}"
    threads.start(_consumer(engine, relay_topics, tail, Notifier(), group).run, "notifier")
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM notifications WHERE customer_id = %s", customer) == 1,
        timeout_s=30,
        what="the good notification behind the bad ones",
    )

    parked = dead_letters(engine, consumer="notifier")
    assert [d.value for d in parked] == [not_json, no_customer], "both parked, in order, byte for byte"
    first, second = parked
    assert first.event_id is None and "not JSON" in first.error
    assert second.event_id == uuid.UUID(json.loads(no_customer)["id"])
    assert second.event_type == "notification.requested" and "customer_id" in second.error
    assert {d.topic for d in parked} == {NOTIFICATIONS} and first.offset < second.offset
    assert {d.key for d in parked} == {str(customer)}
    assert consumed("notifier", "malformed") == malformed_before + 2
    assert scalar(engine, "SELECT count(*) FROM processed_events") == 1, "only the good event is processed"

    # The offsets moved past all three: nothing is retried forever.
    def committed() -> int:
        probe = Consumer({"bootstrap.servers": relay_topics, "group.id": group})
        try:
            partition = TopicPartition(NOTIFICATIONS, second.partition)
            return int(probe.committed([partition], timeout=10)[0].offset)
        finally:
            probe.close()

    wait_until(lambda: committed() == second.offset + 2, timeout_s=10, what="the offset commit past the good event")

    # Still unreadable: a replay keeps it open with the error; an operator dismisses it.
    with pytest.raises(MalformedEvent):
        replay(engine, Notifier(), second.id)
    assert [d.id for d in dead_letters(engine)] == [first.id, second.id]
    assert dismiss(engine, [first.id, second.id]) == 2
    assert dead_letters(engine) == []
    assert len(dead_letters(engine, include_resolved=True)) == 2
    with pytest.raises(DeadLetterNotFound):
        replay(engine, Notifier(), second.id)


def test_a_handler_error_parks_the_event_and_a_replay_applies_it_once_fixed(
    engine: Engine,
    tail: Tail,
    relay_topics: str,
    threads: Threads,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    customer = uuid.uuid4()
    key = str(customer).encode()
    boom = notification_event(customer, customer_id=str(customer), channel="in_app", subject="boom", body="x")
    after = notification_event(customer, customer_id=str(customer), channel="in_app", subject="after", body="y")
    produce_notifications(relay_topics, [(key, boom), (key, after)])

    flaky = FlakyNotifier()
    threads.start(_consumer(engine, relay_topics, tail, flaky, f"test-dl-{uuid.uuid4().hex[:8]}").run, "flaky")
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM notifications WHERE subject = 'after'") == 1,
        timeout_s=30,
        what="the event behind the failing one",
    )
    [parked] = dead_letters(engine, consumer=flaky.name)
    assert parked.error == "failed: RuntimeError: handler bug"
    assert scalar(engine, "SELECT count(*) FROM processed_events WHERE event_id = %s", parked.event_id) == 0

    class Fixed(Notifier):
        name = flaky.name

    # What an operator sees (python -m relay.ops dead-letters).
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        assert ops.main(["dead-letters"]) == 0
        assert ops.main(["replay", str(parked.id)]) == 1, "the flaky consumer is not one the relay runs"
    finally:
        get_settings.cache_clear()
    listed = capsys.readouterr()
    assert f"{parked.id}\t" in listed.out and "failed: RuntimeError: handler bug" in listed.out
    assert "UnknownConsumer" in listed.err

    replay(engine, Fixed(), parked.id)
    assert scalar(engine, "SELECT subject FROM notifications WHERE id = %s", parked.event_id) == "boom"
    assert dead_letters(engine) == []
    assert scalar(engine, "SELECT count(*) FROM processed_events WHERE event_id = %s", parked.event_id) == 1
