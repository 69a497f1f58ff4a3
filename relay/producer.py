"""Producing one claimed batch to Kafka and collecting every row's delivery report.

The producer is idempotent (enable.idempotence, acks=all): librdkafka retries on its own
without duplicating or reordering messages within a partition, so the relay only has to wait
for each row's final delivery report and sort the rows into delivered, failed for now
(retry later) and poison (park).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from relay.options import RelayOptions
from relay.outbox_store import ClaimedRow

log = logging.getLogger(__name__)

# Errors that producing the same bytes again can never fix: the row is parked for a human.
# Everything else (broker down, timeouts, leader changes, throttling) is retried. A missing
# topic is retried too: the outbox only names the relay's own topics, so one that vanished
# was deleted, and the relay creates it again (see UNKNOWN_TOPIC_ERRORS) instead of parking
# every row bound for it.
PERMANENT_ERRORS: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)
UNKNOWN_TOPIC_ERRORS: Final = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})

_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Lets a given librdkafka message through once per `interval_s`.

    While a broker is down librdkafka logs every reconnect attempt (about once a second);
    the relay reports the outage itself, so the repeats would only bury the log.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = _DIGITS.sub("#", record.getMessage())  # "after 0ms" and "after 1ms" are one message
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            return False
        if len(self._last) > 1000:  # messages carry ids now and then; keep the memory bounded
            self._last.clear()
        self._last[key] = now
        return True


KAFKA_LOG: Final = logging.getLogger("relay.kafka")
KAFKA_LOG.addFilter(RepeatFilter())

# Extra time past message.timeout.ms before we stop waiting for reports librdkafka owes us.
_REPORT_GRACE_S = 5.0
# How long a stopping relay still waits for reports before giving the rows back.
_ABANDON_GRACE_S = 3.0


def producer_config(bootstrap: str, options: RelayOptions) -> dict[str, Any]:
    """librdkafka settings of the relay's producer; every throughput and safety knob explicit."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": options.client_id,
        # No duplicates or reordering from librdkafka's own retries; acks=all so an
        # acknowledged event survives the loss of the partition leader.
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": options.linger_ms,
        "compression.type": options.compression_type,
        "batch.size": options.batch_bytes,
        "batch.num.messages": 10_000,
        # Room for a whole claim (and then some) without BufferError.
        "queue.buffering.max.messages": max(100_000, 4 * options.batch_size),
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": options.delivery_timeout_ms,
        # Reconnect quickly once the broker is back instead of librdkafka's 10 s ceiling.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 1000,
        "socket.keepalive.enable": True,
        # Broker-down chatter is reported once per outage by the relay, not every second.
        "log.connection.close": False,
    }


def is_permanent(error: KafkaError) -> bool:
    return error.code() in PERMANENT_ERRORS


@dataclass
class BatchDelivery:
    """What became of each row of one produced batch (indexes into the claimed list)."""

    delivered: list[int] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # epoch seconds, parallel to delivered
    retry: list[tuple[int, str]] = field(default_factory=list)
    poison: list[tuple[int, str]] = field(default_factory=list)
    fatal: bool = False  # the producer hit a fatal error and must be replaced
    unknown_topic: bool = False  # a topic is missing: create the topics again


class InFlightBatch:
    """Rows handed to librdkafka and what their delivery reports said so far."""

    def __init__(self, rows: Sequence[ClaimedRow]) -> None:
        self.rows = rows
        self.errors: list[KafkaError | None] = [None] * len(rows)
        self.reported = [False] * len(rows)
        self.acked_at = [0.0] * len(rows)
        self.produced: list[int] = []
        self.retry: list[tuple[int, str]] = []
        self.poison: list[tuple[int, str]] = []
        self.reports = 0  # how many delivery reports came (one per produced row, at most)
        self.failures = 0  # how many of them were errors

    def on_delivery(self, index: int, err: KafkaError | None, _msg: Message) -> None:
        """librdkafka's delivery report (served by poll/flush on the producing thread)."""
        self.reported[index] = True
        self.reports += 1
        if err is None:
            self.acked_at[index] = time.time()
        else:
            self.errors[index] = err
            self.failures += 1

    def all_reported(self) -> bool:
        return self.reports >= len(self.produced)


