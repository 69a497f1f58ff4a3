"""One supervised child process of the embedded stack.

Each part of the stack (PostgreSQL, Temporal, Kafka, worker, relay, API) is described by a
`Service`: how to prepare it once (download, initdb, format), the argv that runs it in the
foreground, and a readiness probe. The `Supervisor` in `stack.supervisor` starts services in
order, waits for each to be ready, and stops them in reverse order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StackError(Exception):
    """A part of the stack could not be prepared or started; the message says what to do."""


@dataclass
class Service:
    """A long-running child process and how to tell that it is ready."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    prepare: Callable[[], None] | None = None
    ready_timeout_s: float = 60.0
    # Run the child as another system user (PostgreSQL refuses to run as root).
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 20.0
    # Descriptors the child inherits (the API processes' shared listening socket).
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Keep the previous run's log beside the new one; readiness probes that read the log
        # must only see this run's lines.
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(self.log_path.suffix + ".prev"))
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it for its lifetime
        env = {**os.environ, **self.env}
        # A new session: Ctrl-C in the terminal reaches only the launcher, which then stops
        # the children in order instead of all of them dying at once.
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
            pass_fds=self.pass_fds,
            **as_user(self.user),
        )
        log.close()

    def wait_ready(self, on_tick: Callable[[float], None] | None = None) -> None:
        """Block until the probe succeeds.

        Raises:
            StackError: the process exited, or the probe did not pass within the timeout.
        """
        deadline = time.monotonic() + self.ready_timeout_s
        started = time.monotonic()
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with code {self.process.returncode} while starting; "
                    f"see {self.log_path}:\n{tail(self.log_path)}"
                )
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} was not ready after {self.ready_timeout_s:.0f}s; "
                    f"see {self.log_path}:\n{tail(self.log_path)}"
                )
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Ask the process group to stop; kill it if it has not gone within the timeout."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (used by fault-injection tests)."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=10)


def as_user(user: str | None) -> dict[str, Any]:
    """Popen keyword arguments that run a child as `user` with that user's own group.

    Setting only the uid would leave the gid as root's, and root-group permission bits would
    then deny access to files the user owns.
    """
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def port_open(host: str, port: int, timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ensure_port_free(name: str, host: str, port: int, env_var: str) -> None:
    """Raises:
    StackError: the port is taken (by an earlier stack or another program).
    """
    if port_open(host, port):
        raise StackError(
            f"port {port} for {name} is already in use on {host}: stop what runs there "
            f"(`ledgerflow down` if it is an earlier stack) or set {env_var} to another port"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (for test stacks that must not clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
