"""The bare-workflow floor measures a workflow, not an import.

The sandbox imports the workflow's module afresh for every run, so whatever that module
imports at the top, and is not passed through, is paid for again by every bare workflow.
`config.settings` (pydantic-settings) once was: the floor's worker spent 47 ms of CPU per
workflow instead of 10 (bench/noop.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_noop_workflow_module_imports_only_what_the_sandbox_passes_through() -> None:
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import bench.noop\n"
        "new = sorted(m for m in set(sys.modules) - before if not m.startswith(('temporalio', 'bench')))\n"
        "print('\\n'.join(new))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True)
    ours = [m for m in out.stdout.split() if m.split(".")[0] in {"config", "ledger", "contracts", "pydantic_settings"}]
    assert ours == []
