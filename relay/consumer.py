"""A Kafka consumer that applies each event exactly once to PostgreSQL.

Kafka delivers at least once (and the relay may publish a row twice after a crash), so every
consumer records the ids it applied in `processed_events`: an event's effect and its
dedup row commit in one transaction, and a redelivered event finds its row and does nothing.
Offsets are committed to Kafka only after that transaction (enable.auto.commit=false): a
crash in between redelivers events that the dedup table then absorbs.

An event the consumer cannot apply (not an envelope, a payload missing what the handler
needs, an error in the handler) is parked in `consumer_dead_letters` with its error, in the
same transaction (relay.dead_letters): never retried forever, never blocking its partition,
visible to operators. Only PostgreSQL being unavailable stops the batch (it is rewound and
retried with backoff), and a transaction conflict (deadlock, serialization failure) is
retried a few times before the event is parked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sqlalchemy import Engine

from ledger.db import Conn
from ledger.uow import UnitOfWork
from relay import dead_letters, metrics
from relay.backoff import Backoff
from relay.envelope import Event, MalformedEvent, parse_event
from relay.failures import DATABASE_DOWN
from relay.options import ConsumerOptions
from relay.producer import KAFKA_LOG

log = logging.getLogger(__name__)

# Conflicts with a concurrent transaction: applying the same event again usually succeeds.
RETRYABLE: Final = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
)
APPLY_ATTEMPTS: Final = 3


class Handler(Protocol):
    """What one consumer does with an event; `apply` runs inside the consumer's transaction."""

    @property
    def name(self) -> str:
        """The consumer's name in processed_events, event_counts and metrics."""
        ...

    @property
    def topics(self) -> Sequence[str]: ...

    def handles(self, event_type: str) -> bool:
        """False for event types this consumer ignores (no dedup row, no count)."""
        ...

    def apply(self, conn: Conn, event: Event) -> None:
        """Write the event's effect on `conn` (the caller commits).

        Raises:
            MalformedEvent: the event lacks what this consumer needs; it is skipped.
        """
        ...


def consumer_config(bootstrap: str, group_id: str, options: ConsumerOptions) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": group_id,
        # Offsets move only after the effects are committed in PostgreSQL, and only as far
        # as the messages we actually applied (no automatic offset store either).
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": options.auto_offset_reset,
        "session.timeout.ms": options.session_timeout_ms,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "log.connection.close": False,
        "logger": KAFKA_LOG,
    }