class EventProducer:
    """A long-lived idempotent producer that publishes claimed rows batch by batch."""

    def __init__(self, bootstrap: str, options: RelayOptions, *, on_error: Callable[[KafkaError], None] | None = None):
        self._bootstrap = bootstrap
        self._options = options
        self._on_error = on_error
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        config = producer_config(self._bootstrap, self._options)
        config["logger"] = KAFKA_LOG  # librdkafka's own log lines, via logging (rate-limited)
        if self._on_error is not None:
            config["error_cb"] = self._on_error
        return Producer(config)

    def replace(self) -> None:
        """Start over with a new producer (after a fatal error: a new idempotent session)."""
        old = self._producer
        self._producer = self._new_producer()
        old.purge()
        old.flush(0)

    def probe(self, timeout_s: float) -> bool:
        """True when a broker answers a metadata request within the timeout; never raises.

        Asks through a fresh client: the producer's own metadata cache would answer from
        memory while the broker is still down.
        """
        admin = AdminClient(
            {"bootstrap.servers": self._bootstrap, "socket.timeout.ms": max(100, int(timeout_s * 1000)), "log_level": 0}
        )
        try:
            return len(admin.list_topics(timeout=timeout_s).brokers) > 0
        except KafkaException:
            return False

    def publish(self, rows: Sequence[ClaimedRow], *, abandon: Callable[[], bool] = lambda: False) -> BatchDelivery:
        """Produce `rows` in order and wait for every delivery report (`produce` + `collect`)."""
        return self.collect(self.produce(rows), abandon=abandon)

    def produce(self, rows: Sequence[ClaimedRow]) -> InFlightBatch:
        """Hand `rows` to librdkafka in order; returns without waiting for acks.

        Per-key order holds because rows come in seq order, the key picks the partition, and
        the idempotent producer keeps each partition's order across its own retries.
        """
        batch = InFlightBatch(rows)
        producer = self._producer
        on_delivery = batch.on_delivery
        for index, row in enumerate(rows):
            try:
                # Rows come as bytes from the outbox (relay.outbox_store); text is encoded.
                value = row.value if isinstance(row.value, bytes) else row.value.encode()
                key = row.key if isinstance(row.key, bytes) else row.key.encode()
                headers: list[tuple[str, str | bytes | None]] = [
                    ("ce_id", row.id if isinstance(row.id, bytes) else row.id.encode())
                ]
            except (AttributeError, UnicodeError) as exc:
                batch.poison.append((index, f"cannot serialise the row: {exc!r}"))
                continue
            while True:
                try:
                    producer.produce(row.topic, value, key, on_delivery=partial(on_delivery, index), headers=headers)
                    batch.produced.append(index)
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports to make room.
                    producer.poll(0.1)
                except KafkaException as exc:
                    error = exc.args[0]
                    if isinstance(error, KafkaError) and not is_permanent(error):
                        batch.retry.append((index, f"produce refused: {error.str()}"))
                    else:
                        batch.poison.append((index, f"produce refused: {exc}"))
                    break
                except (TypeError, ValueError) as exc:
                    batch.poison.append((index, f"produce refused: {exc!r}"))
                    break
        return batch

    def collect(
        self, batch: InFlightBatch, *, abandon: Callable[[], bool] = lambda: False, later_in_flight: bool = False
    ) -> BatchDelivery:
        """Wait for every delivery report of `batch` and sort its rows by outcome.

        `abandon` returning true (the process is stopping) cuts a long wait short: after a
        grace period, unreported rows count as not delivered and go back to the outbox.
        """
        self._await_reports(batch, abandon, later_in_flight)
        if batch.failures == 0 and len(batch.produced) == len(batch.rows) and batch.all_reported():
            # Every row produced and acknowledged: the common case, without a loop per row.
            return BatchDelivery(delivered=batch.produced, acked_at=batch.acked_at)
        outcome = BatchDelivery(retry=list(batch.retry), poison=list(batch.poison))
        errors, reported, acked_at = batch.errors, batch.reported, batch.acked_at
        for index in batch.produced:
            err = errors[index]
            if not reported[index]:
                outcome.retry.append((index, "no delivery report within the delivery timeout"))
            elif err is None:
                outcome.delivered.append(index)
                outcome.acked_at.append(acked_at[index])
            elif is_permanent(err):
                outcome.poison.append((index, f"rejected: {err.str()} ({err.name()})"))
            else:
                outcome.retry.append((index, f"not delivered: {err.str()} ({err.name()})"))
                outcome.fatal = outcome.fatal or err.fatal()
                outcome.unknown_topic = outcome.unknown_topic or err.code() in UNKNOWN_TOPIC_ERRORS
        return outcome

    def _await_reports(self, batch: InFlightBatch, abandon: Callable[[], bool], later_in_flight: bool) -> None:
        """Block until every produced row has its report; librdkafka owes one per message
        within message.timeout.ms. Past that (plus a grace period), or when abandoning, purge
        what is left so that fewer stray copies go out after the rows went back to the outbox
        (a copy already in flight may still land: a duplicate, which consumers absorb)."""
        started = time.monotonic()
        deadline = started + self._options.delivery_timeout_ms / 1000 + _REPORT_GRACE_S
        producer = self._producer
        while True:
            wait_s = min(1.0, max(0.0, deadline - time.monotonic()))
            if later_in_flight:
                # flush() would also wait for the later batch: serve reports until ours are in.
                producer.poll(min(wait_s, 0.1))
                remaining = len(producer)
            else:
                remaining = producer.flush(wait_s)  # sends at once, without waiting out linger.ms
            if remaining == 0 or batch.all_reported():
                return
            now = time.monotonic()
            if now >= deadline or (abandon() and now - started >= _ABANDON_GRACE_S):
                log.warning("%d messages unreported; purging them, their rows stay in the outbox", remaining)
                producer.purge(in_queue=True, in_flight=True)
                producer.flush(0)
                return

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
