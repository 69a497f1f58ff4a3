"""A relay that dies after Kafka acknowledged a batch and before marking it loses nothing:
the rows are published again, and the consumers apply each event once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger.db import connection, transaction
from ledger.outbox import insert_events, make_event
from ledger.service import Ledger
from relay.faults import AFTER_ACKS
from relay.publisher import OutboxRelay
from stack.service import free_port
from tests.relay.helpers import (
    FAST,
    Tail,
    Threads,
    consumed,
    outbox_ids,
    posted_transfer,
    scalar,
    start_consumers,
    unpublished,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]


class _Crash(Exception):
    pass


def test_abort_between_produce_and_mark_republishes_and_consumers_apply_once(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str, threads: Threads
) -> None:
    transfer = posted_transfer(ledger)
    notification = make_event(
        "notification.requested",
        business_id=transfer.id,
        key=transfer.id,
        data={
            "customer_id": str(transfer.payer),
            "channel": "in_app",
            "subject": "Approve",
            "body": "Your code is 123456",
            "transfer_id": str(transfer.id),
        },
    )
    with transaction(engine) as conn:
        insert_events(conn, [notification])
    ids = outbox_ids(engine)
    duplicates_before = consumed("activity", "duplicate") + consumed("notifier", "duplicate")

    relay = OutboxRelay(engine, relay_topics, FAST)
    try:
        # Produced and acknowledged, then the transaction dies before its commit.
        with pytest.raises(_Crash), transaction(engine) as conn:
            report = relay.publish_batch(conn)
            assert report.published == len(ids)
            raise _Crash
        assert unpublished(engine) == len(ids), "the marks died with the transaction"
        assert relay.drain(timeout_s=30) == len(ids), "published again"
    finally:
        relay.close()
    assert unpublished(engine) == 0

    received = tail.read(ids)
    assert sorted(r.id for r in received) == sorted(ids * 2), "each event is on Kafka twice"

    start_consumers(threads, engine, relay_topics, tail)
    wait_until(
        lambda: consumed("activity", "duplicate") + consumed("notifier", "duplicate") >= duplicates_before + len(ids),
        timeout_s=30,
        what="the consumers to see every duplicate",
    )
    assert scalar(engine, "SELECT count(*) FROM notifications") == 1
    assert scalar(engine, "SELECT count(*) FROM processed_events") == len(ids)
    with connection(engine) as conn:
        counts = dict(conn.execute("SELECT consumer || ':' || type, count FROM event_counts").fetchall())
    assert counts == {
        "notifier:notification.requested": 1,
        "activity:account.opened": 2,
        "activity:account.deposited": 1,
        "activity:transfer.initiated": 1,
        "activity:transfer.posted": 1,
    }
    assert scalar(engine, "SELECT count(*) FROM activity_feed") == 6


def _relay_process(
    db_url: str, bootstrap: str, *args: str, crash_at: str | None = None, metrics_port: int | None = None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LEDGERFLOW_DATABASE_URL": db_url,
        "LEDGERFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "LEDGERFLOW_RELAY_GROUP_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
    }
    env.pop("LEDGERFLOW_CRASH_AT", None)
    env.pop("LEDGERFLOW_RELAY_METRICS_PORT", None)
    if metrics_port is not None:
        env["LEDGERFLOW_RELAY_METRICS_PORT"] = str(metrics_port)
    if crash_at is not None:
        env["LEDGERFLOW_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "relay", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_relay_process_killed_after_acks_loses_nothing(
    engine: Engine, migrated_db_url: str, tail: Tail, relay_topics: str
) -> None:
    account = uuid.uuid4()
    events = [
        make_event(
            "account.status_changed",
            business_id=account,
            key=account,
            data={"account_id": str(account), "status": "active", "n": n},
            discriminators=(n,),
        )
        for n in range(1500)  # one claim (the default batch is 2,000)
    ]
    with transaction(engine) as conn:
        insert_events(conn, events)
    ids = [str(e.id) for e in events]

    first = _relay_process(migrated_db_url, relay_topics, "--role", "publisher", crash_at=AFTER_ACKS)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, out
    assert "relay ready" in out
    assert unpublished(engine) == len(ids), "killed before any mark committed"

    second = _relay_process(migrated_db_url, relay_topics, "--role", "publisher")
    try:
        wait_until(lambda: unpublished(engine) == 0, timeout_s=30, what="the second relay to publish everything")
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=30)
    assert second.returncode == 0, out
    assert "relay stopped" in out

    received = tail.read(ids, timeout_s=30)
    # One key, so one partition: the first run's batch (acknowledged, never marked), then all
    # of it again from the second run, in order both times.
    assert len({(r.topic, r.partition) for r in received}) == 1
    assert [int(r.envelope["data"]["n"]) for r in received] == list(range(len(ids))) * 2


def test_relay_process_runs_consumers_and_stops_cleanly_on_sigterm(
    engine: Engine, ledger: Ledger, migrated_db_url: str, relay_topics: str
) -> None:
    port = free_port()
    process = _relay_process(migrated_db_url, relay_topics, metrics_port=port)
    try:
        transfer = posted_transfer(ledger)
        wait_until(
            lambda: scalar(engine, "SELECT count(*) FROM activity_feed WHERE transfer_id = %s", transfer.id) == 3,
            timeout_s=45,
            what="the relay process to publish and project the transfer",
        )
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert "relay ready" in out and "publisher, notifier, activity" in out
    assert "relay stopped" in out
    assert unpublished(engine) == 0
    assert 'ledgerflow_relay_published_total{topic="ledgerflow.transfers"} 2.0' in metrics
    for name in (
        "ledgerflow_relay_outbox_backlog",
        "ledgerflow_relay_publish_lag_seconds_bucket",
        "ledgerflow_relay_parked_total",
        "ledgerflow_consumer_lag",
    ):
        assert name in metrics
