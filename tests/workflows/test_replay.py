"""Determinism: recorded histories must replay through the current workflow code.

`histories/` holds histories recorded from real runs (committed); `histories/before-local-steps/`
those recorded before the `local-db-steps` patch, when every step was a regular activity: they
must keep replaying as long as such transfers may still be running. A change to
workflows/transfer.py that would break running transfers (a new activity call inserted
before an old one, a timer removed, a random value...) fails here. Re-record deliberately,
with a versioning plan, via `LEDGERFLOW_RECORD_HISTORIES=1 pytest tests/workflows/test_replay.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from contracts.transfer import ReviewDecision
from security.converter import data_converter
from tests.workflows.conftest import TEST_SETTINGS
from tests.workflows.helpers import Bank, result, wrong
from workflows.health import HealthCheckWorkflow
from workflows.transfer import TransferWorkflow

HISTORIES = Path(__file__).parent / "histories"
# Recorded histories are decoded with the test key; older plain ones pass through the codec.
REPLAYER = Replayer(workflows=[TransferWorkflow, HealthCheckWorkflow], data_converter=data_converter(TEST_SETTINGS))


async def record_scenarios(bank: Bank) -> dict[str, WorkflowHistory]:
    """Run one transfer per path through the workflow and return their histories."""
    runs = {}
    alice = bank.customer_account("USD", 1_000_000)
    bob = bank.customer_account("USD")
    pierre = bank.customer_account("EUR")

    handle, state = await bank.start(alice, bob, 1_000)
    code = bank.otp_code(state.transfer_id)
    await bank.submit(handle, wrong(code))
    await bank.submit(handle, code)
    await result(handle)
    runs["wrong_then_right"] = handle

    handle, state = await bank.start(alice, pierre, 2_000)
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    await result(handle)
    runs["cross_currency"] = handle

    handle, state = await bank.start(alice, bob, 200_000)
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    for _ in range(200):
        if (await handle.query(TransferWorkflow.state)).status == "in_review":
            break
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=False, staff_id="s", reason="r"))
    await result(handle)
    runs["review_rejected"] = handle

    handle, state = await bank.start(alice, bob, 1_000)
    await handle.signal(TransferWorkflow.cancel)
    await result(handle)
    runs["cancelled"] = handle

    handle, state = await bank.start(alice, bob, 1_000, otp_ttl_s=1)
    await result(handle)
    runs["expired"] = handle

    # Since the sca-exemption patch: a trusted payee's transfer goes without an OTP.
    payee = bank.trusted_payee(alice, bob)
    handle, state = await bank.start(alice, bob, 1_000, sca_exemption="trusted_payee", payee_id=payee)
    assert state.status == "processing" or state.status == "posted"
    assert await result(handle) == "posted"
    runs["trusted_payee"] = handle
    return {name: await h.fetch_history() for name, h in runs.items()}


async def test_fresh_histories_replay(bank: Bank) -> None:
    histories = await record_scenarios(bank)
    if os.environ.get("LEDGERFLOW_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    for history in histories.values():
        await REPLAYER.replay_workflow(history)


@pytest.mark.parametrize(
    "path", sorted(HISTORIES.glob("**/*.json")), ids=lambda p: str(p.relative_to(HISTORIES).with_suffix(""))
)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"recorded-{path.stem}", path.read_text())
    await REPLAYER.replay_workflow(history)


def test_recorded_histories_exist() -> None:
    assert len(list(HISTORIES.glob("*.json"))) >= 5
