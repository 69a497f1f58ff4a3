"""The retention sweep on a real database: what is past retention goes, in batches; unpublished,
parked and recent rows stay; reconciliation still passes after old `transfer.posted` rows
went. The activities are called as the workflow calls them (start, batches, finish)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from activities.retention import RetentionActivities
from ledger.db import make_engine
from ledger.outbox import insert_event, make_event
from ledger.service import Ledger
from recon.checks import check_consumer_counts, check_outbox_published
from recon.io import ReconciliationPolicy
from recon.retention import DAY_S, RetentionPolicy, targets
from recon.retention_io import FinishSweepInput, StartSweepInput, SweepBatchInput
from tests.relay.helpers import posted_transfer

# Small batches, so every target needs several and the batch loop is exercised.
POLICY = RetentionPolicy(outbox_days=7, dedupe_s=30 * DAY_S, idempotency_s=48 * 3600, batch_rows=2)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=4)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(["USD"])
    return ledger


@pytest.fixture
def raw(migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(migrated_db_url.replace("+psycopg", ""), autocommit=True) as conn:
        yield conn


def q(raw: psycopg.Connection[Any], query: Any, *params: object) -> Any:
    row = raw.execute(query, params).fetchone()
    return row[0] if row else None


def publish_everything_committed(raw: psycopg.Connection[Any]) -> None:
    """What the relay's cursor does once Kafka acknowledged: every committed row is covered."""
    raw.execute("UPDATE outbox_cursor SET done_snapshot = pg_current_snapshot(), target_snapshot = NULL")


def sweep(engine: Engine, policy: RetentionPolicy = POLICY) -> dict[str, int]:
    """One sweep the way RetentionSweepWorkflow runs it; returns rows removed per target."""
    activities = RetentionActivities(engine)
    run_id = str(uuid.uuid4())
    started = activities.start(StartSweepInput(run_id, "retention-test", policy))
    removed: dict[str, int] = {}
    for cutoff in started.cutoffs:
        while True:
            result = activities.sweep_batch(SweepBatchInput(run_id, cutoff.name, cutoff.cutoff, policy))
            removed[cutoff.name] = removed.get(cutoff.name, 0) + result.removed
            if result.removed < result.batch:
                break
    activities.finish(FinishSweepInput(run_id, "completed"))
    return removed


def test_every_target_names_an_existing_table(raw: psycopg.Connection[Any]) -> None:
    for target in targets(POLICY):
        assert q(raw, "SELECT to_regclass(%s) IS NOT NULL", target.table), target.name


