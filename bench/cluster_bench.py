"""`python -m bench cluster`: the e2e figure and the bare-workflow floor on the cluster profile.

The same measurements as `e2e` and `workflow` (bench/e2e_bench.py, bench/workflow_bench.py), on a
second throwaway stack of the cluster profile (the Temporal server on PostgreSQL with 4 history
shards, three Kafka brokers with RF 3 and min.insync.replicas 2), in the same run on the same
machine, so each cluster figure sits beside its dev-server twin. Row names get a " (cluster)"
suffix; nothing else in them changes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stack.ephemeral import EphemeralStack


def run(fresh_db: Callable[[EphemeralStack], str], say: Callable[[str], None]) -> list[dict[str, Any]]:
    from bench import e2e_bench, workflow_bench

    home = Path(tempfile.mkdtemp(prefix="ledgerflow-bench-cluster-"))
    stack = EphemeralStack(home, profile="cluster")
    try:
        say("cluster: starting PostgreSQL and the Temporal server (built once, then cached)")
        rows = workflow_bench.run(stack.temporal(), fresh_db(stack), home)
        say("cluster: starting three Kafka brokers, the worker, relay and API")
        # The main pass only: the comparisons (risk off, one API) are the dev profile's.
        rows += e2e_bench.run(stack, home, comparisons=False)
    finally:
        stack.close()
        shutil.rmtree(home, ignore_errors=True)
    return [{**row, "name": f"{row['name']} (cluster)", "profile": "cluster"} for row in rows]
