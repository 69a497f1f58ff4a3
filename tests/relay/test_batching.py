"""A consumer's batch: the first message, and whatever had already arrived behind it.

An event must not wait for a batch to fill: the OTP's way to the inbox and the risk
verdict's way to the workflow both pass through a consumer, and a customer waits on each.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Engine

from relay.consumer import EventConsumer
from relay.notifier import Notifier
from relay.options import ConsumerOptions
from tests.relay.helpers import Tail, notification_event, produce_notifications, scalar

# Far longer than any delivery here: a poll that waited it out would show.
POLL_WINDOW_S = 20.0


def _inbox(engine: Engine, customer: uuid.UUID) -> int:
    return int(scalar(engine, "SELECT count(*) FROM notifications WHERE customer_id = %s", customer))


def test_a_lone_event_is_applied_without_waiting_for_a_full_batch(
    engine: Engine, tail: Tail, relay_topics: str
) -> None:
    customer = uuid.uuid4()
    consumer = EventConsumer(
        engine,
        relay_topics,
        Notifier(),
        group_id=f"test-batch-{uuid.uuid4().hex[:8]}",
        options=ConsumerOptions(batch_size=500, poll_timeout_s=POLL_WINDOW_S),
        start_offsets=tail.start,
    )
    consumer.subscribe()
    try:
        note = notification_event(customer, customer_id=str(customer), channel="in_app", subject="Hi", body="One")
        produce_notifications(relay_topics, [(str(customer).encode(), note)])
        # One poll takes it: it returns once the event is there (the group's join included),
        # not when the window ends with 1 of 500 messages.
        started = time.monotonic()
        taken = consumer.poll_once()
        waited_s = time.monotonic() - started
        assert taken == 1 and _inbox(engine, customer) == 1
        assert waited_s < POLL_WINDOW_S, f"the poll waited out its window ({waited_s:.1f}s) for one event"

        # Several already there: taken a batch at a time (each one transaction), all applied.
        notes = [
            notification_event(customer, customer_id=str(customer), channel="in_app", subject="Hi", body=str(i))
            for i in range(5)
        ]
        produce_notifications(relay_topics, [(str(customer).encode(), n) for n in notes])
        while _inbox(engine, customer) < 6:
            assert consumer.poll_once() > 0
    finally:
        consumer.close()
