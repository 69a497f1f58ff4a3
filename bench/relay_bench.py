"""Relay throughput and publish lag, each beside a floor measured in the same run.

    python -m bench.relay_bench --db-url postgresql+psycopg://postgres@127.0.0.1:55432/ledgerflow \\
        --bootstrap 127.0.0.1:9092

- relay.drain: `OutboxRelay.drain` on a 100,000-row backlog, the pipelined loop the relay
  process runs: as the leader, claim a batch, produce it with the idempotent producer, wait
  for every ack, mark the batch published, commit (two such transactions overlapped).
- kafka.produce_floor: the same payloads and keys, already in memory, produced with the
  same producer settings (and a delivery callback per message, as the relay has), then one
  flush: what the broker and librdkafka can take with no database in the loop. Produced
  once untimed first, so that the broker is as warm for the floor as for the drain.
- relay.lag_p50_ms / relay.lag_p99_ms: publish lag, from a row's commit to Kafka's
  acknowledgement of it, while rows arrive at the transfer workload's pace (LAG_WRITERS
  threads committing one small transaction each at LAG_RATE events/s in all, as the posting
  activities do) and the real relay loop (`OutboxRelay.run`) publishes them. Floor:
  kafka.ack_p50_ms / kafka.ack_p99_ms, the same producer settings producing the same
  payloads at the same pace straight from memory, produce() to delivery report: the part of
  the lag that is Kafka's and librdkafka's (linger, the broker's append and ack), which no
  relay can go below. Everything above it is the relay's (its idle poll, the claim).

The backlog is written through the ledger's own outbox insert (`ledger.outbox.insert_events`):
transfer-shaped envelopes of about 600 bytes, two per key (like initiated + posted), so per-key
ordering is exercised. Their type, `transfer.benchmark`, is one no consumer applies: the drain
goes to the real `ledgerflow.transfers` topic (the outbox only allows the three real topics),
and a running stack's consumers must not project it. The floor writes to a throw-away topic
with the same partition count. The outbox lives in a throw-away database created next to
`db_url` and dropped afterwards, so the bench never touches a live ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from psycopg import sql
from sqlalchemy.engine import make_url

from bench.stats import percentile, result
from ledger.db import connection, make_engine, normalize_url, transaction
from ledger.ids import uuid7
from ledger.migrate import upgrade
from ledger.outbox import SPEC_VERSION, OutboxEvent, insert_events, rfc3339
from relay.options import RelayOptions
from relay.producer import producer_config
from relay.publisher import OutboxRelay
from relay.topics import TOPICS, TRANSFERS, ensure_topics

DRAIN_NAME = "relay.drain"
FLOOR_NAME = "kafka.produce_floor"
UNIT = "events/s"
LAG_P50_NAME = "relay.lag_p50_ms"
LAG_P99_NAME = "relay.lag_p99_ms"
ACK_P50_NAME = "kafka.ack_p50_ms"
ACK_P99_NAME = "kafka.ack_p99_ms"
# The transfer workload's pace: a few hundred events a second from several writers (a
# posted transfer writes one or two outbox rows per transaction).
LAG_RATE = 300.0
LAG_WRITERS = 6
LAG_SECONDS = 20.0
BENCH_TYPE = "transfer.benchmark"
BENCH_SOURCE = "/ledgerflow/bench"
INSERT_CHUNK = 5000


@dataclass(frozen=True)
class Measured:
    count: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _admin_conninfo(db_url: str) -> dict[str, Any]:
    url = make_url(normalize_url(db_url))
    info: dict[str, Any] = {"dbname": "postgres", "user": url.username or "postgres", "autocommit": True}
    if url.host:
        info["host"] = url.host
    if url.port:
        info["port"] = url.port
    if url.password:
        info["password"] = url.password
    return info


def _create_database(db_url: str, name: str) -> str:
    with psycopg.connect(**_admin_conninfo(db_url)) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(normalize_url(db_url)).set(database=name).render_as_string(hide_password=False)


def _drop_database(db_url: str, name: str) -> None:
    with psycopg.connect(**_admin_conninfo(db_url)) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _event(transfer_id: uuid.UUID, step: int) -> OutboxEvent:
    """A transfer.posted-shaped envelope (two legs, amounts, ids) of the benchmark type."""
    event_id = uuid7()
    data = {
        "transfer_id": str(transfer_id),
        "status": "posted" if step else "pending_otp",
        "customer_id": str(uuid.uuid4()),
        "source_account_id": str(uuid.uuid4()),
        "destination_account_id": str(uuid.uuid4()),
        "amount_minor": 12_345,
        "currency": "USD",
        "source_amount_minor": 12_345,
        "source_currency": "USD",
        "destination_amount_minor": 12_345,
        "destination_currency": "USD",
        "transaction_id": str(uuid7()),
        "legs": [
            {"account_id": str(uuid.uuid4()), "direction": "debit", "amount_minor": 12_345, "currency": "USD"},
            {"account_id": str(uuid.uuid4()), "direction": "credit", "amount_minor": 12_345, "currency": "USD"},
        ],
    }
    envelope = {
        "specversion": SPEC_VERSION,
        "id": str(event_id),
        "source": BENCH_SOURCE,
        "type": BENCH_TYPE,
        "subject": str(transfer_id),
        "time": rfc3339(datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": data,
    }
    return OutboxEvent(event_id, TRANSFERS, str(transfer_id), BENCH_TYPE, BENCH_SOURCE, str(transfer_id), envelope)


def fill_outbox(db_url: str, rows: int) -> None:
    """Write `rows` unpublished outbox rows, two per key, keys interleaved like live traffic."""
    engine = make_engine(db_url, pool_size=1)
    try:
        keys = [uuid.uuid4() for _ in range(rows // 2 + rows % 2)]
        events = [_event(key, 0) for key in keys] + [_event(key, 1) for key in keys]
        events = events[:rows]
        for start in range(0, len(events), INSERT_CHUNK):
            with transaction(engine) as conn:
                insert_events(conn, events[start : start + INSERT_CHUNK])
        with connection(engine) as conn:
            conn.execute("VACUUM ANALYZE outbox")
    finally:
        engine.dispose()


def load_payloads(db_url: str) -> list[tuple[bytes, bytes, bytes]]:
    """(id, key, value) of every outbox row in seq order: the floor's input, in memory."""
    engine = make_engine(db_url, pool_size=1)
    try:
        with connection(engine) as conn:
            rows = conn.execute("SELECT id::text, key, payload::text FROM outbox ORDER BY seq").fetchall()
    finally:
        engine.dispose()
    return [(event_id.encode(), key.encode(), value.encode()) for event_id, key, value in rows]


