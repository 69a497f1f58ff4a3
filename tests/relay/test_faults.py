"""Kafka going away and several relays at once: rows wait, nothing is lost or reordered."""

from __future__ import annotations

import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ledger.db import connection, transaction
from ledger.outbox import insert_events, make_event
from ledger.service import Ledger
from relay.publisher import OutboxRelay
from tests.conftest import TestStack
from tests.relay.helpers import FAST, Tail, Threads, outbox_ids, posted_transfer, unpublished, wait_until


def test_kafka_down_rows_wait_in_the_outbox_then_flow_when_it_returns(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str, threads: Threads, test_stack: TestStack
) -> None:
    # The single node, or every node of the cluster profile (`make test-cluster`): Kafka down.
    nodes = [svc for name, svc in test_stack.services.items() if name == "kafka" or name.startswith("kafka-")]
    threads.start(OutboxRelay(engine, relay_topics, FAST).run, "relay")
    posted_transfer(ledger)
    wait_until(lambda: unpublished(engine) == 0, timeout_s=20, what="the first transfer to be published")

    failures_before = _sample("ledgerflow_relay_publish_failures_total")
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(lambda node: node.stop(), nodes))
    try:
        transfers = [posted_transfer(ledger) for _ in range(3)]
        wait_until(
            lambda: REGISTRY.get_sample_value("ledgerflow_relay_dependency_up", {"dependency": "kafka"}) == 0,
            timeout_s=20,
            what="the relay to report Kafka down",
        )
        # Down for longer than a delivery may take: the batch fails, the relay backs off and
        # probes, and the rows stay in the outbox meanwhile.
        wait_until(
            lambda: _sample("ledgerflow_relay_publish_failures_total") > failures_before,
            timeout_s=20,
            what="a failed delivery",
        )
        wait_until(lambda: _sample("ledgerflow_relay_backoff_seconds") > 0, timeout_s=5, what="the backoff")
        assert unpublished(engine) == 5 * len(transfers), "the rows wait in the outbox"
        error, failures = _cursor_error(engine)
        assert error is not None and failures >= 1, "the cursor says what it waits for"
        wait_until(
            lambda: _sample("ledgerflow_relay_outbox_backlog") == 5 * len(transfers),
            timeout_s=10,
            what="the backlog gauge to count the waiting rows",
        )
    finally:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()

    wait_until(lambda: unpublished(engine) == 0, timeout_s=40, what="the relay to resume by itself")
    wait_until(
        lambda: (
            REGISTRY.get_sample_value("ledgerflow_relay_dependency_up", {"dependency": "kafka"}) == 1
            and _sample("ledgerflow_relay_backoff_seconds") == 0
        ),
        timeout_s=10,
        what="the relay to report Kafka back",
    )
    assert _cursor_error(engine)[0] is None, "cleared by the first page published after the outage"
    ids = outbox_ids(engine)
    received = tail.read(ids, timeout_s=30)
    assert {r.id for r in received} == set(ids), "nothing lost"
    for transfer in transfers:
        types = [r.envelope["type"] for r in received if r.key == str(transfer.id)]
        assert types == ["transfer.initiated", "transfer.posted"], "each once, in order"


def _cursor_error(engine: Engine) -> tuple[str | None, int]:
    with connection(engine) as conn:
        row = conn.execute("SELECT last_error, failures FROM outbox_cursor").fetchone()
    assert row is not None
    return row[0], int(row[1])


def test_two_relays_publish_every_row_once_in_key_order(
    engine: Engine, tail: Tail, relay_topics: str, threads: Threads
) -> None:
    keys = [uuid.uuid4() for _ in range(200)]
    events = [
        make_event(
            "account.status_changed",
            business_id=key,
            key=key,
            data={"account_id": str(key), "n": n},
            discriminators=(n,),
        )
        for n in range(20)
        for key in keys
    ]
    with transaction(engine) as conn:
        insert_events(conn, events)
    ids = [str(e.id) for e in events]

    small = FAST.__class__(**{**FAST.__dict__, "batch_size": 100})  # many claims, so the two interleave
    first, second = OutboxRelay(engine, relay_topics, small), OutboxRelay(engine, relay_topics, small)
    threads.start(first.run, "relay-1")
    threads.start(second.run, "relay-2")
    wait_until(lambda: unpublished(engine) == 0, timeout_s=40, what="both relays to drain the outbox")

    received = tail.read(ids, timeout_s=30)
    assert sorted(r.id for r in received) == sorted(ids), "every row, each exactly once"
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    partitions: defaultdict[str, set[int]] = defaultdict(set)
    for message in received:  # sorted by partition and offset
        by_key[message.key].append(int(message.envelope["data"]["n"]))
        partitions[message.key].add(message.partition)
    assert all(order == list(range(20)) for order in by_key.values()), "per-key order kept"
    assert all(len(p) == 1 for p in partitions.values())


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0
