"""Transfers through the workflow (start, OTP signal, posting) beside bare no-op workflows.

Both run with the same number in flight against the same dev server, each with its worker in
a separate process (as in production), so the ratio says what our workflow costs over the
cheapest possible workflow on this machine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.stats import percentile, result
from config.settings import Settings
from contracts.transfer import OtpSubmission, TransferRequest
from ledger.db import make_engine
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from otp.delivery import open_code
from security.sealed import load_sealer
from worker.temporal_client import connect
from workflows.transfer import TransferWorkflow, workflow_id_for

REPO = Path(__file__).resolve().parent.parent
OTP_KEY = "22" * 32
SETTINGS = Settings(otp_key=OTP_KEY, payload_keys="bench:" + "55" * 32, seal_keys="bench:" + "66" * 32)


def start_process(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "worker ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{module} did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc


def otp_code(ledger: Ledger, transfer_id: UUID) -> str:
    for event in ledger.events_for(transfer_id):
        if event.type == "notification.requested":
            # Sealed in the row (otp/delivery.py): opened with the worker's seal key.
            code = open_code(load_sealer(SETTINGS), event.payload["data"])
            if code is not None:
                return code
    raise RuntimeError("no OTP notification")


async def run_transfers(
    client: Client, ledger: Ledger, task_queue: str, pairs: list[tuple[Any, Any]], count: int, in_flight: int
) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []

    async def one(i: int) -> None:
        source, destination = pairs[i % len(pairs)]
        async with gate:
            transfer_id = uuid7()
            request = TransferRequest(
                transfer_id=str(transfer_id),
                customer_id=str(source.customer_id),
                source_account_id=str(source.id),
                destination_account_id=str(destination.id),
                amount_minor=100,
                currency="USD",
            )
            start = WithStartWorkflowOperation(
                TransferWorkflow.run,
                request,
                id=workflow_id_for(str(transfer_id)),
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            await client.execute_update_with_start_workflow(TransferWorkflow.initiated, start_workflow_operation=start)
            handle = await start.workflow_handle()
            code = await asyncio.to_thread(otp_code, ledger, transfer_id)
            t0 = time.perf_counter()
            await handle.signal(TransferWorkflow.submit_otp, OtpSubmission(uuid.uuid4().hex, code))
            status = await handle.result()
            latencies.append(time.perf_counter() - t0)
            if status != "posted":
                raise RuntimeError(f"transfer {transfer_id} ended {status}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - t0), latencies


async def run_noop(client: Client, task_queue: str, count: int, in_flight: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            await client.execute_workflow("Noop", str(i), id=f"noop-{uuid.uuid4().hex}", task_queue=task_queue)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - t0), latencies


async def measure(
    temporal_address: str, db_url: str, logs: Path, count: int = 1000, in_flight: int = 100
) -> list[dict[str, Any]]:
    engine = make_engine(db_url, pool_size=20)
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(["USD"])
    pairs = []
    for _ in range(in_flight):
        source = ledger.open_account(uuid7(), "USD")
        ledger.deposit(uuid7(), source.id, Money(10_000_000, "USD"))
        pairs.append((source, ledger.open_account(uuid7(), "USD")))
    # The floor runs bare: no codec on its client or worker. Transfers use ours (encrypted).
    plain = await Client.connect(temporal_address)
    client = await connect(SETTINGS, temporal_address)
    base_env = {
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_DATABASE_URL": db_url,
        "LEDGERFLOW_OTP_KEY": OTP_KEY,
        "LEDGERFLOW_PAYLOAD_KEYS": SETTINGS.payload_keys.get_secret_value(),
        "LEDGERFLOW_SEAL_KEYS": SETTINGS.seal_keys.get_secret_value(),
        # The bare transfer workflow: no risk consumer runs here, so with review on every
        # transfer would wait out LEDGERFLOW_RISK_WAIT_S and go to review (fail closed) instead
        # of posting. The e2e benchmark measures risk on beside risk off.
        "LEDGERFLOW_RISK_ENABLED": "false",
    }

    noop_queue = f"bench-noop-{uuid.uuid4().hex[:6]}"
    noop_worker = start_process(
        "bench.noop", {**base_env, "LEDGERFLOW_TEMPORAL_TASK_QUEUE": noop_queue}, logs / "noop-worker.log"
    )
    try:
        await run_noop(plain, noop_queue, 100, in_flight)  # warm-up
        floor_rate, floor_lat = await run_noop(plain, noop_queue, count, in_flight)
    finally:
        noop_worker.terminate()
        noop_worker.wait(30)

    queue = f"bench-transfers-{uuid.uuid4().hex[:6]}"
    worker = start_process("worker", {**base_env, "LEDGERFLOW_TEMPORAL_TASK_QUEUE": queue}, logs / "worker.log")
    try:
        await run_transfers(client, ledger, queue, pairs, 100, in_flight)  # warm-up
        rate, latencies = await run_transfers(client, ledger, queue, pairs, count, in_flight)
    finally:
        worker.terminate()
        worker.wait(30)
    engine.dispose()
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    floor_p50, floor_p99 = percentile(floor_lat, 50) * 1000, percentile(floor_lat, 99) * 1000
    return [
        result("workflow.transfers", rate, "transfers/s", "workflow.noop", floor_rate, in_flight=in_flight),
        result("workflow.otp_to_posted_p50_ms", p50, "ms", "workflow.noop_p50_ms", floor_p50, lower_is_better=True),
        result("workflow.otp_to_posted_p99_ms", p99, "ms", "workflow.noop_p99_ms", floor_p99, lower_is_better=True),
    ]


def run(temporal_address: str, db_url: str, logs: Path) -> list[dict[str, Any]]:
    return asyncio.run(measure(temporal_address, db_url, logs))