def test_sweep_removes_what_is_past_retention_and_keeps_unpublished_parked_and_recent(
    engine: Engine, ledger: Ledger, raw: psycopg.Connection[Any]
) -> None:
    # Old, published: five transfers' worth of events (account.opened, deposited, posted...).
    for _ in range(5):
        posted_transfer(ledger)
    publish_everything_committed(raw)
    raw.execute("UPDATE outbox SET created_at = now() - interval '8 days'")
    old_ids = [r[0] for r in raw.execute("SELECT id FROM outbox").fetchall()]
    assert len(old_ids) >= 10

    # Old but never published (the relay has not reached it) and old but parked.
    waiting = make_event("transfer.initiated", business_id=uuid.uuid4(), key=uuid.uuid4(), data={"x": 1})
    parked = make_event("transfer.initiated", business_id=uuid.uuid4(), key=uuid.uuid4(), data={"x": 2})
    with psycopg.connect(raw.info.dsn) as conn:
        insert_event(conn, waiting)
        insert_event(conn, parked)
    raw.execute("UPDATE outbox SET parked = true, last_error = 'poison' WHERE id = %s", (parked.id,))
    raw.execute(
        "UPDATE outbox SET created_at = now() - interval '30 days' WHERE id IN (%s, %s)", (waiting.id, parked.id)
    )
    # Recent and published.
    recent = posted_transfer(ledger)
    publish_everything_committed(raw)
    # ...and now `waiting` is covered too: make it unpublished again the way it really is,
    # a transaction the cursor has not reached (its txid after the done snapshot).
    raw.execute("UPDATE outbox SET txid = pg_current_xact_id() WHERE id = %s", (waiting.id,))
    assert q(raw, "SELECT NOT published FROM outbox_state WHERE id = %s", waiting.id)
    assert q(raw, "SELECT parked FROM outbox_state WHERE id = %s", parked.id)

    # Publication records: an old page whose rows are all gone after the sweep, an old page
    # whose range still holds the waiting row, a recent page.
    waiting_seq = q(raw, "SELECT seq FROM outbox WHERE id = %s", waiting.id)
    snap = "'1:1:'"
    raw.execute(
        f"INSERT INTO outbox_publications (done_snapshot, target_snapshot, from_seq, to_seq, events, published_at) "
        f"VALUES ({snap}, {snap}, 0, 3, 3, now() - interval '8 days'), "
        f"({snap}, {snap}, %s, %s, 1, now() - interval '8 days'), "
        f"({snap}, {snap}, 0, 3, 3, now())",
        (waiting_seq - 1, waiting_seq),
    )

    # Dedupe rows: past the dedupe retention (with and without a recorded type) and recent.
    raw.execute(
        "INSERT INTO processed_events (consumer, event_id, type, processed_at) "
        "SELECT 'activity', id, type, now() - interval '31 days' FROM outbox WHERE id = ANY(%s)",
        (old_ids[:3],),
    )
    raw.execute(
        "INSERT INTO processed_events (consumer, event_id, type, processed_at) "
        "SELECT 'activity', id, NULL, now() - interval '31 days' FROM outbox WHERE id = %s",
        (old_ids[3],),
    )
    raw.execute(
        "INSERT INTO processed_events (consumer, event_id, type, processed_at) VALUES ('activity', %s, 'x', now())",
        (uuid.uuid4(),),
    )
    # Idempotency keys: completed and past 48 h; expired but younger than 48 h; a live lease.
    for created, expires, locked in (
        ("3 days", "2 days", "3 days"),
        ("30 hours", "6 hours", "30 hours"),
        ("3 days", "2 days", "-1 hour"),
    ):
        raw.execute(
            "INSERT INTO idempotency_keys (principal, key, method, path, request_hash, resource_id, state, "
            "locked_until, response_status, response_body, created_at, expires_at) VALUES "
            "('customer:x', %s, 'POST', '/v1/transfers', 'h', %s, 'completed', now() - %s::interval, 201, '\\x00', "
            "now() - %s::interval, now() - %s::interval)",
            (f"key-{created}-{locked}", uuid.uuid4(), locked, created, expires),
        )
    # Tokens: expired, revoked, valid. Throttle rows: old and inside their window.
    raw.execute(
        "INSERT INTO auth_tokens (token_hash, realm, principal_id, expires_at, revoked_at) VALUES "
        "('expired', 'customer', %s, now() - interval '1 minute', NULL), "
        "('revoked', 'customer', %s, now() + interval '1 hour', now() - interval '1 minute'), "
        "('valid', 'customer', %s, now() + interval '1 hour', NULL)",
        (uuid.uuid4(), uuid.uuid4(), uuid.uuid4()),
    )
    raw.execute(
        "INSERT INTO login_failures (realm, username, ip, failed_at) VALUES "
        "('customer', 'a', '1.2.3.4', now() - interval '2 hours'), ('customer', 'b', '1.2.3.4', now())"
    )
    raw.execute(
        "INSERT INTO otp_failures (customer_id, transfer_id, failed_at) VALUES "
        "(%s, %s, now() - interval '3 hours'), (%s, %s, now())",
        (uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()),
    )
    outbox_before = q(raw, "SELECT count(*) FROM outbox")

    removed = sweep(engine)

    # The outbox: every old published row went, in several batches of 2.
    assert removed["outbox"] == len(old_ids)
    assert q(raw, "SELECT count(*) FROM outbox WHERE id = ANY(%s)", old_ids) == 0
    assert q(raw, "SELECT count(*) FROM outbox") == outbox_before - len(old_ids)
    kept = {str(r[0]) for r in raw.execute("SELECT id FROM outbox").fetchall()}
    assert {str(waiting.id), str(parked.id)} <= kept, "unpublished and parked rows are never removed"
    assert {str(e.id) for e in ledger.events_for(recent.id)} <= kept, "recent rows stay"
    # Publications: only the old page with nothing of its range left.
    assert removed["outbox_publications"] == 1
    assert q(raw, "SELECT count(*) FROM outbox_publications WHERE to_seq = %s", waiting_seq) == 1
    assert q(raw, "SELECT count(*) FROM outbox_publications WHERE published_at > now() - interval '1 day'") == 1
    # Dedupe rows, with their tally by type (the untyped one typed from its outbox row).
    assert removed["processed_events"] == 4
    assert q(raw, "SELECT count(*) FROM processed_events") == 1
    assert q(raw, "SELECT sum(count) FROM consumer_swept_counts WHERE consumer = 'activity'") == 4
    assert q(raw, "SELECT count(*) FROM consumer_swept_counts WHERE type = 'unknown'") == 0
    # Keys, tokens, throttle rows.
    assert removed["idempotency_keys"] == 1
    assert {r[0] for r in raw.execute("SELECT key FROM idempotency_keys").fetchall()} == {
        "key-30 hours-30 hours",
        "key-3 days--1 hour",
    }
    assert [r[0] for r in raw.execute("SELECT token_hash FROM auth_tokens").fetchall()] == ["valid"]
    assert [r[0] for r in raw.execute("SELECT username FROM login_failures").fetchall()] == ["b"]
    assert q(raw, "SELECT count(*) FROM otp_failures") == 1

    # The run record: completed, every target's count, several batches.
    run = raw.execute("SELECT status, removed, batches, finished_at FROM retention_runs").fetchone()
    assert run is not None and run[0] == "completed" and run[3] is not None
    assert {k: int(v) for k, v in run[1].items()} == removed
    assert run[2] > len(targets(POLICY))

    # A second sweep finds nothing more.
    assert sum(sweep(engine).values()) == 0


