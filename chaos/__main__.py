"""`make chaos`: a bank workload under faults, then the invariants.

    python -m chaos --transfers 10000 --customers 60      # the full form
    python -m chaos --transfers 300 --customers 20        # the short form CI runs

Starts its own embedded stack with several processes of each kind (2 API, 2 worker, 2 relay
by default: --processes), funds customers, runs transfers while faults are injected one at a
time and then together (a kill -9 takes one process of its kind, chosen at random, and the
launcher restarts it), waits for the system to drain, checks every invariant, prints the
counts and writes bench/results/chaos-latest.json.
Exit code 0 only if every invariant holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.checks import check_invariants, wait_drained
from chaos.client import Api, Counters
from chaos.faults import FaultLog, faults, inject
from chaos.workload import CURRENCIES, Bank, dev_admin_totp_uri
from ledger.db import make_engine
from stack.ephemeral import EphemeralStack

# The workload comes from one IP and a few customers: per-IP and per-customer limits off.
NO_RATE_LIMITS = {
    f"LEDGERFLOW_RATELIMIT_{what}_PER_{who}": "0" for what in ("TRANSFERS", "OTP") for who in ("CUSTOMER", "IP")
}
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def daily_limit_minor(transfers: int, customers: int, max_amount_minor: int) -> int:
    """A daily limit per currency that the busiest customers reach, whatever the run's size:
    80% of what an average customer sends from one currency in the run (transfers spread over
    customers and currencies, amounts uniform up to the maximum), and at least 600,000 (about
    four average transfers of the short form). A fixed limit would refuse nearly everything in
    a long run, and prove little about money that moved."""
    per_customer_currency = transfers / (customers * len(CURRENCIES))
    return max(600_000, int(0.8 * per_customer_currency * max_amount_minor / 2))


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def run_workload(stack: EphemeralStack, base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    counters = Counters()
    api = Api(base_url, counters)
    bank = Bank(api, counters, seed=args.seed, admin_totp_uri=dev_admin_totp_uri(stack))
    say(f"setting up {args.customers} customers with {args.funding_minor} minor units per account")
    await bank.setup(args.customers, args.funding_minor)
    # A daily limit per currency that some customers reach, so refusals happen under faults
    # and the check "no limit exceeded" has something to prove.
    limit_minor = daily_limit_minor(args.transfers, args.customers, args.max_amount_minor)
    await bank.set_default_limits([{"currency": c, "daily_max_minor": limit_minor} for c in CURRENCIES])
    stop_reads = asyncio.Event()
    readers = [asyncio.create_task(bank.read_balances(stop_reads)) for _ in range(2)]
    readers.append(asyncio.create_task(bank.review_queue(stop_reads)))
    fault_log = FaultLog()
    names = list(faults(stack)) if args.faults == "all" else [f for f in args.faults.split(",") if f]
    rng = random.Random(args.seed)
    say(f"running {args.transfers} transfers, {args.in_flight} in flight; faults: {', '.join(names) or 'none'}")
    t0 = time.monotonic()
    workload = asyncio.create_task(bank.run_transfers(args.transfers, args.in_flight, args.max_amount_minor))
    fault_task = asyncio.create_task(inject(stack, names, fault_log, say, rng))
    progress = asyncio.create_task(report_progress(bank))
    await fault_task
    await workload
    progress.cancel()
    stop_reads.set()
    await asyncio.gather(*readers)
    await api.close()
    elapsed = time.monotonic() - t0
    return {
        "transfers_attempted": bank.report.attempted,
        "transfers_created": bank.report.created,
        "outcomes": dict(sorted(bank.report.outcomes.items())),
        "posted": bank.report.outcomes.get("posted", 0),
        "faults_injected": [{"fault": f, "recovery_s": round(s, 1)} for f, s in fault_log.injected],
        "processes": {kind: len(stack.apps(kind)) for kind in ("api", "worker", "relay")},
        "processes_killed": fault_log.victims,
        "profile": stack.settings.profile,
        "kafka_brokers_killed": fault_log.brokers_killed,
        "processes_restarted": dict(sorted(stack.stack.restarts.items())),
        "retries_seen": counters.retries,
        "duplicates_absorbed": counters.duplicates_absorbed,
        "balance_reads": bank.report.balance_reads,
        "reviews_approved": bank.report.reviews_approved,
        "http_statuses": {str(k): v for k, v in sorted(counters.statuses.items())},
        "server_errors": dict(sorted(counters.server_errors.items())),
        "workload_s": round(elapsed, 1),
        "_negative_reads": bank.report.negative_reads,
    }


async def report_progress(bank: Bank) -> None:
    while True:
        await asyncio.sleep(10)
        done = sum(bank.report.outcomes.values())
        say(f"progress: {done}/{bank.report.attempted} finished, {dict(bank.report.outcomes.most_common(4))}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="ledgerflow-chaos-"))
    n = getattr(args, "processes", 2)
    stack = EphemeralStack(home, processes={"api": n, "worker": n, "relay": n})
    try:
        say("starting the stack")
        base_url = stack.full(
            # Risk review on (the test suites default it off): every transfer waits for its
            # verdict, and the review queue is worked by an approver (Bank.review_queue).
            extra_env={"LEDGERFLOW_OTP_TTL_S": str(args.otp_ttl_s), "LEDGERFLOW_RISK_ENABLED": "true", **NO_RATE_LIMITS}
        )
        counts = asyncio.run(run_workload(stack, base_url, args))
        say("draining: waiting for every transfer to end and every event to be published")
        engine = make_engine(stack.database_url, pool_size=2)
        drained = wait_drained(engine)
        checks = check_invariants(engine, stack.settings.kafka_bootstrap, counts.pop("_negative_reads"))
        engine.dispose()
        checks["invariants"]["system_drained"] = drained
    finally:
        say("stopping the stack")
        stack.close()
        # The processes' logs outlive the throwaway stack: a 5xx in the report is explained there.
        logs = RESULTS / "chaos-logs"
        if (home / "logs").is_dir():
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(home / "logs", logs)
            say(f"logs of the run kept in {logs}")
        shutil.rmtree(home, ignore_errors=True)
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), **counts, **checks}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos")
    parser.add_argument("--transfers", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--in-flight", type=int, default=40)
    parser.add_argument("--funding-minor", type=int, default=5_000_000)
    parser.add_argument("--max-amount-minor", type=int, default=300_000)
    parser.add_argument("--otp-ttl-s", type=int, default=30)
    parser.add_argument("--faults", default="all", help="'all', '' or a comma-separated list")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--processes", type=int, default=2, help="API, worker and relay processes, each")
    parser.add_argument("--output", default=str(RESULTS / "chaos-latest.json"))
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    broken = [name for name, ok in report["invariants"].items() if not ok]
    say("all invariants hold" if not broken else f"BROKEN: {', '.join(broken)}")
    return 1 if broken else 0


if __name__ == "__main__":
    # `timeout` or a CI runner sends SIGTERM: unwind through the `finally` that stops the
    # throwaway stack, instead of dying and leaving its processes behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main(sys.argv[1:]))
