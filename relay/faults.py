"""Named crash points of the relay, for fault-injection tests and the chaos harness.

Same convention as activities/faults.py: `LEDGERFLOW_CRASH_AT=<point>` kills the process at
that point with SIGKILL (no cleanup, no rollback sent, no producer flush), so a test can hit
the worst instant deterministically. Unset in every normal deployment: one dict lookup.

Points:
    relay.after_acks  every row of a page is acknowledged by Kafka, the cursor has not moved yet
"""

from __future__ import annotations

import os
import signal

AFTER_ACKS = "relay.after_acks"


def crash_point(name: str) -> None:
    if os.environ.get("LEDGERFLOW_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