def measure_drain(db_url: str, bootstrap: str, options: RelayOptions) -> Measured:
    engine = make_engine(db_url, pool_size=3)  # the pipeline's two connections and a count
    relay = OutboxRelay(engine, bootstrap, options)
    try:
        # Connect and get the idempotent producer id before the clock starts, as a running
        # relay has long done.
        if not relay.connect(timeout_s=30):
            raise RuntimeError(f"Kafka at {bootstrap} did not answer")
        started = time.perf_counter()
        published = relay.drain(timeout_s=600)
        elapsed = time.perf_counter() - started
        with connection(engine) as conn:
            left = conn.execute("SELECT count(*) FROM outbox_state WHERE NOT published").fetchone()
        if left is None or left[0] != 0:
            raise RuntimeError(f"{left} rows left unpublished after the drain")
        return Measured(published, elapsed)
    finally:
        relay.close()
        engine.dispose()


def measure_floor(bootstrap: str, payloads: list[tuple[bytes, bytes, bytes]], options: RelayOptions) -> Measured:
    spec = next(s for s in TOPICS if s.name == TRANSFERS)
    topic = f"ledgerflow.bench-floor-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=spec.partitions, replication_factor=1)])[topic].result(30)
    try:
        producer = Producer(producer_config(bootstrap, options))
        producer.list_topics(topic, timeout=10)
        failures: list[KafkaError] = []
        acked = 0

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal acked
            if err is None:
                acked += 1
            else:
                failures.append(err)

        def produce_all() -> float:
            started = time.perf_counter()
            for event_id, key, value in payloads:
                while True:
                    try:
                        producer.produce(topic, value, key, on_delivery=on_delivery, headers=[("ce_id", event_id)])
                        break
                    except BufferError:
                        producer.poll(0.1)
            remaining = producer.flush(120)
            if remaining or failures:
                raise RuntimeError(f"floor: {remaining} unflushed, {len(failures)} failed ({failures[:1]})")
            return time.perf_counter() - started

        # Once untimed: a broker started minutes ago still runs cold (JIT, page cache), and
        # the drain measured after the floor would get the warm broker the floor paid for.
        # Measured so on the 2-core machine: 75,000/s cold against 150,000-230,000/s warm.
        produce_all()
        acked = 0
        elapsed = produce_all()
        return Measured(acked, elapsed)
    finally:
        admin.delete_topics([topic])[topic].result(30)


@dataclass(frozen=True)
class Latencies:
    """Per-event latencies in milliseconds."""

    values_ms: list[float]

    def p(self, pct: float) -> float:
        return percentile(self.values_ms, pct)


