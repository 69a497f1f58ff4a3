"""End to end: transfers started over HTTP with idempotency keys, OTPs read from the inbox and
submitted over HTTP, until posted and published to Kafka; beside the bare-workflow floor
measured on the same Temporal server in the same run.

Five passes on one stack, each with its own customers and the same load, in the order
on, off, one API, off, on:
1. the default system (`LEDGERFLOW_API_PROCESSES` API processes, 2 by default; risk review on):
   `e2e.transfers`, its latency, its CPU per transfer, the half-load latency, and the risk
   verdict latency;
2. and 4. the same with risk review off, 5. risk on again: `e2e.risk_on_vs_off` is the mean
   of passes 1 and 5 beside the mean of passes 2 and 4. The order is balanced (ABBA) because a
   pass's place in the run moves its rate: caches warm up while the databases grow. With one
   pass each, in the order on, off, the ratio measured 0.84 to 0.90 on the same code;
3. the same with one API process: `e2e.api_processes_2_vs_1` puts pass 1 beside it.
Between passes only the application processes restart; PostgreSQL, Temporal and Kafka keep
running. `comparisons=False` runs pass 1 alone (the cluster profile's figure)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from temporalio.client import Client

from bench import open_loop
from bench.cpu import CpuWindow, sessions_cpu_s, stack_sessions
from bench.stats import percentile, result
from bench.workflow_bench import run_noop, start_process
from chaos.__main__ import NO_RATE_LIMITS
from chaos.checks import wait_drained
from chaos.client import Api, Counters
from chaos.workload import Bank, dev_admin_totp_uri
from ledger.db import make_engine
from stack.ephemeral import EphemeralStack


@dataclass(frozen=True)
class Pass:
    """One closed-loop run's figures."""

    rate_per_s: float
    latencies_s: list[float]
    started_at: datetime
    ended_at: datetime
    # CPU per process over the measured window, and the open-loop pass at half this rate.
    cpu_rows: list[dict[str, Any]] = field(default_factory=list)
    idle_row: dict[str, Any] = field(default_factory=dict)
    half_load_rows: list[dict[str, Any]] = field(default_factory=list)


async def noop_floor(stack: EphemeralStack, logs: Path, count: int, in_flight: int) -> tuple[float, dict[str, Any]]:
    """The bare-workflow rate on the same Temporal server: the floor every e2e rate stands
    beside; and its CPU per workflow (the Temporal server and the no-op's worker, the client
    left out as the e2e load generator is), the floor beside e2e.cpu_ms_per_transfer."""
    client = await Client.connect(stack.settings.temporal_address)
    noop_queue = f"bench-noop-{uuid.uuid4().hex[:6]}"
    noop = start_process(
        "bench.noop",
        {"LEDGERFLOW_TEMPORAL_ADDRESS": stack.settings.temporal_address, "LEDGERFLOW_TEMPORAL_TASK_QUEUE": noop_queue},
        logs / "e2e-noop.log",
    )
    try:
        await run_noop(client, noop_queue, 100, in_flight)
        parts = {pid: kind for pid, kind in stack_sessions(stack).items() if kind == "temporal"}
        parts[noop.pid] = "noop_worker"
        before = sessions_cpu_s(parts)
        floor_rate, _ = await run_noop(client, noop_queue, count, in_flight)
        after = sessions_cpu_s(parts)
    finally:
        noop.terminate()
        noop.wait(30)
    by_kind = {kind: round((after[kind] - before[kind]) * 1000 / count, 1) for kind in after}
    total = sum(by_kind.values())
    return floor_rate, result("e2e.noop_cpu_ms_per_workflow", total, "ms", "-", total, by_kind=by_kind)


# Long enough for every periodic task (relay and consumer polls, Temporal's timers) to show.
IDLE_WINDOW_S = 10.0


