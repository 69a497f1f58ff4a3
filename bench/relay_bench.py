"""Relay throughput: draining a 100,000-row outbox backlog to Kafka, beside a produce floor.

    python -m bench.relay_bench --db-url postgresql+psycopg://postgres@127.0.0.1:55432/ledgerflow \\
        --bootstrap 127.0.0.1:9092

- relay.drain: `OutboxRelay.publish_once` in a loop until the outbox is empty, exactly as
  the relay process runs it: claim a batch FOR UPDATE SKIP LOCKED, produce it with the
  idempotent producer, wait for every ack, mark the batch published, commit.
- kafka.produce_floor: the same payloads and keys, already in memory, produced with the
  same producer settings (and a delivery callback per message, as the relay has), then one
  flush: what the broker and librdkafka can take with no database in the loop.

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
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from psycopg import sql
from sqlalchemy.engine import make_url

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
            left = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
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

        started = time.perf_counter()
        for event_id, key, value in payloads:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=on_delivery, headers=[("ce_id", event_id)])
                    break
                except BufferError:
                    producer.poll(0.1)
        remaining = producer.flush(120)
        elapsed = time.perf_counter() - started
        if remaining or failures:
            raise RuntimeError(f"floor: {remaining} unflushed, {len(failures)} failed ({failures[:1]})")
        return Measured(acked, elapsed)
    finally:
        admin.delete_topics([topic])[topic].result(30)


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
    finally:
        _drop_database(db_url, name)
    if drain.count != rows:
        raise RuntimeError(f"drained {drain.count} rows, expected {rows}")
    return [_result(DRAIN_NAME, drain, floor)]


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
