"""Reconciliation runs end to end: API -> Temporal workflow -> checks -> stored results.

One healthy run, then one run over a ledger broken on purpose in every way a check looks
for, each finding naming the row at fault; the damage is undone afterwards so the rest of the
package sees a healthy ledger again.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client, ScheduleIntervalSpec

from ledger.db import make_engine
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from recon.schedule import ensure_schedule
from tests.api.conftest import Api
from tests.recon.conftest import (
    checks_of,
    customer,
    deposit,
    posted_transfer,
    relay_caught_up,
    run_reconciliation,
    staff_member,
    tamper,
    wait_for,
)


def audit_actions(api: Api, target_id: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in api.sql("SELECT action, outcome FROM audit_log WHERE target_id = %s", target_id)]


def test_healthy_run_passes_and_is_audited(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    deposit(http, operator, alice.account, 1_000, "wire-healthy")
    posted_transfer(api, http, alice, bob, 250)
    relay_caught_up(api)

    run = run_reconciliation(http, operator)

    assert run["status"] == "passed", [c for c in run["checks"] if not c["ok"]]
    assert [c["name"] for c in run["checks"]] == [
        "trial_balance",
        "projections",
        "holds",
        "outbox_published",
        "consumer_counts",
        "stuck_transfers",
    ]
    assert run["workflow_id"] == f"reconciliation-{run['id']}"
    assert run["started_at"] and run["finished_at"] and run["alert"] is None
    assert ("reconciliation.run.start", "ok") in audit_actions(api, run["id"])
    # Any staff may read it; an auditor may not start one; an unknown run is 404.
    auditor = staff_member(api, http, "auditor")
    assert http.get(f"/ops/v1/reconciliation/runs/{run['id']}", headers=auditor.auth).status_code == 200
    assert http.post("/ops/v1/reconciliation/runs", headers=auditor.auth).status_code == 403
    missing = http.get(f"/ops/v1/reconciliation/runs/{uuid.uuid4()}", headers=auditor.auth)
    assert missing.status_code == 404 and missing.json()["code"] == "reconciliation_run_not_found"
    listed = http.get("/ops/v1/reconciliation/runs?limit=1", headers=auditor.auth).json()
    assert listed["items"][0]["id"] == run["id"]


def test_every_check_names_what_is_broken(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    deposit(http, operator, alice.account, 1_000, "wire-broken")
    unpublished_transfer = posted_transfer(api, http, alice, bob, 100)
    eventless_transfer = posted_transfer(api, http, alice, bob, 50)
    relay_caught_up(api)
    ledger = Ledger(make_engine(api.database_url, pool_size=2))
    payee = bob.account["id"]
    consumer = f"recon-test-{uuid.uuid4().hex[:6]}"
    saved_event = api.sql(
        "SELECT id, topic, key, type, source, subject, payload::text, created_at FROM outbox "
        "WHERE key = %s AND type = 'transfer.posted'",
        eventless_transfer,
    )[0]
    stuck_id = uuid7()
    overdue_id = uuid7()
    overdue_hold: uuid.UUID | None = None
    try:
        # A projection edited behind the ledger's back (as a superuser, triggers off).
        tamper(api, "UPDATE account_balances SET ledger_minor = ledger_minor + 7 WHERE account_id = %s", payee)
        # One transfer.posted event never published (and old), another one gone.
        api.sql(
            "UPDATE outbox SET published_at = NULL, created_at = now() - interval '10 minutes' "
            "WHERE key = %s AND type = 'transfer.posted'",
            unpublished_transfer,
        )
        api.sql("DELETE FROM outbox WHERE id = %s", saved_event[0])
        # A consumer whose counter disagrees with what it recorded as applied.
        api.sql("INSERT INTO event_counts (consumer, type, count) VALUES (%s, 'transfer.posted', 3)", consumer)
        # A transfer with no workflow, long in pending_otp; a hold long past its deadline.
        ledger.create_transfer_with_hold(
            stuck_id,
            uuid.UUID(alice.id),
            uuid.UUID(alice.account["id"]),
            uuid.UUID(payee),
            Money(5, "USD"),
            workflow_id=f"transfer-{stuck_id}",
        )
        api.sql("UPDATE transfers SET updated_at = now() - interval '20 minutes' WHERE id = %s", stuck_id)
        # A transfer's hold past its deadline (the transfer itself is fresh, not stuck).
        overdue_hold = ledger.create_transfer_with_hold(
            overdue_id,
            uuid.UUID(alice.id),
            uuid.UUID(alice.account["id"]),
            uuid.UUID(payee),
            Money(3, "USD"),
            hold_ttl_s=-600,
            workflow_id=f"transfer-{overdue_id}",
        ).hold_id
        api.sql("UPDATE outbox SET published_at = now() WHERE published_at IS NULL AND key <> %s", unpublished_transfer)

        run = run_reconciliation(http, operator)
    finally:
        tamper(api, "UPDATE account_balances SET ledger_minor = ledger_minor - 7 WHERE account_id = %s", payee)
        api.sql(
            "INSERT INTO outbox (id, topic, key, type, source, subject, payload, created_at, published_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, now()) ON CONFLICT DO NOTHING",
            *saved_event,
        )
        api.sql("DELETE FROM event_counts WHERE consumer = %s", consumer)
        ledger.void_transfer_hold(stuck_id, "failed", "test cleanup")
        ledger.void_transfer_hold(overdue_id, "failed", "test cleanup")
        relay_caught_up(api)
        ledger.engine.dispose()

    assert run["status"] == "failed"
    checks = checks_of(run)
    assert all(not c["ok"] for c in checks.values()), {n: c["ok"] for n, c in checks.items()}

    assert [u["currency"] for u in checks["trial_balance"]["details"]["unbalanced"]] == ["USD"]
    [account] = checks["projections"]["details"]["accounts"]
    assert (account["account_id"], account["difference_minor"], account["kind"]) == (payee, 7, "customer")

    outbox = checks["outbox_published"]["details"]
    assert [(r["transfer_id"], r["posted_events"]) for r in outbox["event_count_wrong"]["rows"]] == [
        (eventless_transfer, 0)
    ]
    assert [(r["key"], r["type"]) for r in outbox["unpublished"]["rows"]] == [(unpublished_transfer, "transfer.posted")]

    consumers = checks["consumer_counts"]["details"]
    assert {"consumer": consumer, "type": "transfer.posted", "event_counts": 3, "processed_events": 0} in consumers[
        "counter_mismatch"
    ]

    stuck = checks["stuck_transfers"]["details"]["stuck"]
    assert [(s["transfer_id"], s["workflow_status"]) for s in stuck] == [(str(stuck_id), "not_found")]

    holds = checks["holds"]["details"]
    assert [r["hold_id"] for r in holds["overdue_pending"]["rows"]] == [str(overdue_hold)]

    # A failed run raises its alarm: one reconciliation.failed event naming every failed check.
    alert: dict[str, Any] = run["alert"]
    assert alert["emitted"] and alert["event_type"] == "reconciliation.failed"
    assert sorted(alert["failed_checks"]) == sorted(checks)
    [(event_id, failed_checks)] = api.sql(
        "SELECT id::text, payload -> 'data' -> 'failed_checks' FROM outbox WHERE key = %s", run["id"]
    )
    assert event_id == alert["event_id"] and sorted(failed_checks) == sorted(checks)

    # Repaired: the next run passes again.
    assert run_reconciliation(http, operator)["status"] == "passed"


async def test_schedule_is_idempotent_and_its_runs_are_named_by_run_id(api: Api) -> None:
    client = await Client.connect(api.settings.temporal_address, namespace=api.settings.temporal_namespace)
    schedule_id = f"reconciliation-test-{uuid.uuid4().hex[:8]}"
    queue = api.settings.temporal_task_queue
    handle = await ensure_schedule(client, queue, schedule_id=schedule_id, every=timedelta(hours=12))
    try:
        # Again, with another interval: the same schedule, brought in step.
        await ensure_schedule(client, queue, schedule_id=schedule_id, every=timedelta(days=1))
        description = await handle.describe()
        assert description.schedule.spec.intervals == [
            ScheduleIntervalSpec(every=timedelta(days=1), offset=timedelta(hours=2))
        ]
        before = {r[0] for r in api.sql("SELECT id FROM reconciliation_runs WHERE trigger = 'schedule'")}
        await handle.trigger()

        def scheduled_run() -> list[tuple[Any, ...]]:
            return api.sql(
                "SELECT id, workflow_id, status FROM reconciliation_runs "
                "WHERE trigger = 'schedule' AND status IN ('passed', 'failed') AND NOT id = ANY(%s)",
                list(before),
            )

        await asyncio.to_thread(wait_for, lambda: bool(scheduled_run()), 30)
        [(run_id, workflow_id, _)] = scheduled_run()
        assert workflow_id == f"reconciliation-{run_id}"
        assert uuid.UUID(str(run_id)).version == 7
    finally:
        await handle.delete()