async def closed_loop(
    stack: EphemeralStack,
    base_url: str,
    count: int,
    in_flight: int,
    customers: int,
    *,
    half_load: bool = False,
    cpu_floor: tuple[str, float] | None = None,
) -> Pass:
    """`count` transfers with `in_flight` at a time, from fresh customers, until all are posted
    and on Kafka; with `half_load`, then the open-loop pass at half the rate measured."""
    counters = Counters()
    api = Api(base_url, counters)
    bank = Bank(api, counters, mix=False, admin_totp_uri=dev_admin_totp_uri(stack))
    await bank.setup(customers, 100_000_000)
    # With risk review on, a transfer the rules send to review (velocity, at this rate) is
    # approved by this reviewer, so none waits forever; its latency counts.
    stop_review = asyncio.Event()
    reviewer = asyncio.create_task(bank.review_queue(stop_review, interval_s=0.5))
    # Amounts large enough to convert between any two currencies (1 minor unit may not).
    await bank.run_transfers(50, in_flight, 5_000, min_amount_minor=500)  # warm-up
    bank.report.latencies_s.clear()
    engine = make_engine(stack.database_url, pool_size=2)
    # The stack at rest for a few seconds first (the warm-up drained): its fixed CPU cost.
    await asyncio.to_thread(wait_drained, engine, 120)
    idle = CpuWindow(stack)
    idle.start()
    await asyncio.sleep(IDLE_WINDOW_S)
    idle.stop()
    started_at = db_now(engine)
    cpu = CpuWindow(stack)
    cpu.start()
    t0 = time.perf_counter()
    await bank.run_transfers(count, in_flight, 5_000, min_amount_minor=500)
    # "Until posted and published": the clock stops when Kafka has every event.
    await asyncio.to_thread(wait_drained, engine, 120)
    elapsed = time.perf_counter() - t0
    cpu.stop()
    ended_at = db_now(engine)
    posted = len(bank.report.latencies_s)
    half_load_rows = await open_loop.half_load(bank, posted / elapsed) if half_load and posted else []
    stop_review.set()
    await reviewer
    engine.dispose()
    await api.close()
    if posted < count:
        raise RuntimeError(f"only {posted} of {count} transfers posted: {dict(bank.report.outcomes)}")
    return Pass(
        posted / elapsed,
        list(bank.report.latencies_s),
        started_at,
        ended_at,
        cpu.rows(posted, floor=cpu_floor),
        idle.idle_row(),
        half_load_rows,
    )


def db_now(engine: Any) -> datetime:
    with engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return now


def window_rows(database_url: str, window: Pass, sql: str) -> list[Any]:
    """The rows of `sql` over the risk assessments, with :t0 and :t1 bound to the window."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), {"t0": window.started_at, "t1": window.ended_at}))
    finally:
        engine.dispose()


def assessment_share(database_url: str, window: Pass, part: str, whole: str = "count(*)") -> float:
    """`part` over `whole` (two aggregates) among the assessments of the window's transfers."""
    ((numerator, denominator),) = window_rows(
        database_url,
        window,
        f"SELECT {part}, {whole} FROM risk_assessments WHERE initiated_at BETWEEN :t0 AND :t1",
    )
    return int(numerator) / int(denominator) if denominator else 0.0


def review_share(database_url: str, window: Pass) -> float:
    """The share of the window's assessed transfers that the rules sent to review (or blocked)."""
    return assessment_share(database_url, window, "count(*) FILTER (WHERE verdict <> 'allow')")


def check_share(database_url: str, window: Pass) -> float:
    """The share of the window's delivered verdicts left for the code check to read (no signal,
    no workflow task of their own: risk.assess.leave_for_check)."""
    return assessment_share(
        database_url, window, "count(*) FILTER (WHERE delivered_by = 'check')", whole="count(delivered_by)"
    )


def verdict_latencies_ms(database_url: str, window: Pass) -> list[float]:
    """From each `transfer.initiated` commit (the assessment's `initiated_at`) to the verdict
    reaching the workflow (`signalled_at`: stamped right after its signal, or at the commit
    that left it for the code check), for the transfers initiated in the window."""
    rows = window_rows(
        database_url,
        window,
        "SELECT extract(epoch FROM signalled_at - initiated_at) * 1000 FROM risk_assessments"
        " WHERE initiated_at BETWEEN :t0 AND :t1 AND signalled_at IS NOT NULL",
    )
    return [float(row[0]) for row in rows]


def restart_apps(stack: EphemeralStack, extra_env: dict[str, str], api_processes: int | None = None) -> str:
    """Stop the application processes and start them again with other settings."""
    stack.stop_apps()
    if api_processes is not None:
        stack.settings = stack.settings.model_copy(update={"api_processes": api_processes})
        stack.stack.settings = stack.settings
    return stack.full(extra_env=extra_env)


