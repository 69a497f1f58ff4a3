"""Named crash points for fault-injection tests and the chaos harness.

`LEDGERFLOW_CRASH_AT=<point>` makes the process die at that point exactly as `kill -9` would
(no cleanup, no reply to Temporal), so tests can hit the worst instants deterministically,
e.g. right after the posting transaction committed and before Temporal heard about it.
Unset in every normal deployment: the check is one dictionary lookup.
"""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    if os.environ.get("LEDGERFLOW_CRASH_AT") == name:
        os._exit(137)
