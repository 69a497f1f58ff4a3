"""End to end: transfers started over HTTP with idempotency keys, OTPs read from the inbox and
submitted over HTTP, until posted and published to Kafka; beside the bare-workflow floor
measured on the same Temporal server in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.stats import percentile, result
from bench.workflow_bench import run_noop, start_process
from chaos.__main__ import NO_RATE_LIMITS
from chaos.checks import wait_drained
from chaos.client import Api, Counters
from chaos.workload import Bank, dev_admin_totp_uri
from ledger.db import make_engine
from stack.ephemeral import EphemeralStack


async def measure(
    stack: EphemeralStack, base_url: str, logs: Path, count: int, in_flight: int, customers: int
) -> list[dict[str, Any]]:
    client = await Client.connect(stack.settings.temporal_address)
    noop_queue = f"bench-noop-{uuid.uuid4().hex[:6]}"
    noop = start_process(
        "bench.noop",
        {"LEDGERFLOW_TEMPORAL_ADDRESS": stack.settings.temporal_address, "LEDGERFLOW_TEMPORAL_TASK_QUEUE": noop_queue},
        logs / "e2e-noop.log",
    )
    try:
        await run_noop(client, noop_queue, 100, in_flight)
        floor_rate, _ = await run_noop(client, noop_queue, count, in_flight)
    finally:
        noop.terminate()
        noop.wait(30)

    counters = Counters()
    api = Api(base_url, counters)
    bank = Bank(api, counters, mix=False, admin_totp_uri=dev_admin_totp_uri(stack))
    await bank.setup(customers, 100_000_000)
    # Risk review is on (the default): a transfer the rules send to review (velocity, at this
    # rate) is approved by this reviewer, so none waits forever; its latency counts.
    stop_review = asyncio.Event()
    reviewer = asyncio.create_task(bank.review_queue(stop_review, interval_s=0.5))
    # Amounts large enough to convert between any two currencies (1 minor unit may not).
    await bank.run_transfers(50, in_flight, 5_000, min_amount_minor=500)  # warm-up
    bank.report.latencies_s.clear()
    engine = make_engine(stack.database_url, pool_size=2)
    t0 = time.perf_counter()
    await bank.run_transfers(count, in_flight, 5_000, min_amount_minor=500)
    # "Until posted and published": the clock stops when Kafka has every event.
    await asyncio.to_thread(wait_drained, engine, 120)
    elapsed = time.perf_counter() - t0
    stop_review.set()
    await reviewer
    engine.dispose()
    await api.close()
    posted = len(bank.report.latencies_s)
    if posted < count:
        raise RuntimeError(f"only {posted} of {count} transfers posted: {dict(bank.report.outcomes)}")
    rate = posted / elapsed
    p50 = percentile(bank.report.latencies_s, 50) * 1000
    p99 = percentile(bank.report.latencies_s, 99) * 1000
    return [
        result(
            "e2e.transfers",
            rate,
            "transfers/s",
            "workflow.noop",
            floor_rate,
            in_flight=in_flight,
            # LEDGERFLOW_API_PROCESSES=1 python -m bench e2e: the same row against one API process.
            api_processes=stack.settings.api_processes,
        ),
        result("e2e.latency_p50_ms", p50, "ms", "-", p50),
        result("e2e.latency_p99_ms", p99, "ms", "-", p99),
    ]


def run(
    stack: EphemeralStack, logs: Path, count: int = 1000, in_flight: int = 50, customers: int = 50
) -> list[dict[str, Any]]:
    base_url = stack.full(extra_env=NO_RATE_LIMITS)
    return asyncio.run(measure(stack, base_url, logs, count, in_flight, customers))
