"""The short chaos form CI runs: a few hundred transfers over HTTP on a stack of 2 API, 2 worker
and 2 relay processes, each fault once and the process kills together (each kill takes one
process of its kind, which the launcher restarts), then every invariant of docs/design.md
checked on the drained system.

The full form (10,000 transfers) is `make chaos`; its last result is in the README.
"""

from __future__ import annotations

import argparse
import json

import pytest

from chaos.__main__ import RESULTS, run


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_invariants_hold_under_faults() -> None:
    args = argparse.Namespace(
        transfers=200,
        customers=12,
        in_flight=20,
        funding_minor=5_000_000,
        max_amount_minor=300_000,
        otp_ttl_s=30,
        faults="all",
        seed=11,
        processes=2,
    )
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chaos-ci-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("outcomes", "retries_seen", "duplicates_absorbed", "faults_injected")}))
    assert report["invariants"] == {name: True for name in report["invariants"]}, report["details"]
    assert len(report["invariants"]) == 11
    assert report["posted"] > 0
    assert len(report["faults_injected"]) >= 6
    # The many-process stack: two of each kind, one of each killed (twice: alone, then together)
    # and every kill restarted by the launcher's watcher.
    assert report["processes"] == {"api": 2, "worker": 2, "relay": 2}
    assert len(report["processes_killed"]) == 6
    assert sum(report["processes_restarted"].values()) >= 6
    if report["profile"] == "cluster":
        # `make test-cluster`: one of three Kafka brokers killed, and the Temporal server (not the
        # dev server) restarted, with nothing lost (the invariants above read every topic).
        faults = {f["fault"] for f in report["faults_injected"]}
        assert {"kill -9 kafka broker", "restart temporal"} <= faults
        assert len(report["kafka_brokers_killed"]) == 1
