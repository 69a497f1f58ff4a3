"""The transfer workflow's risk gate (the `risk-verdict` patch) on a real Temporal server and a
real ledger. The verdict signal is sent by the test here, as the risk consumer would send it
(tests/risk/ runs the consumer itself, on Kafka).

Paths: allow posts; review goes to in_review with the reasons recorded; block fails the
transfer `risk_blocked` and voids its hold; a code that arrives before the verdict waits for
it, then acts; no verdict in time goes to in_review `risk_unavailable`, and a late verdict
does not move it; a second verdict for the same transfer changes nothing. The histories of
these paths are replayed at once (and kept under histories/risk-verdict/ when recording:
`LEDGERFLOW_RECORD_HISTORIES=1`), beside the histories recorded before the patch.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from temporalio.client import WorkflowHandle, WorkflowHistory

from contracts.transfer import OtpSubmission, ReviewDecision, RiskVerdict
from ledger.db import make_engine
from ledger.service import Ledger
from security.sealed import load_sealer
from tests.workflows.conftest import TEST_SETTINGS
from tests.workflows.helpers import CURRENCIES, Bank, result
from tests.workflows.test_replay import REPLAYER
from worker.build import build_worker
from worker.temporal_client import connect
from workflows.transfer import TransferWorkflow

RISK_WAIT_S = 3
RISK_SETTINGS = TEST_SETTINGS.model_copy(update={"risk_enabled": True, "risk_wait_s": RISK_WAIT_S})
HISTORIES = Path(__file__).parent / "histories" / "risk-verdict"


@pytest.fixture
async def risk_bank(temporal_address: str, migrated_db_url: str) -> AsyncIterator[tuple[Bank, str]]:
    client = await connect(RISK_SETTINGS, temporal_address)
    engine = make_engine(migrated_db_url, pool_size=10)
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(CURRENCIES)
    task_queue = f"risk-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=8) as executor:
        worker = build_worker(client, engine=engine, settings=RISK_SETTINGS, task_queue=task_queue, executor=executor)
        async with worker:
            bank = Bank(client=client, ledger=ledger, task_queue=task_queue, sealer=load_sealer(TEST_SETTINGS))
            yield bank, migrated_db_url.replace("+psycopg", "")
    engine.dispose()


def verdict(verdict: str, *reasons: str, event_id: str | None = None) -> RiskVerdict:
    return RiskVerdict(event_id=event_id or str(uuid.uuid4()), verdict=verdict, reasons=list(reasons))


async def status_of(handle: WorkflowHandle[TransferWorkflow, str]) -> str:
    return (await handle.query(TransferWorkflow.state)).status


async def wait_status(handle: WorkflowHandle[TransferWorkflow, str], status: str, timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await status_of(handle) == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {status}; now {await status_of(handle)}")


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


async def test_risk_paths(risk_bank: tuple[Bank, str]) -> None:
    bank, url = risk_bank
    alice = bank.customer_account("USD", 1_000_000)
    bob = bank.customer_account("USD")
    runs: dict[str, WorkflowHandle[TransferWorkflow, str]] = {}

    # allow, delivered before the code (the usual order): posts at once after the code.
    handle, state = await bank.start(alice, bob, 1_000)
    await handle.signal(TransferWorkflow.risk_verdict, verdict("allow"))
    assert await bank.submit(handle, bank.otp_code(state.transfer_id)) == "accepted"
    assert await result(handle) == "posted"
    runs["allow"] = handle

    # review: in_review with the reasons recorded, then an approver lets it post.
    handle, state = await bank.start(alice, bob, 2_000)
    await handle.signal(TransferWorkflow.risk_verdict, verdict("review", "velocity"))
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    await wait_status(handle, "in_review")
    assert sql(url, "SELECT status FROM transfers WHERE id = %s", UUID(state.transfer_id)) == [("in_review",)]
    assert sql(url, "SELECT verdict, reasons FROM risk_decisions WHERE transfer_id = %s", UUID(state.transfer_id)) == [
        ("review", ["velocity"])
    ]
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=True, staff_id="s"))
    assert await result(handle) == "posted"
    runs["review_approved"] = handle

    # block: failed risk_blocked, the hold voided, nothing posted.
    handle, state = await bank.start(alice, bob, 3_000)
    await handle.signal(TransferWorkflow.risk_verdict, verdict("block", "new_payee_amount"))
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    assert await result(handle) == "failed"
    t = bank.ledger.get_transfer(UUID(state.transfer_id))
    assert (t.status.value, t.failure_reason, t.transaction_id) == ("failed", "risk_blocked", None)
    assert sql(url, "SELECT state FROM holds WHERE transfer_id = %s", t.id) == [("voided",)]
    runs["blocked"] = handle

    # The code before the verdict: the transfer waits in processing, then acts on the verdict.
    handle, state = await bank.start(alice, bob, 4_000)
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    await asyncio.sleep(1)
    assert await status_of(handle) == "processing"
    await handle.signal(TransferWorkflow.risk_verdict, verdict("allow"))
    assert await result(handle) == "posted"
    runs["otp_before_verdict"] = handle

    # No verdict in time: in_review, risk_unavailable (fail closed); a late allow and a second
    # verdict change nothing.
    handle, state = await bank.start(alice, bob, 5_000)
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    await wait_status(handle, "in_review", timeout_s=RISK_WAIT_S + 20)
    await handle.signal(TransferWorkflow.risk_verdict, verdict("allow"))
    await handle.signal(TransferWorkflow.risk_verdict, verdict("block", "velocity"))
    await asyncio.sleep(1)
    assert await status_of(handle) == "in_review"
    assert sql(url, "SELECT verdict, reasons FROM risk_decisions WHERE transfer_id = %s", UUID(state.transfer_id)) == [
        ("review", ["risk_unavailable"])
    ]
    assert bank.ledger.get_transfer(UUID(state.transfer_id)).status.value == "in_review"
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=False, staff_id="s", reason="r"))
    assert await result(handle) == "rejected"
    runs["unavailable_rejected"] = handle

    # The same verdict twice (a redelivery) and then another: the first one holds.
    handle, state = await bank.start(alice, bob, 6_000)
    first = verdict("review", "amount_spike")
    await handle.signal(TransferWorkflow.risk_verdict, first)
    await handle.signal(TransferWorkflow.risk_verdict, first)
    await handle.signal(TransferWorkflow.risk_verdict, verdict("allow"))
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    await wait_status(handle, "in_review")
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=False, staff_id="s", reason="r"))
    assert await result(handle) == "rejected"
    runs["duplicate_verdicts"] = handle

    histories = {name: await h.fetch_history() for name, h in runs.items()}
    if os.environ.get("LEDGERFLOW_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(parents=True, exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    for history in histories.values():
        await REPLAYER.replay_workflow(history)


def record_verdict(bank: Bank, url: str, transfer_id: str, verdict: str, *reasons: str) -> None:
    """The assessment as the risk consumer records it for a transfer still waiting for its
    code: delivered `by check` (risk.assess.leave_for_check), so no signal is ever sent."""
    transfer = bank.ledger.get_transfer(UUID(transfer_id))
    sql(
        url,
        "INSERT INTO risk_assessments (transfer_id, event_id, customer_id, workflow_id, verdict, reasons, "
        "initiated_at, signalled_at, delivered_by) VALUES (%s, %s, %s, %s, %s, %s::jsonb, now(), now(), 'check') "
        "RETURNING 1",
        transfer.id,
        uuid.uuid4(),
        transfer.customer_id,
        f"transfer-{transfer_id}",
        verdict,
        json.dumps(list(reasons)),
    )


def risk_signals(history: WorkflowHistory) -> int:
    signals = [e.workflow_execution_signaled_event_attributes.signal_name for e in history.events]
    return signals.count("risk_verdict")


async def test_a_verdict_recorded_before_the_code_is_read_at_the_check(risk_bank: tuple[Bank, str]) -> None:
    """The usual order (the verdict well before the code): no signal, the accepting check
    reads the verdict, and the transfer acts on it in the task that took the code."""
    bank, url = risk_bank
    alice = bank.customer_account("USD", 1_000_000)
    bob = bank.customer_account("USD")
    runs: dict[str, WorkflowHandle[TransferWorkflow, str]] = {}

    handle, state = await bank.start(alice, bob, 1_000)
    record_verdict(bank, url, state.transfer_id, "allow")
    # The code by signal alone (bank.submit polls the state query, and a query that comes
    # while the check runs makes the worker complete a task early to answer it).
    await handle.signal(TransferWorkflow.submit_otp, OtpSubmission(uuid.uuid4().hex, bank.otp_code(state.transfer_id)))
    assert await result(handle) == "posted"
    timeline = [e.event for e in (await handle.query(TransferWorkflow.state)).timeline]
    assert "otp_accepted" in timeline and "risk_allow" in timeline
    runs["allow_at_check"] = handle

    handle, state = await bank.start(alice, bob, 2_000)
    record_verdict(bank, url, state.transfer_id, "review", "velocity")
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    await wait_status(handle, "in_review")
    assert sql(url, "SELECT verdict, reasons FROM risk_decisions WHERE transfer_id = %s", UUID(state.transfer_id)) == [
        ("review", ["velocity"])
    ]
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=True, staff_id="s"))
    assert await result(handle) == "posted"
    runs["review_at_check"] = handle

    histories = {name: await h.fetch_history() for name, h in runs.items()}
    for history in histories.values():
        # Nothing signalled, and no wait: without the read it would wait RISK_WAIT_S and go
        # to review as risk_unavailable.
        assert risk_signals(history) == 0
        assert "risk_unavailable" not in history.to_json()
    # The allowed one ran in two workflow tasks: the start, and the code (check, read, post).
    events = histories["allow_at_check"].events
    assert sum(1 for e in events if e.HasField("workflow_task_completed_event_attributes")) == 2
    if os.environ.get("LEDGERFLOW_RECORD_HISTORIES") == "1":
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    for history in histories.values():
        await REPLAYER.replay_workflow(history)
