"""Fraud review on the event stream, end to end: the relay publishes `transfer.initiated`,
the risk consumer assesses it and signals the verdict, the workflow acts on it.

- allow: the transfer posts; the assessment is recorded once, `risk.assessed` reaches
  `ledgerflow.risk`, and the verdict was delivered (signalled_at);
- rules configured to review and to block: in_review with the reason; failed risk_blocked
  with the hold voided;
- the consumer not running: in_review `risk_unavailable` after the wait (fail closed); once it
  runs again the late verdict is recorded and delivered, and moves nothing;
- a redelivered event is applied once, and a verdict signalled again (a crash between the
  signal and its mark) changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID

import psycopg
from confluent_kafka import Producer
from prometheus_client import REGISTRY
from temporalio.client import WorkflowHandle

from api import views
from chaos.checks import check_invariants
from ledger.accounts import Account
from ledger.db import transaction
from risk import assess as risk_assess
from tests.risk.conftest import RISK_WAIT_S, RiskStack
from tests.workflows.helpers import result
from workflows.transfer import TransferWorkflow


def sql(stack: RiskStack, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def wait_until(check: Any, timeout_s: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def until_status(handle: WorkflowHandle[TransferWorkflow, str], status: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (await handle.query(TransferWorkflow.state)).status != status:
        assert time.monotonic() < deadline, f"never reached {status}"
        await asyncio.sleep(0.05)


def set_rule(stack: RiskStack, name: str, *, action: str, params: dict[str, Any], enabled: bool = True) -> None:
    with transaction(stack.engine) as conn:
        risk_assess.put_rule(conn, name, enabled=enabled, action=action, params=params, updated_by="test")


def disable_all(stack: RiskStack) -> None:
    with transaction(stack.engine) as conn:
        for stored in risk_assess.list_rules(conn):
            r = stored.rule
            risk_assess.put_rule(conn, r.name, enabled=False, action=r.action, params=dict(r.params), updated_by="test")


async def send(
    stack: RiskStack, source: Account, destination: Account, amount_minor: int
) -> tuple[WorkflowHandle[TransferWorkflow, str], UUID]:
    handle, state = await stack.bank.start(source, destination, amount_minor)
    return handle, UUID(state.transfer_id)


async def test_allow_posts_and_the_verdict_is_recorded_once(risk_stack: RiskStack) -> None:
    stack = risk_stack
    disable_all(stack)
    alice = stack.bank.customer_account("USD", 100_000)
    bob = stack.bank.customer_account("USD")
    handle, tid = await send(stack, alice, bob, 1_000)
    # The verdict first (the usual order): recorded while the transfer waits for its code, so
    # it is left for the check to read, and no signal is sent.
    wait_until(
        lambda: sql(stack, "SELECT delivered_by FROM risk_assessments WHERE transfer_id = %s", tid) == [("check",)],
        what="the verdict recorded for the check",
    )
    await stack.bank.submit(handle, stack.bank.otp_code(str(tid)))
    assert await result(handle) == "posted"
    rows = sql(
        stack, "SELECT verdict, reasons, signalled_at IS NOT NULL FROM risk_assessments WHERE transfer_id = %s", tid
    )
    assert rows == [("allow", [], True)]
    history = await handle.fetch_history()
    names = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert names == ["submit_otp"]
    assert "risk_allow" in [e.event for e in (await handle.query(TransferWorkflow.state)).timeline]
    event_id = risk_assess.assessed_event_id(tid)
    assert sql(stack, "SELECT topic, type FROM outbox WHERE id = %s", event_id) == [
        ("ledgerflow.risk", "risk.assessed")
    ]
    received = stack.tail.read([str(event_id)], timeout_s=30)
    assert [(r.topic, r.key, r.envelope["data"]["verdict"]) for r in received] == [
        ("ledgerflow.risk", str(tid), "allow")
    ]

    # Metrics: the verdict by rule ("none" for an allow) and its latency to the workflow.
    assert (REGISTRY.get_sample_value("ledgerflow_risk_verdicts_total", {"verdict": "allow", "rule": "none"}) or 0) >= 1
    assert (REGISTRY.get_sample_value("ledgerflow_risk_verdict_latency_seconds_count") or 0) >= 1

    # The chaos harness's two risk invariants hold here, and notice when broken.
    checks = check_invariants(stack.engine, stack.bootstrap, [])["invariants"]
    assert checks["no_limit_exceeded"] and checks["no_post_without_verdict_or_review"]
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO limit_sets (scope, limits) VALUES (%s, \'[{"currency": "USD", "daily_max_minor": 999}]\')',
            (str(alice.customer_id),),
        )
        conn.execute("DELETE FROM risk_assessments WHERE transfer_id = %s", (tid,))
    checks = check_invariants(stack.engine, stack.bootstrap, [])["invariants"]
    assert not checks["no_limit_exceeded"] and not checks["no_post_without_verdict_or_review"]


async def test_rules_review_and_block(risk_stack: RiskStack) -> None:
    stack = risk_stack
    disable_all(stack)
    alice = stack.bank.customer_account("USD", 1_000_000)
    bob = stack.bank.customer_account("USD")
    # A first payment of 500.00 or more to someone new: review; the second transfer within
    # ten minutes: block (velocity, count 1).
    set_rule(stack, "new_payee_amount", action="review", params={"amount_minor": {"USD": 50_000}})
    handle, tid = await send(stack, alice, bob, 50_000)
    await stack.bank.submit(handle, stack.bank.otp_code(str(tid)))
    await until_status(handle, "in_review")
    assert stack.bank.ledger.get_transfer(tid).status.value == "in_review"
    assert sql(stack, "SELECT verdict, reasons FROM risk_decisions WHERE transfer_id = %s", tid) == [
        ("review", ["new_payee_amount"])
    ]
    # What the API shows as the transfer's `risk`.
    shown = views.risks(stack.engine, [tid])[tid]
    assert (shown.verdict, shown.reasons) == ("review", ["new_payee_amount"])

    set_rule(stack, "velocity", action="block", params={"count": 1, "window_s": 600})
    handle2, tid2 = await send(stack, alice, bob, 100)
    await stack.bank.submit(handle2, stack.bank.otp_code(str(tid2)))
    assert await result(handle2) == "failed"
    blocked = stack.bank.ledger.get_transfer(tid2)
    assert (blocked.failure_reason, blocked.transaction_id) == ("risk_blocked", None)
    assert sql(stack, "SELECT state FROM holds WHERE transfer_id = %s", tid2) == [("voided",)]
    assert sql(stack, "SELECT verdict, reasons FROM risk_assessments WHERE transfer_id = %s", tid2) == [
        ("block", ["velocity"])
    ]
    # Only the first transfer's 500.00 is still held.
    held = sql(stack, "SELECT held_minor FROM account_balances WHERE account_id = %s", alice.id)
    assert held == [(50_000,)]


async def test_no_verdict_fails_closed_and_a_late_one_moves_nothing(risk_stack: RiskStack) -> None:
    stack = risk_stack
    disable_all(stack)
    alice = stack.bank.customer_account("USD", 100_000)
    bob = stack.bank.customer_account("USD")
    stack.consumer.paused.set()
    handle, tid = await send(stack, alice, bob, 1_000)
    await stack.bank.submit(handle, stack.bank.otp_code(str(tid)))
    # The code is taken; the transfer waits for a verdict that cannot come.
    await until_status(handle, "in_review", timeout_s=RISK_WAIT_S + 30)
    assert sql(stack, "SELECT verdict, reasons FROM risk_decisions WHERE transfer_id = %s", tid) == [
        ("review", ["risk_unavailable"])
    ]
    assert sql(stack, "SELECT count(*) FROM risk_assessments WHERE transfer_id = %s", tid) == [(0,)]
    # The consumer runs again: the late verdict (allow) is recorded and delivered, nothing moves.
    stack.consumer.paused.clear()
    wait_until(
        lambda: (
            sql(stack, "SELECT signalled_at IS NOT NULL FROM risk_assessments WHERE transfer_id = %s", tid) == [(True,)]
        ),
        what="the late verdict delivered",
    )
    await asyncio.sleep(1)
    assert (await handle.query(TransferWorkflow.state)).status == "in_review"
    assert stack.bank.ledger.get_transfer(tid).status.value == "in_review"
    assert sql(stack, "SELECT verdict FROM risk_decisions WHERE transfer_id = %s", tid) == [("review",)]


async def test_redelivered_event_and_resent_verdict_apply_once(risk_stack: RiskStack) -> None:
    stack = risk_stack
    disable_all(stack)
    alice = stack.bank.customer_account("USD", 100_000)
    bob = stack.bank.customer_account("USD")
    handle, tid = await send(stack, alice, bob, 1_000)
    wait_until(
        lambda: (
            sql(stack, "SELECT signalled_at IS NOT NULL FROM risk_assessments WHERE transfer_id = %s", tid) == [(True,)]
        ),
        what="the verdict delivered",
    )
    # The relay publishes the same event again (as after a crash before its cursor moved).
    initiated = sql(stack, "SELECT payload FROM outbox WHERE key = %s AND type = 'transfer.initiated'", str(tid))[0][0]
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce("ledgerflow.transfers", key=str(tid), value=json.dumps(initiated).encode())
    assert producer.flush(30) == 0
    del producer  # no background reconnects once the session's Kafka stops
    # A crash between the signal and its mark: the consumer signals the same verdict again.
    sql(stack, "UPDATE risk_assessments SET signalled_at = NULL WHERE transfer_id = %s", tid)
    wait_until(
        lambda: (
            sql(
                stack,
                "SELECT count(*) FROM processed_events WHERE consumer = 'risk' AND event_id = %s",
                UUID(initiated["id"]),
            )
            == [(1,)]
            and sql(stack, "SELECT signalled_at IS NOT NULL FROM risk_assessments WHERE transfer_id = %s", tid)
            == [(True,)]
        ),
        what="the redelivery absorbed and the verdict re-sent",
    )
    await asyncio.sleep(1)  # the duplicate batch is committed by now; give it a moment anyway
    assert sql(stack, "SELECT count(*) FROM risk_assessments WHERE transfer_id = %s", tid) == [(1,)]
    assert sql(stack, "SELECT count(*) FROM outbox WHERE key = %s AND type = 'risk.assessed'", str(tid)) == [(1,)]
    await stack.bank.submit(handle, stack.bank.otp_code(str(tid)))
    assert await result(handle) == "posted"
    history = await handle.fetch_history()
    signals = [
        e for e in history.events if e.workflow_execution_signaled_event_attributes.signal_name == "risk_verdict"
    ]
    # Delivered twice, acted on once (it posted once): first by the check (the transfer was
    # waiting for its code when the verdict was recorded, so nothing was signalled), then by
    # the sweep's signal after the mark was lost.
    assert len(signals) == 1
    assert sql(stack, "SELECT count(*) FROM ledger_transactions WHERE transfer_id = %s", tid) == [(1,)]
