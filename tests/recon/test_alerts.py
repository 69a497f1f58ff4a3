"""A failed reconciliation run raises its alarm: one `reconciliation.failed` outbox row on
`ledgerflow.ops`, written with the failed run, never twice; a passing run writes none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from ledger.db import make_engine, transaction
from ledger.ids import event_id
from ledger.outbox import insert_event
from recon import alerts, runs
from recon.io import CheckResult
from tests.api.conftest import Api
from tests.recon.conftest import (
    customer,
    deposit,
    posted_transfer,
    relay_caught_up,
    run_reconciliation,
    staff_member,
    tamper,
)

ALERT = "reconciliation.failed"


def alert_rows(api: Api, run_id: str) -> list[tuple[Any, ...]]:
    return api.sql(
        "SELECT id, topic, key, type, source, payload FROM outbox WHERE type = %s AND key = %s", ALERT, run_id
    )


def test_a_corrupted_projection_fails_the_run_and_writes_one_alert(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    deposit(http, operator, alice.account, 500, "wire-alert")
    posted_transfer(api, http, alice, bob, 120)
    relay_caught_up(api)
    payee = bob.account["id"]
    try:
        tamper(api, "UPDATE account_balances SET ledger_minor = ledger_minor + 11 WHERE account_id = %s", payee)
        run = run_reconciliation(http, operator)
    finally:
        tamper(api, "UPDATE account_balances SET ledger_minor = ledger_minor - 11 WHERE account_id = %s", payee)

    assert run["status"] == "failed"
    failed = sorted(c["name"] for c in run["checks"] if not c["ok"])
    # The projections no longer sum to zero either, which the trial balance sees.
    assert "projections" in failed and set(failed) <= {"projections", "trial_balance"}

    [(eid, topic, key, type_, source, payload)] = alert_rows(api, run["id"])
    assert (topic, key, type_, source) == ("ledgerflow.ops", run["id"], ALERT, "/ledgerflow/recon")
    assert eid == event_id(uuid.UUID(run["id"]), ALERT)
    assert payload["specversion"] == "1.0" and payload["id"] == str(eid) and payload["subject"] == run["id"]
    data = payload["data"]
    assert data["run_id"] == run["id"] and sorted(data["failed_checks"]) == failed
    assert data["run_path"] == f"/ops/v1/reconciliation/runs/{run['id']}"
    assert data["summaries"]["projections"] == "1 account(s) whose projection differs from the sum of its entries"
    assert set(data["summaries"]) == set(failed)
    assert payee not in str(payload), "account ids stay behind the staff API"
    # The envelope's time is when the run was recorded as failed.
    finished = api.sql("SELECT finished_at FROM reconciliation_runs WHERE id = %s", run["id"])[0][0]
    assert payload["time"] == finished.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # The run says which event it raised.
    assert run["alert"] == {
        "emitted": True,
        "event_type": ALERT,
        "event_id": str(eid),
        "topic": "ledgerflow.ops",
        "failed_checks": [c["name"] for c in run["checks"] if not c["ok"]],
    }

    # Repaired (and the relay caught up): the next run passes and raises nothing.
    relay_caught_up(api)
    healthy = run_reconciliation(http, operator)
    assert healthy["status"] == "passed" and healthy["alert"] is None
    assert alert_rows(api, healthy["id"]) == []


# -- the finish, straight on the database ---------------------------------------------------


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()


def _new_run(engine: Engine) -> uuid.UUID:
    run_id = uuid.uuid4()
    with transaction(engine) as conn:
        runs.begin_run(conn, run_id, trigger="schedule", requested_by=None)
    return run_id


def _alerts(engine: Engine, run_id: uuid.UUID) -> list[tuple[Any, ...]]:
    with transaction(engine) as conn:
        return conn.execute("SELECT id, payload FROM outbox WHERE key = %s", (str(run_id),)).fetchall()


BROKEN = [
    CheckResult("trial_balance", True, {"currencies": ["USD"], "unbalanced": []}),
    CheckResult("holds", False, {"overdue_pending": {"count": 2, "rows": []}, "held_mismatch": {"count": 0}}),
    CheckResult("stuck_transfers", False, {"error": "TimeoutError: Temporal did not answer"}),
]


def test_finishing_the_same_run_twice_writes_one_alert(engine: Engine) -> None:
    run_id = _new_run(engine)
    with transaction(engine) as conn:
        first = runs.finish_run(conn, run_id, BROKEN)
    # A retried activity (its first attempt committed, its answer lost), even with other results.
    with transaction(engine) as conn:
        again = runs.finish_run(conn, run_id, BROKEN[:1])
    assert first == again
    status, alert = first
    assert status == "failed" and alert is not None and alert["failed_checks"] == ["holds", "stuck_transfers"]
    [(eid, payload)] = _alerts(engine, run_id)
    assert str(eid) == alert["event_id"]
    assert payload["data"]["summaries"] == {
        "holds": "hold findings: overdue_pending 2",
        "stuck_transfers": "could not run: TimeoutError: Temporal did not answer",
    }


def test_the_alert_id_is_written_once_whatever_writes_it(engine: Engine) -> None:
    """The outbox row is keyed on the run id, not on the attempt: two finishes racing on one
    run (or the same event built twice) leave one row."""
    run_id = _new_run(engine)
    at = datetime.now(UTC)
    one = alerts.failed_run_event(run_id, BROKEN, workflow_id=runs.workflow_id_for(run_id), at=at)
    two = alerts.failed_run_event(run_id, BROKEN, workflow_id=runs.workflow_id_for(run_id), at=datetime.now(UTC))
    assert one.id == two.id
    with transaction(engine) as conn:
        runs.finish_run(conn, run_id, BROKEN)
    with transaction(engine) as conn:
        assert insert_event(conn, two) is False
    assert len(_alerts(engine, run_id)) == 1


def test_a_passing_run_writes_no_event(engine: Engine) -> None:
    run_id = _new_run(engine)
    with transaction(engine) as conn:
        assert runs.finish_run(conn, run_id, BROKEN[:1]) == ("passed", None)
    assert _alerts(engine, run_id) == []


def test_a_failed_run_and_its_alert_commit_together(engine: Engine) -> None:
    run_id = _new_run(engine)
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        runs.finish_run(conn, run_id, BROKEN)
        raise RuntimeError("the activity's transaction fails after the finish")
    assert _alerts(engine, run_id) == []
    with transaction(engine) as conn:
        assert runs.get_run(conn, run_id).status == "running"


# -- summaries (no database) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "summary"),
    [
        (
            CheckResult("trial_balance", False, {"unbalanced": [{"currency": "USD"}, {"currency": "JPY"}]}),
            "debits, credits or projections do not net to zero in USD, JPY",
        ),
        (
            CheckResult("outbox_published", False, {"event_count_wrong": {"count": 1}, "unpublished": {"count": 3}}),
            "outbox findings: event_count_wrong 1, unpublished 3",
        ),
        (
            CheckResult("consumer_counts", False, {"counter_mismatch": [{}, {}], "missing": []}),
            "consumer findings: counter_mismatch 2",
        ),
        (
            CheckResult("stuck_transfers", False, {"stuck_count": 4}),
            "4 non-terminal transfer(s) whose workflow is not running",
        ),
        (CheckResult("a_future_check", False, {"x": 1}), "failed; see the run"),
        (
            CheckResult("projections", False, {"mismatched_count": "many"}),
            "0 account(s) whose projection differs from the sum of its entries",
        ),
        (
            CheckResult("trial_balance", False, {"unbalanced": "not a list"}),
            "debits, credits or projections do not net to zero in some currency",
        ),
    ],
)
def test_each_failed_check_gets_one_short_line(check: CheckResult, summary: str) -> None:
    assert alerts.summarize(check) == summary


def test_a_long_summary_is_cut() -> None:
    text = alerts.summarize(CheckResult("holds", False, {"error": "x" * 1000}))
    assert len(text) == alerts.MAX_SUMMARY_CHARS and text.endswith("…")