class _Paced:
    """Sleeps so that calls to `wait` happen `rate` times a second on average, from `start`."""

    def __init__(self, rate: float, start: float) -> None:
        self.interval_s = 1.0 / rate
        self.next_at = start

    def wait(self) -> None:
        self.next_at += self.interval_s
        delay = self.next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def measure_lag(
    db_url: str,
    bootstrap: str,
    options: RelayOptions,
    *,
    rate: float = LAG_RATE,
    writers: int = LAG_WRITERS,
    seconds: float = LAG_SECONDS,
) -> Latencies:
    """Commit outbox rows at `rate` from `writers` threads, one row per transaction, while the
    relay loop runs; returns each row's lag from its commit to its Kafka acknowledgement.

    The commit time is taken when commit() returns: the row is visible to the relay from
    then on (a few hundred microseconds after the server made it durable, so the lag is if
    anything understated by that much).
    """
    committed: dict[str, float] = {}
    acked: dict[str, float] = {}
    lock = threading.Lock()

    def on_acked(ids: Sequence[str], acked_at: Sequence[float]) -> None:
        with lock:
            acked.update(zip(ids, acked_at, strict=True))

    engine = make_engine(db_url, pool_size=writers + 3)
    relay = OutboxRelay(engine, bootstrap, options, on_acked=on_acked)
    stop_relay = threading.Event()
    errors: list[BaseException] = []
    try:
        if not relay.connect(timeout_s=30):
            raise RuntimeError(f"Kafka at {bootstrap} did not answer")
        relay_thread = threading.Thread(target=relay.run, args=(stop_relay,), name="relay")
        relay_thread.start()
        started = time.perf_counter()

        def write() -> None:
            pace = _Paced(rate / writers, started)
            try:
                with connection(engine, autocommit=False) as conn:
                    while time.perf_counter() - started < seconds:
                        pace.wait()
                        event = _event(uuid.uuid4(), 1)
                        insert_events(conn, [event])
                        conn.commit()
                        at = time.time()
                        with lock:
                            committed[str(event.id)] = at
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, name=f"writer-{n}") for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"a writer failed: {errors[0]!r}") from errors[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if committed.keys() <= acked.keys():
                    break
            time.sleep(0.1)
        stop_relay.set()
        relay_thread.join(timeout=60)
    finally:
        stop_relay.set()
        engine.dispose()
    missing = committed.keys() - acked.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(committed)} rows not acknowledged within 60 s")
    return Latencies([max(0.0, (acked[i] - at) * 1000) for i, at in committed.items()])


def measure_ack_floor(
    bootstrap: str, options: RelayOptions, *, rate: float = LAG_RATE, seconds: float = LAG_SECONDS
) -> Latencies:
    """The same producer settings and payload shape at the same pace, straight from memory:
    each message's produce() to its delivery report, served by a polling thread as the
    relay's collect() serves them."""
    producer = Producer(producer_config(bootstrap, options))
    producer.list_topics(TRANSFERS, timeout=10)
    latencies: list[float] = []
    failures: list[KafkaError] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or len(producer) > 0:
            producer.poll(0.01)

    poller = threading.Thread(target=poll, name="floor-poll")
    poller.start()
    try:
        started = time.perf_counter()
        pace = _Paced(rate, started)
        while time.perf_counter() - started < seconds:
            pace.wait()
            event = _event(uuid.uuid4(), 1)
            sent = time.perf_counter()

            def on_delivery(err: KafkaError | None, _msg: Message, sent: float = sent) -> None:
                if err is None:
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    failures.append(err)

            producer.produce(
                TRANSFERS,
                json.dumps(event.payload).encode(),
                event.key.encode(),
                on_delivery=on_delivery,
                headers=[("ce_id", str(event.id).encode())],
            )
    finally:
        done.set()
        poller.join(timeout=60)
    if failures:
        raise RuntimeError(f"ack floor: {len(failures)} failed ({failures[:1]})")
    return Latencies(latencies)


def _result(name: str, measured: Measured, floor: Measured) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(measured.rate, 1),
        "unit": UNIT,
        "floor_name": FLOOR_NAME,
        "floor": round(floor.rate, 1),
        "ratio": round(measured.rate / floor.rate, 3) if floor.rate else None,
    }


def run(
    db_url: str, bootstrap: str, *, rows: int = 100_000, options: RelayOptions | None = None
) -> list[dict[str, Any]]:
    """Measure the drain and its floor; returns the result dicts of bench/results.

    Raises:
        RuntimeError: a row was not published, or the floor lost messages.
    """
    options = options or RelayOptions()
    ensure_topics(bootstrap)
    name = f"relay_bench_{uuid.uuid4().hex[:8]}"
    bench_url = _create_database(db_url, name)
    try:
        upgrade(bench_url)
        fill_outbox(bench_url, rows)
        payloads = load_payloads(bench_url)
        floor = measure_floor(bootstrap, payloads, options)
        del payloads
        drain = measure_drain(bench_url, bootstrap, options)
        if drain.count != rows:
            raise RuntimeError(f"drained {drain.count} rows, expected {rows}")
        ack_floor = measure_ack_floor(bootstrap, options)
        lag = measure_lag(bench_url, bootstrap, options)
    finally:
        _drop_database(db_url, name)
    return [
        _result(DRAIN_NAME, drain, floor),
        result(LAG_P50_NAME, lag.p(50), "ms", ACK_P50_NAME, ack_floor.p(50), lower_is_better=True),
        result(
            LAG_P99_NAME,
            lag.p(99),
            "ms",
            ACK_P99_NAME,
            ack_floor.p(99),
            lower_is_better=True,
            samples=len(lag.values_ms),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db-url", default=os.environ.get("LEDGERFLOW_DATABASE_URL"))
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGERFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=RelayOptions.batch_size)
    args = parser.parse_args(argv)
    if not args.db_url:
        raise SystemExit("give --db-url or set LEDGERFLOW_DATABASE_URL")
    results = run(args.db_url, args.bootstrap, rows=args.rows, options=RelayOptions(batch_size=args.batch_size))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