class EventConsumer:
    """Runs one Handler as a member of a consumer group. One thread per instance."""

    def __init__(
        self,
        engine: Engine,
        bootstrap: str,
        handler: Handler,
        *,
        group_id: str | None = None,
        options: ConsumerOptions | None = None,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        """`start_offsets` ((topic, partition) -> offset) is where partitions without a
        committed offset start, instead of auto.offset.reset (tests start at the end offsets
        they recorded before producing)."""
        self.engine = engine
        self.handler = handler
        self.options = options or ConsumerOptions()
        self.group_id = group_id or f"ledgerflow.{handler.name}"
        self._start_offsets = dict(start_offsets or {})
        self._consumer = Consumer(consumer_config(bootstrap, self.group_id, self.options))
        self._backoff = Backoff(self.options.backoff_initial_s, self.options.backoff_max_s)
        self._next_lag_refresh = 0.0
        self._subscribed = False

    # -- group membership --------------------------------------------------------------------

    def subscribe(self) -> None:
        self._consumer.subscribe(list(self.handler.topics), on_assign=self._on_assign)
        self._subscribed = True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._start_offsets:
            committed = consumer.committed(partitions, timeout=10)
            for partition, stored in zip(partitions, committed, strict=True):
                start = self._start_offsets.get((partition.topic, partition.partition))
                if stored.offset < 0 and start is not None:
                    partition.offset = start
        consumer.assign(partitions)
        log.info("%s assigned %s", self.group_id, ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and apply until `stop` is set, then leave the group cleanly."""
        if not self._subscribed:
            self.subscribe()
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                    if self._backoff.failing:
                        log.info("%s resumed after %d retries", self.handler.name, self._backoff.failures)
                        self._backoff.reset()
                except DATABASE_DOWN as exc:
                    delay = self._backoff.next_delay()
                    log.warning(
                        "%s: database unavailable (%s); retrying in %.1fs",
                        self.handler.name,
                        type(exc).__name__,
                        delay,
                    )
                    stop.wait(delay)
                self._refresh_lag()
        finally:
            self.close()

    def poll_once(self) -> int:
        """Consume up to one batch, apply it in one transaction, commit its offsets.

        Returns:
            How many messages the batch held.

        Raises:
            psycopg.OperationalError, sqlalchemy.exc.OperationalError: PostgreSQL unreachable;
                the consumer was rewound to the batch's first message.
        """
        messages = self._receive()
        if not messages:
            return 0
        batch: list[Message] = []
        for message in messages:
            error = message.error()
            if error is None:
                batch.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                # Broker-down errors repeat every poll; this logger lets each through once a minute.
                KAFKA_LOG.warning("%s: consume error: %s", self.handler.name, error.str())
        if not batch:
            return len(messages)
        try:
            outcomes = self._apply(batch)
        except BaseException:
            self._rewind(batch)
            raise
        for outcome, count in outcomes.items():
            metrics.CONSUMED.labels(self.handler.name, outcome).inc(count)
        self._commit(batch)
        return len(messages)

    def _receive(self) -> list[Message]:
        """Wait up to `poll_timeout_s` for the first message, then take whatever else has
        already arrived (up to `batch_size`) without waiting.

        `consume(n, timeout)` alone waits until n messages or the timeout, so below n messages
        per timeout every event waited out the whole window (0.5 s for the notifier: most of
        an OTP's way to the inbox). A batch still forms under load, from the fetched backlog.
        """
        first = self._consumer.poll(self.options.poll_timeout_s)
        if first is None:
            return []
        if self.options.batch_size <= 1:
            return [first]
        return [first, *self._consumer.consume(self.options.batch_size - 1, timeout=0)]

    def _apply(self, batch: Sequence[Message]) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        applied_types: Counter[str] = Counter()
        name = self.handler.name
        with UnitOfWork(self.engine) as uow:
            conn = uow.conn
            for message in batch:
                try:
                    event = parse_event(message.value())
                except MalformedEvent as exc:
                    outcomes["malformed"] += 1
                    self._dead_letter(conn, message, f"malformed: {exc}")
                    continue
                if not self.handler.handles(event.type):
                    outcomes["ignored"] += 1
                    continue
                outcome = self._apply_one(uow, event, message)
                outcomes[outcome] += 1
                if outcome == "applied":
                    applied_types[event.type] += 1
            if applied_types:
                # Sorted, so that two members of a group always lock the counter rows in the
                # same order (no deadlock), and last in the transaction, so briefly.
                types = sorted(applied_types)
                conn.execute(
                    "INSERT INTO event_counts (consumer, type, count) "
                    "SELECT %s, t.type, t.n FROM unnest(%s::text[], %s::bigint[]) AS t(type, n) "
                    "ON CONFLICT (consumer, type) DO UPDATE SET count = event_counts.count + EXCLUDED.count",
                    (name, types, [applied_types[t] for t in types]),
                )
            uow.commit()
        return outcomes

    def _apply_one(self, uow: UnitOfWork, event: Event, message: Message) -> str:
        """Apply one event under a savepoint, so a bad event is parked without losing the
        rest of the batch. Returns the outcome label."""
        name = self.handler.name
        conn = uow.conn
        for attempt in range(1, APPLY_ATTEMPTS + 1):
            try:
                with uow.savepoint():
                    cur = conn.execute(
                        "INSERT INTO processed_events (consumer, event_id, type) VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (name, event.id, event.type),
                    )
                    if cur.rowcount == 0:
                        return "duplicate"
                    self.handler.apply(conn, event)
                    return "applied"
            except MalformedEvent as exc:
                self._dead_letter(conn, message, f"malformed: {exc}")
                return "malformed"
            except DATABASE_DOWN:
                raise
            except RETRYABLE as exc:
                if attempt < APPLY_ATTEMPTS:
                    log.warning("%s: event %s conflicted (%s); retrying", name, event.id, type(exc).__name__)
                    continue
                self._dead_letter(conn, message, f"failed after {attempt} attempts: {type(exc).__name__}: {exc}")
                return "failed"
            except Exception as exc:
                # A bug or a constraint the event violates: retrying cannot help, and stopping
                # here would stall the partition. Parked, with the error, for a human.
                log.exception("%s: failed to apply event %s (%s)", name, event.id, event.type)
                self._dead_letter(conn, message, f"failed: {type(exc).__name__}: {exc}")
                return "failed"
        raise AssertionError("unreachable: the last attempt returns")

    def _dead_letter(self, conn: Conn, message: Message, error: str) -> None:
        """Park `message` in consumer_dead_letters inside the batch transaction (its offset
        is then committed like any other: the partition moves on)."""
        topic, partition = _where(message)
        offset = _offset(message)
        parked = dead_letters.park(
            conn,
            consumer=self.handler.name,
            topic=topic,
            partition=partition,
            offset=offset,
            key=message.key(),
            value=message.value(),
            error=error,
        )
        if parked:
            metrics.DEAD_LETTERS.labels(self.handler.name).inc()
        log.error(
            "%s: parked %s[%d]@%d as a dead letter: %s; see relay.dead_letters",
            self.handler.name,
            topic,
            partition,
            offset,
            error,
        )

    def _commit(self, batch: Sequence[Message]) -> None:
        last: dict[tuple[str, int], int] = {}
        for message in batch:
            last[_where(message)] = _offset(message)
        offsets = [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The effects are committed; a lost offset commit only means redelivery, which
            # processed_events absorbs.
            log.warning("%s: offset commit failed (%s); events may be redelivered", self.handler.name, exc)

    def _rewind(self, batch: Sequence[Message]) -> None:
        """Seek back to the batch's first message per partition so it is consumed again."""
        first: dict[tuple[str, int], int] = {}
        for message in batch:
            first.setdefault(_where(message), _offset(message))
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # revoked meanwhile: the next owner starts from the commit
                log.info("%s: could not rewind %s[%d]: %s", self.handler.name, topic, partition, exc)

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_refresh:
            return
        self._next_lag_refresh = now + self.options.lag_refresh_s
        lag_by_topic: defaultdict[str, int] = defaultdict(int)
        try:
            assignment = self._consumer.assignment()
            if not assignment:
                return
            positions = self._consumer.position(assignment)
            for position in positions:
                # The high watermark that came with the last fetch response: no broker round
                # trip (a live query costs ~0.4 s per partition and would stall the loop).
                _low, high = self._consumer.get_watermark_offsets(position, cached=True)
                if high < 0:
                    continue
                # No position yet (nothing consumed since the assignment): count no lag
                # rather than guess; the next refresh after a message has a real one.
                lag_by_topic[position.topic] += max(0, high - position.offset) if position.offset >= 0 else 0
        except KafkaException as exc:
            log.debug("%s: lag refresh failed: %s", self.handler.name, exc)
            return
        for topic, lag in lag_by_topic.items():
            metrics.CONSUMER_LAG.labels(self.handler.name, topic).set(lag)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self._consumer.close()


def _where(message: Message) -> tuple[str, int]:
    """(topic, partition) of a consumed message (both always set on a consumed one)."""
    return str(message.topic()), int(message.partition() or 0)


def _offset(message: Message) -> int:
    offset = message.offset()
    if offset is None:
        raise ValueError("a consumed message without an offset")
    return offset
