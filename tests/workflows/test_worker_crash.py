"""A worker killed right after the posting committed: the transfer still posts exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID

from temporalio.api.enums.v1 import EventType

from contracts.transfer import OtpSubmission
from ledger.db import make_engine
from ledger.service import Ledger
from security.sealed import load_sealer
from tests.workflows.conftest import TEST_SETTINGS
from tests.workflows.helpers import CURRENCIES, Bank, result
from worker.build import build_worker
from worker.temporal_client import connect
from workflows.transfer import TransferWorkflow

REPO = Path(__file__).resolve().parents[2]


def start_worker_process(temporal_address: str, db_url: str, task_queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEDGERFLOW_DATABASE_URL": db_url,
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": task_queue,
        "LEDGERFLOW_OTP_KEY": TEST_SETTINGS.otp_key.get_secret_value(),
        "LEDGERFLOW_PAYLOAD_KEYS": TEST_SETTINGS.payload_keys.get_secret_value(),
        "LEDGERFLOW_SEAL_KEYS": TEST_SETTINGS.seal_keys.get_secret_value(),
        "LEDGERFLOW_CRASH_AT": "after_post_commit",
    }
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_for(predicate: object, timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_worker_killed_after_posting_commit_posts_once(
    temporal_address: str, migrated_db_url: str, tmp_path: Path
) -> None:
    client = await connect(TEST_SETTINGS, temporal_address)
    engine = make_engine(migrated_db_url, pool_size=5)
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(CURRENCIES)
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    bank = Bank(client=client, ledger=ledger, task_queue=task_queue, sealer=load_sealer(TEST_SETTINGS))
    alice = bank.customer_account("USD", 10_000)
    bob = bank.customer_account("USD")

    log = tmp_path / "worker.log"
    doomed = start_worker_process(temporal_address, migrated_db_url, task_queue, log)
    try:
        await wait_for(lambda: "worker ready" in log.read_text(errors="replace"), 60)
        handle, state = await bank.start(alice, bob, 2_500)
        # Signal only: the worker may die before it could answer a query about the code.
        code = bank.otp_code(state.transfer_id)
        await handle.signal(TransferWorkflow.submit_otp, OtpSubmission(submission_id="s1", code=code))
        # The worker dies at the crash point: the posting committed, Temporal was never told.
        await wait_for(lambda: doomed.poll() is not None, 60)
        assert doomed.returncode == 137
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert ledger.get_transfer(UUID(state.transfer_id)).status.value == "posted"

    # A healthy worker takes over. The posting runs as a local activity inside the dead
    # worker's workflow task: that task times out, and the step runs again on the new worker,
    # where the ledger answers "already posted".
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with build_worker(
            client, engine=engine, settings=TEST_SETTINGS, task_queue=task_queue, executor=executor
        ):
            assert await result(handle) == "posted"

    history = await handle.fetch_history()
    timed_out = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
    assert timed_out, "the crashed worker's workflow task should have timed out and been retried"
    posted = [e for e in ledger.events_for(UUID(state.transfer_id)) if e.type == "transfer.posted"]
    assert len(posted) == 1
    assert len(ledger.transfer_legs(UUID(state.transfer_id))) == 2
    assert ledger.balance(alice.id).ledger_minor == 7_500
    assert ledger.balance(bob.id).ledger_minor == 2_500
    engine.dispose()
