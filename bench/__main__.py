"""`make bench`: start a throwaway embedded stack, run every benchmark, print and save the table.

Each figure is printed beside a floor measured in the same run on the same machine, so the
ratio means something even on a noisy 2-core box. Results go to
bench/results/<UTC date-time>.json and bench/results/latest.json.

Usage: python -m bench [ledger] [workflow] [relay] [e2e] [cluster]   (no names: all but cluster)

`cluster` repeats the workflow and e2e figures on the cluster profile (bench/cluster_bench.py).
"""

from __future__ import annotations

import json
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack import postgres
from stack.ephemeral import EphemeralStack

RESULTS = Path(__file__).resolve().parent / "results"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def fresh_db(stack: EphemeralStack, migrate: bool = True) -> str:
    from ledger.migrate import upgrade

    pg = stack.postgres()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    postgres.ensure_database(host=pg.host, port=pg.port, dbname=name)
    url = pg.url(name)
    if migrate:
        upgrade(url)
    return url


def machine() -> str:
    import os

    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB"


def main(argv: list[str]) -> int:
    # `cluster` only when named: it needs the Temporal server built from its Go module
    # (`make temporal-server`) and has not yet produced a figure on this machine.
    wanted = set(argv) or {"ledger", "workflow", "relay", "e2e"}
    home = Path(tempfile.mkdtemp(prefix="ledgerflow-bench-"))
    stack = EphemeralStack(home)
    results: list[dict[str, Any]] = []
    failures: list[str] = []

    def step(name: str, fn: Callable[[], list[dict[str, Any]]]) -> None:
        if name not in wanted:
            return
        say(f"{name}: running")
        t0 = time.monotonic()
        try:
            rows = fn()
        except Exception:
            failures.append(name)
            say(f"{name}: FAILED\n{traceback.format_exc()}")
            return
        results.extend(rows)
        for row in rows:
            say(f"{name}: {row['name']} = {row['value']} {row['unit']} (floor {row['floor']}, ratio {row['ratio']})")
        say(f"{name}: done in {time.monotonic() - t0:.0f}s")

    try:
        say("starting PostgreSQL")
        pg = stack.postgres()

        def ledger_bench() -> list[dict[str, Any]]:
            from bench import ledger_bench as lb

            return lb.run(fresh_db(stack), pg.bin_dir, pg.host, pg.port)

        def workflow_bench() -> list[dict[str, Any]]:
            from bench import workflow_bench as wb

            say("starting Temporal")
            return wb.run(stack.temporal(), fresh_db(stack), home)

        def relay_bench() -> list[dict[str, Any]]:
            from bench import relay_bench as rb

            say("starting Kafka")
            return rb.run(fresh_db(stack), stack.kafka())

        def e2e_bench() -> list[dict[str, Any]]:
            from bench import e2e_bench as eb

            say("starting the worker, relay and API")
            return eb.run(stack, home)

        step("ledger", ledger_bench)
        step("workflow", workflow_bench)
        step("relay", relay_bench)
        step("e2e", e2e_bench)

        def cluster_bench() -> list[dict[str, Any]]:
            from bench import cluster_bench as cb

            # The dev stack's workers, relay and API go quiet first: the two e2e figures must not
            # share the machine with each other's application processes.
            stack.stop_apps()
            return cb.run(fresh_db, say)

        step("cluster", cluster_bench)
    finally:
        say("stopping the stack")
        stack.close()
        shutil.rmtree(home, ignore_errors=True)

    report = {"machine": machine(), "date": datetime.now(UTC).isoformat(timespec="seconds"), "results": results}
    print_table(report)
    if results:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(report, indent=2) + "\n"
        (RESULTS / f"{stamp}.json").write_text(text)
        # latest.json is merged by name, so running one benchmark keeps the others' figures.
        latest_path = RESULTS / "latest.json"
        merged = {
            r["name"]: r for r in (json.loads(latest_path.read_text())["results"] if latest_path.exists() else [])
        }
        merged.update({r["name"]: r for r in results})
        latest = {**report, "results": list(merged.values())}
        latest_path.write_text(json.dumps(latest, indent=2) + "\n")
        say(f"wrote {RESULTS / (stamp + '.json')} and latest.json")
    return 1 if failures else 0


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['machine']}, {report['date']}")
    print(f"{'figure':<34} {'value':>12} {'unit':<13} {'floor':<26} {'floor value':>12} {'ratio':>7}")
    for r in report["results"]:
        print(
            f"{r['name']:<34} {r['value']:>12} {r['unit']:<13} {r['floor_name']:<26} {r['floor']:>12} {r['ratio']:>7}"
        )


if __name__ == "__main__":
    # `timeout` or a CI runner sends SIGTERM: unwind through the `finally` that stops the
    # throwaway stack, instead of dying and leaving its processes behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main(sys.argv[1:]))