def test_recon_passes_after_a_sweep_removed_old_transfer_posted_rows(
    engine: Engine, ledger: Ledger, raw: psycopg.Connection[Any]
) -> None:
    transfers = [posted_transfer(ledger) for _ in range(3)]
    publish_everything_committed(raw)
    # The activity feed consumer applied every event, as relay/consumer.py records it.
    raw.execute(
        "INSERT INTO processed_events (consumer, event_id, type, processed_at) "
        "SELECT 'activity', id, type, created_at FROM outbox"
    )
    raw.execute(
        "INSERT INTO event_counts (consumer, type, count) SELECT 'activity', type, count(*) FROM outbox GROUP BY type"
    )
    # Everything is old: older than the outbox's retention and than the dedupe rows'.
    raw.execute("UPDATE outbox SET created_at = now() - interval '40 days'")
    raw.execute("UPDATE posted_events SET created_at = now() - interval '40 days'")  # written with its row
    raw.execute("UPDATE processed_events SET processed_at = now() - interval '40 days'")
    policy = ReconciliationPolicy()
    with psycopg.connect(raw.info.dsn) as conn:
        assert check_outbox_published(conn, policy).ok
        assert check_consumer_counts(conn, policy).ok

    removed = sweep(engine)

    posted_ids = [str(t.id) for t in transfers]
    assert removed["outbox"] > 0 and removed["processed_events"] > 0
    assert q(raw, "SELECT count(*) FROM outbox WHERE type = 'transfer.posted' AND key = ANY(%s)", posted_ids) == 0
    with psycopg.connect(raw.info.dsn) as conn:
        outbox_check = check_outbox_published(conn, policy)
        consumer_check = check_consumer_counts(conn, policy)
    assert outbox_check.ok, outbox_check.details
    assert consumer_check.ok, consumer_check.details
    # It still proves something: a posted transfer whose compact record is missing fails it.
    raw.execute("DELETE FROM posted_events WHERE transfer_id = %s", (transfers[0].id,))
    with psycopg.connect(raw.info.dsn) as conn:
        broken = check_outbox_published(conn, policy)
    assert not broken.ok and broken.details["event_count_wrong"]["count"] == 1
