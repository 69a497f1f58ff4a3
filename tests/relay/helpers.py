"""Helpers of the relay tests: a tail of the topics, ledger data, background loops.

Topics are fixed names shared by every test of the session, so each test records the end
offsets before it writes anything and reads only from there, filtering by the event ids it
wrote; consumer groups get unique ids and start at those same offsets.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy import Engine

from ledger.db import connection
from ledger.money import Money
from ledger.outbox import dumps, make_event
from ledger.service import Ledger
from relay.options import RelayOptions
from relay.topics import NOTIFICATIONS, TOPICS

ALL_TOPICS = tuple(spec.name for spec in TOPICS)


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _headers(message: Message) -> dict[str, bytes]:
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {name: value for name, value in pairs if isinstance(value, bytes)}


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: str
    envelope: dict[str, Any]
    headers: dict[str, bytes]

    @property
    def id(self) -> str:
        return str(self.envelope["id"])


def _high_watermark(probe: Consumer, partition: TopicPartition) -> int:
    """The partition's end offset. A topic created a moment ago (the session's first
    ensure_topics) may not have a leader yet: "not leader" is retried for a while."""
    for _ in range(100):
        try:
            return int(probe.get_watermark_offsets(partition, timeout=30)[1])
        except KafkaException as exc:
            if exc.args and getattr(exc.args[0], "code", lambda: None)() != KafkaError.NOT_LEADER_FOR_PARTITION:
                raise
            time.sleep(0.3)
    return int(probe.get_watermark_offsets(partition, timeout=30)[1])


class Tail:
    """Reads the topics from the end offsets they had when the Tail was made."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tail-probe-{uuid.uuid4().hex}"})
        try:
            metadata = probe.list_topics(timeout=30)
            self.start: dict[tuple[str, int], int] = {}
            for topic in ALL_TOPICS:
                for partition in metadata.topics[topic].partitions:
                    self.start[(topic, partition)] = _high_watermark(probe, TopicPartition(topic, partition))
        finally:
            probe.close()

    def read(self, ids: Iterable[str], *, timeout_s: float = 30.0, settle_s: float = 1.0) -> list[Received]:
        """Messages carrying any of `ids`, in (topic, partition, offset) order. Returns once
        every id was seen and `settle_s` passed without a new one (to catch duplicates), or at
        the timeout (the caller's assertions then say what is missing)."""
        wanted = {str(i) for i in ids}
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"tail-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self.start.items()])
        found: list[Received] = []
        seen: set[str] = set()
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        try:
            while time.monotonic() < deadline:
                if seen >= wanted and time.monotonic() - last_new >= settle_s:
                    break
                for message in consumer.consume(1000, timeout=0.2):
                    if message.error() is not None:
                        continue
                    envelope = json.loads(message.value() or b"{}")
                    if str(envelope.get("id")) not in wanted:
                        continue
                    found.append(
                        Received(
                            topic=str(message.topic()),
                            partition=int(message.partition() or 0),
                            offset=int(message.offset() or 0),
                            key=_text(message.key()),
                            envelope=envelope,
                            headers=_headers(message),
                        )
                    )
                    seen.add(str(envelope.get("id")))
                    last_new = time.monotonic()
        finally:
            consumer.close()
        return sorted(found, key=lambda r: (r.topic, r.partition, r.offset))


# Short timeouts so fault tests stay bounded: a delivery gives up after 5 s, and the backoff
# tops out at 2 s, so the relay notices a returning broker within seconds.
FAST = RelayOptions(batch_size=500, delivery_timeout_ms=5000, backoff_initial_s=0.2, backoff_max_s=2.0)


@dataclass
class Transfer:
    id: UUID
    payer: UUID
    payee: UUID
    source_account: UUID
    destination_account: UUID


def posted_transfer(ledger: Ledger, *, amount_minor: int = 1234, currency: str = "USD") -> Transfer:
    """A transfer between two customers' accounts, posted through the ledger: it writes
    account.opened x2, account.deposited, transfer.initiated and transfer.posted."""
    payer, payee = uuid.uuid4(), uuid.uuid4()
    source = ledger.open_account(payer, currency)
    destination = ledger.open_account(payee, currency)
    ledger.deposit(uuid.uuid4(), source.id, Money(amount_minor * 10, currency))
    transfer_id = uuid.uuid4()
    ledger.create_transfer_with_hold(transfer_id, payer, source.id, destination.id, Money(amount_minor, currency))
    ledger.transition_transfer(transfer_id, "processing")
    ledger.post_transfer(transfer_id)
    return Transfer(transfer_id, payer, payee, source.id, destination.id)


def outbox_ids(engine: Engine, *, where: str = "true") -> list[str]:
    with connection(engine) as conn:
        return [str(r[0]) for r in conn.execute(f"SELECT id FROM outbox WHERE {where} ORDER BY seq").fetchall()]


def unpublished(engine: Engine) -> int:
    with connection(engine) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_state WHERE NOT published").fetchone()
        return int(row[0]) if row else -1


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


class Threads:
    """Background loops (relays, consumers) that a test starts and the fixture always stops."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, run: Callable[[threading.Event], None], name: str) -> None:
        def body() -> None:
            try:
                run(self.stop)
            except BaseException as exc:
                self.errors.append(exc)
                raise

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not [t.name for t in self._threads if t.is_alive()], "background loops did not stop"


def start_consumers(threads: Threads, engine: Any, bootstrap: str, tail: Tail) -> str:
    """Run the notifier and the activity projection in `threads`, as fresh consumer groups
    that start at the tail's offsets. Returns the group prefix."""
    from relay.activity import ActivityProjection
    from relay.consumer import EventConsumer
    from relay.notifier import Notifier
    from relay.options import ConsumerOptions

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    for handler in (Notifier(), ActivityProjection()):
        consumer = EventConsumer(
            engine,
            bootstrap,
            handler,
            group_id=f"{prefix}.{handler.name}",
            options=ConsumerOptions(poll_timeout_s=0.2, lag_refresh_s=0.5),
            start_offsets=tail.start,
        )
        threads.start(consumer.run, handler.name)
    return prefix


def consumed(consumer: str, outcome: str) -> float:
    """The process-wide count of events a consumer saw with this outcome (a metric)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("ledgerflow_consumer_events_total", {"consumer": consumer, "outcome": outcome})
    return value or 0.0


def scalar(engine: Any, query: str, *params: object) -> Any:
    with connection(engine) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def produce_notifications(bootstrap: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
    """Produce (key, value) messages straight to the notifications topic, acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in messages:
        producer.produce(NOTIFICATIONS, value, key)
    assert producer.flush(30) == 0


def notification_event(customer: UUID, **data: object) -> bytes:
    """A `notification.requested` envelope for `customer`, with `data` as given."""
    event = make_event("notification.requested", business_id=uuid.uuid4(), key=customer, data=data)
    return dumps(event.payload).encode()