# Customers per pass. Each makes about (1,050 + the half-load pass) / 300 = 4-5 transfers in the
# pass's few minutes, under the seeded `velocity` rule's 10 in 600 s, so the rules see ordinary
# customers and the risk-on pass measures the risk layer: the event, the assessment, the
# verdict's signal and the workflow's wait for it. With 50 customers (about 21 transfers each)
# half of the risk-on transfers went to review (2026-12-03: risk on/off 0.35), and the pass
# measured the bench's reviewer, which polls the queue every 0.5 s. The review path keeps its
# own tests; `e2e.risk_review_share` shows what share the rules still flag at this load.
CUSTOMERS = 300


def run(
    stack: EphemeralStack,
    logs: Path,
    count: int = 1000,
    in_flight: int = 50,
    customers: int = CUSTOMERS,
    *,
    comparisons: bool = True,
) -> list[dict[str, Any]]:
    api_processes = stack.settings.api_processes
    env = {**NO_RATE_LIMITS, "LEDGERFLOW_RISK_ENABLED": "true"}
    off_env = {**env, "LEDGERFLOW_RISK_ENABLED": "false"}
    base_url = stack.full(extra_env=env)
    floor_rate, floor_cpu = asyncio.run(noop_floor(stack, logs, count, in_flight))
    noop_cpu = (str(floor_cpu["name"]), float(floor_cpu["value"]))
    main = asyncio.run(closed_loop(stack, base_url, count, in_flight, customers, half_load=True, cpu_floor=noop_cpu))
    verdicts_ms = verdict_latencies_ms(stack.database_url, main)
    flagged_share = review_share(stack.database_url, main)
    by_check = check_share(stack.database_url, main)
    if len(verdicts_ms) < count:
        raise RuntimeError(f"only {len(verdicts_ms)} of {count} transfers have a delivered risk verdict")

    p50 = percentile(main.latencies_s, 50) * 1000
    p99 = percentile(main.latencies_s, 99) * 1000
    rows = [
        result(
            "e2e.transfers",
            main.rate_per_s,
            "transfers/s",
            "workflow.noop",
            floor_rate,
            in_flight=in_flight,
            api_processes=api_processes,
            risk="on",
        ),
        result("e2e.latency_p50_ms", p50, "ms", "-", p50),
        result("e2e.latency_p99_ms", p99, "ms", "-", p99),
        result("e2e.risk_review_share", flagged_share, "share", "-", flagged_share),
        result("e2e.risk_verdict_p50_ms", percentile(verdicts_ms, 50), "ms", "-", percentile(verdicts_ms, 50)),
        result("e2e.risk_verdict_p99_ms", percentile(verdicts_ms, 99), "ms", "-", percentile(verdicts_ms, 99)),
        result("e2e.risk_verdict_by_check_share", by_check, "share", "-", by_check),
        *main.cpu_rows,
        floor_cpu,
        main.idle_row,
        *main.half_load_rows,
    ]
    if not comparisons:
        return rows

    def closed(url: str) -> float:
        return asyncio.run(closed_loop(stack, url, count, in_flight, customers)).rate_per_s

    off_1 = closed(restart_apps(stack, off_env))
    one_api = closed(restart_apps(stack, env, api_processes=1))
    off_2 = closed(restart_apps(stack, off_env, api_processes=api_processes))
    on_2 = closed(restart_apps(stack, env))
    risk_on = (main.rate_per_s + on_2) / 2
    risk_off = (off_1 + off_2) / 2
    passes = {"on": [round(main.rate_per_s, 2), round(on_2, 2)], "off": [round(off_1, 2), round(off_2, 2)]}
    return [
        *rows,
        # Issue bar: risk review costs at most 10% of the rate (ratio >= 0.9), means of the
        # balanced passes.
        result("e2e.risk_on_vs_off", risk_on, "transfers/s", "e2e.transfers.risk_off", risk_off, passes=passes),
        result("e2e.transfers.risk_off", risk_off, "transfers/s", "workflow.noop", floor_rate, passes=passes["off"]),
        result(
            f"e2e.api_processes_{api_processes}_vs_1",
            main.rate_per_s,
            "transfers/s",
            "e2e.transfers.api_processes_1",
            one_api,
        ),
        result("e2e.transfers.api_processes_1", one_api, "transfers/s", "workflow.noop", floor_rate),
    ]
